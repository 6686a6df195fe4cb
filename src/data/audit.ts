// The preference-data audit behind `dpo data check`: counts, bad rows by reason, duplicates,
// train/eval prompt leakage, length bias, length percentiles, what truncation would do, and the
// turn/role balance of conversational data. Streams the files; keeps only hashes and lengths.

import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { DiversityTally, languageName, type DiversityOptions, type DiversityReport } from './diversity.js';
import { PiiTally, PII_KINDS, findPii, redactValue, type PiiFieldReport, type PiiKind } from './pii.js';
import { readRecords } from './readers.js';
import type { ChatMessage, Tokenizer } from '../io/tokenizer.js';
import { streamPreferenceExamples } from './load.js';
import type { LoadOptions, LoadSummary } from './load.js';
import { checkTruncation, countTruncation, emptyTokenizeSummary, encodePair, truncatePair } from './tokenize.js';
import type { TokenizeSummary, TruncationOptions } from './tokenize.js';
import type { BadRowReason, DataSource, PreferenceExample, TruncationMode } from './types.js';
import { BAD_ROW_REASONS, countByReason, formatLoc, MISSING_SLICE } from './types.js';

export interface AuditOptions extends Omit<LoadOptions, 'onBadRow' | 'limit'>, TruncationOptions {
  /** Files, or rows in memory. */
  train: DataSource;
  eval?: DataSource | undefined;
  /** Enables token lengths, token length bias and the truncation forecast. */
  tokenizer?: Tokenizer;
  /** How many example locations each finding lists (default 5). */
  examples?: number;
  /** Scan for personal data (default true). */
  pii?: boolean;
  /** Languages, near-duplicate prompt clusters, lexical diversity, topic terms (default true). */
  diversity?: boolean | DiversityOptions;
}

export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

export interface LengthStats {
  prompt: Percentiles;
  chosen: Percentiles;
  rejected: Percentiles;
  /** prompt + the longer response: the sequence length a pair needs. */
  total: Percentiles;
}

export interface LengthBias {
  pairs: number;
  chosenLonger: number;
  rejectedLonger: number;
  equal: number;
  /** chosenLonger / pairs: far from 0.5 means length alone predicts the preference. */
  chosenLongerShare: number;
  /** Mean and median of len(chosen) − len(rejected). */
  meanDiff: number;
  medianDiff: number;
}

export interface ConversationStats {
  /** Pairs whose prompt is a message list. */
  pairs: number;
  /** Histogram: number of prompt messages → pairs. */
  promptTurns: Record<string, number>;
  /** Messages per role over all prompts. */
  promptRoles: Record<string, number>;
  withSystemPrompt: number;
  /** Role of the prompt's last message → pairs (should be "user"). */
  lastPromptRole: Record<string, number>;
  chosenTurns: Record<string, number>;
  rejectedTurns: Record<string, number>;
  /** Pairs whose chosen and rejected have different numbers of messages. */
  turnCountMismatch: number;
}

export interface Finding {
  count: number;
  /** A few example locations ("file:line"), each group = rows sharing the same key. */
  examples: string[][];
}

/** One split: the load's counts (its LoadSummary without the bad rows themselves), then the checks. */
export interface SplitAudit extends Omit<LoadSummary, 'badRows'> {
  /** The first problems, as "file:line: reason: message". */
  badExamples: string[];
  identicalResponses: number;
  emptyResponses: number;
  /** Rows repeating an earlier row's (prompt, chosen, rejected). */
  duplicatePairs: Finding;
  /** Rows repeating an earlier row's prompt (exact match). */
  duplicatePrompts: Finding & { distinctPrompts: number };
  lengthBiasChars: LengthBias;
  lengthBiasTokens?: LengthBias;
  lengthsChars: LengthStats;
  lengthsTokens?: LengthStats;
  /** What the truncation settings would do (needs a tokenizer). */
  truncation?: TruncationForecast;
  conversation?: ConversationStats;
  /** Personal data found, per field (prompt, chosen, rejected). */
  pii?: { total: number; fields: Record<string, PiiFieldReport> };
  diversity?: DiversityReport;
  /** Per slice column (--slice COL): one entry per value, largest first. */
  slices?: Record<string, SliceAudit[]>;
}

