// f-DPO, Wang et al. 2023, "Beyond Reverse KL: Generalizing Direct Preference Optimization with
// Diverse Divergence Constraints" (arXiv:2309.16240), as TRL v1.9.0's DPOTrainer._compute_loss
// applies it: each log-ratio x = log π_θ(y) − log π_ref(y) is replaced by a score f'(e^x) (constants
// dropped) before the score-based losses see it; the implicit rewards stay β·x.
//
//   reverse_kl        s = x                                 s' = 1
//   forward_kl        s = −e^(−x)                           s' = e^(−x)
//   js_divergence     s = ls(x)                             s' = σ(−x)
//   alpha_divergence  s = e^((α−1)x) / (α−1)                s' = e^((α−1)x)    (|α − 1| < 1e-6: reverse_kl)
//
// For alpha_divergence TRL clamps t = (α−1)x at 80 before the exponential (float32); past the
// clamp s is constant, so s' = 0 there, exactly as torch.clamp's gradient.

import { logSigmoid, sigmoid } from './math.js';

export const fDivergenceTypes = ['reverse_kl', 'forward_kl', 'js_divergence', 'alpha_divergence'] as const;
export type FDivergenceType = (typeof fDivergenceTypes)[number];

/** TRL's clamp of (α − 1)·x for float32 before exp. */
export const ALPHA_DIVERGENCE_CLAMP = 80;

/** Scores s(x) and their derivatives s'(x) for a batch of log-ratios. */
export function fDivergenceScores(x: Float64Array, type: FDivergenceType, alpha = 0.5): { s: Float64Array; ds: Float64Array } {
  const n = x.length;
  const s = new Float64Array(n);
  const ds = new Float64Array(n);
  const reverse = type === 'reverse_kl' || (type === 'alpha_divergence' && Math.abs(alpha - 1) < 1e-6);
  for (let i = 0; i < n; i++) {
    const v = x[i]!;
    if (reverse) {
      s[i] = v;
      ds[i] = 1;
    } else if (type === 'forward_kl') {
      const e = Math.exp(-v);
      s[i] = -e;
      ds[i] = e;
    } else if (type === 'js_divergence') {
      s[i] = logSigmoid(v);
      ds[i] = sigmoid(-v);
    } else if (type === 'alpha_divergence') {
      const t = (alpha - 1) * v;
      const e = Math.exp(Math.min(t, ALPHA_DIVERGENCE_CLAMP));
      s[i] = e / (alpha - 1);
      ds[i] = t > ALPHA_DIVERGENCE_CLAMP ? 0 : e;
    } else {
      throw new Error(`f_divergence_type '${String(type)}' is not one of ${fDivergenceTypes.join(', ')}`);
    }
  }
  return { s, ds };
}
