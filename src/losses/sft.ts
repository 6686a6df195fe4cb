// SFT / NLL loss on per-sequence summed log-probs: one token-level mean over all response tokens of
// the batch (F.cross_entropy over the masked tokens, as TRL's SFTTrainer, its DPO "sft" loss type,
// rpo_alpha and ORPO's NLL do), not a mean of per-sequence means. Long sequences weigh more.
//
//   loss = −Σ_i S_i / Σ_i T_i,   ∂loss/∂S_i = −1 / Σ_j T_j
// with S_i = Σ_t log p(y_t) over the T_i response tokens of sequence i.

import type { LossSpec } from './spec.js';
import { checkCounts, checkLogps } from './validate.js';

export interface SftResult {
  /** Token-level mean NLL over the batch. */
  loss: number;
  /** Σ_i T_i. */
  totalTokens: number;
  /** Per-sequence mean NLL −S_i / T_i (for logging; 0 for a sequence with no tokens). */
  perSequence: Float64Array;
  /** ∂loss/∂S_i (the same for every sequence: −1 / Σ T). */
  gradSumLogps: Float64Array;
}

/**
 * Token-mean NLL of a batch from its per-sequence summed log-probs `sumLogps` (Σ log p over the
 * response tokens) and token counts `tokens`. A sequence may have 0 tokens (then its sum must be 0);
 * the batch must have at least one.
 */
export function sftLoss(sumLogps: Float64Array, tokens: ArrayLike<number>): SftResult {
  const where = 'sft';
  if (!(sumLogps instanceof Float64Array) || sumLogps.length === 0) {
    throw new Error(`sft: sumLogps must be a non-empty Float64Array (got length ${(sumLogps as { length?: number })?.length})`);
  }
  const n = sumLogps.length;
  checkLogps(where, 'sumLogps', sumLogps, n);
  checkCounts(where, 'tokens', tokens, n, 0);
  let total = 0;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    if (tokens[i] === 0 && sumLogps[i] !== 0) {
      throw new Error(`sft: sequence ${i} has 0 tokens but sumLogps[${i}] = ${sumLogps[i]}`);
    }
    total += tokens[i];
    sum += sumLogps[i];
  }
  if (total === 0) throw new Error(`sft: the batch has no response tokens (all ${n} token counts are 0)`);
  const perSequence = new Float64Array(n);
  for (let i = 0; i < n; i++) perSequence[i] = tokens[i] > 0 ? -sumLogps[i] / tokens[i] : 0;
  return { loss: -sum / total, totalTokens: total, perSequence, gradSumLogps: new Float64Array(n).fill(-1 / total) };
}

// sft as a preference loss_type (TRL v1.x "sft"): the batch's token-mean NLL of the chosen responses,
// expanded to every pair. It has no pair term of its own: it only adds weight to the shared NLL term
// (index.ts), which calls sftLoss above.
export const sftSpec: LossSpec<'sft'> = {
  name: 'sft',
  trl: 'sft',
  referenceFree: true,
  usesNll: () => true,
  compute: () => ({ nllWeight: 1 }),
};
