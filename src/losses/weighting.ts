// Per-token and per-pair weights of two DPO variants, as TRL v1.9.0's DPOTrainer computes them.
//
// LD-DPO, Liu et al. 2024, "Length Desensitization in Directed Preference Optimization"
// (arXiv:2409.06411), TRL `ld_alpha`: of each response, the first ℓ = min(Tc, Tr) scored tokens
// (the length both responses share) count fully and the rest with weight α:
//   log π(y) = Σ_{k ≤ ℓ} log p_k + α · Σ_{k > ℓ} log p_k      (the reference's likewise)
//
// WPO, Zhou et al. 2024, "WPO: Enhancing RLHF with Weighted Preference Optimization"
// (arXiv:2406.11827), eq. 2, TRL `use_weighting`: each pair's loss is multiplied (without gradient)
// by w = w_c · w_r, w_y = exp( (1/T) Σ_t [log p_t − log Σ_v p_v(t)²] ), the policy's
// length-normalized probability of y relative to its own sampling distribution at each step.

/** LD-DPO weight of each scored response token: 1 for the first `shared` tokens, alpha after. */
export function ldTokenWeights(scoredTokens: number, shared: number, alpha: number): Float64Array {
  if (!(alpha >= 0 && alpha <= 1)) throw new Error(`ld_alpha = ${alpha} is invalid; it must be in [0, 1]`);
  const w = new Float64Array(scoredTokens);
  for (let k = 0; k < scoredTokens; k++) w[k] = k < shared ? 1 : alpha;
  return w;
}

/**
 * WPO pair weights from each row's sum over its scored tokens of (log p_t − log Σ_v p_v(t)²) and its
 * number of scored tokens (clamped to ≥ 1, as TRL): w_i = exp(mean_c) · exp(mean_r).
 */
export function wpoPairWeights(
  alignedChosen: ArrayLike<number>, chosenTokens: ArrayLike<number>, alignedRejected: ArrayLike<number>, rejectedTokens: ArrayLike<number>,
): Float64Array {
  const n = alignedChosen.length;
  const w = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    w[i] = Math.exp(alignedChosen[i]! / Math.max(1, chosenTokens[i]!)) * Math.exp(alignedRejected[i]! / Math.max(1, rejectedTokens[i]!));
  }
  return w;
}
