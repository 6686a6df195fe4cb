// GRPOConfig options end to end on a tiny model, each with a check that fails when the option is
// ignored or broken: num_iterations (the later passes see importance ratios against the rollout's
// policy, so clipping turns on, and the optimizer takes num_iterations steps per rollout),
// mask_truncated_completions, top_k, reward_weights and max_prompt_length.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensors } from '../src/io/safetensors.js';
import { parseGrpoConfig } from '../src/train/rl-config.js';
import { completionMask, runGrpo } from '../src/train/grpo.js';
import type { RewardFunction, RewardInput } from '../src/train/rewards.js';
import { learningRate } from '../src/train/schedule.js';
import { makeRlTask } from './fixtures/train/tiny.js';

const tmp = (p: string): string => mkdtempSync(join(tmpdir(), p));
const { modelDir, promptsFile, rewardModule } = await makeRlTask();
const base = {
  reward_funcs: [rewardModule], learning_rate: 1e-2, per_device_train_batch_size: 16, num_generations: 4,
  max_completion_length: 10, max_steps: 4, logging_steps: 1, save_steps: 0, lr_scheduler_type: 'constant', seed: 1,
};
/** A reward function given in-process that records what it saw. */
const recording = (name: string, f: (i: RewardInput) => number[], seen: RewardInput[] = []): RewardFunction => ({
  name, score: async (input) => {
    seen.push(input);
    return Float64Array.from(f(input));
  },
});

