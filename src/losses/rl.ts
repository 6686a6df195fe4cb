// The RLHF side's pure loss pieces, with closed-form float64 gradients (like pairwise.ts): the
// reward model's Bradley–Terry loss, KL estimators, GAE and whitening, PPO's clipped policy and
// value losses, GRPO's group advantages and loss types, and RLOO's leave-one-out baseline.
//
// Transcribed from the formulas of Hugging Face TRL v1.9.0 (trl/trainer/reward_trainer.py
// compute_loss, trl/trainer/grpo_trainer.py _compute_advantages/_compute_loss,
// trl/trainer/rloo_trainer.py, trl/experimental/ppo/ppo_trainer.py); code is our own.
//
// Token-level inputs are row-major [rows, cols] Float64Arrays (rows = sequences, cols = completion
// positions) with a 0/1 mask of the same shape. Gradients follow torch's conventions at the kinks:
// clamp passes the gradient on its closed interval [lo, hi], and an elementwise min/max with equal
// arguments splits it in half between them.

import { sigmoid, sigmoidGrad, logSigmoid } from './math.js';

// ---------------------------------------------------------------- reward model

export interface RewardLossOptions {
  /** Per-pair margin subtracted inside the sigmoid (TRL's optional `margin` column). */
  margin?: ArrayLike<number> | null;
  /** TRL `center_rewards_coefficient`: adds c·mean((r_c + r_r)²) (Eisenstein et al. 2023). */
  centerRewardsCoefficient?: number | null;
}

export interface RewardLossResult {
  loss: number;
  /** ∂loss/∂r_chosen and ∂loss/∂r_rejected per pair. */
  gradChosen: Float64Array;
  gradRejected: Float64Array;
  /** Fraction of pairs with r_chosen > r_rejected (strict, as TRL). */
  accuracy: number;
  /** mean(r_chosen − r_rejected) (without the margin). */
  meanMargin: number;
}

/**
 * Bradley–Terry reward-model loss: mean_i −log σ(r_c − r_r − m_i) + c·mean((r_c + r_r)²).
 * d/dr_c of the first term is −σ(−d)/n with d = r_c − r_r − m; the centring term adds 2c(r_c + r_r)/n.
 */
export function rewardModelLoss(chosen: ArrayLike<number>, rejected: ArrayLike<number>, opts: RewardLossOptions = {}): RewardLossResult {
  const n = chosen.length;
  if (n === 0 || rejected.length !== n) throw new Error(`rewardModelLoss: ${n} chosen and ${rejected.length} rejected rewards (need the same, ≥ 1)`);
  const m = opts.margin ?? null;
  if (m && m.length !== n) throw new Error(`rewardModelLoss: ${m.length} margins for ${n} pairs`);
  const c = opts.centerRewardsCoefficient ?? null;
  const gc = new Float64Array(n), gr = new Float64Array(n);
  let loss = 0, correct = 0, margin = 0, center = 0;
  for (let i = 0; i < n; i++) {
    const rc = chosen[i]!, rr = rejected[i]!;
    const d = rc - rr - (m ? m[i]! : 0);
    loss -= logSigmoid(d);
    const g = -sigmoid(-d) / n;
    gc[i] = g;
    gr[i] = -g;
    if (c !== null) {
      const s = rc + rr;
      center += s * s;
      gc[i] += (2 * c * s) / n;
      gr[i] += (2 * c * s) / n;
    }
    if (rc > rr) correct++;
    margin += rc - rr;
  }
  loss /= n;
  if (c !== null) loss += (c * center) / n;
  return { loss, gradChosen: gc, gradRejected: gr, accuracy: correct / n, meanMargin: margin / n };
}

// ---------------------------------------------------------------- KL estimators

export type KlEstimator = 'k1' | 'k3';

/**
 * Per-token estimate of KL(π ‖ π_ref) from sampled log-probs (Schulman, "Approximating KL
 * divergence", 2020): with r = ref − logp, k1 = −r and k3 = (e^r − 1) − r. `grad` receives
 * ∂kl/∂logp: 1 for k1, 1 − e^r for k3.
 */
