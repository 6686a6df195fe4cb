// The on-line trainers on a tiny model: GRPO, RLOO and PPO raise the reward of a JS-module reward
// function; TRL's metric names; a PPO run killed (SIGKILL) after a checkpoint resumes
// bit-identically; GRPO resume; built-in and reward-model reward functions; config errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensors } from '../src/io/safetensors.js';
import { parseGrpoConfig, parsePpoConfig, parseRewardConfig } from '../src/train/rl-config.js';
import { runGrpo } from '../src/train/grpo.js';
import { responseSequenceLengths, runPpo } from '../src/train/ppo.js';
import { runRewardModel } from '../src/train/rm.js';
import { loadRewardFunction } from '../src/train/rewards.js';
import { makeRlTask, syntheticPairs, writeJsonl } from './fixtures/train/tiny.js';
import { runCliUntilCheckpoint } from './helpers/kill.js';

const tmp = (p: string): string => mkdtempSync(join(tmpdir(), p));
const { modelDir, dir, promptsFile, rewardModule } = await makeRlTask();
const avg = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const grpoBase = {
  reward_funcs: [rewardModule], learning_rate: 1e-2, per_device_train_batch_size: 16, num_generations: 4,
  max_completion_length: 10, max_steps: 20, logging_steps: 1, save_steps: 0, lr_scheduler_type: 'constant', seed: 1,
};
const ppoBase = {
  reward_funcs: [rewardModule], learning_rate: 3e-3, per_device_train_batch_size: 8, num_mini_batches: 2, num_ppo_epochs: 2,
  response_length: 10, max_steps: 20, logging_steps: 1, save_steps: 0, lr_scheduler_type: 'constant', stop_token: 'eos',
  temperature: 1, seed: 1,
};

test('GRPO raises the reward on a tiny model; TRL metric names; the final policy is saved', async () => {
  const out = tmp('grpo-');
  const r = await runGrpo({ model: modelDir, prompts: [promptsFile], outputDir: out, quiet: true, config: parseGrpoConfig(grpoBase) });
  assert.equal(r.stoppedBecause, null);
  const rew = r.history.map((h) => h.reward!);
  assert.ok(avg(rew.slice(-5)) > avg(rew.slice(0, 5)) + 0.2, `reward did not rise: ${rew.map((x) => x.toFixed(2)).join(' ')}`);
  for (const k of ['reward', 'reward_std', 'loss', 'frac_reward_zero_std', 'completions/mean_length', 'clip_ratio/region_mean', `rewards/${rewardModule}/mean`, 'grad_norm', 'learning_rate']) {
    assert.ok(k in r.history[0]!, `missing metric ${k}`);
  }
  assert.ok(existsSync(join(out, 'model.safetensors')) && existsSync(join(out, 'metrics.jsonl')));
});

test('GRPO with beta > 0 (k3 KL to the reference), bnpo and two iterations per rollout runs and logs kl', async () => {
  const r = await runGrpo({
    model: modelDir, prompts: [promptsFile], outputDir: tmp('grpo-kl-'), quiet: true,
    config: parseGrpoConfig({ ...grpoBase, beta: 0.04, loss_type: 'bnpo', num_iterations: 2, max_steps: 4 }),
  });
  assert.equal(r.steps, 4);
  assert.ok(r.history[0]!.kl! >= 0 && r.history[0]!.kl! < r.history.at(-1)!.kl!, `kl ${r.history.map((h) => h.kl).join(' ')}`);
});

test('RLOO raises the reward', async () => {
  const r = await runGrpo({ model: modelDir, prompts: [promptsFile], outputDir: tmp('rloo-'), quiet: true, config: parseGrpoConfig({ ...grpoBase, rloo: true }) });
  const rew = r.history.map((h) => h.reward!);
  assert.ok(avg(rew.slice(-5)) > avg(rew.slice(0, 5)) + 0.2, `reward did not rise: ${rew.map((x) => x.toFixed(2)).join(' ')}`);
});

