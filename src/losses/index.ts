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

import { editDistance } from './math.js';
import { fDivergenceScores, type FDivergenceType } from './fdiv.js';
import {
  apoDownScoreLoss,
  sigmoidNormLoss,
  aotLoss,
  aotPairLoss,
  apoDownLoss,
  apoZeroLoss,
  bcoPairLoss,
  discopopLoss,
  exoPairLoss,
  hingeLoss,
  ipoLoss,
  ncaPairLoss,
  robustLoss,
  sigmoidLoss,
  sppoHardLoss,
  updateBcoRunningMean,
  type PairTerm,
  type RefLogps,
} from './pairwise.js';
import { orpoOddsRatioLoss, simpoLoss, type OrpoTerm } from './reference-free.js';
import { sftLoss } from './sft.js';
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

/** Every loss type computePreferenceLoss accepts (TRL's loss_type names; `sft` as in TRL v1.x). */
export const lossTypes = [
  'sigmoid',
  'robust',
  'ipo',
  'hinge',
  'bco_pair',
  'exo_pair',
  'nca_pair',
  'sppo_hard',
  'aot',
  'aot_pair',
  'apo_zero',
  'apo_down',
  'discopop',
  'sigmoid_norm',
  'simpo',
  'orpo',
  'sft',
] as const;

export type LossType = (typeof lossTypes)[number];

// Other spellings TRL has used for the same loss.
const lossTypeAliases: Record<string, LossType> = { aot_unpaired: 'aot_pair' };

/** The loss types label_smoothing affects (TRL v1.9.0); the others ignore it. */
export const labelSmoothingLossTypes: readonly string[] = ['robust', 'exo_pair', 'aot', 'aot_pair', 'aot_unpaired', 'simpo'];

/** Every name computePreferenceLoss accepts: the loss types and their aliases (TRL v1.9's aot_unpaired). */
export const lossTypeNames: readonly string[] = [...lossTypes, ...Object.keys(lossTypeAliases)];

const referenceFreeTypes: ReadonlySet<LossType> = new Set<LossType>(['simpo', 'orpo', 'sft']);

