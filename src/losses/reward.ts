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

/** Implicit-reward figures of one slice of the pairs (e.g. one annotator group). */
export interface SliceScore {
  slice: string;
  pairs: number;
  /** Share of the slice's pairs whose chosen reward is strictly above the rejected one. */
  accuracy: number;
  meanChosenReward: number;
  meanRejectedReward: number;
  meanMargin: number;
}

/** Per-slice figures of one slice column and the gap between the best and the worst slice. */
export interface SliceReport {
  column: string;
  slices: SliceScore[];
  /** Best slice accuracy − worst slice accuracy (0 with one slice). */
  accuracyGap: number;
  best: string;
  worst: string;
}

/**
 * Splits scored pairs by a slice label: did the model learn some slices' preferences and not
 * others'? `slices[i]` labels pair i. Slices are listed largest first.
 */
export function scoresBySlice(column: string, slices: readonly string[], chosenRewards: ArrayLike<number>, rejectedRewards: ArrayLike<number>): SliceReport {
  if (slices.length !== chosenRewards.length || slices.length !== rejectedRewards.length) {
    throw new Error(`scoresBySlice: ${slices.length} slice labels for ${chosenRewards.length} chosen and ${rejectedRewards.length} rejected rewards`);
  }
  if (slices.length === 0) throw new Error('scoresBySlice: no pairs');
  const acc = new Map<string, { n: number; correct: number; c: number; r: number }>();
  for (let i = 0; i < slices.length; i++) {
    let a = acc.get(slices[i]!);
    if (!a) acc.set(slices[i]!, (a = { n: 0, correct: 0, c: 0, r: 0 }));
    a.n++;
    if (chosenRewards[i]! > rejectedRewards[i]!) a.correct++;
    a.c += chosenRewards[i]!;
    a.r += rejectedRewards[i]!;
  }
  const out: SliceScore[] = [...acc.entries()]
    .map(([slice, a]) => ({ slice, pairs: a.n, accuracy: a.correct / a.n, meanChosenReward: a.c / a.n, meanRejectedReward: a.r / a.n, meanMargin: (a.c - a.r) / a.n }))
    .sort((x, y) => y.pairs - x.pairs || (x.slice < y.slice ? -1 : 1));
  let best = out[0]!;
  let worst = out[0]!;
  for (const s of out) {
    if (s.accuracy > best.accuracy) best = s;
    if (s.accuracy < worst.accuracy) worst = s;
  }
  return { column, slices: out, accuracyGap: best.accuracy - worst.accuracy, best: best.slice, worst: worst.slice };
}

/** A fixed-width table of per-slice figures (printed by `dpo score` and `dpo eval`). */
export function sliceTable(r: SliceReport): string {
  const rows = r.slices.map((s) => [s.slice, String(s.pairs), s.accuracy.toFixed(4), s.meanChosenReward.toFixed(4), s.meanRejectedReward.toFixed(4), s.meanMargin.toFixed(4)]);
  const head = [r.column, 'pairs', 'accuracy', 'reward chosen', 'reward rejected', 'margin'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((x) => x[i]!.length)));
  const line = (c: string[]) => c.map((x, i) => (i === 0 ? x.padEnd(w[i]!) : x.padStart(w[i]!))).join('  ');
  return (
    [line(head), ...rows.map(line)].join('\n') +
    `\naccuracy gap (best − worst slice): ${r.accuracyGap.toFixed(4)} (${r.best} vs ${r.worst})\n`
  );
}