test('PPO raises the score with a KL that grows from 0; every TRL metric is logged', async () => {
  const r = await runPpo({ model: modelDir, prompts: [promptsFile], outputDir: tmp('ppo-'), quiet: true, config: parsePpoConfig(ppoBase) });
  assert.equal(r.stoppedBecause, null);
  const s = r.history.map((h) => h['objective/scores']!);
  assert.ok(avg(s.slice(-5)) > avg(s.slice(0, 5)) + 0.15, `score did not rise: ${s.map((x) => x.toFixed(2)).join(' ')}`);
  assert.ok(Math.abs(r.history[0]!['objective/kl']!) < 1e-9, 'KL at the first rollout is 0 (policy = reference)');
  for (const k of ['objective/kl', 'objective/entropy', 'objective/non_score_reward', 'objective/rlhf_reward', 'objective/scores',
    'policy/approxkl_avg', 'policy/clipfrac_avg', 'loss/policy_avg', 'loss/value_avg', 'val/clipfrac_avg', 'val/ratio', 'eps']) {
    assert.ok(k in r.history[0]!, `missing metric ${k}`);
  }
  const last = r.history.at(-1)!;
  assert.ok(Math.abs(last['objective/rlhf_reward']! - (last['objective/scores']! + last['objective/non_score_reward']!)) < 1e-9);
});

test('TRL sequence_lengths: the last response token before the first pad', () => {
  assert.deepEqual(Array.from(responseSequenceLengths([[5, 6, 0, 0], [5, 6, 7], [0, 1]], 0)), [1, 2, -1]);
});

test('a PPO run killed (SIGKILL) after a checkpoint resumes bit-identically', async () => {
  const cfg = { ...ppoBase, max_steps: 16, save_steps: 2, save_total_limit: 2, logging_steps: 1 };
  const straight = tmp('ppo-straight-');
  const a = await runPpo({ model: modelDir, prompts: [promptsFile], outputDir: straight, quiet: true, config: parsePpoConfig(cfg) });
  const killed = tmp('ppo-killed-');
  const cfgPath = join(killed, 'cfg.json');
  writeFileSync(cfgPath, JSON.stringify(cfg));
  await runCliUntilCheckpoint(['ppo', '--model', modelDir, '--prompts', promptsFile, '--config', cfgPath, '--output', killed, '--quiet'], killed, 4, 60_000, 5);
  assert.ok(!existsSync(join(killed, 'model.safetensors')), 'the child finished before it was killed');
  const b = await runPpo({ model: modelDir, prompts: [promptsFile], outputDir: killed, quiet: true, resume: true, config: parsePpoConfig(cfg) });
  assert.equal(b.steps, 16);
  const wa = readSafetensors(join(straight, 'model.safetensors')), wb = readSafetensors(join(killed, 'model.safetensors'));
  for (const [name, w] of wa) assert.deepEqual(wb.get(name)!.data, w.data, `${name} differs after resume`);
  // The resumed steps log exactly the straight run's values (timing fields aside).
  const strip = (h: Record<string, number>) => Object.fromEntries(Object.entries(h).filter(([k]) => !['eps', 'tokens/s'].includes(k)));
  const tail = a.history.slice(a.history.length - b.history.length).map(strip);
  assert.deepEqual(b.history.map(strip), tail);
  assert.ok(readdirSync(killed).filter((f) => /^checkpoint-\d+$/.test(f)).length <= 2);
});

test('GRPO resumes bit-identically from a checkpoint', async () => {
  const cfg = { ...grpoBase, max_steps: 6, save_steps: 3 };
  const straight = tmp('grpo-straight-');
  await runGrpo({ model: modelDir, prompts: [promptsFile], outputDir: straight, quiet: true, config: parseGrpoConfig(cfg) });
  const split = tmp('grpo-split-');
  const first = await runGrpo({ model: modelDir, prompts: [promptsFile], outputDir: split, quiet: true, stopAfterSteps: 4, config: parseGrpoConfig(cfg) });
  assert.equal(first.stoppedBecause, 'stopAfterSteps');
  await runGrpo({ model: modelDir, prompts: [promptsFile], outputDir: split, quiet: true, resume: true, config: parseGrpoConfig(cfg) });
  const wa = readSafetensors(join(straight, 'model.safetensors')), wb = readSafetensors(join(split, 'model.safetensors'));
  for (const [name, w] of wa) assert.deepEqual(wb.get(name)!.data, w.data, `${name} differs after resume`);
  await assert.rejects(
    runGrpo({ model: modelDir, prompts: [promptsFile], outputDir: split, quiet: true, resume: join(split, 'checkpoint-3'), config: parseGrpoConfig({ ...cfg, beta: 0.1 }) }),
    /different settings/,
  );
});

