// Batching: collate tokenized pairs / SFT rows into padded Int32Array batches, and a seeded,
// epoch-aware, resumable sampler (optionally grouping similar lengths to waste less padding).

import { mulberry32 } from '../util/rng.js';
import { pairLength, pairRow, type TokenizedPair, type TokenizedSft } from './tokenize.js';

/**
 * A DPO batch. Rows 0..pairs−1 are the chosen sequences (prompt + chosen), rows pairs..2·pairs−1
 * the rejected ones, in the same pair order; every row is right-padded with padId to seqLen.
 * targets[r·T + t] is inputIds[r·T + t + 1] when that next token is a response token, else −1,
 * so the logits at t score exactly the response tokens.
 */
export interface PreferenceBatch {
  pairs: number;
  seqLen: number;
  inputIds: Int32Array;
  targets: Int32Array;
  /** Unpadded length of each of the 2·pairs rows. */
  lengths: Int32Array;
  /** Number of labelled (response) tokens in each row. */
  responseTokens: Int32Array;
  /** Dataset rows of the pairs, in batch order. */
  indices: number[];
}

/** An SFT batch: one row per example, right-padded; targets as in PreferenceBatch (−1 = no label). */
export interface SftBatch {
  rows: number;
  seqLen: number;
  inputIds: Int32Array;
  targets: Int32Array;
  lengths: Int32Array;
  /** Number of trained (label) tokens in each row. */
  trainedTokens: Int32Array;
  indices: number[];
}

export interface CollateOptions {
  padId: number;
  /** Round seqLen up to a multiple of this (kernel-friendly shapes). */
  padToMultipleOf?: number;
}

function paddedLength(longest: number, multiple: number | undefined): number {
  if (multiple === undefined || multiple <= 1) return longest;
  if (!Number.isInteger(multiple)) throw new Error(`collate: padToMultipleOf must be a positive integer, got ${multiple}`);
  return Math.ceil(longest / multiple) * multiple;
}

/** Writes one row: tokens, padding, and targets for positions whose next token is a label. */
function writeRow(
  inputIds: Int32Array,
  targets: Int32Array,
  row: number,
  T: number,
  ids: readonly number[],
  isLabel: (pos: number) => boolean,
  padId: number,
): void {
  const base = row * T;
  for (let t = 0; t < T; t++) {
    inputIds[base + t] = t < ids.length ? ids[t]! : padId;
    targets[base + t] = t + 1 < ids.length && isLabel(t + 1) ? ids[t + 1]! : -1;
  }
}

/** Collates tokenized pairs into a PreferenceBatch padded to the longest row. */
export function collatePreference(pairs: readonly TokenizedPair[], opts: CollateOptions): PreferenceBatch {
  const n = pairs.length;
  if (n === 0) throw new Error('collatePreference: empty batch');
  let longest = 0;
  for (const p of pairs) longest = Math.max(longest, pairLength(p));
  const T = paddedLength(longest, opts.padToMultipleOf);
  const inputIds = new Int32Array(2 * n * T);
  const targets = new Int32Array(2 * n * T);
  const lengths = new Int32Array(2 * n);
  const responseTokens = new Int32Array(2 * n);
  for (let i = 0; i < n; i++) {
    const p = pairs[i]!;
    const sides: [number, 'chosen' | 'rejected'][] = [
      [i, 'chosen'],
      [n + i, 'rejected'],
    ];
    for (const [row, side] of sides) {
      const { prompt, response } = pairRow(p, side);
      const P = prompt.length;
      const ids = [...prompt, ...response];
      writeRow(inputIds, targets, row, T, ids, (pos) => pos >= P, opts.padId);
      lengths[row] = ids.length;
      responseTokens[row] = response.length;
    }
  }
  return { pairs: n, seqLen: T, inputIds, targets, lengths, responseTokens, indices: pairs.map((p) => p.index) };
}

/**
 * Padding-free packing of a padded batch: the first lengths[r] positions of every row (ids and
 * targets) back to back in one sequence, and where each packed position sits in the padded
 * layout. A row's last real token has no target, so no target crosses into the next sequence.
 */
