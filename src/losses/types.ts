// Shared types of the preference-loss family (src/losses).
//
// A loss is a pure function of per-sequence log-probabilities (TRL's DPOTrainer design): the trainer
// runs the policy (and the frozen reference) over each chosen and rejected response, sums the token
// log-probs of the response tokens, and hands those sums here. The loss returns, besides its value
// and TRL's logged metrics, the exact float64 gradient of the mean loss with respect to every
// differentiable per-sequence input; the trainer feeds those into its per-sequence log-prob backward.

/**
 * Per-pair inputs; every array has one entry per preference pair (all the same length, n ≥ 1).
 *
 * - `policyChosen`, `policyRejected`: Σ_t log π_θ(y_t | x, y_<t) over the RESPONSE tokens only
 *   (prompt and padding excluded) of the chosen / rejected response. Differentiable.
 * - `refChosen`, `refRejected`: the same sums under the frozen reference model. Not differentiated.
 *   Required by every loss except the reference-free `simpo`, `orpo` and `sft`.
 * - `chosenTokens`, `rejectedTokens`: number of response tokens in each sum (integers ≥ 1).
 *   Required by the length-normalized losses (`simpo`, `orpo`: they work on the per-token average
 *   Σ log p / T; `ipo` unless `ipoLengthNormalize: false`), and `chosenTokens` by every NLL term.
 * - `chosenNllSum` (optional): Σ_t −log π_θ(y_t) over the chosen response tokens, when it is NOT
 *   simply −policyChosen (e.g. the trainer weights the log-probs it passes as policyChosen, as
 *   LD-DPO does). By default the NLL terms use −policyChosen.
 *
 * The NLL term (rpoAlpha, `sft`, `orpo`) is TRL's: ONE token-level mean cross-entropy over all
 * chosen response tokens of the batch,
 *     nll = Σ_i chosenNllSum_i / Σ_i chosenTokens_i   (chosenNllSum_i defaults to −policyChosen_i),
 * so ∂nll/∂policyChosen_i = −1 / Σ_j chosenTokens_j (or ∂nll/∂chosenNllSum_i = +1 / Σ_j chosenTokens_j).
 */
export interface PreferenceLogps {
  policyChosen: Float64Array;
  policyRejected: Float64Array;
  refChosen?: Float64Array;
  refRejected?: Float64Array;
  chosenTokens?: ArrayLike<number>;
  rejectedTokens?: ArrayLike<number>;
  chosenNllSum?: Float64Array;
}

/**
 * Running mean of the batch mean reward used as the shift δ by TRL v0.x's `bco_pair`
 * (trl/trainer/utils.py RunningMoments, non-distributed branch). TRL holds the mean as a float32
 * tensor; we round the same way (Math.fround) so δ matches TRL bit for bit. Fresh state: mean 0,
 * count 1e-24 (TRL's initial count, so the first update sets mean = that batch's mean exactly).
 */
export interface BcoRunningMean {
  readonly mean: number;
  readonly count: number;
}

/** Hyper-parameters, named after TRL's DPOConfig / CPOConfig / ORPOConfig fields. */
export interface LossParams {
  /** β (TRL `beta`, default 0.1). For `orpo` it is ORPO's λ; for `ipo`, the paper's τ. */
  beta?: number;
  /** ε (TRL `label_smoothing`, default 0): cDPO for sigmoid, robust DPO, also aot / aot_pair / simpo;
   *  for exo_pair the EXO ε (0 is replaced by 1e-3, as TRL v0.27 does). */
  labelSmoothing?: number;
  /** DiscoPOP temperature τ (TRL `discopop_tau`, default 0.05). */
  discopopTau?: number;
  /** SimPO target reward margin γ in reward units (TRL `simpo_gamma`, default 0.5); TRL (and we)
   *  subtract γ/β from the average log-prob difference, i.e. the loss is −log σ(β(c − r) − γ). */
  simpoGamma?: number;
  /** IPO on per-token averages of the log-ratios, as TRL's DPOTrainer does (default true). With
   *  false, IPO uses the summed log-probs directly (the golden-vector / paper-as-written form). */
  ipoLengthNormalize?: boolean;
  /** RPO: adds rpoAlpha · nll (see PreferenceLogps) to the loss (TRL `rpo_alpha`, default none).
   *  With simpo this is CPOTrainer's `cpo_alpha` (CPO-SimPO): the same token-mean chosen NLL. */
  rpoAlpha?: number;
  /** TRL `loss_weights` for a list of loss types (default all 1). */
  lossWeights?: readonly number[];
  /** bco_pair: running-mean state (TRL v0.x). The batch's mean reward is folded in first and the
   *  updated mean is δ; the new state comes back in LossResult.bcoState. Omitted: δ = 0 (TRL v1.x). */
  bcoState?: BcoRunningMean;
  /** f-DPO (TRL `f_divergence_type`, default 'reverse_kl' = standard DPO): the score-based losses see
   *  s(log π/π_ref) instead of the log-ratio (see fdiv.ts); aot, aot_pair and apo_zero keep the raw ratios. */
  fDivergenceType?: 'reverse_kl' | 'forward_kl' | 'js_divergence' | 'alpha_divergence';
  /** α of alpha_divergence (TRL `f_alpha_divergence_coef`, default 0.5). */
  fAlphaDivergenceCoef?: number;
  /** WPO (TRL `use_weighting`): constant per-pair weights multiplying every pair's loss (the trainer
   *  computes them without gradient, see weighting.ts). Not with aot / aot_pair. */
  pairWeights?: Float64Array;
}

/** Output of computePreferenceLoss. All arrays have one entry per pair. */
export interface LossResult {
  /** Per-pair losses (TRL's `losses`, including any scalar NLL term added to every pair);
   *  for `aot` / `aot_pair` they are indexed by sorted rank, not by pair, exactly as in TRL. */
  losses: Float64Array;
  /** The training loss: Σ_k weight_k · mean(losses_k) (+ rpoAlpha · nll) = mean(losses). */
  loss: number;
  /** Implicit rewards: β(π − π_ref) for the DPO family, β · (Σ log p / T) for simpo / orpo
   *  (reference-free). With several loss types they come from the first one that defines them. */
  chosenRewards: Float64Array;
  rejectedRewards: Float64Array;
  /** 1 where chosenReward > rejectedReward (strictly, as TRL), else 0. */
  rewardAccuracies: Float64Array;
  /** chosenRewards − rejectedRewards. */
  margins: Float64Array;
  /** ∂loss/∂policyChosen_i and ∂loss/∂policyRejected_i (loss = the mean above), float64. */
  gradPolicyChosen: Float64Array;
  gradPolicyRejected: Float64Array;
  /** ∂loss/∂chosenNllSum_i; present only when chosenNllSum was passed (otherwise that gradient is
   *  already folded into gradPolicyChosen). */
  gradChosenNllSum?: Float64Array;
  /** The NLL term's value when one is part of the loss (rpoAlpha, sft, orpo). */
  nll?: number;
  /** bco_pair with a running state: the state after this batch (pass it to the next call). */
  bcoState?: BcoRunningMean;
  /** Scalar metrics under TRL's log names: rewards/chosen, rewards/rejected, rewards/accuracies,
   *  rewards/margins, logps/chosen, logps/rejected, and when relevant nll_loss, log_odds_ratio,
   *  log_odds_chosen (orpo), bco_delta (bco_pair). */
  metrics: Record<string, number>;
}
