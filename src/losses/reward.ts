// Implicit-reward scoring of preference pairs (for `dpo score` and evaluation).
//
// DPO's policy defines a reward up to a prompt-only constant, r(x, y) = β·(log π(y|x) − log π_ref(y|x))
// (Rafailov et al. 2023, §5); a pair is ranked correctly when the chosen response gets the higher
// reward. Reference-free models (SimPO, ORPO) use β·(average per-token log-prob) instead.

import type { PreferenceLogps } from './types.js';
import { checkCounts, checkLogps, checkParam } from './validate.js';

/** β·(policy − ref) per sequence. */
export function implicitRewards(policy: Float64Array, ref: Float64Array, beta: number): Float64Array {
  const where = 'implicitRewards';
  checkParam(where, 'beta', beta, beta > 0, 'a positive number');
  checkLogps(where, 'policy', policy, policy.length);
  checkLogps(where, 'ref', ref, policy.length);
  const out = new Float64Array(policy.length);
  for (let i = 0; i < policy.length; i++) out[i] = beta * (policy[i] - ref[i]);
  return out;
}

/** β·(Σ log p / T) per sequence: the reward of SimPO and ORPO (no reference model). */
export function lengthNormalizedRewards(policy: Float64Array, tokens: ArrayLike<number>, beta: number): Float64Array {
  const where = 'lengthNormalizedRewards';
  checkParam(where, 'beta', beta, beta > 0, 'a positive number');
  checkLogps(where, 'policy', policy, policy.length);
  checkCounts(where, 'tokens', tokens, policy.length, 1);
  const out = new Float64Array(policy.length);
  for (let i = 0; i < policy.length; i++) out[i] = beta * (policy[i] / tokens[i]);
  return out;
}

export interface PairwiseAccuracy {
  /** correct / n. */
  accuracy: number;
  /** Pairs with chosen > rejected (strictly). */
  correct: number;
  /** Pairs with chosen == rejected (counted as wrong, as TRL's rewards/accuracies does). */
  ties: number;
  n: number;
}

/** Fraction of pairs whose chosen score is strictly above the rejected score. */
export function pairwiseAccuracy(chosen: ArrayLike<number>, rejected: ArrayLike<number>): PairwiseAccuracy {
  if (chosen.length !== rejected.length) {
    throw new Error(`pairwiseAccuracy: chosen has length ${chosen.length}, rejected ${rejected.length}; they must match`);
  }
  const n = chosen.length;
  if (n === 0) throw new Error('pairwiseAccuracy: no pairs');
  let correct = 0;
  let ties = 0;
  for (let i = 0; i < n; i++) {
    if (Number.isNaN(chosen[i]) || Number.isNaN(rejected[i])) {
      throw new Error(`pairwiseAccuracy: pair ${i} has a NaN score (chosen ${chosen[i]}, rejected ${rejected[i]})`);
    }
    if (chosen[i] > rejected[i]) correct++;
    else if (chosen[i] === rejected[i]) ties++;
  }
  return { accuracy: correct / n, correct, ties, n };
}

export interface PairScores {
  chosenRewards: Float64Array;
  rejectedRewards: Float64Array;
  /** chosenRewards − rejectedRewards. */
  margins: Float64Array;
  /** 1 where chosen > rejected, else 0. */
  accuracies: Float64Array;
  accuracy: PairwiseAccuracy;
  meanMargin: number;
  meanChosenReward: number;
  meanRejectedReward: number;
}

/**
 * Scores preference pairs with the implicit reward. With reference log-probs: β·(π − π_ref);
 * with `referenceFree: true` (or no reference given): β·(Σ log p / T), which needs the token counts.
 */
export function scorePreferencePairs(
  logps: PreferenceLogps,
  opts: { beta?: number; referenceFree?: boolean } = {},
): PairScores {
  const beta = opts.beta ?? 0.1;
  const n = logps.policyChosen?.length ?? 0;
  if (n === 0) throw new Error('scorePreferencePairs: policyChosen is empty or missing');
  const useRef = !opts.referenceFree && (logps.refChosen !== undefined || logps.refRejected !== undefined);
  let chosenRewards: Float64Array;
  let rejectedRewards: Float64Array;
  if (useRef) {
    if (logps.refChosen === undefined || logps.refRejected === undefined) {
      throw new Error(`scorePreferencePairs: ${logps.refChosen === undefined ? 'refChosen' : 'refRejected'} is missing (both reference arrays are needed, or pass referenceFree: true)`);
    }
    checkLogps('scorePreferencePairs', 'policyRejected', logps.policyRejected, n);
    chosenRewards = implicitRewards(logps.policyChosen, logps.refChosen, beta);
    rejectedRewards = implicitRewards(logps.policyRejected, logps.refRejected, beta);
  } else {
    if (logps.chosenTokens === undefined || logps.rejectedTokens === undefined) {
      throw new Error(`scorePreferencePairs: reference-free scoring needs ${logps.chosenTokens === undefined ? 'chosenTokens' : 'rejectedTokens'} (rewards are β·Σlog p / T)`);
    }
    checkLogps('scorePreferencePairs', 'policyRejected', logps.policyRejected, n);
    chosenRewards = lengthNormalizedRewards(logps.policyChosen, logps.chosenTokens, beta);
    rejectedRewards = lengthNormalizedRewards(logps.policyRejected, logps.rejectedTokens, beta);
  }
  const margins = new Float64Array(n);
  const accuracies = new Float64Array(n);
  let sumMargin = 0;
  let sumChosen = 0;
  let sumRejected = 0;
  for (let i = 0; i < n; i++) {
    margins[i] = chosenRewards[i] - rejectedRewards[i];
    accuracies[i] = chosenRewards[i] > rejectedRewards[i] ? 1 : 0;
    sumMargin += margins[i];
    sumChosen += chosenRewards[i];
    sumRejected += rejectedRewards[i];
  }
  return {
    chosenRewards,
    rejectedRewards,
    margins,
    accuracies,
    accuracy: pairwiseAccuracy(chosenRewards, rejectedRewards),
    meanMargin: sumMargin / n,
    meanChosenReward: sumChosen / n,
    meanRejectedReward: sumRejected / n,
  };
}
