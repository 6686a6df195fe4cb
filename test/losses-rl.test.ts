// The RLHF loss pieces (src/losses/rl.ts) against golden vectors derived with PyTorch autograd from
// TRL's formulas (test/fixtures/golden/rl_losses.json, generator rl_losses.py next to it), and
// finite-difference checks of every gradient.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import {
  gae, grpoAdvantages, grpoLoss, klEstimate, maskedWhiten, ppoMasks, ppoPolicyLoss, ppoRewards, ppoValueLoss,
  rewardModelLoss, rlooAdvantages, rlooLoss, whitenAdvantages, whitenRewards, type GrpoLossType,
} from '../src/losses/rl.js';
import { numericGradient } from './helpers/numeric.js';
import { join } from 'node:path';
import { GOLDEN_DIR } from './helpers/fixtures.js';

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any
const G: Json = JSON.parse(readFileSync(join(GOLDEN_DIR, 'rl_losses.json'), 'utf8'));
const flat = (m: number[][]): Float64Array => Float64Array.from(m.flat());

function close(actual: ArrayLike<number> | number, expected: ArrayLike<number> | number, what: string, rel = 1e-9, abs = 1e-12): void {
  const a = typeof actual === 'number' ? [actual] : Array.from(actual);
  const e = typeof expected === 'number' ? [expected] : Array.from(expected);
  assert.equal(a.length, e.length, `${what}: length`);
  for (let i = 0; i < a.length; i++) {
    const tol = abs + rel * Math.abs(e[i]!);
    assert.ok(Math.abs(a[i]! - e[i]!) <= tol, `${what}[${i}]: got ${a[i]}, expected ${e[i]} (tol ${tol})`);
  }
}

test('reward model loss: BT with margin and centring matches the golden values, gradients match finite differences', () => {
  const rm = G.reward_model;
  assert.equal(rm.cases.length, 4);
  for (const c of rm.cases) {
    const what = `rm margin=${c.margin !== null} center=${c.center_rewards_coefficient}`;
    const rc = Float64Array.from(rm.rewards_chosen), rr = Float64Array.from(rm.rewards_rejected);
    const opts = { margin: c.margin, centerRewardsCoefficient: c.center_rewards_coefficient };
    const r = rewardModelLoss(rc, rr, opts);
    close(r.loss, c.loss, `${what} loss`);
    close(r.gradChosen, c.grad_chosen, `${what} grad_chosen`);
    close(r.gradRejected, c.grad_rejected, `${what} grad_rejected`);
    close(r.accuracy, c.accuracy, `${what} accuracy`);
    close(r.meanMargin, c.mean_margin, `${what} mean_margin`);
    close(numericGradient(() => rewardModelLoss(rc, rr, opts).loss, rc), r.gradChosen, `${what} fd chosen`, 1e-6, 1e-9);
    close(numericGradient(() => rewardModelLoss(rc, rr, opts).loss, rr), r.gradRejected, `${what} fd rejected`, 1e-6, 1e-9);
  }
  assert.throws(() => rewardModelLoss([1, 2], [1]), /2 chosen and 1 rejected/);
});

test('KL estimators k1 and k3: values and derivatives', () => {
  const lp = Float64Array.from([-1.2, -0.3, -2.5]), ref = Float64Array.from([-1.0, -0.9, -2.5]);
  for (const est of ['k1', 'k3'] as const) {
    const g = new Float64Array(3);
    const kl = klEstimate(lp, ref, est, g);
    for (let i = 0; i < 3; i++) {
      const r = ref[i]! - lp[i]!;
      close(kl[i]!, est === 'k1' ? -r : Math.exp(r) - 1 - r, `${est} value`, 1e-12, 1e-15);
    }
    const fd = Float64Array.from(lp, (_, i) => numericGradient(() => klEstimate(lp, ref, est)[i]!, lp)[i]!);
    close(g, fd, `${est} derivative`, 1e-6, 1e-9);
  }
  // k3 is non-negative and zero only at equal log-probs.
  assert.ok(klEstimate([-1, -2], [-3, 0], 'k3').every((v) => v > 0));
  assert.equal(klEstimate([-1], [-1], 'k3')[0], 0);
});

