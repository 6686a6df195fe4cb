// What a preference loss declares about itself, beside its function (pairwise.ts, reference-free.ts,
// sft.ts). The registry (registry.ts) lists the declarations; the dispatcher (index.ts), the config
// checks and the trainer ask it instead of keeping their own lists of loss names.
//
// Adding a loss: write its pure function (per-pair losses and closed-form derivatives, cited) and its
// LossSpec in one file, add the spec to `lossSpecs` in registry.ts, and add a golden test.

import type { BcoRunningMean, LossParams, PreferenceLogps } from './types.js';

/** Per-pair losses and d(Σ losses)/d(policy log-probs). */
export interface PairTerm {
  losses: Float64Array;
  dChosen: Float64Array;
  dRejected: Float64Array;
}

/** Policy and reference log-probs of a batch (all length n). */
export interface RefLogps {
  pc: Float64Array;
  pr: Float64Array;
  rc: Float64Array;
  rr: Float64Array;
}

/** What the dispatcher hands a loss: validated inputs and the shared derived quantities. */
export interface LossInputs {
  /** Number of pairs. */
  readonly n: number;
  /** Error-message prefix for this loss ('sigmoid', or 'sigmoid+sft (sft)' in a list). */
  readonly where: string;
  readonly params: LossParams;
  /** β (params.beta, default 0.1, checked > 0). */
  readonly beta: number;
  /** ε (params.labelSmoothing, default 0, checked in [0, 1]). */
  readonly labelSmoothing: number;
  readonly logps: PreferenceLogps;
  /** Policy and reference log-probs; present whenever a loss of the list needs the reference. */
  readonly ref: RefLogps | undefined;
  /** What score-based losses see: `ref`, or with f-DPO the scores s(log π/π_ref) (reference zero). */
  readonly scored: RefLogps | undefined;
  /** f-DPO scores s(x) and their derivatives s'(x) of the chosen / rejected log-ratios (f-DPO only). */
  readonly fScores: { sc: Float64Array; sr: Float64Array; dsc: Float64Array; dsr: Float64Array } | undefined;
  /** Per-token average log-probs Σ log p / T, when both token counts were given. */
  readonly avgChosen: Float64Array | undefined;
  readonly avgRejected: Float64Array | undefined;
  /** Scratch shared by the losses of one call (e.g. bco_pair's δ, computed once per batch). */
  readonly memo: Map<string, unknown>;
}

/** What a loss contributes to the combined loss (all per unit of its loss weight). */
export interface LossContribution {
  /** Per-pair losses and their derivatives; absent for a loss that is only an NLL term (sft). */
  term?: PairTerm;
  /**
   * With respect to what `term`'s derivatives are taken: 'score' = the log-ratio or its f-DPO score
   * (chained through s'(x) when f-DPO is active), 'direct' = the summed log-probs themselves,
   * 'perToken' = the per-token averages (divided by the token counts).
   */
  via?: 'score' | 'direct' | 'perToken';
  /** Weight of the shared token-mean NLL term this loss adds (TRL's sft / ORPO's NLL / CPO's cpo_alpha). */
  nllWeight?: number;
  /** TRL metrics this loss logs; the first loss of a list to log a name wins. */
  metrics?: Record<string, number>;
  /** bco_pair with a running state: the state after this batch. */
  bcoState?: BcoRunningMean;
}

/** A loss's declaration: its name, TRL correspondence, needs, and how to compute it. */
export interface LossSpec<N extends string = string> {
  /** The loss_type name (TRL's). */
  readonly name: N;
  /** Other names accepted for it (e.g. TRL v1.9's aot_unpaired for aot_pair). */
  readonly aliases?: readonly string[];
  /** The loss_type TRL v1.9.0's DPOTrainer runs for it (same formula), or why there is none. */
  readonly trl?: string | { readonly refuse: string };
  /** Needs no reference model (then refChosen / refRejected may be omitted). */
  readonly referenceFree?: boolean;
  /** Why it needs per-token counts (chosenTokens / rejectedTokens) under these params; undefined: it does not. */
  readonly perToken?: (params: LossParams) => string | undefined;
  /** The TRL config fields only this loss reads (e.g. simpo_gamma); set while no such loss runs, they are refused. */
  readonly options?: readonly string[];
  /** Reads params.labelSmoothing (TRL v1.9.0); the losses without this flag ignore it. */
  readonly labelSmoothing?: boolean;
  /** Its per-pair losses are indexed by sorted rank, not by pair (so pair weights cannot apply). */
  readonly rankIndexed?: boolean;
  /** Keeps state across batches in this LossParams field (the trainer creates and threads it). */
  readonly state?: 'bcoState';
  /** Adds the shared NLL term under these params (so chosenTokens is required). */
  readonly usesNll?: (params: LossParams) => boolean;
  /** Checks of its own hyper-parameters, run before the inputs are checked. */
  readonly checkParams?: (where: string, params: LossParams) => void;
  /** Computes its contribution. Pure: no state is kept between calls. */
  readonly compute: (x: LossInputs) => LossContribution;
}