export function klEstimate(logp: ArrayLike<number>, ref: ArrayLike<number>, estimator: KlEstimator, grad?: Float64Array): Float64Array {
  const n = logp.length;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const r = ref[i]! - logp[i]!;
    if (estimator === 'k1') {
      out[i] = -r;
      if (grad) grad[i] = 1;
    } else {
      out[i] = Math.expm1(r) - r;
      if (grad) grad[i] = -Math.expm1(r);
    }
  }
  return out;
}

// ---------------------------------------------------------------- masked statistics

/** Σ v·m / Σ m. */
export function maskedMean(v: ArrayLike<number>, mask: ArrayLike<number>): number {
  let s = 0, c = 0;
  for (let i = 0; i < v.length; i++) {
    if (mask[i]) {
      s += v[i]!;
      c += 1;
    }
  }
  if (c === 0) throw new Error('maskedMean: the mask selects nothing');
  return s / c;
}

/**
 * TRL's masked_whiten: (v − mean)/sqrt(var + 1e-8) over the masked entries, with the unbiased
 * (Bessel) variance (its factor c/(c − 1) rounded to float32, as torch computes it there); shiftMean false adds the mean back. Entries outside the mask are computed
 * too (callers zero them). Needs at least two masked entries.
 */
export function maskedWhiten(v: ArrayLike<number>, mask: ArrayLike<number>, shiftMean = true): Float64Array {
  const mean = maskedMean(v, mask);
  let ss = 0, c = 0;
  for (let i = 0; i < v.length; i++) {
    if (mask[i]) {
      ss += (v[i]! - mean) ** 2;
      c++;
    }
  }
  if (c < 2) throw new Error(`maskedWhiten: needs at least 2 masked entries, got ${c}`);
  // TRL computes the Bessel factor as an integer-tensor division, which torch returns in float32.
  const variance = (ss / c) * Math.fround(c / (c - 1));
  const inv = 1 / Math.sqrt(variance + 1e-8);
  const out = new Float64Array(v.length);
  for (let i = 0; i < v.length; i++) out[i] = (v[i]! - mean) * inv + (shiftMean ? 0 : mean);
  return out;
}

/** Mean and Bessel-corrected standard deviation (TRL's nanstd, no NaNs expected). */
export function meanStd(v: ArrayLike<number>): { mean: number; std: number } {
  const n = v.length;
  let s = 0;
  for (let i = 0; i < n; i++) s += v[i]!;
  const mean = s / n;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (v[i]! - mean) ** 2;
  return { mean, std: n > 1 ? Math.sqrt(ss / (n - 1)) : NaN };
}

// ---------------------------------------------------------------- PPO

/** Padding masks of TRL's PPOTrainer from the index of each row's last real response token. */
export interface PpoMasks {
  /** 1 at positions ≤ sequence_length (policy tokens). */
  valid: Float64Array;
  /** 1 at positions ≤ sequence_length + 1 (values and rewards). */
  validP1: Float64Array;
}

export function ppoMasks(sequenceLengths: ArrayLike<number>, cols: number): PpoMasks {
  const rows = sequenceLengths.length;
  const valid = new Float64Array(rows * cols), validP1 = new Float64Array(rows * cols);
  for (let b = 0; b < rows; b++) {
    for (let t = 0; t < cols; t++) {
      valid[b * cols + t] = t <= sequenceLengths[b]! ? 1 : 0;
      validP1[b * cols + t] = t <= sequenceLengths[b]! + 1 ? 1 : 0;
    }
  }
  return { valid, validP1 };
}

export interface PpoRewardsResult {
  /** Per-token rewards [rows, cols]: −kl_coef·KL plus the score at the end position. */
  rewards: Float64Array;
  /** −kl_coef·KL per token (TRL's non_score_reward). */
  nonScore: Float64Array;
  /** Per-token KL estimate. */
  kl: Float64Array;
}