test('PPO: rewards (k1/k3, whitening), GAE, whitened advantages, returns, clipped policy and value losses match the golden values', () => {
  const P = G.ppo;
  const B = P.logprobs.length, T = P.logprobs[0].length;
  const { valid, validP1 } = ppoMasks(P.sequence_lengths, T);
  const logprobs = flat(P.logprobs), ref = flat(P.ref_logprobs), values = flat(P.values);
  for (const c of P.cases) {
    const what = `ppo ${c.kl_estimator} whiten=${c.whiten_rewards}`;
    const rw = ppoRewards(logprobs, ref, P.scores, P.sequence_lengths, T, P.kl_coef, c.kl_estimator);
    let nonScoreSum = 0;
    rw.nonScore.forEach((v) => (nonScoreSum += v));
    close(nonScoreSum / B, c.non_score_reward_sum_mean, `${what} non_score_reward`);
    const rewards = c.whiten_rewards ? whitenRewards(rw.rewards, validP1) : rw.rewards;
    close(rewards, c.rewards.flat(), `${what} rewards`);
    const g = gae(rewards, values, B, T, P.gamma, P.lam);
    close(g.returns, c.returns.flat(), `${what} returns`);
    const adv = whitenAdvantages(g.advantages, valid);
    close(adv, c.advantages.flat(), `${what} advantages`);
    const newLp = flat(c.new_logprobs), vpred = flat(c.vpred);
    const pg = ppoPolicyLoss(newLp, logprobs, adv, valid, P.cliprange);
    const vf = ppoValueLoss(vpred, values, g.returns, validP1, P.cliprange_value);
    close(pg.loss, c.pg_loss, `${what} pg_loss`);
    close(vf.loss, c.vf_loss, `${what} vf_loss`);
    close(pg.loss + P.vf_coef * vf.loss, c.loss, `${what} loss`);
    close(pg.grad, c.grad_new_logprobs.flat(), `${what} grad new_logprobs`);
    close(Float64Array.from(vf.grad, (v) => v * P.vf_coef), c.grad_vpred.flat(), `${what} grad vpred`);
    close(pg.clipfrac, c.pg_clipfrac, `${what} pg_clipfrac`);
    close(vf.clipfrac, c.vf_clipfrac, `${what} vf_clipfrac`);
    // finite differences
    close(numericGradient(() => ppoPolicyLoss(newLp, logprobs, adv, valid, P.cliprange).loss, newLp), pg.grad, `${what} fd policy`, 1e-5, 1e-8);
    close(numericGradient(() => ppoValueLoss(vpred, values, g.returns, validP1, P.cliprange_value).loss, vpred), vf.grad, `${what} fd value`, 1e-5, 1e-8);
  }
});

test('masked whitening: zero mean and unit (unbiased) variance over the mask', () => {
  const v = [3, 1, 4, 1, 5, 9, 2, 6], m = [1, 1, 1, 1, 1, 0, 0, 1];
  const w = maskedWhiten(v, m);
  const sel = w.filter((_, i) => m[i]);
  const mean = sel.reduce((a, b) => a + b, 0) / sel.length;
  const varU = sel.reduce((a, b) => a + (b - mean) ** 2, 0) / (sel.length - 1);
  close(mean, 0, 'mean', 0, 1e-12);
  close(varU, 1, 'variance', 1e-6);
  const ws = maskedWhiten(v, m, false);
  close(Float64Array.from(ws, (x, i) => x - w[i]!).filter((_, i) => m[i]), new Float64Array(6).fill(3.3333333333333335), 'shift', 1e-12);
  assert.throws(() => maskedWhiten([1, 2], [1, 0]), /at least 2/);
});

test('GRPO advantages: scale_rewards group / batch / none and normalize_then_sum match the golden values', () => {
  const A = G.grpo_advantages;
  const per = flat(A.rewards_per_func);
  for (const c of A.cases) {
    const r = grpoAdvantages(per, 2, A.reward_weights, A.num_generations, c.scale_rewards, c.multi_objective_aggregation);
    close(r.rewards, c.rewards, `${c.scale_rewards}/${c.multi_objective_aggregation} rewards`);
    close(r.advantages, c.advantages, `${c.scale_rewards}/${c.multi_objective_aggregation} advantages`);
  }
  assert.throws(() => grpoAdvantages(new Float64Array(10), 2, [1, 1], 4, 'group'), /whole groups/);
  assert.throws(() => grpoAdvantages(new Float64Array(8), 2, [1], 4, 'group'), /reward_weights/);
});

