// Preference losses pinned to PyTorch/TRL golden vectors (test/fixtures/golden), plus finite-difference
// gradient checks of every loss type, the weighted combination, SFT, rewards and error messages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import {
  computePreferenceLoss,
  implicitRewards,
  lengthNormalizedRewards,
  lossTypes,
  newBcoRunningMean,
  pairwiseAccuracy,
  resolveLossType,
  scorePreferencePairs,
  sftLoss,
  updateBcoRunningMean,
  type LossParams,
  type LossResult,
  type PreferenceLogps,
} from '../src/losses/index.js';
import { bcoPairLoss } from '../src/losses/pairwise.js';
import { mulberry32 } from './helpers/rng.js';

import { GOLDEN_DIR } from './helpers/fixtures.js';
const BASE = join(GOLDEN_DIR, 'dpo_losses.json');
const MORE = join(GOLDEN_DIR, 'dpo_losses_more.json');

// ---------------------------------------------------------------------------------------------
// helpers

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

function load(path: string): Json {
  return JSON.parse(readFileSync(path, 'utf8'));
}

const F32_MIN_NORMAL = 2 ** -126;

/** Asserts |a − e| ≤ rel·|e| + abs elementwise, reporting the worst element. */
function assertClose(actual: ArrayLike<number> | number, expected: ArrayLike<number> | number, rel: number, abs: number, what: string): void {
  const a = typeof actual === 'number' ? [actual] : Array.from(actual);
  const e = typeof expected === 'number' ? [expected] : Array.from(expected);
  assert.equal(a.length, e.length, `${what}: length ${a.length} vs expected ${e.length}`);
  for (let i = 0; i < a.length; i++) {
    assert.ok(Number.isFinite(a[i]), `${what}[${i}] = ${a[i]} is not finite`);
    const err = Math.abs(a[i] - e[i]);
    const tol = rel * Math.abs(e[i]) + abs;
    assert.ok(err <= tol, `${what}[${i}]: got ${a[i]}, expected ${e[i]} (|err| ${err.toExponential(3)} > tol ${tol.toExponential(3)})`);
  }
}

function f64(a: number[]): Float64Array {
  return Float64Array.from(a);
}
// float32 inputs: rounded through a Float32Array, then computed in float64.
function f32(a: number[]): Float64Array {
  return Float64Array.from(Float32Array.from(a));
}

function inputsOf(block: Json, round: (a: number[]) => Float64Array): PreferenceLogps {
  return {
    policyChosen: round(block.policy_chosen_logps),
    policyRejected: round(block.policy_rejected_logps),
    refChosen: round(block.ref_chosen_logps),
    refRejected: round(block.ref_rejected_logps),
  };
}

// Every golden case → (loss type, params) for computePreferenceLoss.
function caseSpec(c: Json, dtype: 'float64' | 'float32'): { type: string; params: LossParams } {
  const params: LossParams = { beta: c.beta, labelSmoothing: c.label_smoothing ?? 0 };
  switch (c.loss_type) {
    case 'ipo':
      // The golden IPO is the paper's formula on the given (summed) log-probs.
      return { type: 'ipo', params: { ...params, ipoLengthNormalize: false } };
    case 'bco_pair':
      if (c.delta !== 0) params.bcoState = newBcoRunningMean();
      return { type: 'bco_pair', params };
    case 'discopop':
      return { type: 'discopop', params: { ...params, discopopTau: c.discopop_tau } };
    default:
      void dtype;
      return { type: c.loss_type, params };
  }
}

/**
 * Per-output absolute slack for float32 golden blocks. Torch computed those in float32 from
 * float32 log-probs of magnitude ~10²: h = (pc − pr) − (rc − rr) alone carries a rounding error of
 * up to u·(|pc| + |pr| + |rc| + |rr|) (u = 2^-24), which is far above 1e-6·|output| wherever an
 * output is a small difference of large terms (IPO's (h − 1/2β)², apo_down's difference of two σ'
 * terms, the reward means, whose terms cancel). We measure that conditioning instead of guessing
 * it: re-evaluate with every input scaled by (1 ± 2u) under all 16 sign patterns and take the
 * largest change of each output; means also get torch's float32 pairwise-summation bound
 * (⌈log2 n⌉ + 1)·u·mean|term|. Well-conditioned outputs keep the plain 1e-6 relative tolerance.
 */
interface Slack {
  losses: Float64Array;
  gc: Float64Array;
  gr: Float64Array;
  cr: Float64Array;
  rr: Float64Array;
  loss: number;
  meanCr: number;
  meanRr: number;
  meanMargin: number;
}

const U32 = 2 ** -24;

function float32Slack(run: (l: PreferenceLogps) => LossResult, logps: PreferenceLogps): Slack {
  const base = run(logps);
  const n = base.losses.length;
  const s: Slack = {
    losses: new Float64Array(n), gc: new Float64Array(n), gr: new Float64Array(n),
    cr: new Float64Array(n), rr: new Float64Array(n), loss: 0, meanCr: 0, meanRr: 0, meanMargin: 0,
  };
  const fields = ['policyChosen', 'policyRejected', 'refChosen', 'refRejected'] as const;
  const upd = (dst: Float64Array, a: Float64Array, b: Float64Array): void => {
    for (let i = 0; i < n; i++) dst[i] = Math.max(dst[i], Math.abs(a[i] - b[i]));
  };
  for (let pattern = 0; pattern < 16; pattern++) {
    const p: PreferenceLogps = { ...logps };
    fields.forEach((f, k) => {
      const sign = pattern & (1 << k) ? 1 : -1;
      if (logps[f] !== undefined) p[f] = logps[f]!.map((v) => v * (1 + sign * 2 * U32));
    });
    const r = run(p);
    upd(s.losses, r.losses, base.losses);
    upd(s.gc, r.gradPolicyChosen, base.gradPolicyChosen);
    upd(s.gr, r.gradPolicyRejected, base.gradPolicyRejected);
    upd(s.cr, r.chosenRewards, base.chosenRewards);
    upd(s.rr, r.rejectedRewards, base.rejectedRewards);
    s.loss = Math.max(s.loss, Math.abs(r.loss - base.loss));
    s.meanCr = Math.max(s.meanCr, Math.abs(r.metrics['rewards/chosen'] - base.metrics['rewards/chosen']));
    s.meanRr = Math.max(s.meanRr, Math.abs(r.metrics['rewards/rejected'] - base.metrics['rewards/rejected']));
    s.meanMargin = Math.max(s.meanMargin, Math.abs(r.metrics['rewards/margins'] - base.metrics['rewards/margins']));
  }
  const sumBound = (xs: ArrayLike<number>): number => {
    let m = 0;
    for (let i = 0; i < xs.length; i++) m += Math.abs(xs[i]);
    return (Math.ceil(Math.log2(xs.length)) + 1) * U32 * (m / xs.length);
  };
  s.loss += sumBound(base.losses);
  s.meanCr += sumBound(base.chosenRewards);
  s.meanRr += sumBound(base.rejectedRewards);
  s.meanMargin += sumBound(base.margins);
  return s;
}

