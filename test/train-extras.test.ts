// SFT, scoring, watchdogs, PEFT adapter output, schedules and the optimizer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../src/tensor/index.js';
import { parseDpoConfig, parseSftConfig } from '../src/train/config.js';
import { dpoWatchdogs, runDpo } from '../src/train/dpo.js';
import { runSft } from '../src/train/sft.js';
import { scorePairs } from '../src/eval/score.js';
import { learningRate } from '../src/train/schedule.js';
import { AdamW, clipGradNorm } from '../src/train/optimizer.js';
import { loadModelAndTokenizer } from '../src/io/load-model.js';
import { loadPeftAdapter } from '../src/io/peft.js';
import { makeTinyModelDir, syntheticPairs, writeJsonl } from './fixtures/train/tiny.js';

const tmp = (p: string): string => mkdtempSync(join(tmpdir(), p));
const modelDir = await makeTinyModelDir({ seed: 3 });
const dataDir = tmp('dpo-x-data-');
const pairs = syntheticPairs(64, 5);
const trainFile = writeJsonl(join(dataDir, 'train.jsonl'), pairs);
const sftBase = { per_device_train_batch_size: 8, max_length: 64, logging_steps: 1, save_steps: 0, seed: 1, lr_scheduler_type: 'constant' };
const base = { ...sftBase, max_prompt_length: 32 };

test('SFT: completion-only loss falls and the model is saved as a Hugging Face directory', async () => {
  const sftFile = writeJsonl(join(dataDir, 'sft.jsonl'), pairs.map((p) => ({ prompt: p.prompt, completion: p.chosen })));
  const out = tmp('sft-out-');
  const res = await runSft({
    model: modelDir, data: [sftFile], outputDir: out, quiet: true,
    config: parseSftConfig({ ...sftBase, learning_rate: 5e-3, max_steps: 16, eval_split: 0.2 }),
  });
  const losses = res.history.map((h) => h.loss!);
  assert.ok(losses.at(-1)! < losses[0]! * 0.8, `SFT loss did not fall: ${losses[0]} → ${losses.at(-1)}`);
  assert.ok(res.evalHistory.at(-1)!['eval/perplexity']! > 1);
  assert.ok(existsSync(join(out, 'model.safetensors')) && existsSync(join(out, 'tokenizer.json')));
  const reloaded = await loadModelAndTokenizer(out);
  assert.equal(reloaded.model.config.numLayers, 2);
});

test('score: a trained policy used as a reward model ranks held-out pairs', async () => {
  const out = tmp('dpo-score-');
  await runDpo({ model: modelDir, data: [trainFile], outputDir: out, quiet: true, config: parseDpoConfig({ ...base, learning_rate: 3e-3, max_steps: 24 }) });
  const held = writeJsonl(join(dataDir, 'held.jsonl'), syntheticPairs(32, 77));
  const { pairs: scored, summary } = await scorePairs({ model: out, ref: modelDir, data: [held], beta: 0.1, quiet: true });
  assert.equal(scored.length, 32);
  assert.ok(summary.accuracy.accuracy >= 0.8, `accuracy ${summary.accuracy.accuracy}`);
  assert.match(scored[0]!.location, /held\.jsonl:1$/);
  for (const p of scored) assert.equal(p.correct, p.chosenReward > p.rejectedReward);
});

test('watchdog: a diverging run stops cleanly and keeps the last good checkpoint', async () => {
  const out = tmp('dpo-nan-');
  const res = await runDpo({
    model: modelDir, data: [trainFile], outputDir: out, quiet: true,
    config: parseDpoConfig({ ...base, learning_rate: 1e30, max_grad_norm: 0, max_steps: 20, save_steps: 1 }),
  });
  assert.ok(res.stoppedBecause, 'the run did not stop');
  assert.match(res.stoppedBecause!, /(loss|gradient norm) is (NaN|Infinity|-Infinity)/);
  assert.match(res.stoppedBecause!, /last good checkpoint/);
  assert.ok(!existsSync(join(out, 'model.safetensors')), 'a diverged model was saved as final');
  const ck = readdirSync(out).filter((f) => /^checkpoint-\d+$/.test(f));
  assert.ok(ck.length >= 1);
  for (const c of ck) {
    const state = JSON.parse(readFileSync(join(out, c, 'trainer_state.json'), 'utf8'));
    assert.ok(state.step < res.steps + 1);
  }
});