export function packRows(inputIds: Int32Array, targets: Int32Array, lengths: Int32Array, seqLen: number): { ids: Int32Array; targets: Int32Array; lengths: Int32Array; paddedIndex: Int32Array } {
  let N = 0;
  for (const n of lengths) N += n;
  const ids = new Int32Array(N), tg = new Int32Array(N), paddedIndex = new Int32Array(N);
  let i = 0;
  lengths.forEach((n, r) => {
    ids.set(inputIds.subarray(r * seqLen, r * seqLen + n), i);
    tg.set(targets.subarray(r * seqLen, r * seqLen + n), i);
    for (let t = 0; t < n; t++) paddedIndex[i + t] = r * seqLen + t;
    i += n;
  });
  return { ids, targets: tg, lengths: Int32Array.from(lengths), paddedIndex };
}

/** A preference batch packed as a tree: each pair's shared prompt once, then its two branches. */
export interface PreferenceTree {
  /** The distinct packed rows' token ids and targets (−1 = no target). */
  ids: Int32Array;
  targets: Int32Array;
  /** 2·pairs sequences, pair by pair: chosen, then rejected (TokenBlock.segments). */
  lengths: Int32Array;
  /** The packed rows each sequence reads, concatenated (TokenBlock.packedRows). */
  rows: Int32Array;
  /** Each packed row's index in the padded layout (a shared row: its chosen row's position). */
  paddedIndex: Int32Array;
  /** Rows each pair shares (computed once for both of its sequences). */
  shared: Int32Array;
}

/**
 * Packs a preference batch's real tokens as a tree, padding-free: per pair, the rows both
 * sequences have in common are computed once. Pair i shares its first S rows, S = the longest
 * common prefix of the chosen and rejected token ids, cut before either row's first target (the
 * last prompt token, which predicts the first response token, stays in each branch, so every
 * scored row belongs to exactly one sequence) and leaving each branch at least one row. Sharing is
 * decided from the ids and targets themselves: rows that differ (keep_end prompts, different
 * prompts) are not shared. Packed rows: pair i's chosen row (L_c), then its rejected rows S..L_r−1;
 * the rejected sequence reads the chosen row's first S rows, then its own.
 */
export function packPreferenceTree(batch: Pick<PreferenceBatch, 'pairs' | 'seqLen' | 'inputIds' | 'targets' | 'lengths'>): PreferenceTree {
  const { pairs: P, seqLen: T, inputIds, targets, lengths } = batch;
  const firstTarget = (r: number): number => {
    for (let t = 0; t < lengths[r]!; t++) if (targets[r * T + t]! >= 0) return t;
    return lengths[r]!;
  };
  const shared = new Int32Array(P);
  let N = 0, total = 0;
  for (let i = 0; i < P; i++) {
    const c = i, r = P + i, Lc = lengths[c]!, Lr = lengths[r]!;
    const cap = Math.min(firstTarget(c), firstTarget(r), Lc - 1, Lr - 1);
    let s = 0;
    while (s < cap && inputIds[c * T + s] === inputIds[r * T + s]) s++;
    shared[i] = Math.max(0, s);
    N += Lc + Lr - shared[i]!;
    total += Lc + Lr;
  }
  const ids = new Int32Array(N), tg = new Int32Array(N), paddedIndex = new Int32Array(N);
  const seqLengths = new Int32Array(2 * P), rows = new Int32Array(total);
  let n = 0, k = 0;
  for (let i = 0; i < P; i++) {
    const c = i, r = P + i, Lc = lengths[c]!, Lr = lengths[r]!, S = shared[i]!;
    const base = n;
    ids.set(inputIds.subarray(c * T, c * T + Lc), n);
    tg.set(targets.subarray(c * T, c * T + Lc), n);
    for (let t = 0; t < Lc; t++) {
      paddedIndex[n + t] = c * T + t;
      rows[k++] = n + t;
    }
    n += Lc;
    ids.set(inputIds.subarray(r * T + S, r * T + Lr), n);
    tg.set(targets.subarray(r * T + S, r * T + Lr), n);
    for (let t = 0; t < S; t++) rows[k++] = base + t;
    for (let t = S; t < Lr; t++) {
      paddedIndex[n + t - S] = r * T + t;
      rows[k++] = n + t - S;
    }
    n += Lr - S;
    seqLengths[2 * i] = Lc;
    seqLengths[2 * i + 1] = Lr;
  }
  return { ids, targets: tg, lengths: seqLengths, rows, paddedIndex, shared };
}

