// `dpo import-run` for the RLHF trainers' outputs: a RewardTrainer directory (a
// *ForSequenceClassification model) comes back as a reward model `dpo rm score` and the reward
// functions read, byte for byte or converted to the job's dtype; GRPO / RLOO / PPO outputs (a
// causal LM) come back with TRL's metric names (ours) and without DPO's watchdogs. The "TRL outputs" are written by our own writers
// in transformers' layout (config.json, model.safetensors, trainer_state.json, dpo_ts_job.json).
// A LoRA reward model (PEFT adapter with task_type SEQ_CLS and the score head in modules_to_save)
// is merged into its base and scores what the unmerged adapter scores.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { importRun } from '../src/train/import-run.js';
import { parseRewardConfig } from '../src/train/rl-config.js';
import { runRewardModel, scoreWithRewardModel } from '../src/train/rm.js';
import { loadSequenceClassifier } from '../src/io/reward-dir.js';
import { readSafetensors, readSafetensorsHeader, writeSafetensors } from '../src/io/safetensors.js';
import { loadTokenizerFor } from '../src/io/load-model.js';
import { preparePreferenceData } from '../src/data/prepare.js';
import { collatePreference } from '../src/data/batch.js';
import { batchRewards } from '../src/train/rm.js';
import { Rng } from '../src/tensor/random.js';
import * as T from '../src/tensor/index.js';
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

