// `dpo import-run` for the RLHF trainers' outputs: a RewardTrainer directory (a
// *ForSequenceClassification model) comes back as a reward model `dpo rm score` and the reward
// functions read, byte for byte or converted to the job's dtype; GRPO / RLOO / PPO outputs (a
// causal LM) come back with TRL's metric names (ours) and without DPO's watchdogs; a PEFT adapter
// of a reward model is refused with the way out. The "TRL outputs" are written by our own writers
// in transformers' layout (config.json, model.safetensors, trainer_state.json, dpo_ts_job.json).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { importRun } from '../src/train/import-run.js';
import { readSafetensorsHeader } from '../src/io/safetensors.js';
import { parseRewardConfig } from '../src/train/rl-config.js';
import { runRewardModel, scoreWithRewardModel } from '../src/train/rm.js';
import { loadSequenceClassifier } from '../src/io/reward-dir.js';
import { makeTinyModelDir, syntheticPairs, writeJsonl } from './fixtures/train/tiny.js';

const tmp = (p: string): string => mkdtempSync(join(tmpdir(), p));
const baseDir = await makeTinyModelDir({ seed: 7 });
const pairsFile = writeJsonl(join(tmp('imp-rl-data-'), 'pairs.jsonl'), syntheticPairs(16, 4));

function state(dir: string, logHistory: object[]): void {
  writeFileSync(join(dir, 'trainer_state.json'), JSON.stringify({ global_step: 3, epoch: 1, log_history: logHistory }, null, 2));
}
function job(dir: string, trainer: string, saveDtype = 'float32'): void {
  writeFileSync(join(dir, 'dpo_ts_job.json'), JSON.stringify({ trainer, trl_version: '1.9.0', created: 'x', import: { save_dtype: saveDtype, watchdogs: false } }));
}

test('a RewardTrainer output comes back as a reward model: same bytes, same scores, RewardTrainer metrics; bf16 on request', async () => {
  // A reward model in transformers' layout (ours is that layout), as RewardTrainer.save_model writes it.
  const run = tmp('trl-run-rm-');
  await runRewardModel({
    model: baseDir, data: [pairsFile], outputDir: run, quiet: true,
    config: parseRewardConfig({ learning_rate: 3e-3, per_device_train_batch_size: 8, max_steps: 3, save_steps: 0, logging_steps: 1 }),
  });
  state(run, [
    { epoch: 0.5, grad_norm: 1.5, learning_rate: 1e-4, loss: 0.69, accuracy: 0.5, margin: 0.01, 'min_reward': -0.2, step: 1 },
    { epoch: 1, eval_loss: 0.6, eval_accuracy: 0.75, eval_margin: 0.2, step: 3 },
    { epoch: 1, step: 3, train_loss: 0.66, train_runtime: 3.5 },
  ]);
  job(run, 'reward');
  const out = join(tmp('imp-rm-'), 'run');
  const res = await importRun(run, { out });
  assert.equal(res.kind, 'reward-model');
  assert.deepEqual(res.warnings, []);
  assert.deepEqual(readFileSync(join(out, 'model.safetensors')), readFileSync(join(run, 'model.safetensors')));
  const metrics = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
  assert.equal(metrics[0]!.accuracy, 0.5);
  assert.equal(metrics[1]!['eval/accuracy'], 0.75);
  const before = await scoreWithRewardModel({ model: run, data: [pairsFile], quiet: true });
  const after = await scoreWithRewardModel({ model: out, data: [pairsFile], quiet: true });
  assert.deepEqual(after.pairs, before.pairs);
  assert.ok(before.pairs.some((p) => p.chosen !== 0), 'the scores are not trivially zero');

  const bf = join(tmp('imp-rm-bf16-'), 'run');
  await importRun(run, { out: bf, dtype: 'bfloat16' });
  assert.ok(readSafetensorsHeader(join(bf, 'model.safetensors')).tensors.every((t) => t.dtype === 'BF16'));
  const { model, trainedHead } = loadSequenceClassifier(bf);
  assert.ok(trainedHead && model.config.vocabSize === 320);
  const bfScores = await scoreWithRewardModel({ model: bf, data: [pairsFile], quiet: true });
  bfScores.pairs.forEach((p, i) => assert.ok(Math.abs(p.chosen - before.pairs[i]!.chosen) < 0.05 * (1 + Math.abs(before.pairs[i]!.chosen))));
});

test('GRPO / RLOO / PPO outputs come back as policies with TRL\'s (our) metric names and no DPO watchdogs', async () => {
  for (const [trainer, history] of [
    ['grpo', [{ reward: 0.5, reward_std: 0.2, kl: 0.01, 'rewards/afinn/mean': 0.5, 'completions/mean_length': 12, 'clip_ratio/region_mean': 0, loss: 0.01, step: 1 }]],
    ['ppo', [{ 'objective/kl': 0.2, 'objective/scores': 1.5, 'objective/rlhf_reward': 1.49, 'policy/approxkl_avg': 0.001, 'val/ratio': 1, eps: 3, episode: 16, step: 1 }]],
  ] as const) {
    const run = tmp(`trl-run-${trainer}-`);
    for (const f of readdirSync(baseDir)) copyFileSync(join(baseDir, f), join(run, f));
    state(run, [...history]);
    job(run, trainer);
    const out = join(tmp(`imp-${trainer}-`), 'run');
    const res = await importRun(run, { out });
    assert.equal(res.kind, 'full');
    assert.deepEqual(res.warnings, []);
    const rec = JSON.parse(readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim()) as Record<string, number>;
    assert.deepEqual(rec, history[0]);
    assert.equal((JSON.parse(readFileSync(join(out, 'import.json'), 'utf8')) as { job: { trainer: string } }).job.trainer, trainer);
    assert.ok(existsSync(join(out, 'tokenizer.json')));
  }
});

test('a PEFT adapter of a reward model is refused with the way out', async () => {
  const run = tmp('trl-run-rm-lora-');
  writeFileSync(join(run, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', task_type: 'SEQ_CLS', r: 4, lora_alpha: 8, target_modules: ['q_proj'], modules_to_save: ['score'], base_model_name_or_path: baseDir }));
  writeFileSync(join(run, 'adapter_model.safetensors'), '');
  state(run, []);
  await assert.rejects(importRun(run, { out: join(tmp('imp-rm-lora-'), 'run') }), /adapter of a reward model \(task_type SEQ_CLS[\s\S]*merge_and_unload/);
});