/** Collates tokenized SFT rows into an SftBatch padded to the longest row. */
export function collateSft(rows: readonly TokenizedSft[], opts: CollateOptions): SftBatch {
  const n = rows.length;
  if (n === 0) throw new Error('collateSft: empty batch');
  let longest = 0;
  for (const r of rows) longest = Math.max(longest, r.ids.length);
  const T = paddedLength(longest, opts.padToMultipleOf);
  const inputIds = new Int32Array(n * T);
  const targets = new Int32Array(n * T);
  const lengths = new Int32Array(n);
  const trainedTokens = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const r = rows[i]!;
    writeRow(inputIds, targets, i, T, r.ids, (pos) => r.trained[pos] === 1, opts.padId);
    lengths[i] = r.ids.length;
    let k = 0;
    for (let t = 1; t < r.ids.length; t++) k += r.trained[t]!;
    trainedTokens[i] = k;
  }
  return { rows: n, seqLen: T, inputIds, targets, lengths, trainedTokens, indices: rows.map((r) => r.index) };
}

// ---------------------------------------------------------------------------------------------
// Seeded sampling

/** splitmix32-style 32-bit mixer: deterministic seeds for (seed, epoch) pairs. */
function mix32(x: number): number {
  x = (x + 0x9e3779b9) | 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/** Fisher–Yates permutation of 0..n−1 for (seed, epoch). */
export function permutation(n: number, seed: number, epoch: number): number[] {
  const rand = mulberry32(mix32(mix32(seed) ^ epoch));
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const tmp = p[i]!;
    p[i] = p[j]!;
    p[j] = tmp;
  }
  return p;
}

export interface SamplerOptions {
  /** Examples per batch (pairs for DPO). */
  batchSize: number;
  /** Shuffle each epoch (default true). */
  shuffle?: boolean;
  seed?: number;
  /** Drop the last incomplete batch of each epoch (default false). */
  dropLast?: boolean;
  /**
   * Per-example lengths for length-grouped sampling (like HF's group_by_length): the epoch's
   * permutation is cut into mega-batches of batchSize·groupFactor, each sorted by length
   * (longest first), then split into batches; the batch order is shuffled again.
   */
  lengths?: readonly number[];
  /** Mega-batch size in batches for length grouping (default 50, as HF). */
  groupFactor?: number;
}

export interface SamplerState {
  epoch: number;
  /** Batches already taken in this epoch. */
  position: number;
}

/**
 * Deterministic batch sampler over n examples: the batches of epoch e depend only on
 * (seed, e), so training resumes exactly from a saved (epoch, position).
 */
export class BatchSampler {
  readonly n: number;
  readonly opts: Required<Omit<SamplerOptions, 'lengths'>> & { lengths?: readonly number[] };
  private epoch: number;
  private position: number;
  private cache: { epoch: number; batches: number[][] } | null = null;