/** Maps a loss-type name (or alias) to its canonical name; unknown names throw with a suggestion. */
export function resolveLossType(name: string): LossType {
  if ((lossTypes as readonly string[]).includes(name)) return name as LossType;
  const alias = lossTypeAliases[name];
  if (alias !== undefined) return alias;
  const candidates = [...lossTypes, ...Object.keys(lossTypeAliases)];
  const lower = String(name).toLowerCase();
  // A name that is part of a valid one ('nca' → 'nca_pair') or contains one ('simpo_loss' →
  // 'simpo') is the likeliest intent; otherwise the smallest edit distance wins.
  const partOf = candidates.filter((c) => c.includes(lower)).sort((a, b) => a.length - b.length);
  const contains = candidates.filter((c) => lower.includes(c)).sort((a, b) => b.length - a.length);
  let best = partOf[0] ?? contains[0] ?? candidates[0];
  if (partOf.length === 0 && contains.length === 0) {
    let bestD = Infinity;
    for (const c of candidates) {
      const d = editDistance(lower, c);
      if (d < bestD) {
        bestD = d;
        best = c;
      }
    }
  }
  throw new Error(
    `unknown loss type '${name}'; did you mean '${lossTypeAliases[best] ?? best}'? Valid loss types: ${lossTypes.join(', ')}`,
  );
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
    throw new Error(`computePreferenceLoss: lossType must be a loss-type name or a non-empty list of them (valid: ${lossTypes.join(', ')})`);
  }
  const types = names.map((t) => resolveLossType(t));
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

  const needsRef = types.find((t) => !referenceFreeTypes.has(t));
  let ref: RefLogps | undefined;
  if (needsRef !== undefined) {
    for (const f of ['refChosen', 'refRejected'] as const) {
      if (logps[f] === undefined) {
        throw new Error(`${where(needsRef)}: ${f} is required (reference-model log-probs; only simpo, orpo and sft are reference-free)`);
      }
      checkLogps(where(needsRef), f, logps[f], n);
    }
    ref = { pc, pr, rc: logps.refChosen!, rr: logps.refRejected! };
  }

  const ipoNormalize = params.ipoLengthNormalize ?? true;
  const cpoAlpha = params.cpoAlpha ?? 1;
  if (types.includes('simpo')) checkParam(where('simpo'), 'cpoAlpha', cpoAlpha, cpoAlpha >= 0, 'a number ≥ 0');
  const usesNll = params.rpoAlpha !== undefined || types.includes('sft') || types.includes('orpo') || (types.includes('simpo') && cpoAlpha > 0);
  const needTokens = (t: LossType): boolean => t === 'simpo' || t === 'orpo' || t === 'sigmoid_norm' || (t === 'ipo' && ipoNormalize);
  for (const t of types) {
    if (!needTokens(t)) continue;
    for (const f of ['chosenTokens', 'rejectedTokens'] as const) {
      if (logps[f] === undefined) {
        const why = t === 'ipo'
          ? "TRL's IPO averages the log-ratios per token; pass ipoLengthNormalize: false to use the summed log-probs"
          : `${t} works on per-token average log-probs Σ log p / T`;
        throw new Error(`${where(t)}: ${f} is required (${why})`);
      }
    }
  }
  if (usesNll && logps.chosenTokens === undefined) {
    const who = params.rpoAlpha !== undefined ? 'rpoAlpha' : types.includes('orpo') ? 'orpo' : types.includes('sft') ? 'sft' : 'simpo (cpoAlpha)';
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
    const bad = types.find((t) => t === 'aot' || t === 'aot_pair');
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
  let bcoDelta: number | undefined;

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

  for (let k = 0; k < types.length; k++) {
    const t = types[k];
    const w = weights[k];
    switch (t) {
      case 'sigmoid':
        addScored(sigmoidLoss(scored!, beta), w);
        break;
      case 'robust':
        checkParam(where(t), 'labelSmoothing', labelSmoothing, labelSmoothing < 0.5, 'in [0, 0.5) (robust DPO divides by 1 − 2ε)');
        addScored(robustLoss(scored!, beta, labelSmoothing), w);
        break;
      case 'hinge':
        addScored(hingeLoss(scored!, beta), w);
        break;
      case 'ipo':
        addScored(ipoNormalize ? ipoLoss(scored!, beta, logps.chosenTokens, logps.rejectedTokens) : ipoLoss(scored!, beta), w);
        break;
      case 'exo_pair':
        // TRL v1.9.0 refuses ε = 0 (log ε would be −∞); the EXO paper recommends 1e-3.
        checkParam(where(t), 'labelSmoothing', labelSmoothing, labelSmoothing > 0 && labelSmoothing < 1, 'in (0, 1) (EXO takes log ε and log(1 − ε); the paper recommends 1e-3)');
        addScored(exoPairLoss(scored!, beta, labelSmoothing), w);
        break;
      case 'nca_pair':
        addScored(ncaPairLoss(scored!, beta), w);
        break;
      case 'bco_pair': {
        if (bcoDelta === undefined) {
          if (params.bcoState !== undefined) {
            // TRL v0.x: δ = running mean of the batch mean of cat(chosen rewards, rejected rewards).
            let s = 0;
            for (let i = 0; i < n; i++) s += beta * (pc[i] - ref!.rc[i]);
            for (let i = 0; i < n; i++) s += beta * (pr[i] - ref!.rr[i]);
            bcoState = updateBcoRunningMean(params.bcoState, s / (2 * n));
            bcoDelta = bcoState.mean;
          } else {
            bcoDelta = 0;
          }
          metrics.bco_delta = bcoDelta;
        }
        addScored(bcoPairLoss(scored!, beta, bcoDelta), w);
        break;
      }
      case 'sppo_hard':
        addScored(sppoHardLoss(scored!, beta), w);
        break;
      case 'aot':
        addTerm(aotLoss(ref!, beta, labelSmoothing), w);
        break;
      case 'aot_pair':
        addTerm(aotPairLoss(ref!, beta, labelSmoothing), w);
        break;
      case 'apo_zero':
        addTerm(apoZeroLoss(ref!, beta), w);
        break;
      case 'apo_down':
        addTerm(fsc ? apoDownScoreLoss(ref!, beta, fsc, fsr!, dsc!, dsr!) : apoDownLoss(ref!, beta), w);
        break;
      case 'discopop': {
        const tau = params.discopopTau ?? 0.05;
        checkParam(where(t), 'discopopTau', tau, tau > 0, 'a positive number');
        addScored(discopopLoss(scored!, beta, tau), w);
        break;
      }
      case 'sigmoid_norm':
        addScored(sigmoidNormLoss(scored!, beta, logps.chosenTokens!, logps.rejectedTokens!), w);
        break;
      case 'simpo': {
        const gamma = params.simpoGamma ?? 0.5;
        checkParam(where(t), 'simpoGamma', gamma, true, 'a finite number');
        addTerm(simpoLoss(avgChosen!, avgRejected!, beta, gamma, labelSmoothing), w, logps.chosenTokens, logps.rejectedTokens);
        // CPOTrainer: loss = mean(simpo losses) + cpo_alpha · nll.
        nllWeight += w * cpoAlpha * meanPairWeight;
        break;
      }
      case 'orpo': {
        for (let i = 0; i < n; i++) {
          if (!(avgChosen![i] < 0) || !(avgRejected![i] < 0)) {
            const [f, v] = avgChosen![i] < 0 ? ['policyRejected', pr[i]] : ['policyChosen', pc[i]];
            throw new Error(`${where(t)}: ${f}[${i}] = ${v} gives an average log-prob ≥ 0 (probability 1): the odds p/(1 − p) are infinite`);
          }
        }
        const term: OrpoTerm = orpoOddsRatioLoss(avgChosen!, avgRejected!, beta);
        addTerm(term, w, logps.chosenTokens, logps.rejectedTokens);
        // ORPO = nll − mean(β·ls(log odds)): the NLL half joins the shared NLL term below.
        nllWeight += w * meanPairWeight;
        if (metrics.log_odds_ratio === undefined) {
          let sr = 0;
          let sl = 0;
          for (let i = 0; i < n; i++) {
            sr += term.ratio[i];
            sl += term.logOdds[i];
          }
          metrics.log_odds_ratio = sr / n;
          metrics.log_odds_chosen = sl / n;
        }
        break;
      }
      case 'sft':
        // TRL v1.x "sft": the batch's token-mean NLL, expanded to every pair (× its WPO weight, so the
        // mean carries the mean weight).
        nllWeight += w * meanPairWeight;
        break;
    }
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
