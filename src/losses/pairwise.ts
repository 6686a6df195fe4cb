// The reference-based pairwise preference losses of TRL's DPOTrainer (loss_type names as in TRL),
// transcribed from trl/trainer/dpo_trainer.py (v0.27.2 dpo_loss; same math in v1.9 _compute_loss).
//
// Notation (per pair i): pc, pr = policy log-probs of the chosen / rejected response (summed over
// response tokens), rc, rr = the reference model's; h = (pc − pr) − (rc − rr), x = β·h;
// σ = sigmoid, ls = log σ. Every function returns the per-pair losses and, for each pair, the
// partial derivatives of Σ_k losses_k with respect to pc_i and pr_i. The dispatcher (index.ts)
// scales them by weight / n to get the gradient of the mean.

import { argsortAscending, logSigmoid, sigmoid, sigmoidGrad } from './math.js';
import type { LossContribution, LossSpec, PairTerm, RefLogps } from './spec.js';
import type { BcoRunningMean } from './types.js';
import { checkParam } from './validate.js';

export type { PairTerm, RefLogps } from './spec.js';

function newTerm(n: number): PairTerm {
  return { losses: new Float64Array(n), dChosen: new Float64Array(n), dRejected: new Float64Array(n) };
}

// sigmoid — DPO, Rafailov et al. 2023, "Direct Preference Optimization: Your Language Model is
// Secretly a Reward Model" (arXiv:2305.18290), as TRL v1.9.0 computes it (no label smoothing:
// TRL v0.x's cDPO form −(1 − ε)·ls(x) − ε·ls(−x) is gone; robust DPO covers noisy labels):
//   loss = −ls(x),   dloss/dx = −σ(−x)
export function sigmoidLoss(p: RefLogps, beta: number): PairTerm {
  const n = p.pc.length;
  const t = newTerm(n);
  for (let i = 0; i < n; i++) {
    const h = p.pc[i] - p.pr[i] - (p.rc[i] - p.rr[i]);
    const x = beta * h;
    t.losses[i] = -logSigmoid(x);
    const dx = -sigmoid(-x);
    t.dChosen[i] = beta * dx;
    t.dRejected[i] = -beta * dx;
  }
  return t;
}

export const sigmoidSpec: LossSpec<'sigmoid'> = {
  name: 'sigmoid',
  trl: 'sigmoid',
  compute: (x) => ({ term: sigmoidLoss(x.scored!, x.beta), via: 'score' }),
};

// sigmoid_norm — TRL v1.9.0's length-normalized sigmoid: the chosen and rejected log-ratios are
// divided by their response lengths Tc, Tr (token counts) before the DPO logistic:
//   x = β(a/Tc − b/Tr),  a = pc − rc, b = pr − rr,   loss = −ls(x),   dloss/dpc = −β·σ(−x)/Tc,   dloss/dpr = β·σ(−x)/Tr
export function sigmoidNormLoss(p: RefLogps, beta: number, chosenTokens: ArrayLike<number>, rejectedTokens: ArrayLike<number>): PairTerm {
  const n = p.pc.length;
  const t = newTerm(n);
  for (let i = 0; i < n; i++) {
    const tc = Math.max(1, chosenTokens[i]!);
    const tr = Math.max(1, rejectedTokens[i]!);
    const x = beta * ((p.pc[i] - p.rc[i]) / tc - (p.pr[i] - p.rr[i]) / tr);
    t.losses[i] = -logSigmoid(x);
    const dx = -sigmoid(-x);
    t.dChosen[i] = (beta * dx) / tc;
    t.dRejected[i] = (-beta * dx) / tr;
  }
  return t;
}

export const sigmoidNormSpec: LossSpec<'sigmoid_norm'> = {
  name: 'sigmoid_norm',
  perToken: () => 'sigmoid_norm works on per-token average log-probs Σ log p / T',
  compute: (x) => ({ term: sigmoidNormLoss(x.scored!, x.beta, x.logps.chosenTokens!, x.logps.rejectedTokens!), via: 'score' }),
};

