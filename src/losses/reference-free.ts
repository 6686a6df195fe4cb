// The reference-free preference losses SimPO and ORPO, transcribed from TRL v1.9
// (trl/experimental/cpo/cpo_trainer.py CPOTrainer.cpo_loss with loss_type="simpo";
// trl/experimental/orpo/orpo_trainer.py ORPOTrainer.odds_ratio_loss). Both work on the per-token
// AVERAGE log-probs c = pc / Tc and r = pr / Tr of the chosen and rejected responses; the functions
// here take those averages and return derivatives with respect to them. The dispatcher (index.ts)
// divides by the token counts to get derivatives with respect to the summed log-probs.

import { log1mexp, log1mexpGrad, logSigmoid, sigmoid } from './math.js';
import type { PairTerm } from './pairwise.js';
import type { LossSpec } from './spec.js';
import { checkParam } from './validate.js';

// simpo — SimPO, Meng et al. 2024, "SimPO: Simple Preference Optimization with a Reference-Free
// Reward" (arXiv:2405.14734), with TRL's convention that γ (simpo_gamma) is the target margin in
// reward units and is divided by β inside:
//   z = β·((c − r) − γ/β),   loss = −(1 − ε)·ls(z) − ε·ls(−z)
//   dloss/dc = β·(−(1 − ε)·σ(−z) + ε·σ(z)) = −dloss/dr
export function simpoLoss(c: Float64Array, r: Float64Array, beta: number, gamma: number, eps: number): PairTerm {
  const n = c.length;
  const t: PairTerm = { losses: new Float64Array(n), dChosen: new Float64Array(n), dRejected: new Float64Array(n) };
  const gammaLogratio = gamma / beta;
  for (let i = 0; i < n; i++) {
    const logits = c[i] - r[i] - gammaLogratio;
    const z = beta * logits;
    t.losses[i] = -(1 - eps) * logSigmoid(z) - eps * logSigmoid(-z);
    const dz = -(1 - eps) * sigmoid(-z) + eps * sigmoid(z);
    t.dChosen[i] = beta * dz;
    t.dRejected[i] = -beta * dz;
  }
  return t;
}

export const simpoSpec: LossSpec<'simpo'> = {
  name: 'simpo',
  options: ['simpo_gamma', 'cpo_alpha'],
  trl: { refuse: 'TRL v1.9.0 has SimPO only in CPOTrainer (CPOConfig loss_type="simpo"), not in DPOTrainer' },
  referenceFree: true,
  labelSmoothing: true,
  perToken: () => 'simpo works on per-token average log-probs Σ log p / T',
  usesNll: (p) => (p.cpoAlpha ?? 1) > 0,
  checkParams: (where, p) => {
    const cpoAlpha = p.cpoAlpha ?? 1;
    checkParam(where, 'cpoAlpha', cpoAlpha, cpoAlpha >= 0, 'a number ≥ 0');
  },
  compute: (x) => {
    const gamma = x.params.simpoGamma ?? 0.5;
    checkParam(x.where, 'simpoGamma', gamma, true, 'a finite number');
    // CPOTrainer: loss = mean(simpo losses) + cpo_alpha · nll.
    return { term: simpoLoss(x.avgChosen!, x.avgRejected!, x.beta, gamma, x.labelSmoothing), via: 'perToken', nllWeight: x.params.cpoAlpha ?? 1 };
  },
};

/** ORPO's odds-ratio term and the two quantities TRL logs about it. */
export interface OrpoTerm extends PairTerm {
  /** log odds(chosen) − log odds(rejected), per pair (TRL metric log_odds_chosen = its mean). */
  logOdds: Float64Array;
  /** ls(logOdds), per pair (TRL metric log_odds_ratio = its mean). */
  ratio: Float64Array;
}

// orpo — ORPO's odds-ratio penalty, Hong et al. 2024, "ORPO: Monolithic Preference Optimization
// without Reference Model" (arXiv:2403.07691), eq. 7, with odds(p) = p / (1 − p) on the average
// token probability, so log odds = c − log(1 − e^c):
//   L = c − r − (log1mexp(c) − log1mexp(r)),   loss = −β·ls(L)   (β is ORPO's λ)
//   dloss/dL = −β·σ(−L),   dL/dc = 1 − log1mexp'(c) = 1 / (1 − e^c),   dL/dr = −1 / (1 − e^r)
// The NLL half of ORPO (loss_total = nll − mean(β·ls(L))) is added by the dispatcher.
export function orpoOddsRatioLoss(c: Float64Array, r: Float64Array, beta: number): OrpoTerm {
  const n = c.length;
  const t: OrpoTerm = {
    losses: new Float64Array(n),
    dChosen: new Float64Array(n),
    dRejected: new Float64Array(n),
    logOdds: new Float64Array(n),
    ratio: new Float64Array(n),
  };
  for (let i = 0; i < n; i++) {
    const L = c[i] - r[i] - (log1mexp(c[i]) - log1mexp(r[i]));
    const ratio = logSigmoid(L);
    t.logOdds[i] = L;
    t.ratio[i] = ratio;
    t.losses[i] = -beta * ratio;
    const dL = -beta * sigmoid(-L);
    t.dChosen[i] = dL * (1 - log1mexpGrad(c[i]));
    t.dRejected[i] = dL * (-1 + log1mexpGrad(r[i]));
  }
  return t;
}

export const orpoSpec: LossSpec<'orpo'> = {
  name: 'orpo',
  trl: { refuse: 'TRL v1.9.0 has ORPO only in its ORPOTrainer, not in DPOTrainer' },
  referenceFree: true,
  perToken: () => 'orpo works on per-token average log-probs Σ log p / T',
  usesNll: () => true,
  compute: (x) => {
    const { n, logps } = x;
    const c = x.avgChosen!;
    const r = x.avgRejected!;
    for (let i = 0; i < n; i++) {
      if (!(c[i] < 0) || !(r[i] < 0)) {
        const [f, v] = c[i] < 0 ? ['policyRejected', logps.policyRejected[i]] : ['policyChosen', logps.policyChosen[i]];
        throw new Error(`${x.where}: ${f}[${i}] = ${v} gives an average log-prob ≥ 0 (probability 1): the odds p/(1 − p) are infinite`);
      }
    }
    const term = orpoOddsRatioLoss(c, r, x.beta);
    let sr = 0;
    let sl = 0;
    for (let i = 0; i < n; i++) {
      sr += term.ratio[i];
      sl += term.logOdds[i];
    }
    // ORPO = nll − mean(β·ls(log odds)): the NLL half is the shared NLL term.
    return { term, via: 'perToken', nllWeight: 1, metrics: { log_odds_ratio: sr / n, log_odds_chosen: sl / n } };
  },
};