test('GRPO loss: every loss_type, β 0 / 0.04, token and sequence level, delta: loss and gradient match the golden values and finite differences', () => {
  const L = G.grpo_loss;
  const B = L.per_token_logps.length, T = L.per_token_logps[0].length;
  const logp = flat(L.per_token_logps), old = flat(L.old_per_token_logps), ref = flat(L.ref_per_token_logps), mask = flat(L.completion_mask);
  const seen = new Set<string>();
  for (const c of L.cases) {
    const what = `${c.loss_type} β=${c.beta} ${c.importance_sampling_level} δ=${c.delta}`;
    const opts = {
      lossType: c.loss_type as GrpoLossType, beta: c.beta, epsilon: c.epsilon, epsilonHigh: c.epsilon_high, delta: c.delta,
      importanceSamplingLevel: c.importance_sampling_level, maxCompletionLength: L.max_completion_length,
      sapoTemperaturePos: L.sapo_temperature_pos, sapoTemperatureNeg: L.sapo_temperature_neg,
    };
    const r = grpoLoss(logp, old, ref, mask, L.advantages, B, T, opts);
    close(r.loss, c.loss, `${what} loss`);
    close(r.grad, c.grad_per_token_logps.flat(), `${what} grad`);
    // cispo's clipped ratio is detached by design (a REINFORCE-style weight), so its gradient is
    // not the derivative of the loss value; check it against the loss with the weight held fixed.
    const fixed = c.loss_type === 'cispo' ? Float64Array.from(logp) : null;
    const fdLoss = (): number => {
      if (!fixed) return grpoLoss(logp, old, ref, mask, L.advantages, B, T, opts).loss;
      const oldShift = Float64Array.from(old, (o, i) => o + (logp[i]! - fixed[i]!)); // same ratio as at `fixed`
      return grpoLoss(logp, oldShift, ref, mask, L.advantages, B, T, opts).loss;
    };
    close(numericGradient(fdLoss, logp), r.grad, `${what} fd`, 1e-5, 1e-8);
    seen.add(c.loss_type);
  }
  assert.deepEqual([...seen].sort(), ['bnpo', 'cispo', 'dapo', 'dr_grpo', 'grpo', 'sapo']);
  assert.throws(() => grpoLoss(logp, old, null, mask, L.advantages, B, T, { lossType: 'grpo', beta: 0.1, epsilon: 0.2 }), /reference/);
  assert.throws(() => grpoLoss(logp, old, ref, mask, L.advantages, B, T, { lossType: 'dapo', beta: 0, epsilon: 0.2, importanceSamplingLevel: 'sequence' }), /not defined/);
});

test('RLOO: leave-one-out baselines, sequence KL penalty, normalization and the clipped sequence-ratio loss match the golden values', () => {
  const R = G.rloo;
  const B = R.per_token_logps.length, T = R.per_token_logps[0].length;
  const logp = flat(R.per_token_logps), old = flat(R.old_per_token_logps), ref = flat(R.ref_per_token_logps), mask = flat(R.completion_mask);
  for (const c of R.cases) {
    const what = `rloo β=${c.beta} normalize=${c.normalize_advantages}`;
    const a = rlooAdvantages(R.rewards, R.num_generations, { beta: c.beta, old, ref, mask, cols: T, normalize: c.normalize_advantages });
    close(a.rewards, c.rewards_after_kl, `${what} rewards`);
    close(a.advantages, c.advantages, `${what} advantages`);
    const l = rlooLoss(logp, old, mask, a.advantages, B, T, R.epsilon);
    close(l.loss, c.loss, `${what} loss`);
    close(l.grad, c.grad_per_token_logps.flat(), `${what} grad`);
    close(numericGradient(() => rlooLoss(logp, old, mask, a.advantages, B, T, R.epsilon).loss, logp), l.grad, `${what} fd`, 1e-5, 1e-8);
  }
  assert.throws(() => rlooAdvantages([1, 2, 3], 2), /whole groups/);
  // Asymmetric clipping (TRL's epsilon_high): per row −min(r·A, clamp(r, 1 − ε, 1 + ε_high)·A), written out
  // from the formula; ε_high = ε is the golden case above.
  const a = rlooAdvantages(R.rewards, R.num_generations, { beta: 0, old, ref, mask, cols: T }).advantages;
  for (const [eLow, eHigh] of [[0.05, 0.3], [0.2, 0.01], [0.01, 0.01]] as const) {
    let want = 0;
    for (let b = 0; b < B; b++) {
      let lr = 0;
      for (let t = 0; t < T; t++) lr += (logp[b * T + t]! - old[b * T + t]!) * mask[b * T + t]!;
      const r = Math.exp(lr);
      want -= Math.min(r * a[b]!, Math.min(Math.max(r, 1 - eLow), 1 + eHigh) * a[b]!);
    }
    const l = rlooLoss(logp, old, mask, a, B, T, eLow, eHigh);
    close(l.loss, want / B, `rloo ε=${eLow} ε_high=${eHigh} loss`);
    close(numericGradient(() => rlooLoss(logp, old, mask, a, B, T, eLow, eHigh).loss, logp), l.grad, `rloo ε_high fd`, 1e-5, 1e-8);
  }
  assert.notEqual(rlooLoss(logp, old, mask, a, B, T, 0.01, 0.01).loss, rlooLoss(logp, old, mask, a, B, T, 0.01, 10).loss,
    'ε_high changes the loss when ratios leave [1 − ε, 1 + ε]');
});