/**
 * TRL PPO rewards: −kl_coef·KL per token, plus the score at index sequence_length + 1 (or at
 * sequence_length when that is the last column — TRL's actual_end). Padded positions should hold
 * equal policy and reference log-probs (TRL's INVALID_LOGPROB) so their KL is 0.
 */
export function ppoRewards(
  logprobs: ArrayLike<number>, refLogprobs: ArrayLike<number>, scores: ArrayLike<number>,
  sequenceLengths: ArrayLike<number>, cols: number, klCoef: number, estimator: KlEstimator,
): PpoRewardsResult {
  const kl = klEstimate(logprobs, refLogprobs, estimator);
  const nonScore = kl.map((k) => -klCoef * k);
  const rewards = Float64Array.from(nonScore);
  for (let b = 0; b < scores.length; b++) {
    const sl = sequenceLengths[b]!;
    const end = sl + 1 < cols ? sl + 1 : sl;
    rewards[b * cols + end] += scores[b]!;
  }
  return { rewards, nonScore, kl };
}

/** TRL's reward whitening: masked_whiten(rewards, validP1, shift_mean=False), padding zeroed. */
export function whitenRewards(rewards: ArrayLike<number>, validP1: ArrayLike<number>): Float64Array {
  const w = maskedWhiten(rewards, validP1, false);
  for (let i = 0; i < w.length; i++) if (!validP1[i]) w[i] = 0;
  return w;
}

/**
 * Generalized advantage estimation (Schulman et al. 2016) over every column, as TRL does:
 * δ_t = r_t + γ·V_{t+1} − V_t (V_T = 0), A_t = δ_t + γλ·A_{t+1}; returns = A + V.
 */
export function gae(rewards: ArrayLike<number>, values: ArrayLike<number>, rows: number, cols: number, gamma: number, lam: number): { advantages: Float64Array; returns: Float64Array } {
  const adv = new Float64Array(rows * cols), ret = new Float64Array(rows * cols);
  for (let b = 0; b < rows; b++) {
    let last = 0;
    for (let t = cols - 1; t >= 0; t--) {
      const i = b * cols + t;
      const next = t < cols - 1 ? values[i + 1]! : 0;
      const delta = rewards[i]! + gamma * next - values[i]!;
      last = delta + gamma * lam * last;
      adv[i] = last;
      ret[i] = last + values[i]!;
    }
  }
  return { advantages: adv, returns: ret };
}

/** Advantages whitened over the valid tokens, zero on padding (TRL). */
export function whitenAdvantages(adv: ArrayLike<number>, valid: ArrayLike<number>): Float64Array {
  const w = maskedWhiten(adv, valid, true);
  for (let i = 0; i < w.length; i++) if (!valid[i]) w[i] = 0;
  return w;
}

/** d min(x, y)/dx, d min(x, y)/dy weights (torch: ties split in half). */
function minWeights(x: number, y: number): [number, number] {
  return x < y ? [1, 0] : x > y ? [0, 1] : [0.5, 0.5];
}

export interface ClippedLossResult {
  loss: number;
  /** Gradient of the loss with respect to its differentiable input (new log-probs or values). */
  grad: Float64Array;
  /** Fraction of masked entries where the clipped branch is active (TRL clipfrac). */
  clipfrac: number;
}

/**
 * PPO's clipped surrogate: masked_mean(max(−A·ρ, −A·clip(ρ, 1 − ε, 1 + ε))), ρ = exp(new − old).
 * Also returns TRL's approxkl = 0.5·masked_mean((new − old)²) and the mean ratio.
 */