// robust — Chowdhury et al. 2024, "Provably Robust DPO: Aligning Language Models with Noisy
// Feedback" (arXiv:2403.00409), unbiased loss under label-flip rate ε < 1/2:
//   loss = (−(1 − ε)·ls(x) + ε·ls(−x)) / (1 − 2ε),   dloss/dx = (−(1 − ε)·σ(−x) − ε·σ(x)) / (1 − 2ε)
export function robustLoss(p: RefLogps, beta: number, eps: number): PairTerm {
  const n = p.pc.length;
  const t = newTerm(n);
  const denom = 1 - 2 * eps;
  for (let i = 0; i < n; i++) {
    const h = p.pc[i] - p.pr[i] - (p.rc[i] - p.rr[i]);
    const x = beta * h;
    t.losses[i] = (-(1 - eps) * logSigmoid(x) + eps * logSigmoid(-x)) / denom;
    const dx = (-(1 - eps) * sigmoid(-x) - eps * sigmoid(x)) / denom;
    t.dChosen[i] = beta * dx;
    t.dRejected[i] = -beta * dx;
  }
  return t;
}

export const robustSpec: LossSpec<'robust'> = {
  name: 'robust',
  trl: 'robust',
  labelSmoothing: true,
  compute: (x) => {
    checkParam(x.where, 'labelSmoothing', x.labelSmoothing, x.labelSmoothing < 0.5, 'in [0, 0.5) (robust DPO divides by 1 − 2ε)');
    return { term: robustLoss(x.scored!, x.beta, x.labelSmoothing), via: 'score' };
  },
};

// hinge — SLiC, Zhao et al. 2023, "SLiC-HF: Sequence Likelihood Calibration with Human Feedback"
// (arXiv:2305.10425), as used by RSO (Liu et al. 2023, arXiv:2309.06657):
//   loss = relu(1 − x),   dloss/dx = −1 where 1 − x > 0, else 0 (torch's relu gradient at 0 is 0)
export function hingeLoss(p: RefLogps, beta: number): PairTerm {
  const n = p.pc.length;
  const t = newTerm(n);
  for (let i = 0; i < n; i++) {
    const h = p.pc[i] - p.pr[i] - (p.rc[i] - p.rr[i]);
    const m = 1 - beta * h;
    t.losses[i] = m > 0 ? m : 0;
    const dx = m > 0 ? -1 : 0;
    t.dChosen[i] = beta * dx;
    t.dRejected[i] = -beta * dx;
  }
  return t;
}

export const hingeSpec: LossSpec<'hinge'> = {
  name: 'hinge',
  trl: 'hinge',
  compute: (x) => ({ term: hingeLoss(x.scored!, x.beta), via: 'score' }),
};

// ipo — Azar et al. 2023, "A General Theoretical Paradigm to Understand Learning from Human
// Preferences" (arXiv:2310.12036), eq. 17, with β as the paper's τ:
//   loss = (d − 1/(2β))²,   dloss/dd = 2·(d − 1/(2β))
// d = h on summed log-probs, or, when token counts are given (TRL's default), on per-token averages:
//   d = (pc − rc)/Tc − (pr − rr)/Tr, so ∂d/∂pc = 1/Tc and ∂d/∂pr = −1/Tr.
export function ipoLoss(p: RefLogps, beta: number, tc?: ArrayLike<number>, tr?: ArrayLike<number>): PairTerm {
  const n = p.pc.length;
  const t = newTerm(n);
  const target = 1 / (2 * beta);
  for (let i = 0; i < n; i++) {
    let d: number;
    let sc = 1;
    let sr = 1;
    if (tc !== undefined && tr !== undefined) {
      sc = 1 / tc[i];
      sr = 1 / tr[i];
      d = (p.pc[i] - p.rc[i]) / tc[i] - (p.pr[i] - p.rr[i]) / tr[i];
    } else {
      d = p.pc[i] - p.pr[i] - (p.rc[i] - p.rr[i]);
    }
    const e = d - target;
    t.losses[i] = e * e;
    t.dChosen[i] = 2 * e * sc;
    t.dRejected[i] = -2 * e * sr;
  }
  return t;
}

export const ipoSpec: LossSpec<'ipo'> = {
  name: 'ipo',
  trl: 'ipo',
  perToken: (p) => ((p.ipoLengthNormalize ?? true)
    ? "TRL's IPO averages the log-ratios per token; pass ipoLengthNormalize: false to use the summed log-probs"
    : undefined),
  compute: (x) => ({
    term: (x.params.ipoLengthNormalize ?? true) ? ipoLoss(x.scored!, x.beta, x.logps.chosenTokens, x.logps.rejectedTokens) : ipoLoss(x.scored!, x.beta),
    via: 'score',
  }),
};