/** One value of a slice column: its rows, length bias and agreement on repeated pairs. */
export interface SliceAudit {
  value: string;
  rows: number;
  share: number;
  lengthBiasChars: LengthBias;
  /** Pairs (same prompt, same two responses in either order) with ≥ 2 rows in this slice. */
  repeatedPairs: number;
  /** Share of row pairs on those repeated pairs that prefer the same response (null: none). */
  withinAgreement: number | null;
  /** Pairs this slice shares with other slices (both sides with a majority). */
  sharedPairs: number;
  /** Share of the shared pairs where this slice's majority picks the same response as the other slices' pooled majority. */
  agreementWithOthers: number | null;
}

export interface TruncationForecast {
  maxLength: number | null;
  maxPromptLength: number | null;
  maxCompletionLength: number | null;
  truncationMode: TruncationMode;
  promptTruncated: number;
  responseTruncated: number;
  truncatedRows: number;
  /** Tokens truncation removes over all kept pairs: from prompts (per pair, its row that loses more) and responses. */
  tokensCut: { prompt: number; chosen: number; rejected: number };
  /** The most tokens one pair loses (prompt + both responses). */
  maxTokensCutPerPair: number;
  /** The pairs that lose the most: "file:line: prompt −N, chosen −M, rejected −K tokens (of T)". */
  truncatedExamples: string[];
  dropped: number;
  droppedByReason: Partial<Record<BadRowReason, number>>;
  droppedExamples: string[];
}

export interface Leakage {
  evalRows: number;
  /** Eval rows whose prompt occurs verbatim in train. */
  exact: number;
  /** Eval rows whose prompt matches a train prompt after whitespace collapsing and lower-casing (includes exact). */
  normalized: number;
  /** [eval location, train location] pairs. */
  examples: [string, string][];
}

export interface AuditReport {
  train: SplitAudit;
  eval?: SplitAudit;
  leakage?: Leakage;
  tokenizer: boolean;
}

function hash(s: string): string {
  return createHash('sha1').update(s).digest('base64');
}

function promptText(ex: PreferenceExample): string {
  return ex.kind === 'text' ? ex.prompt : ex.prompt.map((m) => `${m.role}: ${m.content}`).join('\n');
}

function responseChars(r: string | readonly ChatMessage[]): number {
  return typeof r === 'string' ? r.length : r.reduce((n, m) => n + m.content.length, 0);
}

function exactKey(ex: PreferenceExample): string {
  return hash(ex.kind === 'text' ? `t\u0000${ex.prompt}` : `c\u0000${JSON.stringify(ex.prompt)}`);
}

function normalizedKey(ex: PreferenceExample): string {
  return hash(promptText(ex).toLowerCase().replace(/\s+/g, ' ').trim());
}

function pairKey(ex: PreferenceExample): string {
  return hash(JSON.stringify([ex.prompt, ex.chosen, ex.rejected]));
}

/** Nearest-rank percentiles (p50/p90/p99), max and mean. */
export function percentiles(values: readonly number[]): Percentiles {
  if (values.length === 0) return { p50: 0, p90: 0, p99: 0, max: 0, mean: 0 };
  const s = Float64Array.from(values).sort();
  const at = (p: number) => s[Math.max(0, Math.ceil(p * s.length) - 1)]!;
  let sum = 0;
  for (const v of s) sum += v;
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: s[s.length - 1]!, mean: sum / s.length };
}

