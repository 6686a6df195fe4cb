// The preference-loss family: a dispatcher over TRL's loss types, their weighted combination
// (TRL's `loss_type: [..]` + `loss_weights`), RPO's NLL term, and the metrics TRL logs.
//
//   const r = computePreferenceLoss('sigmoid', { policyChosen, policyRejected, refChosen, refRejected }, { beta: 0.1 });
//   r.loss, r.gradPolicyChosen, r.gradPolicyRejected  → the trainer's per-sequence log-prob backward
//
// The loss is Σ_k weight_k · mean_i(losses_k,i) (+ rpoAlpha · nll); all gradients are of that
// scalar, in float64. See types.ts for the exact meaning of every input field.
//
// TRL version followed: v1.9.0 (DPOTrainer._compute_loss; CPOTrainer for simpo, ORPOTrainer for
// orpo), wherever TRL versions differ:
//  - label_smoothing is used by robust, exo_pair, aot, aot_pair and simpo only; sigmoid ignores it
//    (v0.x's cDPO is gone) and exo_pair refuses 0 (v0.27 silently used 1e-3);
//  - rewards (and margins, accuracies) are β·(π − π_ref) whenever a reference is in use, whatever
//    the list of loss types; only reference-free runs (simpo, orpo, sft) report β·(Σ log p / T);
//  - simpo carries CPOTrainer's NLL term, cpoAlpha · nll (cpo_alpha, default 1.0; 0 = pure SimPO);
//  - the one exception: bco_pair's δ is the running mean of the batch rewards (BCO paper, TRL
//    ≤ 0.28's DPOTrainer, RunningMoments as in v1.9.0's BCOTrainer) when a state is passed — the
//    trainer always passes one; v1.9.0's DPOTrainer uses δ = 0, which is what no state gives.

import { fDivergenceScores, type FDivergenceType } from './fdiv.js';
import type { PairTerm, RefLogps } from './spec.js';
import { lossSpec, lossSpecs, referenceFreeLossTypes, resolveLossType } from './registry.js';
import { sftLoss } from './sft.js';
import type { LossContribution, LossInputs, LossSpec } from './spec.js';
import type { BcoRunningMean, LossParams, LossResult, PreferenceLogps } from './types.js';
import { checkCounts, checkLogps, checkParam } from './validate.js';

export type { BcoRunningMean, LossParams, LossResult, PreferenceLogps } from './types.js';
export { newBcoRunningMean, updateBcoRunningMean } from './pairwise.js';
export { fDivergenceScores, fDivergenceTypes, type FDivergenceType } from './fdiv.js';
export { ldTokenWeights, wpoPairWeights } from './weighting.js';
export { sftLoss, type SftResult } from './sft.js';
export {
  implicitRewards,
  lengthNormalizedRewards,
  pairwiseAccuracy,
  scorePreferencePairs,
  scoresBySlice,
  sliceTable,
  type PairScores,
  type PairwiseAccuracy,
  type SliceReport,
  type SliceScore,
} from './reward.js';

export {
  isReferenceFree, labelSmoothingLossTypes, lossSpec, lossSpecs, lossTypeNames, lossTypes, needsLossState, referenceFreeLossTypes,
  resolveLossType, usesNllTerm, type LossType,
} from './registry.js';
export type { LossContribution, LossInputs, LossSpec } from './spec.js';
export type { PairTerm, RefLogps } from './spec.js';

const lossTypeList: readonly string[] = lossSpecs.map((s) => s.name);

/** English list 'a, b and c'. */
function andList(items: readonly string[]): string {
  return items.length <= 1 ? items.join('') : `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`;
}

/**
 * Computes a preference loss (or a weighted sum of several, TRL-style) for one batch of pairs.
 * `lossType`: one name from `lossTypes`, or a list combined with `params.lossWeights`.
 */