// exo_pair — EXO, Ji et al. 2024, "Towards Efficient Exact Optimization of Language Model
// Alignment" (arXiv:2402.00856), eq. 16: KL(softmax(x, 0) ‖ (1 − ε, ε)),
//   loss = σ(x)·(ls(x) − log(1 − ε)) + σ(−x)·(ls(−x) − log ε)
//   dloss/dx = σ'(x)·(x − log(1 − ε) + log ε)   (the σ·σ' cross terms cancel; ls(x) − ls(−x) = x)
// log(1 − ε) and log ε are taken as TRL v0.27 does (double-precision math.log).
export function exoPairLoss(p: RefLogps, beta: number, eps: number): PairTerm {
  const n = p.pc.length;
  const t = newTerm(n);
  const logKeep = Math.log(1 - eps);
  const logFlip = Math.log(eps);
  for (let i = 0; i < n; i++) {
    const h = p.pc[i] - p.pr[i] - (p.rc[i] - p.rr[i]);
    const x = beta * h;
    t.losses[i] = sigmoid(x) * (logSigmoid(x) - logKeep) + sigmoid(-x) * (logSigmoid(-x) - logFlip);
    const dx = sigmoidGrad(x) * (x - logKeep + logFlip);
    t.dChosen[i] = beta * dx;
    t.dRejected[i] = -beta * dx;
  }
  return t;
}

export const exoPairSpec: LossSpec<'exo_pair'> = {
  name: 'exo_pair',
  trl: 'exo_pair',
  labelSmoothing: true,
  compute: (x) => {
    // TRL v1.9.0 refuses ε = 0 (log ε would be −∞); the EXO paper recommends 1e-3.
    checkParam(x.where, 'labelSmoothing', x.labelSmoothing, x.labelSmoothing > 0 && x.labelSmoothing < 1, 'in (0, 1) (EXO takes log ε and log(1 − ε); the paper recommends 1e-3)');
    return { term: exoPairLoss(x.scored!, x.beta, x.labelSmoothing), via: 'score' };
  },
};

// nca_pair — NCA, Chen et al. 2024, "Noise Contrastive Alignment of Language Models with Explicit
// Rewards" (arXiv:2402.05369); with c = β(pc − rc), r = β(pr − rr):
//   loss = −ls(c) − ½·ls(−c) − ½·ls(−r),   dloss/dc = −σ(−c) + ½·σ(c),   dloss/dr = ½·σ(r)
export function ncaPairLoss(p: RefLogps, beta: number): PairTerm {
  const n = p.pc.length;
  const t = newTerm(n);
  for (let i = 0; i < n; i++) {
    const c = (p.pc[i] - p.rc[i]) * beta;
    const r = (p.pr[i] - p.rr[i]) * beta;
    t.losses[i] = -logSigmoid(c) - 0.5 * logSigmoid(-c) - 0.5 * logSigmoid(-r);
    t.dChosen[i] = beta * (-sigmoid(-c) + 0.5 * sigmoid(c));
    t.dRejected[i] = beta * 0.5 * sigmoid(r);
  }
  return t;
}

export const ncaPairSpec: LossSpec<'nca_pair'> = {
  name: 'nca_pair',
  trl: 'nca_pair',
  compute: (x) => ({ term: ncaPairLoss(x.scored!, x.beta), via: 'score' }),
};

/** A fresh bco_pair running mean (TRL RunningMoments: mean 0, count 1e-24). */
export function newBcoRunningMean(): BcoRunningMean {
  return { mean: 0, count: 1e-24 };
}

/**
 * Folds one batch's mean reward into the running mean, exactly as TRL's RunningMoments.update does
 * for the 0-d tensor dpo_loss passes it (one sample per call): the batch mean is cast to float32
 * and the update runs in float32, mean += (x − mean) / (count + 1).
 */
export function updateBcoRunningMean(state: BcoRunningMean, batchMeanReward: number): BcoRunningMean {
  if (!Number.isFinite(batchMeanReward)) {
    throw new Error(`bco_pair: batch mean reward is ${batchMeanReward}; the running mean needs a finite value`);
  }
  if (!Number.isFinite(state.mean) || !(state.count > 0)) {
    throw new Error(`bco_pair: invalid running-mean state {mean: ${state.mean}, count: ${state.count}}`);
  }
  const x = Math.fround(batchMeanReward);
  const delta = Math.fround(x - state.mean);
  const total = state.count + 1;
  const mean = Math.fround(state.mean + Math.fround(delta / Math.fround(total)));
  return { mean, count: total };
}