  constructor(n: number, opts: SamplerOptions, state: SamplerState = { epoch: 0, position: 0 }) {
    if (!Number.isInteger(n) || n < 1) throw new Error(`BatchSampler: need at least one example, got ${n}`);
    if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1) throw new Error(`BatchSampler: batchSize must be a positive integer, got ${opts.batchSize}`);
    if (opts.lengths !== undefined && opts.lengths.length !== n) {
      throw new Error(`BatchSampler: lengths has ${opts.lengths.length} entries for ${n} examples`);
    }
    this.n = n;
    this.opts = {
      batchSize: opts.batchSize,
      shuffle: opts.shuffle ?? true,
      seed: opts.seed ?? 0,
      dropLast: opts.dropLast ?? false,
      groupFactor: opts.groupFactor ?? 50,
      lengths: opts.lengths,
    };
    if (this.batchesPerEpoch() === 0) throw new Error(`BatchSampler: dropLast with ${n} examples < batchSize ${opts.batchSize} gives no batches`);
    if (!Number.isInteger(state.epoch) || state.epoch < 0 || !Number.isInteger(state.position) || state.position < 0 || state.position > this.batchesPerEpoch()) {
      throw new Error(`BatchSampler: invalid resume state epoch ${state.epoch}, position ${state.position} (${this.batchesPerEpoch()} batches per epoch)`);
    }
    this.epoch = state.epoch;
    this.position = state.position;
  }

  batchesPerEpoch(): number {
    const { batchSize, dropLast } = this.opts;
    return dropLast ? Math.floor(this.n / batchSize) : Math.ceil(this.n / batchSize);
  }

  /** Where the next batch comes from; save this to resume. */
  state(): SamplerState {
    return { epoch: this.epoch, position: this.position };
  }

  /** All batches (example indices) of an epoch. */
  epochBatches(epoch: number): number[][] {
    if (this.cache?.epoch === epoch) return this.cache.batches;
    const { batchSize, shuffle, seed, groupFactor, lengths } = this.opts;
    const order = shuffle ? permutation(this.n, seed, epoch) : Array.from({ length: this.n }, (_, i) => i);
    let batches: number[][] = [];
    if (lengths === undefined) {
      for (let i = 0; i < order.length; i += batchSize) batches.push(order.slice(i, i + batchSize));
    } else {
      const mega = batchSize * groupFactor;
      for (let m = 0; m < order.length; m += mega) {
        // Stable sort by length descending (ties keep the shuffled order).
        const group = order.slice(m, m + mega).sort((a, b) => lengths[b]! - lengths[a]!);
        for (let i = 0; i < group.length; i += batchSize) batches.push(group.slice(i, i + batchSize));
      }
      if (shuffle) {
        // The partial batch (if any) is at the end of the last mega-batch; keep it last so
        // dropLast drops it, and shuffle the order of the full batches.
        const full = batches.filter((b) => b.length === batchSize);
        const partial = batches.filter((b) => b.length !== batchSize);
        const perm = permutation(full.length, seed ^ 0x5bd1e995, epoch);
        batches = [...perm.map((i) => full[i]!), ...partial];
      }
    }
    if (this.opts.dropLast && batches.length > 0 && batches[batches.length - 1]!.length < batchSize) batches.pop();
    this.cache = { epoch, batches };
    return batches;
  }

  /** The next batch's example indices; rolls over into the next epoch. */
  next(): { indices: number[]; epoch: number; position: number } {
    if (this.position >= this.batchesPerEpoch()) {
      this.epoch++;
      this.position = 0;
    }
    const batches = this.epochBatches(this.epoch);
    const out = { indices: batches[this.position]!, epoch: this.epoch, position: this.position };
    this.position++;
    return out;
  }
}

/** Sequence length each pair needs (its longer row): the lengths for length grouping. */
export function pairLengths(pairs: readonly TokenizedPair[]): number[] {
  return pairs.map(pairLength);
}

/**
 * The sampler's next batch of pairs, collated. The sampler indexes positions in `pairs`; the
 * batch's `indices` are the pairs' dataset rows (which differ once bad rows were dropped).
 */
export function nextPreferenceBatch(pairs: readonly TokenizedPair[], sampler: BatchSampler, opts: CollateOptions): PreferenceBatch {
  if (sampler.n !== pairs.length) throw new Error(`nextPreferenceBatch: sampler is over ${sampler.n} examples, pairs has ${pairs.length}`);
  return collatePreference(
    sampler.next().indices.map((i) => pairs[i]!),
    opts,
  );
}

/** The sampler's next batch of SFT rows, collated (see nextPreferenceBatch). */
export function nextSftBatch(rows: readonly TokenizedSft[], sampler: BatchSampler, opts: CollateOptions): SftBatch {
  if (sampler.n !== rows.length) throw new Error(`nextSftBatch: sampler is over ${sampler.n} examples, rows has ${rows.length}`);
  return collateSft(
    sampler.next().indices.map((i) => rows[i]!),
    opts,
  );
}