test('watchdog: over-optimization and falling chosen log-probs are explained', () => {
  const cfg = parseDpoConfig({});
  const watch = dpoWatchdogs(cfg);
  const over = [1, 2, 3].map((i) => ({ loss: 0.001 / i, 'rewards/margins': 10 * i + 5, 'logps/chosen': -10 }));
  assert.match(watch(over).join('\n'), /over-optimization/);
  const falling = [-10, -12, -15, -19, -25].map((v) => ({ loss: 0.5, 'rewards/margins': 1, 'logps/chosen': v }));
  const w = watch(falling).join('\n');
  assert.match(w, /chosen log-probs are falling/);
  assert.match(w, /rpo_alpha/);
  assert.deepEqual(dpoWatchdogs(parseDpoConfig({ rpo_alpha: 1 }))(falling), []);
  assert.deepEqual(watch([{ loss: 0.6, 'rewards/margins': 0.1, 'logps/chosen': -10 }]), []);
});

test('LoRA training writes a PEFT adapter that reproduces the trained policy', async () => {
  const out = tmp('dpo-peft-');
  const res = await runDpo({
    model: modelDir, data: [trainFile], outputDir: out, quiet: true,
    config: parseDpoConfig({ ...base, learning_rate: 1e-2, max_steps: 6, use_peft: true, lora_r: 4, lora_alpha: 8, lora_dropout: 0, lora_target_modules: ['q_proj', 'v_proj', 'o_proj'] }),
  });
  assert.equal(res.stoppedBecause, null);
  const cfg = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
  assert.equal(cfg.peft_type, 'LORA');
  assert.deepEqual(cfg.target_modules, ['q_proj', 'v_proj', 'o_proj']);
  const { model } = await loadModelAndTokenizer(modelDir);
  const ids = Int32Array.from([1, 5, 9, 14, 20, 7]);
  const targets = Int32Array.from([5, 9, 14, 20, 7, -1]);
  const before = T.noGrad(() => model.tokenLogprobs({ ids, batch: 1, seq: 6 }, targets)).toArray();
  loadPeftAdapter(out, model.linears(), 'llama');
  const after = T.noGrad(() => model.tokenLogprobs({ ids, batch: 1, seq: 6 }, targets)).toArray();
  assert.notDeepEqual(after, before);
  assert.ok(model.linears().filter((l) => l.lora).length === 6);
});

test('schedules: warmup then constant, linear and cosine decay (Hugging Face semantics)', () => {
  const s = { baseLr: 1, warmupSteps: 2, totalSteps: 10 };
  assert.deepEqual([0, 1, 2, 5].map((i) => learningRate({ ...s, type: 'constant' }, i)), [0, 0.5, 1, 1]);
  assert.deepEqual([2, 6, 10].map((i) => learningRate({ ...s, type: 'linear' }, i)), [1, 0.5, 0]);
  const cos = [2, 6, 10].map((i) => learningRate({ ...s, type: 'cosine' }, i));
  assert.ok(Math.abs(cos[0]! - 1) < 1e-12 && Math.abs(cos[1]! - 0.5) < 1e-12 && Math.abs(cos[2]!) < 1e-12);
});

test('AdamW matches a hand-computed step; no decay on 1-D parameters; clipping by global norm', () => {
  const w = T.tensor([1, -2, 3, 4], [2, 2], { requiresGrad: true, name: 'w' });
  const b = T.tensor([0.5, 0.5], [2], { requiresGrad: true, name: 'b' });
  w.grad = Float32Array.from([0.1, 0.2, -0.3, 0.4]);
  b.grad = Float32Array.from([1, -1]);
  const opt = new AdamW([w, b], { weightDecay: 0.1 });
  opt.update(0.01);
  // Step 1: m̂ = g, v̂ = g², update = g/(|g|+eps) = sign(g); decoupled decay on w only.
  const expW = [1, -2, 3, 4].map((x, i) => x - 0.01 * (Math.sign([0.1, 0.2, -0.3, 0.4][i]!) + 0.1 * x));
  w.data.forEach((x, i) => assert.ok(Math.abs(x - expW[i]!) < 1e-6, `w[${i}] ${x} vs ${expW[i]}`));
  assert.ok(Math.abs(b.data[0]! - 0.49) < 1e-6 && Math.abs(b.data[1]! - 0.51) < 1e-6);
  w.grad = Float32Array.from([3, 0, 0, 0]);
  b.grad = Float32Array.from([0, 4]);
  const norm = clipGradNorm([w, b], 1);
  assert.equal(norm, 5);
  assert.ok(Math.abs(Math.hypot(...w.grad, ...b.grad) - 1) < 1e-5);
});