export function ppoPolicyLoss(
  newLogprobs: ArrayLike<number>, oldLogprobs: ArrayLike<number>, advantages: ArrayLike<number>,
  mask: ArrayLike<number>, cliprange: number,
): ClippedLossResult & { approxKl: number; ratioMean: number } {
  const n = newLogprobs.length;
  const grad = new Float64Array(n);
  let cnt = 0;
  for (let i = 0; i < n; i++) if (mask[i]) cnt++;
  if (cnt === 0) throw new Error('ppoPolicyLoss: the mask selects nothing');
  let loss = 0, clipped = 0, akl = 0, ratioSum = 0;
  for (let i = 0; i < n; i++) {
    if (!mask[i]) continue;
    const d = newLogprobs[i]! - oldLogprobs[i]!;
    const ratio = Math.exp(d);
    const a = advantages[i]!;
    const inRange = ratio >= 1 - cliprange && ratio <= 1 + cliprange;
    const rc = Math.min(Math.max(ratio, 1 - cliprange), 1 + cliprange);
    const pg1 = -a * ratio, pg2 = -a * rc;
    loss += Math.max(pg1, pg2);
    if (pg2 > pg1) clipped++;
    // max(x, y) = −min(−x, −y): the same tie rule.
    const [w1, w2] = minWeights(-pg1, -pg2);
    grad[i] = ((w1 * -a + w2 * (inRange ? -a : 0)) * ratio) / cnt;
    akl += d * d;
    ratioSum += ratio;
  }
  return { loss: loss / cnt, grad, clipfrac: clipped / cnt, approxKl: (0.5 * akl) / cnt, ratioMean: ratioSum / cnt };
}

/**
 * PPO's clipped value loss: 0.5·masked_mean(max((v − R)², (clip(v, V_old − ε_v, V_old + ε_v) − R)²)).
 */
export function ppoValueLoss(
  vpred: ArrayLike<number>, oldValues: ArrayLike<number>, returns: ArrayLike<number>,
  mask: ArrayLike<number>, cliprangeValue: number,
): ClippedLossResult {
  const n = vpred.length;
  const grad = new Float64Array(n);
  let cnt = 0;
  for (let i = 0; i < n; i++) if (mask[i]) cnt++;
  if (cnt === 0) throw new Error('ppoValueLoss: the mask selects nothing');
  let loss = 0, clipped = 0;
  for (let i = 0; i < n; i++) {
    if (!mask[i]) continue;
    const v = vpred[i]!, lo = oldValues[i]! - cliprangeValue, hi = oldValues[i]! + cliprangeValue, R = returns[i]!;
    const vc = Math.min(Math.max(v, lo), hi);
    const inRange = v >= lo && v <= hi;
    const f1 = (v - R) ** 2, f2 = (vc - R) ** 2;
    loss += Math.max(f1, f2);
    if (f2 > f1) clipped++;
    const [w1, w2] = minWeights(-f1, -f2);
    grad[i] = (0.5 * (w1 * 2 * (v - R) + w2 * (inRange ? 2 * (vc - R) : 0))) / cnt;
  }
  return { loss: (0.5 * loss) / cnt, grad, clipfrac: clipped / cnt };
}

// ---------------------------------------------------------------- GRPO

export type ScaleRewards = 'group' | 'batch' | 'none';
export type MultiObjectiveAggregation = 'sum_then_normalize' | 'normalize_then_sum';

/**
 * GRPO advantages from per-function rewards ([rows, numFuncs], rows = groups·G, a group's
 * completions adjacent). sum_then_normalize: r = Σ_f w_f·r_f, A = (r − mean_group)/(std + 1e-4)
 * with std per group ('group'), over the batch ('batch') or no division ('none').
 * normalize_then_sum (GDPO): each function normalized within its group, weighted sum, then
 * normalized over the batch. std is Bessel-corrected (torch.std).
 */