test('reward functions: afinn and vader built-ins, JS module errors, and a trained reward model (also PPO\'s value model)', async () => {
  const afinn = await loadRewardFunction('afinn', 320);
  const va = await loadRewardFunction('vader', 320);
  const input = { prompts: ['a', 'b'], completions: ['a wonderful happy day', 'terrible awful'], promptIds: [[1], [1]], completionIds: [[2], [3]] };
  const ra = await afinn.score(input), rv = await va.score(input);
  assert.ok(ra[0]! > 0 && ra[1]! < 0 && rv[0]! > 0 && rv[1]! < 0);
  const bad = join(dir, 'bad.mjs');
  writeFileSync(bad, 'export const other = 1; export default () => [1];');
  await assert.rejects(loadRewardFunction(`${bad}#nope`, 320), /exports no function "nope"/);
  await assert.rejects((await loadRewardFunction(bad, 320)).score(input), /returned 1 rewards for 2 completions/);
  await assert.rejects(loadRewardFunction('no-such-reward', 320), /not a built-in/);
  await assert.rejects(loadRewardFunction(modelDir, 320), /not a reward model/);

  const rmDir = tmp('rl-rm-');
  const pairs = writeJsonl(join(dir, 'pairs.jsonl'), syntheticPairs(32, 8));
  await runRewardModel({ model: modelDir, data: [pairs], outputDir: rmDir, quiet: true, config: parseRewardConfig({ learning_rate: 3e-3, per_device_train_batch_size: 8, max_steps: 4, save_steps: 0, logging_steps: 2 }) });
  const rm = await loadRewardFunction(rmDir, 320);
  assert.ok(rm.model);
  const scores = await rm.score({ ...input, promptIds: [[1, 5, 6], [1, 7]], completionIds: [[8, 9, 0], [10]] });
  assert.equal(scores.length, 2);
  const r = await runPpo({
    model: modelDir, prompts: [promptsFile], outputDir: tmp('ppo-rm-'), quiet: true,
    config: parsePpoConfig({ ...ppoBase, reward_funcs: [rmDir], max_steps: 2 }),
  });
  assert.equal(r.steps, 2);
  const loraOut = tmp('ppo-lora-');
  const lora = await runPpo({
    model: modelDir, prompts: [promptsFile], outputDir: loraOut, quiet: true,
    config: parsePpoConfig({ ...ppoBase, max_steps: 2, use_peft: true, lora_r: 4, lora_alpha: 8, lora_dropout: 0 }),
  });
  assert.equal(lora.steps, 2);
  assert.ok(existsSync(join(loraOut, 'adapter_config.json')), 'LoRA PPO saves the policy adapter');
});

test('config: GRPOConfig / PPOConfig names, groups and typos', () => {
  assert.throws(() => parseGrpoConfig({ per_device_train_batch_size: 6, num_generations: 4 }), /multiple of num_generations/);
  assert.throws(() => parseGrpoConfig({ loss_type: 'dapo', importance_sampling_level: 'sequence' }), /works with loss_type grpo or sapo/);
  assert.throws(() => parseGrpoConfig({ reward_funcs: ['afinn'], reward_weights: [1, 2] }), /reward_weights has 2 entries/);
  assert.throws(() => parsePpoConfig({ kl_coeff: 0.1 }), /did you mean "kl_coef"/);
  assert.throws(() => parsePpoConfig({ kl_estimator: 'k2' }), /kl_estimator/);
  const p = parsePpoConfig({});
  assert.equal(p.kl_coef, 0.05);
  assert.equal(p.num_ppo_epochs, 4);
  assert.equal(p.lam, 0.95);
  const g = parseGrpoConfig({});
  assert.equal(g.beta, 0);
  assert.equal(g.loss_type, 'dapo');
  assert.equal(g.num_generations, 8);
});