function plus(a: Float64Array, abs: number): Float64Array {
  return a.map((x) => x + abs);
}

/** Asserts |a_i − e_i| ≤ rel·|e_i| + abs_i. */
function assertCloseEach(actual: ArrayLike<number>, expected: ArrayLike<number>, rel: number, abs: ArrayLike<number>, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length ${actual.length} vs expected ${expected.length}`);
  for (let i = 0; i < actual.length; i++) assertClose(actual[i], expected[i], rel, abs[i], `${what}[${i}]`);
}

/**
 * Compares every stored output of a golden block with a LossResult: float64 at 1e-9 relative;
 * float32 at 1e-6 relative plus the measured float32 conditioning (`slack`) and, for gradients that
 * torch flushed to subnormals or 0, the smallest normal float32 as absolute tolerance.
 */
function checkBlock(r: LossResult, g: Json, rel: number, abs: number, name: string, slack?: Slack): void {
  const n = r.losses.length;
  const z = new Float64Array(n);
  const sl = slack ?? { losses: z, gc: z, gr: z, cr: z, rr: z, loss: 0, meanCr: 0, meanRr: 0, meanMargin: 0 };
  assertCloseEach(r.losses, g.losses, rel, plus(sl.losses, abs), `${name} losses`);
  assertClose(r.loss, g.loss_mean, rel, abs + sl.loss, `${name} loss_mean`);
  assertCloseEach(r.chosenRewards, g.chosen_rewards, rel, plus(sl.cr, abs), `${name} chosen_rewards`);
  assertCloseEach(r.rejectedRewards, g.rejected_rewards, rel, plus(sl.rr, abs), `${name} rejected_rewards`);
  assertClose(r.metrics['rewards/accuracies'], g.reward_accuracy, rel, abs, `${name} reward_accuracy`);
  assertClose(r.metrics['rewards/margins'], g.reward_margin_mean, rel, abs + sl.meanMargin, `${name} reward_margin_mean`);
  assertClose(r.metrics['rewards/chosen'], g.chosen_rewards_mean, rel, abs + sl.meanCr, `${name} chosen_rewards_mean`);
  assertClose(r.metrics['rewards/rejected'], g.rejected_rewards_mean, rel, abs + sl.meanRr, `${name} rejected_rewards_mean`);
  const margins = g.chosen_rewards.map((c: number, i: number) => c - g.rejected_rewards[i]);
  assertCloseEach(r.margins, margins, rel, sl.cr.map((x, i) => x + sl.rr[i] + abs + 1e-12), `${name} margins`);
  const acc = g.chosen_rewards.map((c: number, i: number) => (c > g.rejected_rewards[i] ? 1 : 0));
  assert.deepEqual(Array.from(r.rewardAccuracies), acc, `${name} rewardAccuracies`);
  assertCloseEach(r.gradPolicyChosen, g.grad_policy_chosen_logps, rel, plus(sl.gc, abs), `${name} grad_policy_chosen_logps`);
  assertCloseEach(r.gradPolicyRejected, g.grad_policy_rejected_logps, rel, plus(sl.gr, abs), `${name} grad_policy_rejected_logps`);
}

/** Runs a golden case and compares; float32 blocks get the measured conditioning slack. */
function runCase(type: string, params: LossParams, inputs: PreferenceLogps, g: Json, dtype: 'float64' | 'float32', name: string): LossResult {
  const run = (l: PreferenceLogps): LossResult => computePreferenceLoss(type, l, params);
  const r = run(inputs);
  if (dtype === 'float64') checkBlock(r, g, REL64, 0, name);
  else checkBlock(r, g, REL32, F32_MIN_NORMAL, name, float32Slack(run, inputs));
  return r;
}

// float64: 1e-9 relative. float32 inputs: 1e-6 relative (torch computed in float32, we in float64
// from the same float32-rounded inputs) plus the measured conditioning, see float32Slack.
const REL64 = 1e-9;
const REL32 = 1e-6;

// ---------------------------------------------------------------------------------------------
// golden vectors: DPO-family pairwise losses

const SPECIAL = new Set(['simpo', 'orpo', 'sigmoid+rpo']);

test('golden: dpo_losses.json (sigmoid, cDPO, ipo, hinge) float64 and float32', () => {
  const g = load(BASE);
  for (const c of g.cases) {
    for (const dtype of ['float64', 'float32'] as const) {
      const { type, params } = caseSpec(c, dtype);
      const inputs = dtype === 'float64' ? inputsOf(g.inputs, f64) : inputsOf(g.inputs_float32, f32);
      runCase(type, params, inputs, c[dtype], dtype, `${c.name}/${dtype}`);
    }
  }
});

test('golden: dpo_losses.json extreme rows (no overflow, no NaN)', () => {
  const g = load(BASE);
  for (const c of g.extreme.cases) {
    const { type, params } = caseSpec(c, 'float64');
    const r = computePreferenceLoss(type, inputsOf(g.extreme.inputs, f64), params);
    checkBlock(r, c.float64, REL64, 0, `extreme ${c.name}/float64`);
  }
});

test('golden: dpo_losses_more.json pairwise losses float64 and float32', () => {
  const g = load(MORE);
  let checked = 0;
  for (const c of g.cases) {
    if (SPECIAL.has(c.loss_type)) continue;
    for (const dtype of ['float64', 'float32'] as const) {
      const { type, params } = caseSpec(c, dtype);
      const inputs = dtype === 'float64' ? inputsOf(g.inputs, f64) : inputsOf(g.inputs_float32, f32);
      const r = runCase(type, params, inputs, c[dtype], dtype, `${c.name}/${dtype}`);
      if (c.loss_type === 'bco_pair' && c.delta !== 0) {
        // δ = TRL's float32 running mean after its first update: bit for bit from float64 rewards.
        // In the float32 run torch averaged float32 rewards (β·(π − π_ref) ~ ±1 that cancel to
        // −0.008), so there δ is only known to the float32 summation bound, 8·u·mean|reward|.
        assert.equal(r.bcoState?.count, 1);
        assert.equal(r.metrics.bco_delta, r.bcoState?.mean);
        assert.equal(r.bcoState?.mean, Math.fround(r.bcoState!.mean), 'δ is a float32 value');
        if (dtype === 'float64') {
          assert.equal(r.bcoState?.mean, c.delta, `${c.name}/${dtype} running-mean δ`);
        } else {
          let m = 0;
          for (let i = 0; i < 16; i++) m += Math.abs(r.chosenRewards[i]) + Math.abs(r.rejectedRewards[i]);
          assertClose(r.bcoState!.mean, c.delta_float32_run, 0, 8 * U32 * (m / 32), `${c.name}/${dtype} running-mean δ`);
        }
      }
      checked++;
    }
  }
  assert.equal(checked, 2 * 11, 'every pairwise case of dpo_losses_more.json was checked');
});

test('golden: exo_pair with configured label_smoothing 0 equals 1e-3 exactly (TRL v0.27 rule)', () => {
  const g = load(MORE);
  const inputs = inputsOf(g.inputs, f64);
  const a = computePreferenceLoss('exo_pair', inputs, { beta: 0.1, labelSmoothing: 0 });
  const b = computePreferenceLoss('exo_pair', inputs, { beta: 0.1, labelSmoothing: 0.001 });
  assert.deepEqual(Array.from(a.losses), Array.from(b.losses));
  assert.deepEqual(Array.from(a.gradPolicyChosen), Array.from(b.gradPolicyChosen));
});

/**
 * exo_pair's float64 golden gradients where σ(|x|) rounds to exactly 1 (|x| ≳ 37): torch's sigmoid
 * backward y·(1 − y) is then 0 for the saturated branch, so autograd drops one of the two equal-size
 * σ'(x) terms of dloss/dx = σ'(x)·[(ls(x) − log(1 − ε)) − (ls(−x) − log ε)]; the exact value (ours)
 * differs from torch's by that term (1e-5 relative at x = 100, 7% at x = −100, 1.2% at x = −598;
 * all below 1e-43 in absolute terms). We add the dropped term back to the golden value and compare at 1e-9.
 */
function exoExactGrad(golden: number[], inputs: Json, beta: number, eps: number): number[] {
  const n = golden.length;
  return golden.map((gv, i) => {
    const h = inputs.policy_chosen_logps[i] - inputs.policy_rejected_logps[i] - (inputs.ref_chosen_logps[i] - inputs.ref_rejected_logps[i]);
    const x = beta * h;
    if (1 / (1 + Math.exp(-Math.abs(x))) !== 1) return gv;
    const e = Math.exp(-Math.abs(x));
    const sp = e / ((1 + e) * (1 + e)); // σ'(x)
    const dropped = x > 0 ? sp * (-Math.log1p(Math.exp(-x)) - Math.log(1 - eps)) : -sp * (-Math.log1p(Math.exp(x)) - Math.log(eps));
    const corrected = gv + (beta / n) * dropped;
    assert.ok(Math.abs(corrected - gv) <= 0.1 * Math.abs(gv), `exo correction at row ${i} is only the dropped term`);
    return corrected;
  });
}

test('golden: dpo_losses_more.json extreme rows (robust, exo_pair, nca_pair) float64 and float32', () => {
  const g = load(MORE);
  for (const c of g.extreme.cases) {
    for (const dtype of ['float64', 'float32'] as const) {
      const { type, params } = caseSpec(c, dtype);
      const round = dtype === 'float64' ? f64 : f32;
      let expected = c[dtype];
      if (c.loss_type === 'exo_pair' && dtype === 'float64') {
        const gc = exoExactGrad(expected.grad_policy_chosen_logps, g.extreme.inputs, c.beta, c.label_smoothing);
        expected = { ...expected, grad_policy_chosen_logps: gc, grad_policy_rejected_logps: gc.map((x) => -x) };
      }
      runCase(type, params, inputsOf(g.extreme.inputs, round), expected, dtype, `extreme ${c.name}/${dtype}`);
    }
  }
});

// ---------------------------------------------------------------------------------------------
// golden vectors: SimPO, ORPO, RPO

test('golden: simpo (TRL γ/β convention) float64 and float32, on averages and on sums', () => {
  const g = load(MORE);
  const cases = g.cases.filter((c: Json) => c.loss_type === 'simpo');
  assert.equal(cases.length, 2);
  const counts: number[] = g.inputs_seed1.rpo_chosen_token_counts;
  for (const c of cases) {
    assert.equal(c.gamma_beta_ratio, c.simpo_gamma / c.beta);
    for (const dtype of ['float64', 'float32'] as const) {
      const inp = dtype === 'float64' ? c.inputs : c.inputs_float32;
      const round = dtype === 'float64' ? f64 : f32;
      const rel = dtype === 'float64' ? REL64 : REL32;
      const abs = dtype === 'float64' ? 0 : F32_MIN_NORMAL;
      const params: LossParams = { beta: c.beta, simpoGamma: c.simpo_gamma, labelSmoothing: c.label_smoothing };
      const ones = new Array(16).fill(1);
      // T = 1: the summed log-probs ARE the averages.
      const c0 = round(inp.avg_chosen_logps);
      const r0 = round(inp.avg_rejected_logps);
      const r = computePreferenceLoss('simpo', { policyChosen: c0, policyRejected: r0, chosenTokens: ones, rejectedTokens: ones }, params);
      checkBlock(r, c[dtype], rel, abs, `${c.name}/${dtype}`);
      // T > 1: sums = average · T; the gradient w.r.t. a sum is the golden one divided by T.
      const tr = counts.map((t) => t + 3);
      const sums = {
        policyChosen: c0.map((v, i) => v * counts[i]),
        policyRejected: r0.map((v, i) => v * tr[i]),
        chosenTokens: counts,
        rejectedTokens: tr,
      };
      const rs = computePreferenceLoss('simpo', sums, params);
      assertClose(rs.losses, c[dtype].losses, rel, abs, `${c.name}/${dtype} sums losses`);
      assertClose(rs.chosenRewards, c[dtype].chosen_rewards, rel, abs, `${c.name}/${dtype} sums chosen_rewards`);
      assertClose(rs.gradPolicyChosen, c[dtype].grad_policy_chosen_logps.map((x: number, i: number) => x / counts[i]), rel, abs, `${c.name}/${dtype} sums grad chosen`);
      assertClose(rs.gradPolicyRejected, c[dtype].grad_policy_rejected_logps.map((x: number, i: number) => x / tr[i]), rel, abs, `${c.name}/${dtype} sums grad rejected`);
    }
  }
});

test('golden: orpo (odds ratio + NLL) float64 and float32', () => {
  const g = load(MORE);
  const c = g.cases.find((x: Json) => x.loss_type === 'orpo');
  for (const dtype of ['float64', 'float32'] as const) {
    const inp = dtype === 'float64' ? c.inputs : c.inputs_float32;
    const round = dtype === 'float64' ? f64 : f32;
    const rel = dtype === 'float64' ? REL64 : REL32;
    const abs = dtype === 'float64' ? 0 : F32_MIN_NORMAL;
    const gb = c[dtype];
    const ones = new Array(16).fill(1);
    const policyChosen = round(inp.avg_chosen_logps);
    const policyRejected = round(inp.avg_rejected_logps);
    // The golden NLL is an independent leaf: pass it as chosenNllSum (T = 1 each → its mean).
    const nllSum = new Float64Array(16).fill(inp.orpo_nll_loss);
    const r = computePreferenceLoss('orpo', { policyChosen, policyRejected, chosenTokens: ones, rejectedTokens: ones, chosenNllSum: nllSum }, { beta: c.beta });
    assertClose(r.losses.map((x) => x - r.nll!), gb.losses, rel, abs + 1e-15, `orpo/${dtype} OR losses`);
    assertClose(r.loss, gb.loss_total, rel, abs, `orpo/${dtype} loss_total`);
    assertClose(r.nll!, gb.nll_loss, rel, abs, `orpo/${dtype} nll_loss`);
    assertClose(r.loss - r.nll!, gb.or_loss_term, rel, 1e-15, `orpo/${dtype} or_loss_term`);
    assertClose(r.metrics.log_odds_ratio, gb.log_odds_ratio, rel, abs, `orpo/${dtype} log_odds_ratio`);
    assertClose(r.metrics.log_odds_chosen, gb.log_odds_chosen, rel, abs, `orpo/${dtype} log_odds_chosen`);
    assertClose(r.chosenRewards, gb.chosen_rewards, rel, abs, `orpo/${dtype} chosen_rewards`);
    assertClose(r.rejectedRewards, gb.rejected_rewards, rel, abs, `orpo/${dtype} rejected_rewards`);
    assertClose(r.metrics['rewards/accuracies'], gb.reward_accuracy, rel, abs, `orpo/${dtype} reward_accuracy`);
    assertClose(r.metrics['rewards/margins'], gb.reward_margin_mean, rel, abs, `orpo/${dtype} reward_margin_mean`);
    assertClose(r.gradPolicyChosen, gb.grad_policy_chosen_logps, rel, abs, `orpo/${dtype} grad chosen`);
    assertClose(r.gradPolicyRejected, gb.grad_policy_rejected_logps, rel, abs, `orpo/${dtype} grad rejected`);
    const gNll = r.gradChosenNllSum!.reduce((s, x) => s + x, 0);
    assertClose(gNll, gb.grad_nll_loss, rel, abs, `orpo/${dtype} grad_nll_loss`);
    // Default: the NLL comes from the same chosen log-probs (TRL's cross-entropy over the chosen
    // tokens), so its gradient −1/ΣT lands in gradPolicyChosen.
    const d = computePreferenceLoss('orpo', { policyChosen, policyRejected, chosenTokens: ones, rejectedTokens: ones }, { beta: c.beta });
    const meanC = policyChosen.reduce((s, x) => s + x, 0) / 16;
    assertClose(d.nll!, -meanC, 1e-12, 0, `orpo/${dtype} default nll`);
    assertClose(d.gradPolicyChosen, gb.grad_policy_chosen_logps.map((x: number) => x - 1 / 16), rel, abs, `orpo/${dtype} default grad chosen`);
    assert.equal(d.gradChosenNllSum, undefined);
  }
});

test('golden: sigmoid + rpo_alpha NLL (per-pair mean and TRL token-weighted) float64 and float32', () => {
  const g = load(MORE);
  const c = g.cases.find((x: Json) => x.loss_type === 'sigmoid+rpo');
  const counts: number[] = c.inputs.rpo_chosen_token_counts;
  for (const dtype of ['float64', 'float32'] as const) {
    const rel = dtype === 'float64' ? REL64 : REL32;
    const abs = dtype === 'float64' ? 0 : F32_MIN_NORMAL;
    const gb = c[dtype];
    const base = dtype === 'float64' ? inputsOf(g.inputs, f64) : inputsOf(g.inputs_float32, f32);
    const nll = (dtype === 'float64' ? f64 : f32)(dtype === 'float64' ? c.inputs.rpo_chosen_nll : c.inputs_float32.rpo_chosen_nll);
    const params: LossParams = { beta: c.beta, labelSmoothing: c.label_smoothing, rpoAlpha: c.rpo_alpha };
    // Golden layout: nll_i is a per-pair mean NLL and nll_loss = mean_i nll_i → T = 1, sum = nll_i.
    const ones = new Array(16).fill(1);
    const r = runCase('sigmoid', params, { ...base, chosenTokens: ones, chosenNllSum: nll }, gb, dtype, `sigmoid+rpo/${dtype}`);
    assertClose(r.nll!, gb.nll_mean, rel, abs, `sigmoid+rpo/${dtype} nll_mean`);
    assertClose(r.loss, gb.loss_total_dpo_mean_plus_alpha_nll_mean, rel, abs, `sigmoid+rpo/${dtype} total`);
    assertClose(r.gradChosenNllSum!, gb.grad_rpo_chosen_nll, rel, abs, `sigmoid+rpo/${dtype} grad nll`);
    // TRL's real NLL: one cross-entropy over all chosen tokens = Σ nll_i·T_i / Σ T_i.
    const sums = nll.map((v, i) => v * counts[i]);
    const t = computePreferenceLoss('sigmoid', { ...base, chosenTokens: counts, chosenNllSum: sums }, params);
    assertClose(t.nll!, gb.nll_token_weighted, rel, abs, `sigmoid+rpo/${dtype} nll_token_weighted`);
    assertClose(t.loss, gb.loss_total_token_weighted_nll, rel, abs, `sigmoid+rpo/${dtype} loss_total_token_weighted_nll`);
    assertClose(t.gradPolicyChosen, gb.grad_policy_chosen_logps, rel, abs, `sigmoid+rpo/${dtype} token-weighted grad chosen`);
    const total = counts.reduce((s, x) => s + x, 0);
    assertClose(t.gradChosenNllSum!, new Array(16).fill(c.rpo_alpha / total), 1e-12, 0, `sigmoid+rpo/${dtype} token-weighted grad nll`);
    // The same through TRL v1.x's spelling: loss_type ['sigmoid', 'sft'], loss_weights [1, α].
    const v1 = computePreferenceLoss(['sigmoid', 'sft'], { ...base, chosenTokens: counts, chosenNllSum: sums }, { beta: c.beta, lossWeights: [1, c.rpo_alpha] });
    assertClose(v1.loss, t.loss, 1e-14, 0, 'sigmoid+sft loss');
    assertClose(v1.losses, t.losses, 1e-14, 0, 'sigmoid+sft losses');
    assertClose(v1.gradChosenNllSum!, t.gradChosenNllSum!, 1e-14, 0, 'sigmoid+sft grad nll');
  }
});

// ---------------------------------------------------------------------------------------------
// finite-difference gradient checks on random inputs

function randomBatch(seed: number, n: number): PreferenceLogps & { chosenTokens: number[]; rejectedTokens: number[] } {
  const rnd = mulberry32(seed);
  const chosenTokens = Array.from({ length: n }, () => 4 + Math.floor(rnd() * 60));
  const rejectedTokens = Array.from({ length: n }, () => 4 + Math.floor(rnd() * 60));
  // Summed log-probs: about −0.2 … −2.2 nats per token; the policy a few nats from the reference.
  const pc = chosenTokens.map((t) => -t * (0.2 + 2 * rnd()));
  const pr = rejectedTokens.map((t) => -t * (0.2 + 2 * rnd()));
  return {
    policyChosen: f64(pc),
    policyRejected: f64(pr),
    refChosen: f64(pc.map((v) => v + 8 * (rnd() - 0.5))),
    refRejected: f64(pr.map((v) => v + 8 * (rnd() - 0.5))),
    chosenTokens,
    rejectedTokens,
  };
}

/** Central differences of r.loss w.r.t. every entry of `field`, compared with the analytic grad. */
function fdCheck(
  lossType: string | string[],
  logps: PreferenceLogps,
  params: LossParams,
  field: 'policyChosen' | 'policyRejected' | 'chosenNllSum',
  grad: (r: LossResult) => Float64Array,
  what: string,
): void {
  const base = computePreferenceLoss(lossType, logps, params);
  const g = grad(base);
  const arr = logps[field]!;
  for (let i = 0; i < arr.length; i++) {
    const h = 1e-5 * Math.max(1, Math.abs(arr[i]));
    const plus = new Float64Array(arr);
    const minus = new Float64Array(arr);
    plus[i] += h;
    minus[i] -= h;
    const lp = computePreferenceLoss(lossType, { ...logps, [field]: plus }, params).loss;
    const lm = computePreferenceLoss(lossType, { ...logps, [field]: minus }, params).loss;
    const fd = (lp - lm) / (2 * h);
    const tol = 1e-6 * Math.max(Math.abs(fd), Math.abs(g[i])) + 1e-9 * Math.max(1, Math.abs(base.loss));
    assert.ok(Math.abs(fd - g[i]) <= tol, `${what}: d loss / d ${field}[${i}] analytic ${g[i]} vs finite difference ${fd}`);
  }
}

const fdParams: Record<string, LossParams> = {
  sigmoid: { beta: 0.1, labelSmoothing: 0.1 },
  robust: { beta: 0.2, labelSmoothing: 0.2 },
  ipo: { beta: 0.1 },
  hinge: { beta: 0.05 },
  bco_pair: { beta: 0.1 },
  exo_pair: { beta: 0.1, labelSmoothing: 0.01 },
  nca_pair: { beta: 0.1 },
  sppo_hard: { beta: 0.5 },
  aot: { beta: 0.1, labelSmoothing: 0.05 },
  aot_pair: { beta: 0.1, labelSmoothing: 0.05 },
  apo_zero: { beta: 0.2 },
  apo_down: { beta: 0.2 },
  discopop: { beta: 0.1, discopopTau: 0.05 },
  sigmoid_norm: { beta: 0.1 },
  simpo: { beta: 2, simpoGamma: 0.8, labelSmoothing: 0.1 },
  orpo: { beta: 0.1 },
  sft: { beta: 0.1 },
};

test('finite differences: every loss type, random inputs', () => {
  assert.deepEqual([...lossTypes].sort(), Object.keys(fdParams).sort(), 'fdParams covers every loss type');
  for (const [k, t] of lossTypes.entries()) {
    const logps = randomBatch(100 + k, 6);
    fdCheck(t, logps, fdParams[t], 'policyChosen', (r) => r.gradPolicyChosen, t);
    fdCheck(t, logps, fdParams[t], 'policyRejected', (r) => r.gradPolicyRejected, t);
  }
  // IPO on summed log-probs too.
  const logps = randomBatch(7, 6);
  fdCheck('ipo', logps, { beta: 0.1, ipoLengthNormalize: false }, 'policyChosen', (r) => r.gradPolicyChosen, 'ipo (sums)');
  fdCheck('ipo', logps, { beta: 0.1, ipoLengthNormalize: false }, 'policyRejected', (r) => r.gradPolicyRejected, 'ipo (sums)');
});

test('finite differences: rpo_alpha on every loss type, and the chosenNllSum input', () => {
  for (const [k, t] of lossTypes.entries()) {
    const logps = randomBatch(200 + k, 5);
    const params = { ...fdParams[t], rpoAlpha: 0.7 };
    fdCheck(t, logps, params, 'policyChosen', (r) => r.gradPolicyChosen, `${t}+rpo`);
    fdCheck(t, logps, params, 'policyRejected', (r) => r.gradPolicyRejected, `${t}+rpo`);
  }
  const logps = { ...randomBatch(300, 5), chosenNllSum: f64([40, 12.5, 80, 3, 22]) };
  for (const t of ['sigmoid', 'orpo', 'sft']) {
    const params = { ...fdParams[t], rpoAlpha: 0.3 };
    fdCheck(t, logps, params, 'chosenNllSum', (r) => r.gradChosenNllSum!, `${t}+rpo chosenNllSum`);
    fdCheck(t, logps, params, 'policyChosen', (r) => r.gradPolicyChosen, `${t}+rpo with chosenNllSum`);
  }
});

test('finite differences: weighted combination of several losses', () => {
  const logps = randomBatch(400, 7);
  const types = ['sigmoid', 'ipo', 'simpo', 'aot_pair', 'sft', 'orpo'];
  const params: LossParams = { beta: 0.15, lossWeights: [1, 0.25, 0.5, 2, 0.3, 0.7], rpoAlpha: 0.1 };
  fdCheck(types, logps, params, 'policyChosen', (r) => r.gradPolicyChosen, 'combination');
  fdCheck(types, logps, params, 'policyRejected', (r) => r.gradPolicyRejected, 'combination');
});

test('bco_pair: gradient with a running-mean δ treats δ as a constant (TRL detaches it)', () => {
  const logps = randomBatch(500, 6);
  const state = updateBcoRunningMean(newBcoRunningMean(), 0.37);
  const r = computePreferenceLoss('bco_pair', logps, { beta: 0.1, bcoState: state });
  const delta = r.bcoState!.mean;
  assert.equal(r.metrics.bco_delta, delta);
  // Finite differences of the pairwise loss at that fixed δ.
  const p = { pc: logps.policyChosen, pr: logps.policyRejected, rc: logps.refChosen!, rr: logps.refRejected! };
  const n = p.pc.length;
  const sum = (q: typeof p): number => bcoPairLoss(q, 0.1, delta).losses.reduce((s, x) => s + x, 0) / n;
  for (let i = 0; i < n; i++) {
    for (const f of ['pc', 'pr'] as const) {
      const plus = new Float64Array(p[f]);
      const minus = new Float64Array(p[f]);
      plus[i] += 1e-4;
      minus[i] -= 1e-4;
      const fd = (sum({ ...p, [f]: plus }) - sum({ ...p, [f]: minus })) / 2e-4;
      const g = f === 'pc' ? r.gradPolicyChosen[i] : r.gradPolicyRejected[i];
      assert.ok(Math.abs(fd - g) <= 1e-7 * Math.abs(g) + 1e-11, `bco_pair d/d${f}[${i}]: ${g} vs ${fd}`);
    }
  }
});

test('bco_pair running mean: float32 running average of batch means, state passed in and out', () => {
  let s = newBcoRunningMean();
  assert.deepEqual(s, { mean: 0, count: 1e-24 });
  s = updateBcoRunningMean(s, 0.1);
  assert.equal(s.mean, Math.fround(0.1));
  assert.equal(s.count, 1);
  for (let k = 0; k < 10; k++) s = updateBcoRunningMean(s, 0.1);
  assert.equal(s.mean, Math.fround(0.1), 'a constant stream keeps the mean exactly');
  assert.equal(s.count, 11);
  let t = newBcoRunningMean();
  const xs = [0.5, -1.25, 2, 0.75, -0.125];
  for (const x of xs) t = updateBcoRunningMean(t, x);
  assertClose(t.mean, xs.reduce((a, b) => a + b, 0) / xs.length, 1e-6, 0, 'running mean');
  assert.equal(t.mean, Math.fround(t.mean), 'kept as a float32 value');
  // The input state is not modified; the loss returns the next state.
  const logps = randomBatch(600, 4);
  const r1 = computePreferenceLoss('bco_pair', logps, { bcoState: t });
  assert.equal(t.count, 5);
  assert.equal(r1.bcoState!.count, 6);
  const r2 = computePreferenceLoss('bco_pair', logps, { bcoState: r1.bcoState });
  assert.equal(r2.bcoState!.count, 7);
  assert.throws(() => updateBcoRunningMean(t, NaN), /bco_pair: batch mean reward is NaN/);
});

// ---------------------------------------------------------------------------------------------
// combination, stability, rewards, SFT

test('combination equals the weighted sum of the individual losses', () => {
  const logps = randomBatch(700, 8);
  const types = ['sigmoid', 'hinge', 'simpo', 'nca_pair', 'aot'];
  const weights = [0.6, 1.3, 0.25, 2, 0.8];
  const base: LossParams = { beta: 0.2, simpoGamma: 0.3, labelSmoothing: 0.05 };
  const combo = computePreferenceLoss(types, logps, { ...base, lossWeights: weights, rpoAlpha: 0.4 });
  const parts = types.map((t) => computePreferenceLoss(t, logps, base));
  const nll = sftLoss(logps.policyChosen, logps.chosenTokens!);
  const n = 8;
  let loss = 0.4 * nll.loss;
  const losses = new Float64Array(n).fill(0.4 * nll.loss);
  const gc = Float64Array.from(nll.gradSumLogps, (x) => 0.4 * x);
  const gr = new Float64Array(n);
  parts.forEach((p, k) => {
    loss += weights[k] * p.loss;
    for (let i = 0; i < n; i++) {
      losses[i] += weights[k] * p.losses[i];
      gc[i] += weights[k] * p.gradPolicyChosen[i];
      gr[i] += weights[k] * p.gradPolicyRejected[i];
    }
  });
  assertClose(combo.loss, loss, 1e-14, 0, 'combined loss');
  assertClose(combo.losses, losses, 1e-13, 1e-15, 'combined per-pair losses');
  assertClose(combo.gradPolicyChosen, gc, 1e-13, 1e-17, 'combined grad chosen');
  assertClose(combo.gradPolicyRejected, gr, 1e-13, 1e-17, 'combined grad rejected');
  assertClose(combo.nll!, nll.loss, 1e-15, 0, 'combined nll');
  // mean(losses) is the loss; rewards come from the first loss type (sigmoid: β(π − π_ref)).
  assertClose(combo.losses.reduce((s, x) => s + x, 0) / n, combo.loss, 1e-13, 0, 'mean of per-pair losses');
  assert.deepEqual(Array.from(combo.chosenRewards), Array.from(parts[0].chosenRewards));
  // A single-element list is the same as the name; 'aot_unpaired' is TRL ≥ 0.28's name for aot_pair.
  assert.deepEqual(computePreferenceLoss(['ipo'], logps, base).loss, computePreferenceLoss('ipo', logps, base).loss);
  assert.equal(computePreferenceLoss('aot_unpaired', logps, base).loss, computePreferenceLoss('aot_pair', logps, base).loss);
  assert.equal(resolveLossType('aot_unpaired'), 'aot_pair');
});

test('every loss type stays finite on extreme inputs (|β·h| up to ~600, tiny h)', () => {
  const logps: PreferenceLogps = {
    policyChosen: f64([-1e-3, -1000, -5, -3000, -1e-8, -1e-3]),
    policyRejected: f64([-1000, -1e-3, -5, -10, -1e-3, -1e-8]),
    refChosen: f64([-10, -10, -5, -10, -1e-3, -1e-3]),
    refRejected: f64([-10, -10, -5, -3000, -1e-3, -1e-3]),
    chosenTokens: [1, 1, 1, 1, 1, 1],
    rejectedTokens: [1, 1, 1, 1, 1, 1],
  };
  for (const t of lossTypes) {
    const r = computePreferenceLoss(t, logps, { ...fdParams[t], rpoAlpha: 0.5 });
    for (const [name, v] of [['losses', r.losses], ['gradPolicyChosen', r.gradPolicyChosen], ['gradPolicyRejected', r.gradPolicyRejected]] as const) {
      for (let i = 0; i < v.length; i++) assert.ok(Number.isFinite(v[i]), `${t}: ${name}[${i}] = ${v[i]}`);
    }
    assert.ok(Number.isFinite(r.loss), `${t}: loss ${r.loss}`);
  }
});

test('ipo: TRL length normalization by default (per-token log-ratio averages)', () => {
  const logps = randomBatch(800, 5);
  const r = computePreferenceLoss('ipo', logps, { beta: 0.1 });
  for (let i = 0; i < 5; i++) {
    const d = (logps.policyChosen[i] - logps.refChosen![i]) / logps.chosenTokens[i] - (logps.policyRejected[i] - logps.refRejected![i]) / logps.rejectedTokens[i];
    assertClose(r.losses[i], (d - 5) ** 2, 1e-12, 0, 'ipo normalized loss');
  }
  // With all counts 1 it is the summed form.
  const ones = [1, 1, 1, 1, 1];
  const a = computePreferenceLoss('ipo', { ...logps, chosenTokens: ones, rejectedTokens: ones }, { beta: 0.1 });
  const b = computePreferenceLoss('ipo', logps, { beta: 0.1, ipoLengthNormalize: false });
  assertClose(a.losses, b.losses, 1e-12, 0, 'ipo T=1 vs sums');
});

test('sft: token-level mean NLL and its gradient', () => {
  const s = sftLoss(f64([-10, -3, 0]), [5, 1, 0]);
  assert.equal(s.loss, 13 / 6);
  assert.equal(s.totalTokens, 6);
  assert.deepEqual(Array.from(s.perSequence), [2, 3, 0]);
  assert.deepEqual(Array.from(s.gradSumLogps), [-1 / 6, -1 / 6, -1 / 6]);
  // Finite differences (the loss is linear, so they agree to rounding).
  const x = f64([-7.5, -2.25, -40]);
  const t = [3, 2, 17];
  const g = sftLoss(x, t).gradSumLogps;
  for (let i = 0; i < 3; i++) {
    const p = new Float64Array(x);
    const m = new Float64Array(x);
    p[i] += 1e-3;
    m[i] -= 1e-3;
    assertClose((sftLoss(p, t).loss - sftLoss(m, t).loss) / 2e-3, g[i], 1e-9, 0, `sft fd ${i}`);
  }
  assert.throws(() => sftLoss(f64([-1, -2]), [0, 0]), /sft: sequence 0 has 0 tokens but sumLogps\[0\] = -1/);
  assert.throws(() => sftLoss(f64([0, 0]), [0, 0]), /sft: the batch has no response tokens/);
  assert.throws(() => sftLoss(f64([-1, -2]), [1]), /sft: tokens has length 1, expected 2/);
  assert.throws(() => sftLoss(f64([-1, -2]), [1, 2.5]), /sft: tokens\[1\] is 2.5; token counts must be integers/);
  assert.throws(() => sftLoss(f64([-1, NaN]), [1, 2]), /sft: sumLogps\[1\] is NaN/);
});

test('rewards: implicit reward, reference-free reward, pairwise accuracy, pair scoring', () => {
  const g = load(BASE);
  const c = g.cases[0];
  const inputs = inputsOf(g.inputs, f64);
  assertClose(implicitRewards(inputs.policyChosen, inputs.refChosen!, c.beta), c.float64.chosen_rewards, REL64, 0, 'implicitRewards');
  const s = scorePreferencePairs(inputs, { beta: c.beta });
  assertClose(s.rejectedRewards, c.float64.rejected_rewards, REL64, 0, 'score rejected');
  assertClose(s.accuracy.accuracy, c.float64.reward_accuracy, REL64, 0, 'score accuracy');
  assertClose(s.meanMargin, c.float64.reward_margin_mean, REL64, 0, 'score margin');
  assertClose(s.meanChosenReward, c.float64.chosen_rewards_mean, REL64, 0, 'score chosen mean');
  const acc = pairwiseAccuracy([1, 2, 3, 4], [0, 2, 5, 1]);
  assert.deepEqual(acc, { accuracy: 0.5, correct: 2, ties: 1, n: 4 });
  assert.deepEqual(Array.from(lengthNormalizedRewards(f64([-10, -3]), [5, 3], 2)), [-4, -2]);
  const rf = scorePreferencePairs({ policyChosen: f64([-10, -3]), policyRejected: f64([-4, -9]), chosenTokens: [5, 3], rejectedTokens: [1, 3] }, { beta: 2 });
  assert.deepEqual(Array.from(rf.margins), [4, 4]);
  assert.equal(rf.accuracy.accuracy, 1);
  assert.throws(() => scorePreferencePairs({ policyChosen: f64([-1]), policyRejected: f64([-2]) }), /reference-free scoring needs chosenTokens/);
  assert.throws(() => pairwiseAccuracy([1, 2], [1]), /pairwiseAccuracy: chosen has length 2, rejected 1/);
});

// ---------------------------------------------------------------------------------------------
// error messages

test('errors: unknown names suggest the closest valid one; missing or malformed inputs name the field', () => {
  const logps = randomBatch(900, 4);
  const noRef = { policyChosen: logps.policyChosen, policyRejected: logps.policyRejected };
  assert.throws(() => computePreferenceLoss('sigmod', logps), /unknown loss type 'sigmod'; did you mean 'sigmoid'\?/);
  assert.throws(() => computePreferenceLoss('simpo_loss', logps), /did you mean 'simpo'\?/);
  assert.throws(() => computePreferenceLoss('aot_unpair', logps), /did you mean 'aot_pair'\?/);
  assert.throws(() => computePreferenceLoss(['sigmoid', 'nca'], logps), /unknown loss type 'nca'; did you mean 'nca_pair'\?/);
  assert.throws(() => computePreferenceLoss([], logps), /non-empty list/);
  assert.throws(() => computePreferenceLoss('sigmoid', noRef), /sigmoid: refChosen is required \(reference-model log-probs; only simpo, orpo and sft are reference-free\)/);
  assert.throws(() => computePreferenceLoss(['simpo', 'hinge'], noRef), /simpo\+hinge \(hinge\): refChosen is required/);
  assert.throws(() => computePreferenceLoss('simpo', noRef), /simpo: chosenTokens is required \(simpo works on per-token average log-probs/);
  assert.throws(() => computePreferenceLoss('orpo', { ...noRef, chosenTokens: [1, 1, 1, 1] }), /orpo: rejectedTokens is required/);
  assert.throws(() => computePreferenceLoss('ipo', { ...logps, chosenTokens: undefined }), /ipo: chosenTokens is required \(TRL's IPO averages .* ipoLengthNormalize: false/);
  assert.throws(() => computePreferenceLoss('sigmoid', { ...logps, chosenTokens: undefined }, { rpoAlpha: 1 }), /rpoAlpha: chosenTokens is required \(the NLL term is a token-level mean/);
  assert.throws(() => computePreferenceLoss('sft', { ...noRef, chosenTokens: undefined }), /sft: chosenTokens is required/);
  assert.throws(() => computePreferenceLoss('sigmoid', { ...logps, policyRejected: f64([-1, -2, -3]) }), /sigmoid: policyRejected has length 3, expected 4 \(one entry per pair\)/);
  assert.throws(() => computePreferenceLoss('sigmoid', { ...logps, refRejected: [-1, -2, -3, -4] as unknown as Float64Array }), /sigmoid: refRejected must be a Float64Array \(got Array\(4\)\)/);
  assert.throws(() => computePreferenceLoss('sigmoid', { ...logps, policyChosen: f64([-1, NaN, -3, -4]) }), /sigmoid: policyChosen\[1\] is NaN; log-probs must be finite/);
  assert.throws(() => computePreferenceLoss('sigmoid', { ...logps, policyChosen: new Float64Array(0) }), /sigmoid: policyChosen must be a non-empty Float64Array/);
  assert.throws(() => computePreferenceLoss('simpo', { ...logps, chosenTokens: [3, 0, 2, 2] }), /simpo: chosenTokens\[1\] is 0; token counts must be integers ≥ 1/);
  assert.throws(() => computePreferenceLoss(['sigmoid', 'ipo'], logps, { lossWeights: [1] }), /sigmoid\+ipo: lossWeights has 1 entries for 2 loss types/);
  assert.throws(() => computePreferenceLoss('sigmoid', logps, { beta: 0 }), /sigmoid: beta = 0 is invalid; it must be a positive number/);
  assert.throws(() => computePreferenceLoss('robust', logps, { labelSmoothing: 0.5 }), /robust: labelSmoothing = 0.5 is invalid; it must be in \[0, 0.5\)/);
  assert.throws(() => computePreferenceLoss('exo_pair', logps, { labelSmoothing: 1 }), /exo_pair: labelSmoothing = 1 is invalid/);
  assert.throws(() => computePreferenceLoss('discopop', logps, { discopopTau: -1 }), /discopop: discopopTau = -1 is invalid/);
  assert.throws(
    () => computePreferenceLoss('orpo', { policyChosen: f64([0, -2]), policyRejected: f64([-1, -2]), chosenTokens: [1, 1], rejectedTokens: [1, 1] }),
    /orpo: policyChosen\[0\] = 0 gives an average log-prob ≥ 0/,
  );
});