// bco_pair — BCO, Jung et al. 2024, "Binary Classifier Optimization for Large Language Model
// Alignment" (arXiv:2404.04656); with c = β(pc − rc), r = β(pr − rr) and a constant shift δ
// (TRL v0.x: running mean of the batch mean reward; TRL v1.x: 0):
//   loss = −ls(c − δ) − ls(−(r − δ)),   dloss/dc = −σ(−(c − δ)),   dloss/dr = σ(r − δ)
export function bcoPairLoss(p: RefLogps, beta: number, delta: number): PairTerm {
  const n = p.pc.length;
  const t = newTerm(n);
  for (let i = 0; i < n; i++) {
    const c = beta * (p.pc[i] - p.rc[i]);
    const r = beta * (p.pr[i] - p.rr[i]);
    t.losses[i] = -logSigmoid(c - delta) - logSigmoid(-(r - delta));
    t.dChosen[i] = -beta * sigmoid(-(c - delta));
    t.dRejected[i] = beta * sigmoid(r - delta);
  }
  return t;
}

export const bcoPairSpec: LossSpec<'bco_pair'> = {
  name: 'bco_pair',
  trl: { refuse: 'ours shifts rewards by a running mean (TRL v0.x RunningMoments); v1.9.0\'s bco_pair has no shift' },
  state: 'bcoState',
  compute: (x) => {
    const out: LossContribution = { via: 'score' };
    let delta = x.memo.get('bco_pair.delta') as number | undefined;
    if (delta === undefined) {
      const { n, beta, params } = x;
      if (params.bcoState !== undefined) {
        // TRL v0.x: δ = running mean of the batch mean of cat(chosen rewards, rejected rewards).
        const ref = x.ref!;
        let s = 0;
        for (let i = 0; i < n; i++) s += beta * (ref.pc[i] - ref.rc[i]);
        for (let i = 0; i < n; i++) s += beta * (ref.pr[i] - ref.rr[i]);
        out.bcoState = updateBcoRunningMean(params.bcoState, s / (2 * n));
        delta = out.bcoState.mean;
      } else {
        delta = 0;
      }
      x.memo.set('bco_pair.delta', delta);
      out.metrics = { bco_delta: delta };
    }
    out.term = bcoPairLoss(x.scored!, x.beta, delta);
    return out;
  },
};

// sppo_hard — SPPO with hard win probabilities (P = 1 for the chosen, 0 for the rejected),
// Wu et al. 2024, "Self-Play Preference Optimization for Language Model Alignment"
// (arXiv:2405.00675), eq. 4.7; with a = pc − rc, b = pr − rr:
//   loss = (a − 1/(2β))² + (b + 1/(2β))²,   dloss/da = 2(a − 1/(2β)),   dloss/db = 2(b + 1/(2β))
export function sppoHardLoss(p: RefLogps, beta: number): PairTerm {
  const n = p.pc.length;
  const t = newTerm(n);
  const half = 0.5 / beta;
  for (let i = 0; i < n; i++) {
    const a = p.pc[i] - p.rc[i];
    const b = p.pr[i] - p.rr[i];
    t.losses[i] = (a - half) ** 2 + (b + half) ** 2;
    t.dChosen[i] = 2 * (a - half);
    t.dRejected[i] = 2 * (b + half);
  }
  return t;
}

export const sppoHardSpec: LossSpec<'sppo_hard'> = {
  name: 'sppo_hard',
  trl: 'sppo_hard',
  compute: (x) => ({ term: sppoHardLoss(x.scored!, x.beta), via: 'score' }),
};

// The sigmoid/cDPO per-element loss and its derivative, shared by the two AOT variants.
function smoothedLogistic(x: number, eps: number): [number, number] {
  return [-(1 - eps) * logSigmoid(x) - eps * logSigmoid(-x), -(1 - eps) * sigmoid(-x) + eps * sigmoid(x)];
}