function median(values: readonly number[]): number {
  if (values.length === 0) return 0;
  const s = Float64Array.from(values).sort();
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function lengthBias(chosen: readonly number[], rejected: readonly number[]): LengthBias {
  let c = 0;
  let r = 0;
  let e = 0;
  const diffs: number[] = [];
  for (let i = 0; i < chosen.length; i++) {
    const d = chosen[i]! - rejected[i]!;
    diffs.push(d);
    if (d > 0) c++;
    else if (d < 0) r++;
    else e++;
  }
  const n = chosen.length;
  const mean = n ? diffs.reduce((a, b) => a + b, 0) / n : 0;
  return { pairs: n, chosenLonger: c, rejectedLonger: r, equal: e, chosenLongerShare: n ? c / n : 0, meanDiff: mean, medianDiff: median(diffs) };
}

class Lengths {
  prompt: number[] = [];
  chosen: number[] = [];
  rejected: number[] = [];
  add(p: number, c: number, r: number): void {
    this.prompt.push(p);
    this.chosen.push(c);
    this.rejected.push(r);
  }
  stats(): LengthStats {
    const total = this.prompt.map((p, i) => p + Math.max(this.chosen[i]!, this.rejected[i]!));
    return { prompt: percentiles(this.prompt), chosen: percentiles(this.chosen), rejected: percentiles(this.rejected), total: percentiles(total) };
  }
}

function bump(h: Record<string, number>, k: string | number): void {
  h[k] = (h[k] ?? 0) + 1;
}

/** Per slice column: value → rows' lengths and, per unordered pair, votes for each direction. */
class SliceTally {
  private readonly values = new Map<string, { chosen: number[]; rejected: number[]; pairs: Map<string, [number, number]> }>();
  add(value: string, chosenChars: number, rejectedChars: number, pairKey: string, dir: 0 | 1): void {
    let v = this.values.get(value);
    if (!v) this.values.set(value, (v = { chosen: [], rejected: [], pairs: new Map() }));
    v.chosen.push(chosenChars);
    v.rejected.push(rejectedChars);
    let c = v.pairs.get(pairKey);
    if (!c) v.pairs.set(pairKey, (c = [0, 0]));
    c[dir]++;
  }
  report(): SliceAudit[] {
    const total = [...this.values.values()].reduce((a, v) => a + v.chosen.length, 0);
    const majority = (c: readonly [number, number]): 0 | 1 | null => (c[0] > c[1] ? 0 : c[1] > c[0] ? 1 : null);
    const out: SliceAudit[] = [];
    for (const [value, v] of this.values) {
      let repeated = 0;
      let agreePairs = 0;
      let allPairs = 0;
      let shared = 0;
      let sharedAgree = 0;
      for (const [key, c] of v.pairs) {
        const n = c[0] + c[1];
        if (n >= 2) {
          repeated++;
          agreePairs += (c[0] * (c[0] - 1)) / 2 + (c[1] * (c[1] - 1)) / 2;
          allPairs += (n * (n - 1)) / 2;
        }
        const others: [number, number] = [0, 0];
        for (const [ov, o] of this.values) {
          if (ov === value) continue;
          const oc = o.pairs.get(key);
          if (oc) {
            others[0] += oc[0];
            others[1] += oc[1];
          }
        }
        const mine = majority(c);
        const theirs = majority(others);
        if (mine !== null && theirs !== null) {
          shared++;
          if (mine === theirs) sharedAgree++;
        }
      }
      out.push({
        value,
        rows: v.chosen.length,
        share: total ? v.chosen.length / total : 0,
        lengthBiasChars: lengthBias(v.chosen, v.rejected),
        repeatedPairs: repeated,
        withinAgreement: allPairs ? agreePairs / allPairs : null,
        sharedPairs: shared,
        agreementWithOthers: shared ? sharedAgree / shared : null,
      });
    }
    return out.sort((a, b) => b.rows - a.rows || (a.value < b.value ? -1 : 1));
  }
}

/** Key of the unordered pair (prompt and the two responses in either order) and which way this row prefers. */
function unorderedPairKey(ex: PreferenceExample): { key: string; dir: 0 | 1 } {
  const c = JSON.stringify(ex.chosen);
  const r = JSON.stringify(ex.rejected);
  const [x, y] = c < r ? [c, r] : [r, c];
  return { key: hash(JSON.stringify([ex.prompt, x, y])), dir: c < r ? 0 : 1 };
}

function texts(x: string | readonly ChatMessage[]): string[] {
  return typeof x === 'string' ? [x] : x.map((m) => m.content);
}

interface PromptIndex {
  exact: Map<string, string>;
  normalized: Map<string, string>;
}

/** Audits one split, adding its prompts to `index`; with `against`, counts prompts found there into `leakage`. */
async function auditSplit(
  files: DataSource,
  opts: AuditOptions,
  index: PromptIndex,
  against?: { index: PromptIndex; leakage: Leakage },
): Promise<SplitAudit> {
  const nEx = opts.examples ?? 5;
  const tok = opts.tokenizer;
  const { examples, summary } = streamPreferenceExamples(files, { ...opts, onBadRow: 'skip' });
  const chars = new Lengths();
  const tokens = new Lengths();
  const pairSeen = new Map<string, string[]>();
  const promptSeen = new Map<string, string[]>();
  let dupPairs = 0;
  let dupPrompts = 0;
  const trunc: TokenizeSummary = emptyTokenizeSummary(0);
  /** [tokens lost, description] of the pairs truncation cuts most, largest first. */
  const worstCuts: [number, string][] = [];
  let conv: ConversationStats | undefined;
  const pii = opts.pii === false ? null : new PiiTally(nEx);
  const div = opts.diversity === false ? null : new DiversityTally({ examples: nEx, ...(typeof opts.diversity === 'object' ? opts.diversity : {}) });
  const sliceTallies = new Map<string, SliceTally>((opts.sliceColumns ?? []).map((c) => [c, new SliceTally()]));

  for await (const ex of examples) {
    const where = formatLoc(ex.loc);
    const pk = pairKey(ex);
    const pSeen = pairSeen.get(pk);
    if (pSeen) {
      dupPairs++;
      pSeen.push(where);
    } else pairSeen.set(pk, [where]);
    const ek = exactKey(ex);
    const prSeen = promptSeen.get(ek);
    if (prSeen) {
      dupPrompts++;
      prSeen.push(where);
    } else promptSeen.set(ek, [where]);
    if (!index.exact.has(ek)) index.exact.set(ek, where);
    const nk = normalizedKey(ex);
    if (!index.normalized.has(nk)) index.normalized.set(nk, where);
    if (against) {
      const l = against.leakage;
      l.evalRows++;
      const exact = against.index.exact.get(ek);
      const norm = against.index.normalized.get(nk);
      if (exact !== undefined) l.exact++;
      if (norm !== undefined || exact !== undefined) {
        l.normalized++;
        if (l.examples.length < nEx) l.examples.push([where, exact ?? norm!]);
      }
    }

    const cChars = responseChars(ex.chosen);
    const rChars = responseChars(ex.rejected);
    chars.add(promptText(ex).length, cChars, rChars);
    if (pii) {
      pii.add('prompt', where, texts(ex.prompt));
      pii.add('chosen', where, texts(ex.chosen));
      pii.add('rejected', where, texts(ex.rejected));
    }
    if (div) div.add(promptText(ex), [texts(ex.chosen).join('\n'), texts(ex.rejected).join('\n')], where);
    if (sliceTallies.size) {
      const { key, dir } = unorderedPairKey(ex);
      for (const [col, t] of sliceTallies) t.add(ex.slices?.[col] ?? MISSING_SLICE, cChars, rChars, key, dir);
    }
    if (ex.kind === 'chat') {
      conv ??= { pairs: 0, promptTurns: {}, promptRoles: {}, withSystemPrompt: 0, lastPromptRole: {}, chosenTurns: {}, rejectedTurns: {}, turnCountMismatch: 0 };
      conv.pairs++;
      bump(conv.promptTurns, ex.prompt.length);
      for (const m of ex.prompt) bump(conv.promptRoles, m.role);
      if (ex.prompt.some((m) => m.role === 'system')) conv.withSystemPrompt++;
      bump(conv.lastPromptRole, ex.prompt[ex.prompt.length - 1]!.role);
      bump(conv.chosenTurns, ex.chosen.length);
      bump(conv.rejectedTurns, ex.rejected.length);
      if (ex.chosen.length !== ex.rejected.length) conv.turnCountMismatch++;
    }
    if (tok) {
      let enc;
      try {
        enc = encodePair(tok, ex);
      } catch (e) {
        throw new Error(`${where}: tokenize: ${(e as Error).message}`);
      }
      trunc.rows++;
      if (!enc.ok) {
        trunc.badRows.push({ loc: ex.loc, reason: enc.reason, message: enc.message });
        continue;
      }
      const { promptIds, chosenIds, rejectedIds } = enc.value;
      tokens.add(promptIds.length, chosenIds.length, rejectedIds.length);
      const t = truncatePair(tok, ex, enc.value, opts);
      if (t.ok) {
        trunc.kept++;
        countTruncation(trunc, t.pair);
        const c = t.pair.cut;
        if (c) {
          const total = promptIds.length + chosenIds.length + rejectedIds.length;
          worstCuts.push([c.prompt + c.chosen + c.rejected, `${where}: prompt −${c.prompt}, chosen −${c.chosen}, rejected −${c.rejected} tokens (of ${promptIds.length} + ${chosenIds.length} + ${rejectedIds.length} = ${total})`]);
          worstCuts.sort((a, b) => b[0] - a[0]);
          if (worstCuts.length > nEx) worstCuts.pop();
        }
      } else trunc.badRows.push({ loc: ex.loc, reason: t.reason, message: t.message });
    }
  }

  const groups = (m: Map<string, string[]>) => [...m.values()].filter((g) => g.length > 1);
  const pairGroups = groups(pairSeen);
  const promptGroups = groups(promptSeen);
  const audit: SplitAudit = {
    files: summary.files,
    format: summary.format,
    rowsRead: summary.rowsRead,
    valid: summary.valid,
    bad: summary.bad,
    badByReason: summary.badByReason,
    badExamples: summary.badRows.slice(0, 20).map((b) => `${formatLoc(b.loc)}: ${b.reason}: ${b.message}`),
    identicalResponses: summary.badByReason.identical_responses ?? 0,
    emptyResponses: summary.badByReason.empty_response ?? 0,
    duplicatePairs: { count: dupPairs, examples: pairGroups.slice(0, nEx).map((g) => g.slice(0, nEx)) },
    duplicatePrompts: { count: dupPrompts, distinctPrompts: promptGroups.length, examples: promptGroups.slice(0, nEx).map((g) => g.slice(0, nEx)) },
    lengthBiasChars: lengthBias(chars.chosen, chars.rejected),
    lengthsChars: chars.stats(),
  };
  if (tok) {
    audit.lengthBiasTokens = lengthBias(tokens.chosen, tokens.rejected);
    audit.lengthsTokens = tokens.stats();
    audit.truncation = {
      maxLength: opts.maxLength ?? null,
      maxPromptLength: opts.maxPromptLength ?? null,
      maxCompletionLength: opts.maxCompletionLength ?? null,
      truncationMode: opts.truncationMode ?? 'keep_start',
      promptTruncated: trunc.promptTruncated,
      responseTruncated: trunc.responseTruncated,
      truncatedRows: trunc.truncatedRows,
      tokensCut: trunc.tokensCut,
      maxTokensCutPerPair: trunc.maxTokensCutPerPair,
      truncatedExamples: worstCuts.map((w) => w[1]),
      dropped: trunc.badRows.length,
      droppedByReason: countByReason(trunc.badRows),
      droppedExamples: trunc.badRows.slice(0, nEx).map((b) => `${formatLoc(b.loc)}: ${b.reason}: ${b.message}`),
    };
  }
  if (conv) audit.conversation = conv;
  if (pii) audit.pii = { total: pii.total(), fields: pii.fields };
  if (div) audit.diversity = div.report();
  if (sliceTallies.size) audit.slices = Object.fromEntries([...sliceTallies].map(([c, t]) => [c, t.report()]));
  return audit;
}

/**
 * Audits a preference data set (and optionally its eval split). Bad rows never throw here:
 * they are the audit's findings. Eval prompts are checked against train prompts for leakage.
 */
export async function auditPreferenceData(opts: AuditOptions): Promise<AuditReport> {
  checkTruncation(opts);
  const trainIndex: PromptIndex = { exact: new Map(), normalized: new Map() };
  const train = await auditSplit(opts.train, opts, trainIndex);
  const report: AuditReport = { train, tokenizer: opts.tokenizer !== undefined };
  if (opts.eval === undefined) return report;

  // Eval's own audit, checking each prompt against train's.
  const leakage: Leakage = { evalRows: 0, exact: 0, normalized: 0, examples: [] };
  const evalIndex: PromptIndex = { exact: new Map(), normalized: new Map() };
  report.eval = await auditSplit(opts.eval, { ...opts, format: opts.format ?? train.format }, evalIndex, { index: trainIndex, leakage });
  report.leakage = leakage;
  return report;
}

/** An audit's verdict: it fails when any row is bad (what `dpo data check` exits 1 on). */
export interface AuditVerdict {
  passed: boolean;
  /** Bad rows in train and eval together. */
  badRows: number;
}

/** The verdict of an audit report. */
export function auditVerdict(report: AuditReport): AuditVerdict {
  const badRows = report.train.bad + (report.eval?.bad ?? 0);
  return { passed: badRows === 0, badRows };
}

// ---------------------------------------------------------------------------------------------
// Text rendering

function pct(n: number, d: number): string {
  return d === 0 ? '0%' : `${((100 * n) / d).toFixed(1)}%`;
}

function num(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toFixed(1);
}

function histogram(h: Record<string, number>): string {
  return Object.entries(h)
    .sort((a, b) => (Number(a[0]) - Number(b[0])) || a[0].localeCompare(b[0]))
    .map(([k, v]) => `${k}: ${v}`)
    .join(', ');
}

function lengthTable(title: string, s: LengthStats): string[] {
  const row = (name: string, p: Percentiles) =>
    `    ${name.padEnd(9)}${num(p.p50).padStart(9)}${num(p.p90).padStart(9)}${num(p.p99).padStart(9)}${num(p.max).padStart(9)}${num(p.mean).padStart(10)}`;
  return [
    `  ${title}`,
    `    ${''.padEnd(9)}${'p50'.padStart(9)}${'p90'.padStart(9)}${'p99'.padStart(9)}${'max'.padStart(9)}${'mean'.padStart(10)}`,
    row('prompt', s.prompt),
    row('chosen', s.chosen),
    row('rejected', s.rejected),
    row('total', s.total),
  ];
}

function biasLine(unit: string, b: LengthBias): string {
  return (
    `  length bias (${unit}): chosen longer in ${b.chosenLonger}/${b.pairs} pairs (${pct(b.chosenLonger, b.pairs)}), ` +
    `rejected longer ${b.rejectedLonger}, equal ${b.equal}; chosen − rejected mean ${num(b.meanDiff)}, median ${num(b.medianDiff)}`
  );
}

function renderSplit(name: string, a: SplitAudit): string[] {
  const out: string[] = [];
  out.push(`${name}: ${a.files.join(', ')}`);
  out.push(`  format: ${a.format}`);
  out.push(`  rows: ${a.rowsRead} read, ${a.valid} valid, ${a.bad} bad`);
  if (a.bad > 0) {
    for (const r of BAD_ROW_REASONS) if (a.badByReason[r]) out.push(`    ${r}: ${a.badByReason[r]}`);
    out.push('  first problems:');
    for (const e of a.badExamples.slice(0, 10)) out.push(`    ${e}`);
  }
  out.push(`  identical chosen/rejected: ${a.identicalResponses}; empty responses: ${a.emptyResponses}`);
  out.push(`  duplicate pairs: ${a.duplicatePairs.count} rows repeat an earlier pair`);
  for (const g of a.duplicatePairs.examples) out.push(`    ${g.join(' = ')}`);
  out.push(`  duplicate prompts: ${a.duplicatePrompts.count} rows repeat an earlier prompt (${a.duplicatePrompts.distinctPrompts} prompts occur more than once)`);
  for (const g of a.duplicatePrompts.examples) out.push(`    ${g.join(' = ')}`);
  out.push(biasLine('characters', a.lengthBiasChars));
  if (a.lengthBiasTokens) out.push(biasLine('tokens', a.lengthBiasTokens));
  out.push(...lengthTable('lengths in characters', a.lengthsChars));
  if (a.lengthsTokens) out.push(...lengthTable('lengths in tokens', a.lengthsTokens));
  const t = a.truncation;
  if (t) {
    const ext = [
      t.maxPromptLength !== null ? `, max_prompt_length ${t.maxPromptLength}` : '',
      t.maxCompletionLength !== null ? `, max_completion_length ${t.maxCompletionLength}` : '',
    ].join('');
    const settings = `max_length ${t.maxLength ?? 'none'}${ext}, ${t.truncationMode}`;
    out.push(`  truncation as TRL v1.9.0 (${settings}): ${t.truncatedRows} rows cut (prompt ${t.promptTruncated}, response ${t.responseTruncated}), ${t.dropped} dropped`);
    if (t.truncatedRows > 0) {
      const c = t.tokensCut;
      out.push(`    tokens cut: prompt ${c.prompt}, chosen ${c.chosen}, rejected ${c.rejected}; at most ${t.maxTokensCutPerPair} from one pair`);
      for (const e of t.truncatedExamples) out.push(`    ${e}`);
    }
    for (const [r, n] of Object.entries(t.droppedByReason)) out.push(`    ${r}: ${n}`);
    for (const e of t.droppedExamples) out.push(`    ${e}`);
  }
  if (a.pii) {
    out.push(`  personal data: ${a.pii.total} matches${a.pii.total ? ' (--redact OUT writes a copy with placeholders)' : ''}`);
    for (const [field, f] of Object.entries(a.pii.fields)) {
      out.push(`    ${field}: ${f.matches} in ${f.rows} rows (${Object.entries(f.byKind).map(([k, n]) => `${k} ${n}`).join(', ')})`);
      for (const e of f.examples) out.push(`      ${e}`);
    }
  }
  const d = a.diversity;
  if (d) {
    const langs = Object.entries(d.languages);
    const sampleNote = d.languageRows < d.rows ? ` (sample of ${d.languageRows} rows)` : '';
    out.push(
      `  languages${sampleNote}: ${langs.slice(0, 8).map(([l, n]) => `${l === 'und' ? 'undetermined' : `${languageName(l)} (${l})`} ${pct(n, d.languageRows)}`).join(', ')}` +
        `${langs.length > 8 ? `, ${langs.length - 8} more` : ''}`,
    );
    const nd = d.nearDuplicates;
    out.push(
      `  near-duplicate prompts (MinHash, Jaccard ≥ ${nd.threshold}): ${nd.clusters} clusters hold ${nd.rowsInClusters} rows (${pct(nd.rowsInClusters, d.rows)}); ` +
        `largest ${nd.largest[0]?.rows ?? 0} rows (${pct(nd.largest[0]?.rows ?? 0, d.rows)})`,
    );
    for (const c of nd.largest.slice(0, 3)) out.push(`    ${c.rows} rows, ${c.distinctPrompts} distinct: "${c.sample}" at ${c.examples.slice(0, 3).join(', ')}`);
    const lx = d.lexical;
    out.push(
      `  lexical diversity: prompts distinct-1 ${lx.prompts.distinct1.toFixed(3)}, distinct-2 ${lx.prompts.distinct2.toFixed(3)} (${lx.prompts.tokens} words); ` +
        `responses distinct-1 ${lx.responses.distinct1.toFixed(3)}, distinct-2 ${lx.responses.distinct2.toFixed(3)}; mean type-token ratio per response ${lx.meanResponseTypeTokenRatio.toFixed(3)}`,
    );
    if (d.topTerms.length) out.push(`  top prompt terms: ${d.topTerms.slice(0, 12).map((t) => `${t.term} ${pct(t.prompts, d.rows)}`).join(', ')}`);
    for (const w of d.warnings) out.push(`  warning: ${w}`);
  }
  for (const [col, slices] of Object.entries(a.slices ?? {})) {
    out.push(`  slice ${col}: ${slices.length} values`);
    for (const sl of slices) {
      const agree =
        sl.withinAgreement === null && sl.agreementWithOthers === null
          ? 'no repeated pairs'
          : `agreement within ${sl.withinAgreement === null ? '-' : pct(sl.withinAgreement, 1)} on ${sl.repeatedPairs} repeated pairs, ` +
            `with the other slices ${sl.agreementWithOthers === null ? '-' : pct(sl.agreementWithOthers, 1)} on ${sl.sharedPairs} shared pairs`;
      out.push(`    ${sl.value}: ${sl.rows} rows (${pct(sl.rows, a.valid)}); chosen longer ${pct(sl.lengthBiasChars.chosenLonger, sl.lengthBiasChars.pairs)}; ${agree}`);
    }
  }
  const c = a.conversation;
  if (c) {
    out.push(`  conversations: ${c.pairs} pairs, ${c.withSystemPrompt} with a system prompt (${pct(c.withSystemPrompt, c.pairs)})`);
    out.push(`    prompt messages per pair: ${histogram(c.promptTurns)}`);
    out.push(`    prompt roles: ${histogram(c.promptRoles)}`);
    out.push(`    last prompt role: ${histogram(c.lastPromptRole)}`);
    out.push(`    chosen messages: ${histogram(c.chosenTurns)}; rejected messages: ${histogram(c.rejectedTurns)}; different counts: ${c.turnCountMismatch}`);
  }
  return out;
}

/** The human-readable report printed by `dpo data check`. */
export function renderAuditText(report: AuditReport): string {
  const out = renderSplit('train', report.train);
  if (!report.tokenizer) out.push('  (no tokenizer given: token lengths and truncation not computed)');
  if (report.eval) {
    out.push('');
    out.push(...renderSplit('eval', report.eval));
  }
  const l = report.leakage;
  if (l) {
    out.push('');
    out.push(
      `leakage: ${l.exact}/${l.evalRows} eval prompts occur verbatim in train (${pct(l.exact, l.evalRows)}); ` +
        `${l.normalized} match after whitespace/case normalization (${pct(l.normalized, l.evalRows)})`,
    );
    for (const [e, t] of l.examples) out.push(`    eval ${e} ~ train ${t}`);
  }
  return out.join('\n') + '\n';
}

export interface RedactResult {
  rows: number;
  /** Rows in which at least one string changed. */
  redactedRows: number;
  byKind: Partial<Record<PiiKind, number>>;
  /** Lines that are not JSON (left out of the copy: they cannot be rewritten field by field). */
  unreadable: string[];
}

/**
 * Writes a copy of the data with personal data replaced by placeholders in every string field
 * (all columns, nested values included), as JSON lines, atomically (a temporary file renamed into place).
 */
export async function writeRedactedCopy(files: string | readonly string[], out: string, opts: { fileKind?: 'jsonl' | 'json' | 'parquet' } = {}): Promise<RedactResult> {
  const list = typeof files === 'string' ? [files] : files;
  const res: RedactResult = { rows: 0, redactedRows: 0, byKind: {}, unreadable: [] };
  const count = (v: unknown): void => {
    if (typeof v === 'string') for (const m of findPii(v)) res.byKind[m.kind] = (res.byKind[m.kind] ?? 0) + 1;
    else if (Array.isArray(v)) v.forEach(count);
    else if (typeof v === 'object' && v !== null) Object.values(v).forEach(count);
  };
  mkdirSync(dirname(out), { recursive: true });
  const tmp = `${out}.tmp-${process.pid}`;
  // Streamed row by row into a temporary file, renamed into place when complete.
  const fd = openSync(tmp, 'w');
  try {
    for (const f of list) {
      for await (const rec of readRecords(f, { kind: opts.fileKind })) {
        if (rec.error !== undefined) {
          res.unreadable.push(formatLoc(rec.loc));
          continue;
        }
        res.rows++;
        const before = JSON.stringify(rec.value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
        const after = JSON.stringify(redactValue(JSON.parse(before) as unknown, PII_KINDS));
        if (after !== before) {
          res.redactedRows++;
          count(rec.value);
        }
        writeSync(fd, after + '\n');
      }
    }
    closeSync(fd);
    renameSync(tmp, out);
  } catch (e) {
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
    rmSync(tmp, { force: true });
    throw e;
  }
  return res;
}
