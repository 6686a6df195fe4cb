// Per-sequence sums of token log-probs: the one home for turning CausalLM.tokenLogprobs
// ([tokens], 0 at unscored positions) into one number per sequence, used by the trainers (policy
// on the tape, reference without) and by evaluation.

import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';

/**
 * Per-sequence sums as float64 (no tape): row r is the run of lengths[r] values after the previous
 * rows (a padded row's length is its seqLen), each weighted by weights[i] when given.
 */
export function sequenceSums(lp: Float32Array | Float64Array, lengths: ArrayLike<number>, weights?: ArrayLike<number>): Float64Array {
  const out = new Float64Array(lengths.length);
  let i = 0;
  for (let r = 0; r < lengths.length; r++) {
    let s = 0;
    for (const end = i + lengths[r]!; i < end; i++) s += weights ? lp[i]! * weights[i]! : lp[i]!;
    out[r] = s;
  }
  return out;
}

/**
 * Per-sequence sums as float64 (no tape) of packed log-probs whose rows are not contiguous (tree
 * packing): token i belongs to row ⌊paddedIndex[i] / seqLen⌋, weighted by weights[paddedIndex[i]]
 * (padded layout) when given.
 */
export function indexedRowSums(lp: Float32Array | Float64Array, paddedIndex: ArrayLike<number>, rows: number, seqLen: number, weights?: ArrayLike<number>): Float64Array {
  const out = new Float64Array(rows);
  for (let i = 0; i < paddedIndex.length; i++) {
    const j = paddedIndex[i]!;
    out[Math.floor(j / seqLen)]! += weights ? lp[i]! * weights[j]! : lp[i]!;
  }
  return out;
}

/** Row sums of a padded [rows, seqLen] layout as float64 (no tape). */
export function paddedRowSums(lp: Float32Array | Float64Array, rows: number, seqLen: number): Float64Array {
  return sequenceSums(lp, new Array<number>(rows).fill(seqLen));
}

export interface TapeSumOptions {
  /** Sequences (rows of the padded layout). */
  rows: number;
  seqLen: number;
  /** For packed log-probs: each token's index in the padded layout (row = index / seqLen). */
  paddedIndex?: ArrayLike<number>;
  /** Per-token weights in the padded layout: the sums become Σ w_t·log p_t. */
  tokenWeights?: Float32Array;
  /** Also return the unweighted sums: the result is [2·rows] = [weighted rows..., unweighted rows...]. */
  alsoUnweighted?: boolean;
}

/**
 * Per-sequence sums on the tape: a [rows] tensor (or [2·rows], see alsoUnweighted). Padded,
 * unweighted: a row sum; otherwise a product with a segment matrix [rows, N] (its backward hands
 * each token its sequence's gradient times its weight).
 */
export function sequenceSumsOnTape(lp: Tensor, o: TapeSumOptions): Tensor {
  const { rows, seqLen: T_, paddedIndex, tokenWeights } = o;
  if (!paddedIndex && !tokenWeights && !o.alsoUnweighted) return T.sum(T.reshape(lp, [rows, T_]), 1);
  const N = lp.size;
  const out = o.alsoUnweighted ? 2 * rows : rows;
  const seg = new Float32Array(out * N);
  for (let i = 0; i < N; i++) {
    const j = paddedIndex ? paddedIndex[i]! : i;
    const r = Math.floor(j / T_);
    seg[r * N + i] = tokenWeights ? tokenWeights[j]! : 1;
    if (o.alsoUnweighted) seg[(rows + r) * N + i] = 1;
  }
  // Always a float32 product (never bf16 autocast: the log-probs would be rounded to 8 bits).
  return T.reshape(T.withMatmulPrecision('float32', () => T.matmul(T.tensor(seg, [out, N], { dtype: lp.dtype, transient: true }), T.reshape(lp, [N, 1]))), [out]);
}