export function computePreferenceLoss(
  lossType: string | readonly string[],
  logps: PreferenceLogps,
  params: LossParams = {},
): LossResult {
  const names: readonly string[] = typeof lossType === 'string' ? [lossType] : lossType;
  if (!Array.isArray(names) || names.length === 0) {
    throw new Error(`computePreferenceLoss: lossType must be a loss-type name or a non-empty list of them (valid: ${lossTypeList.join(', ')})`);
  }
  const types = names.map((t) => resolveLossType(t));
  const specs: LossSpec[] = types.map((t) => lossSpec(t));
  const label = types.join('+');

  // ---- hyper-parameters ----
  const beta = params.beta ?? 0.1;
  checkParam(label, 'beta', beta, beta > 0, 'a positive number');
  const labelSmoothing = params.labelSmoothing ?? 0;
  checkParam(label, 'labelSmoothing', labelSmoothing, labelSmoothing >= 0 && labelSmoothing <= 1, 'in [0, 1]');
  const weights = params.lossWeights ?? types.map(() => 1);
  if (weights.length !== types.length) {
    throw new Error(`${label}: lossWeights has ${weights.length} entries for ${types.length} loss types (${types.join(', ')}); give one weight per loss type`);
  }
  weights.forEach((w, k) => checkParam(label, `lossWeights[${k}]`, w, true, 'a finite number'));
  if (params.rpoAlpha !== undefined) checkParam(label, 'rpoAlpha', params.rpoAlpha, true, 'a finite number');

  // ---- inputs ----
  const where = (t: string): string => (types.length > 1 ? `${label} (${t})` : t);
  const pc = logps.policyChosen;
  if (!(pc instanceof Float64Array) || pc.length === 0) {
    throw new Error(`${label}: policyChosen must be a non-empty Float64Array of per-pair summed log-probs`);
  }
  const n = pc.length;
  checkLogps(label, 'policyChosen', pc, n);
  checkLogps(label, 'policyRejected', logps.policyRejected, n);
  const pr = logps.policyRejected;

  const needsRef = specs.find((s) => !s.referenceFree)?.name;
  let ref: RefLogps | undefined;
  if (needsRef !== undefined) {
    for (const f of ['refChosen', 'refRejected'] as const) {
      if (logps[f] === undefined) {
        throw new Error(`${where(needsRef)}: ${f} is required (reference-model log-probs; only ${andList(referenceFreeLossTypes)} are reference-free)`);
      }
      checkLogps(where(needsRef), f, logps[f], n);
    }
    ref = { pc, pr, rc: logps.refChosen!, rr: logps.refRejected! };
  }

  for (const s of new Set(specs)) s.checkParams?.(where(s.name), params);
  const nllUsers = specs.filter((s) => s.usesNll?.(params) === true);
  const usesNll = params.rpoAlpha !== undefined || nllUsers.length > 0;
  for (const s of specs) {
    const why = s.perToken?.(params);
    if (why === undefined) continue;
    for (const f of ['chosenTokens', 'rejectedTokens'] as const) {
      if (logps[f] === undefined) throw new Error(`${where(s.name)}: ${f} is required (${why})`);
    }
  }
  if (usesNll && logps.chosenTokens === undefined) {
    const who = params.rpoAlpha !== undefined ? 'rpoAlpha' : nllUsers[0].name;
    throw new Error(`${where(who)}: chosenTokens is required (the NLL term is a token-level mean over all chosen response tokens)`);
  }
  if (logps.chosenTokens !== undefined) checkCounts(label, 'chosenTokens', logps.chosenTokens, n, 1);
  if (logps.rejectedTokens !== undefined) checkCounts(label, 'rejectedTokens', logps.rejectedTokens, n, 1);
  if (logps.chosenNllSum !== undefined) checkLogps(label, 'chosenNllSum', logps.chosenNllSum, n);

  // Per-token averages, for simpo / orpo.
  let avgChosen: Float64Array | undefined;
  let avgRejected: Float64Array | undefined;
  if (logps.chosenTokens !== undefined && logps.rejectedTokens !== undefined) {
    avgChosen = new Float64Array(n);
    avgRejected = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      avgChosen[i] = pc[i] / logps.chosenTokens[i];
      avgRejected[i] = pr[i] / logps.rejectedTokens[i];
    }
  }

  // ---- f-DPO: scores s(x) of the log-ratios replace them in the score-based losses ----
  const fType: FDivergenceType = params.fDivergenceType ?? 'reverse_kl';
  const fAlpha = params.fAlphaDivergenceCoef ?? 0.5;
  checkParam(label, 'fAlphaDivergenceCoef', fAlpha, true, 'a finite number');
  let scored: RefLogps | undefined = ref;
  let dsc: Float64Array | undefined;
  let dsr: Float64Array | undefined;
  let fsc: Float64Array | undefined;
  let fsr: Float64Array | undefined;
  if (fType !== 'reverse_kl') {
    if (ref === undefined) throw new Error(`${label}: fDivergenceType ${fType} needs reference log-probs (it transforms log π/π_ref)`);
    const xc = new Float64Array(n);
    const xr = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      xc[i] = pc[i] - ref.rc[i];
      xr[i] = pr[i] - ref.rr[i];
    }
    const c = fDivergenceScores(xc, fType, fAlpha);
    const r = fDivergenceScores(xr, fType, fAlpha);
    [fsc, dsc, fsr, dsr] = [c.s, c.ds, r.s, r.ds];
    scored = { pc: fsc, pr: fsr, rc: new Float64Array(n), rr: new Float64Array(n) };
  }

  // ---- WPO: constant per-pair weights on every loss term ----
  const pw = params.pairWeights;
  if (pw !== undefined) {
    checkLogps(label, 'pairWeights', pw, n);
    const bad = specs.find((s) => s.rankIndexed)?.name;
    if (bad) throw new Error(`${where(bad)}: pairWeights (WPO use_weighting) cannot weight ${bad}, whose losses are indexed by sorted rank, not by pair (TRL refuses this too)`);
  }
  let meanPairWeight = 1;
  if (pw !== undefined) {
    meanPairWeight = 0;
    for (let i = 0; i < n; i++) meanPairWeight += pw[i] / n;
  }

  // ---- accumulate the weighted components ----
  const losses = new Float64Array(n);
  const gradPolicyChosen = new Float64Array(n);
  const gradPolicyRejected = new Float64Array(n);
  let loss = 0;
  // Total weight of the NLL term (rpoAlpha + sft, orpo and cpoAlpha·simpo weights); like TRL, it is added to every
  // pair's loss as well, so mean(losses) = loss.
  let nllWeight = params.rpoAlpha ?? 0;
  const metrics: Record<string, number> = {};
  let bcoState: BcoRunningMean | undefined;

  const addTerm = (
    term: PairTerm, w: number, chainChosen?: ArrayLike<number>, chainRejected?: ArrayLike<number>,
    mulChosen?: ArrayLike<number>, mulRejected?: ArrayLike<number>,
  ): void => {
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const q = pw === undefined ? 1 : pw[i];
      losses[i] += w * q * term.losses[i];
      sum += q * term.losses[i];
      // Mean over pairs: each pair's derivative is scaled by w / n (and its WPO weight); averaged-input
      // losses are chained through c = pc / T (∂c/∂pc = 1/T), f-DPO scores through s'(x).
      const dc = (chainChosen ? term.dChosen[i] / chainChosen[i] : term.dChosen[i]) * (mulChosen ? mulChosen[i] : 1);
      const dr = (chainRejected ? term.dRejected[i] / chainRejected[i] : term.dRejected[i]) * (mulRejected ? mulRejected[i] : 1);
      gradPolicyChosen[i] += ((w * q) / n) * dc;
      gradPolicyRejected[i] += ((w * q) / n) * dr;
    }
    loss += w * (sum / n);
  };
  // A score-based term: computed on the f-DPO scores, chained through s'(x).
  const addScored = (term: PairTerm, w: number): void => addTerm(term, w, undefined, undefined, dsc, dsr);

  const fScores = fsc !== undefined ? { sc: fsc, sr: fsr!, dsc: dsc!, dsr: dsr! } : undefined;
  const memo = new Map<string, unknown>();
  for (let k = 0; k < specs.length; k++) {
    const spec = specs[k];
    const w = weights[k];
    const inputs: LossInputs = {
      n, where: where(spec.name), params, beta, labelSmoothing, logps, ref, scored, fScores, avgChosen, avgRejected, memo,
    };
    const c: LossContribution = spec.compute(inputs);
    if (c.term !== undefined) {
      if (c.via === 'perToken') addTerm(c.term, w, logps.chosenTokens, logps.rejectedTokens);
      else if (c.via === 'direct') addTerm(c.term, w);
      else addScored(c.term, w);
    }
    // The NLL term is added to every pair (× its WPO weight, so the mean carries the mean weight).
    if (c.nllWeight !== undefined) nllWeight += w * c.nllWeight * meanPairWeight;
    for (const [m, v] of Object.entries(c.metrics ?? {})) if (metrics[m] === undefined) metrics[m] = v;
    if (c.bcoState !== undefined) bcoState = c.bcoState;
  }

  // ---- the shared NLL term (rpoAlpha, sft, orpo) ----
  // RPO, Pang et al. 2024, "Iterative Reasoning Preference Optimization" (arXiv:2404.19733), and
  // ORPO's SFT half: loss += W · nll with nll = Σ_i S_i / Σ_i Tc_i (S_i = chosenNllSum_i, default
  // −policyChosen_i): ∂/∂policyChosen_i = −W / Σ Tc (or ∂/∂chosenNllSum_i = +W / Σ Tc).
  let nll: number | undefined;
  let gradChosenNllSum: Float64Array | undefined;
  if (usesNll) {
    const tc = logps.chosenTokens!;
    if (logps.chosenNllSum !== undefined) {
      const neg = new Float64Array(n);
      for (let i = 0; i < n; i++) neg[i] = -logps.chosenNllSum[i];
      const s = sftLoss(neg, tc);
      nll = s.loss;
      gradChosenNllSum = new Float64Array(n);
      for (let i = 0; i < n; i++) gradChosenNllSum[i] = -nllWeight * s.gradSumLogps[i];
    } else {
      const s = sftLoss(pc, tc);
      nll = s.loss;
      for (let i = 0; i < n; i++) gradPolicyChosen[i] += nllWeight * s.gradSumLogps[i];
    }
    for (let i = 0; i < n; i++) losses[i] += nllWeight * nll;
    loss += nllWeight * nll;
    metrics.nll_loss = nll;
  }

  // ---- rewards and TRL's metrics ----
  const chosenRewards = new Float64Array(n);
  const rejectedRewards = new Float64Array(n);
  // TRL v1.9.0: β·(π − π_ref) whenever there is a reference; reference-free runs (CPO/ORPO
  // trainers) report β times the per-token average log-prob.
  const lengthNormalizedReward = ref === undefined && avgChosen !== undefined;
  for (let i = 0; i < n; i++) {
    if (lengthNormalizedReward) {
      chosenRewards[i] = beta * avgChosen![i];
      rejectedRewards[i] = beta * avgRejected![i];
    } else if (ref !== undefined) {
      chosenRewards[i] = beta * (pc[i] - ref.rc[i]);
      rejectedRewards[i] = beta * (pr[i] - ref.rr[i]);
    } else {
      chosenRewards[i] = beta * pc[i];
      rejectedRewards[i] = beta * pr[i];
    }
  }
  const margins = new Float64Array(n);
  const rewardAccuracies = new Float64Array(n);
  let sc = 0;
  let sr = 0;
  let sa = 0;
  let sm = 0;
  let lc = 0;
  let lr = 0;
  for (let i = 0; i < n; i++) {
    margins[i] = chosenRewards[i] - rejectedRewards[i];
    rewardAccuracies[i] = chosenRewards[i] > rejectedRewards[i] ? 1 : 0;
    sc += chosenRewards[i];
    sr += rejectedRewards[i];
    sa += rewardAccuracies[i];
    sm += margins[i];
    lc += pc[i];
    lr += pr[i];
  }
  metrics['rewards/chosen'] = sc / n;
  metrics['rewards/rejected'] = sr / n;
  metrics['rewards/accuracies'] = sa / n;
  metrics['rewards/margins'] = sm / n;
  metrics['logps/chosen'] = lc / n;
  metrics['logps/rejected'] = lr / n;

  const result: LossResult = {
    losses,
    loss,
    chosenRewards,
    rejectedRewards,
    rewardAccuracies,
    margins,
    gradPolicyChosen,
    gradPolicyRejected,
    metrics,
  };
  if (gradChosenNllSum !== undefined) result.gradChosenNllSum = gradChosenNllSum;
  if (nll !== undefined) result.nll = nll;
  if (bcoState !== undefined) result.bcoState = bcoState;
  return result;
}