test('completionMask: every completion token, or none of a truncated completion with mask_truncated_completions', () => {
  const ids = [[5, 6, 0], [7, 8, 9, 4], [3]];
  const stopped = [true, false, true];
  const all = completionMask(ids, stopped, 4, false);
  assert.deepEqual(Array.from(all.mask), [1, 1, 1, 0, 1, 1, 1, 1, 1, 0, 0, 0]);
  assert.equal(all.active, 8);
  const masked = completionMask(ids, stopped, 4, true);
  assert.deepEqual(Array.from(masked.mask), [1, 1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
  assert.equal(masked.active, 4);
});

test('num_iterations 2: the second pass has importance ratios against the rollout policy (clipping on), and twice the optimizer steps', async () => {
  const cfg = { ...base, epsilon: 0.05, lr_scheduler_type: 'linear' };
  const one = await runGrpo({ model: modelDir, prompts: [promptsFile], outputDir: tmp('grpo-it1-'), quiet: true, config: parseGrpoConfig({ ...cfg, num_iterations: 1 }) });
  const two = await runGrpo({ model: modelDir, prompts: [promptsFile], outputDir: tmp('grpo-it2-'), quiet: true, config: parseGrpoConfig({ ...cfg, num_iterations: 2 }) });
  // On-policy (one pass) the ratio is exactly 1: nothing is ever clipped.
  for (const h of one.history) assert.equal(h['clip_ratio/region_mean'], 0);
  // The second pass runs after an update of lr 1e-2: some ratios leave [1 − 0.05, 1 + 0.05].
  const clipped = two.history.map((h) => h['clip_ratio/region_mean']!);
  assert.ok(clipped.some((c) => c > 0), `no clipping with num_iterations 2: ${clipped.join(' ')}`);
  assert.ok(clipped.every((c) => c < 0.5), 'at most the second of two passes clips');
  // The linear schedule runs over max_steps × num_iterations optimizer steps.
  const lr = (total: number): number => learningRate({ type: 'linear', baseLr: 1e-2, totalSteps: total, warmupSteps: 0 }, total - 1);
  assert.equal(one.history.at(-1)!.learning_rate, lr(4));
  assert.equal(two.history.at(-1)!.learning_rate, lr(8));
  // The first pass of each rollout is the same computation in both runs: the first step's reward agrees.
  assert.equal(one.history[0]!.reward, two.history[0]!.reward);
});

test('mask_truncated_completions: when every completion hits the length limit the policy does not move (dapo and grpo); without it, it does', async () => {
  const w0 = readSafetensors(join(modelDir, 'model.safetensors'));
  const moved = (out: string): number => {
    const w = readSafetensors(join(out, 'model.safetensors'));
    let d = 0;
    for (const [name, t] of w0) {
      const u = w.get(name)!.data;
      for (let i = 0; i < t.data.length; i++) d = Math.max(d, Math.abs(u[i]! - t.data[i]!));
    }
    return d;
  };
  const cfg = { ...base, max_completion_length: 3, max_steps: 2 };
  for (const loss_type of ['dapo', 'grpo']) {
    const out = tmp('grpo-mask-');
    const r = await runGrpo({ model: modelDir, prompts: [promptsFile], outputDir: out, quiet: true, config: parseGrpoConfig({ ...cfg, loss_type, mask_truncated_completions: true }) });
    assert.equal(r.stoppedBecause, null);
    for (const h of r.history) assert.equal(h['completions/clipped_ratio'], 1, 'the setup needs every completion truncated');
    for (const h of r.history) assert.equal(h.loss, 0);
    assert.equal(moved(out), 0, `${loss_type}: masked completions moved the policy`);
  }
  const out = tmp('grpo-nomask-');
  await runGrpo({ model: modelDir, prompts: [promptsFile], outputDir: out, quiet: true, config: parseGrpoConfig({ ...cfg, mask_truncated_completions: false }) });
  assert.ok(moved(out) > 1e-4, 'without the mask the same rollouts train the policy');
});

test('top_k 1 samples greedily: the completions of a prompt are identical (zero reward std); top_k 0 samples', async () => {
  const seen: RewardInput[] = [];
  const fn = recording('len', (i) => i.completionIds.map((c) => c.length + c[0]! / 1000), seen);
  const greedy = await runGrpo({ model: modelDir, prompts: [promptsFile], outputDir: tmp('grpo-topk-'), quiet: true, rewardFunctions: [fn], config: parseGrpoConfig({ ...base, top_k: 1, max_steps: 2 }) });
  for (const h of greedy.history) assert.equal(h.frac_reward_zero_std, 1);
  for (const input of seen) {
    for (let g = 0; g < input.completionIds.length; g += 4) {
      for (let j = 1; j < 4; j++) assert.deepEqual(input.completionIds[g + j], input.completionIds[g]);
    }
  }
  const sampled = await runGrpo({ model: modelDir, prompts: [promptsFile], outputDir: tmp('grpo-topk0-'), quiet: true, rewardFunctions: [fn], config: parseGrpoConfig({ ...base, top_k: 0, max_steps: 2 }) });
  assert.ok(sampled.history.some((h) => h.frac_reward_zero_std! < 1));
});

test('reward_weights weight each reward function in the logged reward; max_prompt_length keeps the last tokens of a prompt', async () => {
  const seen: RewardInput[] = [];
  const a = recording('a', (i) => i.completions.map(() => 1), seen);
  const b = recording('b', (i) => i.completions.map((_, k) => k % 2));
  const r = await runGrpo({
    model: modelDir, prompts: [promptsFile], outputDir: tmp('grpo-w-'), quiet: true, rewardFunctions: [a, b],
    config: parseGrpoConfig({ ...base, reward_funcs: ['afinn', 'vader'], reward_weights: [0.5, 2], max_steps: 1, max_prompt_length: 4 }),
  });
  const h = r.history[0]!;
  assert.equal(h['rewards/a/mean'], 1);
  assert.equal(h['rewards/b/mean'], 0.5);
  assert.equal(h.reward, 0.5 * 1 + 2 * 0.5);
  assert.ok(seen[0]!.promptIds.every((p) => p.length <= 4));
  assert.ok(seen[0]!.promptIds.some((p) => p.length === 4), 'some prompts are longer than 4 tokens and were cut');
});