export function grpoAdvantages(
  rewardsPerFunc: ArrayLike<number>, numFuncs: number, weights: ArrayLike<number>, numGenerations: number,
  scale: ScaleRewards, aggregation: MultiObjectiveAggregation = 'sum_then_normalize',
): { rewards: Float64Array; advantages: Float64Array } {
  const rows = rewardsPerFunc.length / numFuncs;
  const G = numGenerations;
  if (!Number.isInteger(rows) || rows % G !== 0) throw new Error(`grpoAdvantages: ${rows} completions are not whole groups of num_generations ${G}`);
  if (weights.length !== numFuncs) throw new Error(`grpoAdvantages: ${weights.length} reward_weights for ${numFuncs} reward functions`);
  const rewards = new Float64Array(rows);
  const adv = new Float64Array(rows);
  if (aggregation === 'normalize_then_sum') {
    for (let g = 0; g < rows / G; g++) {
      for (let f = 0; f < numFuncs; f++) {
        const col = Float64Array.from({ length: G }, (_, j) => rewardsPerFunc[(g * G + j) * numFuncs + f]!);
        const { mean, std } = meanStd(col);
        for (let j = 0; j < G; j++) rewards[g * G + j] += (weights[f]! * (col[j]! - mean)) / (std + 1e-4);
      }
    }
    const { mean, std } = meanStd(rewards);
    for (let i = 0; i < rows; i++) adv[i] = (rewards[i]! - mean) / (std + 1e-4);
    return { rewards, advantages: adv };
  }
  for (let i = 0; i < rows; i++) {
    let s = 0;
    for (let f = 0; f < numFuncs; f++) s += weights[f]! * rewardsPerFunc[i * numFuncs + f]!;
    rewards[i] = s;
  }
  const batchStd = meanStd(rewards).std;
  for (let g = 0; g < rows / G; g++) {
    const { mean, std } = meanStd(rewards.subarray(g * G, (g + 1) * G));
    for (let j = 0; j < G; j++) {
      const i = g * G + j;
      const a = rewards[i]! - mean;
      adv[i] = scale === 'none' ? a : a / ((scale === 'group' ? std : batchStd) + 1e-4);
    }
  }
  return { rewards, advantages: adv };
}

export type GrpoLossType = 'grpo' | 'bnpo' | 'dr_grpo' | 'dapo' | 'cispo' | 'sapo';
export const grpoLossTypes: readonly GrpoLossType[] = ['grpo', 'bnpo', 'dr_grpo', 'dapo', 'cispo', 'sapo'];

export interface GrpoLossOptions {
  lossType: GrpoLossType;
  /** KL coefficient (k3 per token against the reference); 0 = no KL term. */
  beta: number;
  epsilon: number;
  /** Upper clip ε (default epsilon); for cispo the cap ε_max on the ratio. */
  epsilonHigh?: number | null;
  /** Two-sided GRPO: the unclipped ratio capped at delta (INTELLECT-2). */
  delta?: number | null;
  importanceSamplingLevel?: 'token' | 'sequence';
  /** dr_grpo's constant normalizer (TRL max_completion_length; default cols). */
  maxCompletionLength?: number;
  sapoTemperaturePos?: number;
  sapoTemperatureNeg?: number;
}

export interface GrpoLossResult {
  loss: number;
  /** ∂loss/∂per_token_logps [rows, cols]. */
  grad: Float64Array;
  /** Masked mean of the per-token KL (when beta > 0), of the clipped indicators, of the ratio. */
  meanKl: number;
  clipRatio: { lowMean: number; highMean: number; regionMean: number };
}

/**
 * TRL GRPOTrainer._compute_loss on one (single-process) batch: per-token log-probs `logp`
 * (differentiable), `old` (the sampling policy's; equal to logp when on-policy), `ref` (used when
 * beta > 0), a 0/1 completion mask, one advantage per row.
 */
