// The preference-data audit behind `dpo data check`: counts, bad rows by reason, duplicates,
// train/eval prompt leakage, length bias, length percentiles, what truncation would do, and the
// turn/role balance of conversational data. Streams the files; keeps only hashes and lengths.

import { createHash } from 'node:crypto';
import type { ChatMessage, Tokenizer } from '../io/tokenizer.js';
import { streamPreferenceExamples } from './load.js';
import type { LoadOptions, LoadSummary } from './load.js';
import { checkTruncation, countTruncation, emptyTokenizeSummary, encodePair, truncatePair } from './tokenize.js';
import type { TokenizeSummary, TruncationOptions } from './tokenize.js';
import type { BadRowReason, DataSource, PreferenceExample, TruncationMode } from './types.js';
import { BAD_ROW_REASONS, countByReason, formatLoc } from './types.js';

export interface AuditOptions extends Omit<LoadOptions, 'onBadRow' | 'limit'>, TruncationOptions {
  /** Files, or rows in memory. */
  train: DataSource;
  eval?: DataSource | undefined;
  /** Enables token lengths, token length bias and the truncation forecast. */
  tokenizer?: Tokenizer;
  /** How many example locations each finding lists (default 5). */
  examples?: number;
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

    chars.add(promptText(ex).length, responseChars(ex.chosen), responseChars(ex.rejected));
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
