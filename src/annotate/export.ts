// Export: preference pairs aggregated by majority vote (standard prompt/chosen/rejected JSONL),
// and the raw votes. Annotators appear only under their pseudonyms.
import { writeFileSync } from 'node:fs';
import { OTHER_GROUP, type AnnotateConfig, type Label } from './config.js';
import type { DB } from './db.js';
import { redactPii } from '../data/pii.js';
import { annotatorGroups } from './groups.js';
import { computeQuality, failsGold, loadVotes } from './quality.js';

export interface ExportOptions {
  /** Share of the item's votes the winning label needs (and it must be the strict plurality). */
  minAgreement: number;
  /** Items with fewer (counted) votes are not exported. */
  minVotes: number;
  /** Leave out every vote of annotators who fail the gold check. */
  excludeGoldFailing: boolean;
  /** Export gold items too (their votes, not their known answer). */
  includeGold: boolean;
  /** Replace personal data (e-mail, phone, card, IBAN, IP, SSN) in exported text. */
  redact: boolean;
  /**
   * Attribute id: weight votes so that each group's votes on an item together count as the
   * group's share of annotators (see groupBalanceWeights), instead of one vote each.
   */
  groupBalance?: string;
  /** Only items added with this source (e.g. one round of `dpo loop`). */
  source?: string;
}

export const DEFAULT_EXPORT: ExportOptions = { minAgreement: 0.5, minVotes: 1, excludeGoldFailing: false, includeGold: false, redact: false };

/**
 * The group-balance rule. With s_g = the share of (enabled) annotators in group g and v_gi = the
 * number of counted votes group g cast on item i, each of those votes weighs s_g / v_gi: every
 * group that voted on an item contributes in proportion to its share of annotators, however many
 * of its members happened to vote there, so no group's share of the item's decision exceeds its
 * share of annotators relative to the other groups present.
 */
export function groupBalanceWeights(itemVotes: ReadonlyArray<{ group: string }>, annotatorShare: ReadonlyMap<string, number>): number[] {
  const n = new Map<string, number>();
  for (const v of itemVotes) n.set(v.group, (n.get(v.group) ?? 0) + 1);
  return itemVotes.map((v) => (annotatorShare.get(v.group) ?? 0) / n.get(v.group)!);
}

/**
 * Redaction of exported text: the data layer's personal-data detector (src/data/pii.ts), the same
 * one `dpo data check --redact` uses.
 */
export const redactText = (text: string): string => redactPii(text);

export interface PreferenceRecord {
  prompt: string | { role: string; content: string }[];
  chosen: string | { role: string; content: string }[];
  rejected: string | { role: string; content: string }[];
}

export interface RawVoteRecord {
  item_id: number;
  annotator: string;
  label: Label;
  shown_choice: string;
  /** true when screen A showed response_a */
  a_shown_first: boolean;
  is_gold: boolean;
  gold_label: Label | null;
  ratings: Record<string, { a: number; b: number }>;
  rationale: string;
  time_ms: number;
  created_at: string;
  prompt: unknown;
  response_a: string;
  response_b: string;
  excluded: boolean;
  /** Attribute → the annotator's group (small groups merged into "other"); present when attributes are configured. */
  groups?: Record<string, string>;
}

/** One A/B vote as a preference row (ties and "both bad" left out), with its annotator and groups: `dpo data check --slice`. */
export interface VotePairRecord extends PreferenceRecord {
  item_id: number;
  annotator: string;
  [group: string]: unknown;
}

export interface ExportResult {
  pairs: PreferenceRecord[];
  raw: RawVoteRecord[];
  votePairs: VotePairRecord[];
  stats: {
    items: number;
    exported: number;
    droppedTie: number;
    droppedBothBad: number;
    droppedLowAgreement: number;
    droppedTooFewVotes: number;
    excludedAnnotators: string[];
    votesUsed: number;
    /** The attribute votes were balanced by, and each group's share of annotators. */
    groupBalance?: { attribute: string; annotatorShare: Record<string, number> };
  };
}