export function grpoLoss(
  logp: ArrayLike<number>, old: ArrayLike<number>, ref: ArrayLike<number> | null, mask: ArrayLike<number>,
  advantages: ArrayLike<number>, rows: number, cols: number, o: GrpoLossOptions,
): GrpoLossResult {
  const n = rows * cols;
  if (logp.length !== n || old.length !== n || mask.length !== n || advantages.length !== rows) {
    throw new Error(`grpoLoss: expected ${rows}×${cols} log-probs/mask and ${rows} advantages`);
  }
  if (o.beta !== 0 && !ref) throw new Error('grpoLoss: beta > 0 needs reference log-probs');
  const level = o.importanceSamplingLevel ?? 'token';
  if (level === 'sequence' && !['grpo', 'sapo'].includes(o.lossType)) {
    throw new Error(`grpoLoss: importance_sampling_level "sequence" is not defined for loss_type "${o.lossType}"`);
  }
  const epsLow = o.epsilon, epsHigh = o.epsilonHigh ?? o.epsilon;
  const grad = new Float64Array(n);
  const count = new Float64Array(rows);
  let total = 0;
  for (let b = 0; b < rows; b++) {
    for (let t = 0; t < cols; t++) count[b] += mask[b * cols + t]!;
    total += count[b]!;
  }
  // ∂loss/∂ptl[b, t] for masked tokens: the aggregation's weight.
  const weight = (b: number): number => {
    switch (o.lossType) {
      case 'grpo':
      case 'sapo':
        return 1 / (rows * Math.max(count[b]!, 1));
      case 'dr_grpo':
        return 1 / (rows * (o.maxCompletionLength ?? cols));
      default:
        return 1 / Math.max(total, 1);
    }
  };
  // Sequence-level log importance weight: masked mean of the log-ratio.
  const seqLogW = new Float64Array(rows);
  if (level === 'sequence') {
    for (let b = 0; b < rows; b++) {
      let s = 0;
      for (let t = 0; t < cols; t++) s += (logp[b * cols + t]! - old[b * cols + t]!) * mask[b * cols + t]!;
      seqLogW[b] = s / Math.max(count[b]!, 1);
    }
  }
  let loss = 0, klSum = 0, low = 0, high = 0, region = 0;
  const tp = o.sapoTemperaturePos ?? 1, tn = o.sapoTemperatureNeg ?? 1.05;
  for (let b = 0; b < rows; b++) {
    const a = advantages[b]!;
    const w = weight(b);
    let dSeq = 0; // Σ_t ∂loss/∂c1 · c1 for the sequence-level ratio
    for (let t = 0; t < cols; t++) {
      const i = b * cols + t;
      const m = mask[i]!;
      const c1 = Math.exp(level === 'token' ? logp[i]! - old[i]! : seqLogW[b]!);
      let ptl: number, dC1: number, dLogpDirect = 0;
      if (o.lossType === 'cispo') {
        const clamped = Math.min(c1, epsHigh);
        ptl = -clamped * a * logp[i]!;
        dC1 = 0;
        dLogpDirect = -clamped * a;
      } else if (o.lossType === 'sapo') {
        const tau = a > 0 ? tp : tn;
        ptl = -(sigmoid(tau * (c1 - 1)) * 4 / tau) * a;
        dC1 = -4 * a * sigmoidGrad(tau * (c1 - 1));
      } else {
        const c2 = Math.min(Math.max(c1, 1 - epsLow), 1 + epsHigh);
        const c2in = c1 >= 1 - epsLow && c1 <= 1 + epsHigh;
        const capped = o.delta != null ? Math.min(c1, o.delta) : c1;
        const c1in = o.delta == null || c1 <= o.delta;
        const x = capped * a, y = c2 * a;
        ptl = -Math.min(x, y);
        const [wx, wy] = minWeights(x, y);
        dC1 = -(wx * (c1in ? a : 0) + wy * (c2in ? a : 0));
        if (m) {
          const isLow = c1 < 1 - epsLow && a < 0, isHigh = c1 > 1 + epsHigh && a > 0;
          if (isLow) low++;
          if (isHigh) high++;
          if (isLow || isHigh) region++;
        }
      }
      let dKl = 0;
      if (o.beta !== 0) {
        const r = ref![i]! - logp[i]!;
        const kl = Math.expm1(r) - r;
        ptl += o.beta * kl;
        dKl = -o.beta * Math.expm1(r);
        if (m) klSum += kl;
      }
      if (!m) continue;
      loss += ptl * w;
      if (level === 'token') grad[i] = w * (dC1 * c1 + dLogpDirect + dKl);
      else {
        grad[i] = w * (dLogpDirect + dKl);
        dSeq += w * dC1 * c1;
      }
    }
    if (level === 'sequence') {
      for (let t = 0; t < cols; t++) grad[b * cols + t] += (dSeq * mask[b * cols + t]!) / Math.max(count[b]!, 1);
    }
  }
  const tot = Math.max(total, 1);
  return { loss, grad, meanKl: klSum / tot, clipRatio: { lowMean: low / tot, highMean: high / tot, regionMean: region / tot } };
}