// aot — paired AOT, Melnyk et al. 2024, "Distributional Preference Alignment of LLMs via Optimal
// Transport" (arXiv:2406.05882): the sorted policy margins are matched against the sorted reference
// margins (first-order stochastic dominance), u = sort(pc − pr), v = sort(rc − rr), ascending:
//   loss_k = −(1 − ε)·ls(β(u_k − v_k)) − ε·ls(−β(u_k − v_k))   (indexed by rank k, as in TRL)
// The gradient flows through the sort permutation: pair i at rank k of (pc − pr) gets β·dloss_k/dx.
export function aotLoss(p: RefLogps, beta: number, eps: number): PairTerm {
  const n = p.pc.length;
  const t = newTerm(n);
  const u = new Float64Array(n);
  const v = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    u[i] = p.pc[i] - p.pr[i];
    v[i] = p.rc[i] - p.rr[i];
  }
  const ou = argsortAscending(u);
  const ov = argsortAscending(v);
  for (let k = 0; k < n; k++) {
    const x = beta * (u[ou[k]] - v[ov[k]]);
    const [loss, dx] = smoothedLogistic(x, eps);
    t.losses[k] = loss;
    t.dChosen[ou[k]] = beta * dx;
    t.dRejected[ou[k]] = -beta * dx;
  }
  return t;
}

export const aotSpec: LossSpec<'aot'> = {
  name: 'aot',
  trl: 'aot',
  labelSmoothing: true,
  rankIndexed: true,
  compute: (x) => ({ term: aotLoss(x.ref!, x.beta, x.labelSmoothing), via: 'direct' }),
};

// aot_pair (TRL ≥ 0.28 calls it aot_unpaired) — unpaired AOT, Melnyk et al. 2024 (arXiv:2406.05882):
// the sorted chosen log-ratios are matched against the sorted rejected log-ratios,
// a = sort(pc − rc), b = sort(pr − rr), ascending, each with its own permutation:
//   loss_k = −(1 − ε)·ls(β(a_k − b_k)) − ε·ls(−β(a_k − b_k))   (indexed by rank k)
export function aotPairLoss(p: RefLogps, beta: number, eps: number): PairTerm {
  const n = p.pc.length;
  const t = newTerm(n);
  const a = new Float64Array(n);
  const b = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    a[i] = p.pc[i] - p.rc[i];
    b[i] = p.pr[i] - p.rr[i];
  }
  const oa = argsortAscending(a);
  const ob = argsortAscending(b);
  for (let k = 0; k < n; k++) {
    const x = beta * (a[oa[k]] - b[ob[k]]);
    const [loss, dx] = smoothedLogistic(x, eps);
    t.losses[k] = loss;
    t.dChosen[oa[k]] = beta * dx;
    t.dRejected[ob[k]] = -beta * dx;
  }
  return t;
}

export const aotPairSpec: LossSpec<'aot_pair'> = {
  name: 'aot_pair',
  aliases: ['aot_unpaired'],
  trl: 'aot_unpaired',
  labelSmoothing: true,
  rankIndexed: true,
  compute: (x) => ({ term: aotPairLoss(x.ref!, x.beta, x.labelSmoothing), via: 'direct' }),
};

// apo_zero — APO-zero, D'Oosterlinck et al. 2024, "Anchored Preference Optimization and
// Contrastive Revisions" (arXiv:2408.06266), eq. 7 (chosen better than the model's own outputs):
//   loss = (1 − σ(β(pc − rc))) + σ(β(pr − rr)),   dloss/dpc = −β·σ'(β(pc − rc)),   dloss/dpr = β·σ'(β(pr − rr))
export function apoZeroLoss(p: RefLogps, beta: number): PairTerm {
  const n = p.pc.length;
  const t = newTerm(n);
  for (let i = 0; i < n; i++) {
    const c = beta * (p.pc[i] - p.rc[i]);
    const r = beta * (p.pr[i] - p.rr[i]);
    t.losses[i] = 1 - sigmoid(c) + sigmoid(r);
    t.dChosen[i] = -beta * sigmoidGrad(c);
    t.dRejected[i] = beta * sigmoidGrad(r);
  }
  return t;
}

export const apoZeroSpec: LossSpec<'apo_zero'> = {
  name: 'apo_zero',
  trl: 'apo_zero',
  compute: (x) => ({ term: apoZeroLoss(x.ref!, x.beta), via: 'direct' }),
};