interface ItemRow {
  id: number;
  source: string;
  format: 'text' | 'chat';
  prompt: string;
  response_a: string;
  response_b: string;
  is_gold: number;
}

export function buildExport(db: DB, config: AnnotateConfig, opts: ExportOptions): ExportResult {
  if (!(opts.minAgreement >= 0 && opts.minAgreement <= 1)) throw new Error(`export: min agreement must be in [0, 1], got ${opts.minAgreement}`);
  if (!(Number.isInteger(opts.minVotes) && opts.minVotes >= 1)) throw new Error(`export: min votes must be an integer >= 1, got ${opts.minVotes}`);
  const red = (s: string) => (opts.redact ? redactText(s) : s);
  const redPrompt = (p: unknown): PreferenceRecord['prompt'] =>
    typeof p === 'string' ? red(p) : (p as { role: string; content: string }[]).map((t) => ({ role: t.role, content: red(t.content) }));

  const excluded = new Set<number>();
  if (opts.excludeGoldFailing) {
    const q = computeQuality(db, config);
    for (const a of q.annotators) if (failsGold(a, config.quality.minGoldItems, config.quality.minGoldAccuracy)) excluded.add(a.id);
  }
  const pseudonyms = new Map<number, string>();
  for (const r of db.prepare('SELECT id, pseudonym, disabled FROM annotators').all() as { id: number; pseudonym: string; disabled: number }[]) {
    pseudonyms.set(r.id, r.pseudonym);
    if (r.disabled) excluded.add(r.id); // a disabled annotator's votes are not trusted either
  }

  const items = new Map<number, ItemRow>();
  for (const it of db.prepare('SELECT id, source, format, prompt, response_a, response_b, is_gold FROM items ORDER BY id').all() as ItemRow[]) items.set(it.id, it);

  const votes = opts.source === undefined ? loadVotes(db) : loadVotes(db).filter((v) => items.get(v.itemId)!.source === opts.source);
  const groupsOf = annotatorGroups(db, config);
  const groupLabels = (annotatorId: number): Record<string, string> | undefined =>
    groupsOf.size ? Object.fromEntries([...groupsOf].map(([attr, m]) => [attr, m.get(annotatorId) ?? OTHER_GROUP])) : undefined;
  const raw: RawVoteRecord[] = votes.map((v) => {
    const it = items.get(v.itemId)!;
    const groups = groupLabels(v.annotatorId);
    return {
      item_id: v.itemId,
      annotator: v.pseudonym,
      label: v.label,
      shown_choice: v.shownChoice,
      a_shown_first: !v.swapped,
      is_gold: v.isGold,
      gold_label: v.goldLabel,
      ratings: JSON.parse(v.ratings) as Record<string, { a: number; b: number }>,
      rationale: red(v.rationale),
      time_ms: v.timeMs,
      created_at: v.createdAt,
      prompt: redPrompt(JSON.parse(it.prompt)),
      response_a: red(it.response_a),
      response_b: red(it.response_b),
      excluded: excluded.has(v.annotatorId),
      ...(groups ? { groups } : {}),
    };
  });
  const votePairs: VotePairRecord[] = [];
  for (const v of votes) {
    if (excluded.has(v.annotatorId) || (v.isGold && !opts.includeGold) || (v.label !== 'a' && v.label !== 'b')) continue;
    const it = items.get(v.itemId)!;
    const [win, lose] = v.label === 'a' ? [it.response_a, it.response_b] : [it.response_b, it.response_a];
    const chat = it.format === 'chat';
    votePairs.push({
      prompt: redPrompt(JSON.parse(it.prompt)),
      chosen: chat ? [{ role: 'assistant', content: red(win) }] : red(win),
      rejected: chat ? [{ role: 'assistant', content: red(lose) }] : red(lose),
      item_id: v.itemId,
      annotator: v.pseudonym,
      ...groupLabels(v.annotatorId),
    });
  }

  let balance: Map<string, number> | null = null;
  let balanceGroups: Map<number, string> | null = null;
  if (opts.groupBalance !== undefined) {
    balanceGroups = groupsOf.get(opts.groupBalance) ?? null;
    if (!balanceGroups) {
      throw new Error(`export: --group-balance ${opts.groupBalance}: no such attribute (annotate.yaml attributes: ${config.attributes.map((a) => a.id).join(', ') || 'none'})`);
    }
    // Shares among the annotators whose votes count (enabled and not excluded).
    const counts = new Map<string, number>();
    let total = 0;
    for (const [id, g] of balanceGroups) {
      if (excluded.has(id)) continue;
      counts.set(g, (counts.get(g) ?? 0) + 1);
      total++;
    }
    balance = new Map([...counts].map(([g, n]) => [g, n / total]));
  }

  const byItem = new Map<number, { label: Label; group: string }[]>();
  let votesUsed = 0;
  for (const v of votes) {
    if (excluded.has(v.annotatorId)) continue;
    if (v.isGold && !opts.includeGold) continue;
    const entry = { label: v.label, group: balanceGroups?.get(v.annotatorId) ?? OTHER_GROUP };
    const l = byItem.get(v.itemId);
    if (l) l.push(entry);
    else byItem.set(v.itemId, [entry]);
    votesUsed++;
  }

  const stats: ExportResult['stats'] = {
    items: byItem.size,
    exported: 0,
    droppedTie: 0,
    droppedBothBad: 0,
    droppedLowAgreement: 0,
    droppedTooFewVotes: 0,
    excludedAnnotators: [...excluded].map((id) => pseudonyms.get(id)!).sort(),
    votesUsed,
    ...(balance ? { groupBalance: { attribute: opts.groupBalance!, annotatorShare: Object.fromEntries(balance) } } : {}),
  };
  const pairs: PreferenceRecord[] = [];
  for (const [itemId, entries] of [...byItem.entries()].sort((x, y) => x[0] - y[0])) {
    if (entries.length < opts.minVotes) {
      stats.droppedTooFewVotes++;
      continue;
    }
    const weights = balance ? groupBalanceWeights(entries, balance) : entries.map(() => 1);
    const total = weights.reduce((a, b) => a + b, 0);
    const counts = new Map<Label, number>();
    entries.forEach((e, k) => counts.set(e.label, (counts.get(e.label) ?? 0) + weights[k]!));
    const sorted = [...counts.entries()].sort((x, y) => y[1] - x[1]);
    const [top, topN] = sorted[0]!;
    // Weighted sums: equal within rounding counts as a tie.
    if ((sorted.length > 1 && Math.abs(sorted[1]![1] - topN) <= 1e-12 * total) || topN / total < opts.minAgreement - 1e-12) {
      stats.droppedLowAgreement++;
      continue;
    }
    if (top === 'tie') {
      stats.droppedTie++;
      continue;
    }
    if (top === 'both_bad') {
      stats.droppedBothBad++;
      continue;
    }
    const it = items.get(itemId)!;
    const [win, lose] = top === 'a' ? [it.response_a, it.response_b] : [it.response_b, it.response_a];
    const prompt = redPrompt(JSON.parse(it.prompt));
    if (it.format === 'chat') {
      pairs.push({ prompt, chosen: [{ role: 'assistant', content: red(win) }], rejected: [{ role: 'assistant', content: red(lose) }] });
    } else {
      pairs.push({ prompt, chosen: red(win), rejected: red(lose) });
    }
    stats.exported++;
  }
  return { pairs, raw, votePairs, stats };
}

export function writeJsonl(path: string, records: readonly unknown[]): void {
  writeFileSync(path, records.map((r) => JSON.stringify(r)).join('\n') + (records.length ? '\n' : ''));
}