// ---------------------------------------------------------------- RLOO

/**
 * RLOO advantages (Ahmadian et al. 2024, TRL RLOOTrainer): rewards minus beta·Σ_t (old − ref)
 * (sequence-level k1 KL, when beta > 0), minus the mean of the other G − 1 completions of the
 * same prompt; optionally whitened over the batch ((A − mean)/(std + 1e-4)).
 */
export function rlooAdvantages(
  rewards: ArrayLike<number>, numGenerations: number,
  opts: { beta?: number; old?: ArrayLike<number>; ref?: ArrayLike<number>; mask?: ArrayLike<number>; cols?: number; normalize?: boolean } = {},
): { rewards: Float64Array; advantages: Float64Array } {
  const rows = rewards.length, G = numGenerations;
  if (G < 2 || rows % G !== 0) throw new Error(`rlooAdvantages: ${rows} completions are not whole groups of num_generations ${G} (≥ 2)`);
  const r = Float64Array.from(rewards);
  const beta = opts.beta ?? 0;
  if (beta !== 0) {
    const { old, ref, mask, cols } = opts;
    if (!old || !ref || !mask || !cols) throw new Error('rlooAdvantages: beta > 0 needs old and reference log-probs, the mask and cols');
    for (let b = 0; b < rows; b++) {
      let kl = 0;
      for (let t = 0; t < cols; t++) kl += (old[b * cols + t]! - ref[b * cols + t]!) * mask[b * cols + t]!;
      r[b] -= beta * kl;
    }
  }
  const adv = new Float64Array(rows);
  for (let g = 0; g < rows / G; g++) {
    let s = 0;
    for (let j = 0; j < G; j++) s += r[g * G + j]!;
    for (let j = 0; j < G; j++) adv[g * G + j] = r[g * G + j]! - (s - r[g * G + j]!) / (G - 1);
  }
  if (opts.normalize) {
    const { mean, std } = meanStd(adv);
    for (let i = 0; i < rows; i++) adv[i] = (adv[i]! - mean) / (std + 1e-4);
  }
  return { rewards: r, advantages: adv };
}

/**
 * RLOO's clipped loss on sequence-level ratios: ρ_b = exp(Σ_t (logp − old)·mask),
 * loss = mean_b(−min(ρ·A, clip(ρ, 1 − ε, 1 + ε)·A)).
 */
export function rlooLoss(
  logp: ArrayLike<number>, old: ArrayLike<number>, mask: ArrayLike<number>, advantages: ArrayLike<number>,
  rows: number, cols: number, epsilon: number, epsilonHigh: number | null = null,
): { loss: number; grad: Float64Array; clipfrac: number } {
  // TRL v1.9.0 RLOOTrainer: ratio clamped to [1 − epsilon, 1 + epsilon_high], epsilon_high defaulting to epsilon.
  const epsHigh = epsilonHigh ?? epsilon;
  const grad = new Float64Array(rows * cols);
  let loss = 0, clipped = 0;
  for (let b = 0; b < rows; b++) {
    let lr = 0;
    for (let t = 0; t < cols; t++) lr += (logp[b * cols + t]! - old[b * cols + t]!) * mask[b * cols + t]!;
    const c1 = Math.exp(lr), a = advantages[b]!;
    const c2 = Math.min(Math.max(c1, 1 - epsilon), 1 + epsHigh);
    const inRange = c1 >= 1 - epsilon && c1 <= 1 + epsHigh;
    const x = c1 * a, y = c2 * a;
    loss -= Math.min(x, y);
    if (y < x) clipped++;
    const [wx, wy] = minWeights(x, y);
    const d = (-(wx * a + wy * (inRange ? a : 0)) * c1) / rows;
    for (let t = 0; t < cols; t++) grad[b * cols + t] = d * mask[b * cols + t]!;
  }
  return { loss: loss / rows, grad, clipfrac: clipped / rows };
}