// apo_down — APO-down, D'Oosterlinck et al. 2024 (arXiv:2408.06266), eq. 8 (chosen worse than the
// model's outputs: push both down, the rejected more); a = pc − rc, b = pr − rr:
//   loss = σ(βa) + (1 − σ(β(a − b))),   dloss/da = β·σ'(βa) − β·σ'(β(a − b)),   dloss/db = β·σ'(β(a − b))
export function apoDownLoss(p: RefLogps, beta: number): PairTerm {
  const n = p.pc.length;
  const t = newTerm(n);
  for (let i = 0; i < n; i++) {
    const a = p.pc[i] - p.rc[i];
    const b = p.pr[i] - p.rr[i];
    const c = beta * a;
    const m = beta * (a - b);
    t.losses[i] = sigmoid(c) + (1 - sigmoid(m));
    t.dChosen[i] = beta * sigmoidGrad(c) - beta * sigmoidGrad(m);
    t.dRejected[i] = beta * sigmoidGrad(m);
  }
  return t;
}

// apo_down with f-DPO scores (TRL v1.9.0): the chosen half uses the raw log-ratio a = pc − rc, the
// rejected half the score difference Δ = s(a) − s(b):
//   loss = σ(βa) + (1 − σ(βΔ)),   dloss/dpc = β·σ'(βa) − β·σ'(βΔ)·s'(a),   dloss/dpr = β·σ'(βΔ)·s'(b)
// (with s(x) = x this is apoDownLoss). Gradients are with respect to pc and pr.
export function apoDownScoreLoss(p: RefLogps, beta: number, sc: Float64Array, sr: Float64Array, dsc: Float64Array, dsr: Float64Array): PairTerm {
  const n = p.pc.length;
  const t = newTerm(n);
  for (let i = 0; i < n; i++) {
    const c = beta * (p.pc[i] - p.rc[i]);
    const m = beta * (sc[i] - sr[i]);
    t.losses[i] = sigmoid(c) + (1 - sigmoid(m));
    t.dChosen[i] = beta * sigmoidGrad(c) - beta * sigmoidGrad(m) * dsc[i];
    t.dRejected[i] = beta * sigmoidGrad(m) * dsr[i];
  }
  return t;
}

export const apoDownSpec: LossSpec<'apo_down'> = {
  name: 'apo_down',
  trl: 'apo_down',
  compute: (x) => {
    const f = x.fScores;
    return { term: f ? apoDownScoreLoss(x.ref!, x.beta, f.sc, f.sr, f.dsc, f.dsr) : apoDownLoss(x.ref!, x.beta), via: 'direct' };
  },
};

// discopop — DiscoPOP / log-ratio modulated loss, Lu et al. 2024, "Discovering Preference
// Optimization Algorithms with and for Large Language Models" (arXiv:2406.08414), eq. 5:
//   m = σ(x/τ),   loss = −ls(x)·(1 − m) + e^(−x)·m
//   dloss/dx = −σ(−x)(1 − m) + ls(x)·m' − e^(−x)·m + e^(−x)·m',   m' = σ'(x/τ)/τ
// e^(−x)·m and e^(−x)·m' are evaluated as exp(−x + ls(x/τ)) and exp(−x + log σ'(x/τ))/τ, which
// stay finite where e^(−x) alone would overflow (very negative x, where m underflows to 0).
export function discopopLoss(p: RefLogps, beta: number, tau: number): PairTerm {
  const n = p.pc.length;
  const t = newTerm(n);
  for (let i = 0; i < n; i++) {
    const h = p.pc[i] - p.pr[i] - (p.rc[i] - p.rr[i]);
    const x = h * beta;
    const z = x / tau;
    const lsz = logSigmoid(z);
    const lsNegz = logSigmoid(-z);
    const oneMinusM = Math.exp(lsNegz);
    const expTimesM = Math.exp(-x + lsz);
    const mPrime = Math.exp(lsz + lsNegz) / tau;
    const expTimesMPrime = Math.exp(-x + lsz + lsNegz) / tau;
    const lsx = logSigmoid(x);
    t.losses[i] = -lsx * oneMinusM + expTimesM;
    const dx = -sigmoid(-x) * oneMinusM + lsx * mPrime - expTimesM + expTimesMPrime;
    t.dChosen[i] = beta * dx;
    t.dRejected[i] = -beta * dx;
  }
  return t;
}

export const discopopSpec: LossSpec<'discopop'> = {
  name: 'discopop',
  options: ['discopop_tau'],
  trl: 'discopop',
  compute: (x) => {
    const tau = x.params.discopopTau ?? 0.05;
    checkParam(x.where, 'discopopTau', tau, tau > 0, 'a positive number');
    return { term: discopopLoss(x.scored!, x.beta, tau), via: 'score' };
  },
};
