// DPO training end to end on a tiny model: learning a preference rule, precomputed vs live
// reference, LoRA-disabled reference vs a copied reference, kill + resume bit-identical,
// config validation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDpoConfig } from '../src/train/config.js';
import { runDpo } from '../src/train/dpo.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { makeTinyModelDir, syntheticPairs, writeJsonl } from './fixtures/train/tiny.js';
import { runCliUntilCheckpoint } from './helpers/kill.js';

const tmp = (p: string): string => mkdtempSync(join(tmpdir(), p));
const modelDir = await makeTinyModelDir();
const dataDir = tmp('dpo-data-');
const trainFile = writeJsonl(join(dataDir, 'train.jsonl'), syntheticPairs(96, 1));
const evalFile = writeJsonl(join(dataDir, 'eval.jsonl'), syntheticPairs(48, 2));

const base = {
  learning_rate: 3e-3, beta: 0.1, per_device_train_batch_size: 8, per_device_eval_batch_size: 16,
  max_length: 64, max_prompt_length: 32, logging_steps: 5, save_steps: 0, seed: 7, warmup_ratio: 0,
  lr_scheduler_type: 'constant', num_train_epochs: 1,
};

test('a tiny model learns a preference rule: held-out reward accuracy ≥ 0.9', async () => {
  const out = tmp('dpo-out-');
  const res = await runDpo({
    model: modelDir, data: [trainFile], evalData: [evalFile], outputDir: out, quiet: true,
    config: parseDpoConfig({ ...base, max_steps: 36, eval_steps: 0 }),
  });
  assert.equal(res.stoppedBecause, null);
  const final = res.evalHistory.at(-1)!;
  assert.ok(final['eval/rewards/accuracies']! >= 0.9, `held-out accuracy ${final['eval/rewards/accuracies']}`);
  assert.ok(final['eval/rewards/margins']! > 0);
  // Metrics file with TRL's names; a Hugging Face directory as the result.
  const lines = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  for (const k of ['loss', 'rewards/chosen', 'rewards/rejected', 'rewards/accuracies', 'rewards/margins', 'logps/chosen',
    'logps/rejected', 'logits/chosen', 'logits/rejected', 'grad_norm', 'learning_rate', 'epoch', 'tokens/s']) {
    assert.ok(k in lines[0], `metrics.jsonl lacks ${k}`);
  }
  assert.ok(lines.some((l) => 'eval/loss' in l));
  assert.ok(lines[0].loss > lines.filter((l) => 'loss' in l).at(-1).loss, 'training loss did not fall');
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json']) assert.ok(existsSync(join(out, f)), `missing ${f}`);
});

test('precomputed reference log-probs give the same losses as the live reference, and are cached', async () => {
  const cfg = { ...base, max_steps: 4, logging_steps: 1 };
  const cacheDir = tmp('dpo-cache-');
  const live = await runDpo({ model: modelDir, data: [trainFile], outputDir: tmp('dpo-live-'), quiet: true, config: parseDpoConfig(cfg) });
  const pre = await runDpo({
    model: modelDir, data: [trainFile], outputDir: tmp('dpo-pre-'), quiet: true, cacheDir,
    config: parseDpoConfig({ ...cfg, precompute_ref_log_probs: true }),
  });
  assert.equal(pre.refCacheHit, false);
  assert.deepEqual(pre.history.map((h) => h.loss), live.history.map((h) => h.loss));
  const again = await runDpo({
    model: modelDir, data: [trainFile], outputDir: tmp('dpo-pre2-'), quiet: true, cacheDir,
    config: parseDpoConfig({ ...cfg, precompute_ref_log_probs: true }),
  });
  assert.equal(again.refCacheHit, true);
  assert.deepEqual(again.history.map((h) => h.loss), live.history.map((h) => h.loss));
});

test('LoRA: the base with adapters disabled as reference equals a copied reference', async () => {
  const cfg = { ...base, max_steps: 3, logging_steps: 1, use_peft: true, lora_r: 4, lora_alpha: 8, lora_dropout: 0, learning_rate: 1e-2 };
  const viaAdapters = await runDpo({ model: modelDir, data: [trainFile], outputDir: tmp('dpo-lora-'), quiet: true, config: parseDpoConfig(cfg) });
  const viaCopy = await runDpo({ model: modelDir, ref: modelDir, data: [trainFile], outputDir: tmp('dpo-lora-ref-'), quiet: true, config: parseDpoConfig(cfg) });
  assert.deepEqual(viaAdapters.history.map((h) => h.loss), viaCopy.history.map((h) => h.loss));
  assert.ok(viaAdapters.history.at(-1)!['rewards/margins'] !== 0, 'adapters did not train');
});

test('a run killed after a checkpoint resumes bit-identically', async () => {
  const cfg = { ...base, max_steps: 12, save_steps: 2, save_total_limit: 2, logging_steps: 2 };
  const straight = tmp('dpo-straight-');
  await runDpo({ model: modelDir, data: [trainFile], outputDir: straight, quiet: true, config: parseDpoConfig(cfg) });

  // Real kill: a child process trains until a checkpoint exists, then gets SIGKILL.
  const killed = tmp('dpo-killed-');
  const cfgPath = join(killed, 'cfg.json');
  (await import('node:fs')).writeFileSync(cfgPath, JSON.stringify(cfg));
  await runCliUntilCheckpoint(['train', '--model', modelDir, '--data', trainFile, '--config', cfgPath, '--output', killed, '--quiet'], killed, 4, 120_000, 20);
  assert.ok(!existsSync(join(killed, 'model.safetensors')), 'the child finished before it was killed');
  const resumed = await runDpo({ model: modelDir, data: [trainFile], outputDir: killed, quiet: true, resume: true, config: parseDpoConfig(cfg) });
  assert.ok(resumed.steps === 12);
  const a = readSafetensors(join(straight, 'model.safetensors'));
  const b = readSafetensors(join(killed, 'model.safetensors'));
  for (const [name, w] of a) assert.deepEqual(b.get(name)!.data, w.data, `${name} differs after resume`);
  // save_total_limit keeps two checkpoints.
  assert.ok(readdirSync(killed).filter((f) => /^checkpoint-\d+$/.test(f)).length <= 2);
});

test('config: typos suggest the right name; bad values are named', () => {
  assert.throws(() => parseDpoConfig({ lerning_rate: 1e-5 }), /unknown option "lerning_rate" \(did you mean "learning_rate"\?\)/);
  assert.throws(() => parseDpoConfig({ loss_type: 'sigmod' }), /loss_type "sigmod" is not a loss \(did you mean "sigmoid"\?\)/);
  assert.throws(() => parseDpoConfig({ beta: -1 }), /beta/);
  assert.throws(() => parseDpoConfig({ truncation_mode: 'middle' }), /truncation_mode/);
  const cfg = parseDpoConfig({ beta: 0.2 }, { learning_rate: 5e-6 });
  assert.equal(cfg.beta, 0.2);
  assert.equal(cfg.learning_rate, 5e-6);
  assert.equal(cfg.loss_type, 'sigmoid');
});