test('a LoRA reward model (RewardTrainer + PEFT, task_type SEQ_CLS) is merged: dpo rm score equals the unmerged adapter\'s rewards', async () => {
  // The trained state, in memory: body with rsLoRA adapters (rank/alpha per module as rank_pattern /
  // alpha_pattern set them) and a trained score head.
  const tokenizer = await loadTokenizerFor(baseDir);
  const { model: rm } = loadSequenceClassifier(baseDir, { padTokenId: tokenizer.padId, seed: 3 });
  const rng = new Rng(21);
  for (let i = 0; i < rm.score.data.length; i++) rm.score.data[i] = 0.3 * rng.normal();
  const plan = (path: string): { r: number; alpha: number } | null =>
    path.endsWith('down_proj') ? { r: 2, alpha: 8 } : path.endsWith('v_proj') ? { r: 4, alpha: 3 } : path.endsWith('q_proj') ? { r: 4, alpha: 8 } : null;
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const l of rm.body.linears()) {
    const p = plan(l.path);
    if (!p) continue;
    const lora = l.attachLora(p.r, p.alpha, 0, rng, true);
    for (let i = 0; i < lora.B.data.length; i++) lora.B.data[i] = 0.2 * rng.normal();
    // PEFT's key names, spelled out here (not derived from our writer): "base_model.model." + module path.
    tensors.set(`base_model.model.${l.path}.lora_A.weight`, { shape: [...lora.A.shape], data: Float32Array.from(lora.A.data) });
    tensors.set(`base_model.model.${l.path}.lora_B.weight`, { shape: [...lora.B.shape], data: Float32Array.from(lora.B.data) });
  }
  tensors.set('base_model.model.score.weight', { shape: [1, rm.config.hiddenSize], data: Float32Array.from(rm.score.data) });
  // The unmerged rewards, batched as dpo rm score batches them.
  const prep = await preparePreferenceData([pairsFile], tokenizer, { onBadRow: 'skip' });
  const expected = T.noGrad(() => prep.pairs.flatMap((p) => {
    const r = batchRewards(rm, collatePreference([p], { padId: rm.padTokenId })).data;
    return [r[0]!, r[1]!];
  }));

  // The run as TRL + PEFT 0.21 write it: adapter_config.json (SEQ_CLS adds "classifier", "score" to modules_to_save).
  const run = tmp('trl-run-rm-lora-');
  writeSafetensors(join(run, 'adapter_model.safetensors'), tensors);
  const adapterConfig = {
    alpha_pattern: { v_proj: 3 }, auto_mapping: null, base_model_name_or_path: 'meta-llama/Llama-3.2-1B', bias: 'none', fan_in_fan_out: false,
    inference_mode: true, init_lora_weights: true, layer_replication: null, layers_pattern: null, layers_to_transform: null, lora_alpha: 8,
    lora_bias: false, lora_dropout: 0.05, modules_to_save: ['classifier', 'score'], peft_type: 'LORA', r: 4, rank_pattern: { down_proj: 2 },
    revision: null, target_modules: ['q_proj', 'v_proj', 'down_proj'], task_type: 'SEQ_CLS', trainable_token_indices: null, use_dora: false, use_rslora: true,
  };
  writeFileSync(join(run, 'adapter_config.json'), JSON.stringify(adapterConfig, null, 2));
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) if (existsSync(join(baseDir, f))) copyFileSync(join(baseDir, f), join(run, f));
  state(run, [{ epoch: 1, loss: 0.6, accuracy: 0.75, margin: 0.3, step: 3 }]);
  job(run, 'reward');

  const out = join(tmp('imp-rm-lora-'), 'run');
  await assert.rejects(importRun(run, { out }), /base model "meta-llama\/Llama-3\.2-1B" looks like a Hugging Face hub id; it is not a directory on this machine \(dpo-ts reads local directories only, it downloads nothing\); pass --base/);
  const res = await importRun(run, { out, base: baseDir });
  assert.equal(res.kind, 'reward-model');
  assert.deepEqual(readdirSync(join(out, 'adapter')).sort(), ['adapter_config.json', 'adapter_model.safetensors']);
  const scored = await scoreWithRewardModel({ model: out, data: [pairsFile], quiet: true });
  assert.equal(scored.pairs.length, prep.pairs.length);
  scored.pairs.forEach((p, i) => {
    assert.ok(Math.abs(p.chosen - expected[2 * i]!) < 1e-4, `pair ${i} chosen: ${p.chosen} vs unmerged ${expected[2 * i]}`);
    assert.ok(Math.abs(p.rejected - expected[2 * i + 1]!) < 1e-4, `pair ${i} rejected: ${p.rejected} vs unmerged ${expected[2 * i + 1]}`);
  });
  assert.ok(scored.pairs.some((p) => Math.abs(p.margin) > 1e-3), 'the rewards are not trivially equal');
  // The merge uses α/√r (rsLoRA) with the per-module rank and alpha, checked independently of Linear.mergeLora.
  const base = readSafetensors(join(baseDir, 'model.safetensors')), merged = readSafetensors(join(out, 'model.safetensors'));
  for (const [mod, r, alpha] of [['model.layers.1.mlp.down_proj', 2, 8], ['model.layers.0.self_attn.v_proj', 4, 3]] as const) {
    const A = tensors.get(`base_model.model.${mod}.lora_A.weight`)!.data, B = tensors.get(`base_model.model.${mod}.lora_B.weight`)!.data;
    const W = base.get(`${mod}.weight`)!, M = merged.get(`${mod}.weight`)!.data;
    const [outF, inF] = W.shape as [number, number];
    let maxErr = 0;
    for (let o = 0; o < outF; o++) {
      for (let i = 0; i < inF; i++) {
        let d = 0;
        for (let k = 0; k < r; k++) d += B[o * r + k]! * A[k * inF + i]!;
        maxErr = Math.max(maxErr, Math.abs(W.data[o * inF + i]! + (alpha / Math.sqrt(r)) * d - M[o * inF + i]!));
      }
    }
    assert.ok(maxErr < 1e-5, `${mod}: merged weight off by ${maxErr}`);
  }
  assert.deepEqual(merged.get('score.weight')!.data, Float32Array.from(rm.score.data));

  // No head in the file and a base without one: refused (the head would be random).
  const headless = tmp('trl-run-rm-lora-nohead-');
  tensors.delete('base_model.model.score.weight');
  writeSafetensors(join(headless, 'adapter_model.safetensors'), tensors);
  writeFileSync(join(headless, 'adapter_config.json'), JSON.stringify({ ...adapterConfig, base_model_name_or_path: baseDir }));
  state(headless, []);
  await assert.rejects(importRun(headless, { out: join(tmp('imp-rm-nohead-'), 'run') }), /has no score\.weight \(modules_to_save \["score"\]\)/);
  // A tensor that is neither LoRA nor modules_to_save is refused, never dropped.
  tensors.set('base_model.model.model.norm.weight', { shape: [rm.config.hiddenSize], data: new Float32Array(rm.config.hiddenSize) });
  writeSafetensors(join(headless, 'adapter_model.safetensors'), tensors);
  await assert.rejects(importRun(headless, { out: join(tmp('imp-rm-extra-'), 'run') }), /model\.norm\.weight is neither a LoRA lora_A\/lora_B weight nor a weight of modules_to_save/);
});
