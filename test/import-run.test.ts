// `dpo import-run`: TRL-shaped output directories (written by our own safetensors writer in the
// layout transformers' save_pretrained, PEFT's save_pretrained and Trainer.save_state produce)
// become dpo-ts runs with the same weights and metrics, usable by score/convert.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { importRun, metricsRecord } from '../src/train/import-run.js';
import { loadHfDirectory, saveHfDirectory, TOKENIZER_FILE_NAMES } from '../src/io/hf-dir.js';
import { readSafetensors, readSafetensorsHeader } from '../src/io/safetensors.js';
import { loadModelAndTokenizer } from '../src/io/load-model.js';
import { attachLora } from '../src/nn/lora.js';
import { savePeftAdapter } from '../src/io/peft.js';
import { Rng } from '../src/tensor/random.js';
import { convertModel } from '../src/io/convert.js';
import { scorePairs } from '../src/eval/score.js';
import { evaluateModel } from '../src/eval/run.js';
import { buildProgram } from '../src/cli/index.js';
import { loadLocalCandidateGenerator } from '../src/annotate/local-model.js';
import { DEFAULT_SAMPLING } from '../src/annotate/generate.js';
import { makeTinyModelDir, syntheticPairs, writeJsonl } from './fixtures/train/tiny.js';

const tmp = (p: string): string => mkdtempSync(join(tmpdir(), p));
const baseDir = await makeTinyModelDir({ seed: 5 });

/** trainer_state.json as transformers' Trainer.save_state writes it (TRL's DPO log names). */
const logHistory = [
  { epoch: 0.5, grad_norm: 3.25, learning_rate: 5e-7, loss: 0.6931, 'rewards/chosen': 0.001, 'rewards/rejected': -0.002, 'rewards/accuracies': 0.5, 'rewards/margins': 0.003, 'logps/chosen': -40.5, 'logps/rejected': -42.25, 'logits/chosen': -1.5, 'logits/rejected': -1.25, num_tokens: 1024, step: 1 },
  { epoch: 1, grad_norm: 2.5, learning_rate: 2.5e-7, loss: 0.62, 'rewards/chosen': 0.05, 'rewards/rejected': -0.1, 'rewards/accuracies': 0.75, 'rewards/margins': 0.15, 'logps/chosen': -40.1, 'logps/rejected': -43.5, 'logits/chosen': -1.4, 'logits/rejected': -1.2, num_tokens: 2048, step: 2 },
  { epoch: 1, eval_loss: 0.64, 'eval_rewards/chosen': 0.04, 'eval_rewards/accuracies': 0.7, eval_runtime: 1.5, eval_samples_per_second: 10.7, eval_steps_per_second: 1.3, step: 2 },
  { epoch: 1, step: 2, total_flos: 0, train_loss: 0.655, train_runtime: 12.5, train_samples_per_second: 3.2, train_steps_per_second: 0.16 },
];

function writeTrainerState(dir: string, step = 2): void {
  writeFileSync(join(dir, 'trainer_state.json'), JSON.stringify({
    best_metric: null, best_model_checkpoint: null, epoch: 1, eval_steps: 500, global_step: step, is_hyper_param_search: false,
    is_local_process_zero: true, is_world_process_zero: true, log_history: logHistory, logging_steps: 1, max_steps: 2,
    num_input_tokens_seen: 0, num_train_epochs: 1, save_steps: 500, stateful_callbacks: {}, total_flos: 0, train_batch_size: 8, trial_name: null, trial_params: null,
  }, null, 2));
  writeFileSync(join(dir, 'training_args.bin'), new Uint8Array([0x80, 0x04, 0x95])); // a pickle: never read
}

function copyTokenizer(from: string, to: string): void {
  for (const f of TOKENIZER_FILE_NAMES) if (existsSync(join(from, f))) copyFileSync(join(from, f), join(to, f));
}

/** A trained full model as TRL saves it: config.json, BF16 model.safetensors, tokenizer, state. */
function fullRun(): { run: string; weights: ReturnType<typeof loadHfDirectory>['weights'] } {
  const run = tmp('trl-run-full-');
  const hf = loadHfDirectory(baseDir);
  const rng = new Rng(11);
  for (const w of hf.weights.values()) for (let i = 0; i < w.data.length; i++) w.data[i] = w.data[i]! + 0.01 * rng.normal();
  saveHfDirectory(run, { config: hf.config, weights: hf.weights, dtype: 'BF16' });
  copyTokenizer(baseDir, run);
  writeTrainerState(run);
  mkdirSync(join(run, 'checkpoint-1'));
  return { run, weights: hf.weights };
}

test('log_history entries map to our metric names; the run summary is kept apart', () => {
  assert.deepEqual(metricsRecord(logHistory[2]!), {
    kind: 'eval',
    rec: { epoch: 1, 'eval/loss': 0.64, 'eval/rewards/chosen': 0.04, 'eval/rewards/accuracies': 0.7, 'eval/runtime': 1.5, 'eval/samples_per_second': 10.7, 'eval/steps_per_second': 1.3, step: 2 },
  });
  assert.equal(metricsRecord(logHistory[3]!).kind, 'summary');
  assert.deepEqual(metricsRecord(logHistory[0]!).rec, logHistory[0]);
});

test('a full-model TRL run imports with the same weight bytes and metrics, and eval/score/convert/add-prompts read it', async () => {
  const { run } = fullRun();
  const out = join(tmp('dpo-imported-'), 'run');
  const res = await importRun(run, { out });
  assert.equal(res.kind, 'full');
  assert.equal(res.globalStep, 2);
  // Same bytes (BF16 kept as BF16), same tensors.
  assert.deepEqual(readFileSync(join(out, 'model.safetensors')), readFileSync(join(run, 'model.safetensors')));
  const a = readSafetensors(join(run, 'model.safetensors')), b = readSafetensors(join(out, 'model.safetensors'));
  for (const [k, w] of a) assert.deepEqual(b.get(k)!.data, w.data, k);
  // Metrics: training and eval records in order, our names, no summary line.
  const lines = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, 3);
  assert.deepEqual(lines[0], logHistory[0]);
  assert.equal(lines[2]['eval/loss'], 0.64);
  assert.ok(!lines.some((l) => 'train_runtime' in l));
  assert.equal(JSON.parse(readFileSync(join(out, 'import.json'), 'utf8')).trainer_summary.train_loss, 0.655);
  // Usable by the rest of dpo-ts: load + tokenizer, score against the base, GGUF export.
  const m = await loadModelAndTokenizer(out);
  assert.equal(m.model.config.numLayers, 2);
  const data = writeJsonl(join(tmp('dpo-imp-data-'), 'p.jsonl'), syntheticPairs(4, 9));
  const scored = await scorePairs({ model: out, ref: baseDir, data: [data], beta: 0.1, quiet: true });
  assert.equal(scored.pairs.length, 4);
  assert.ok(scored.pairs.some((p) => p.chosenReward !== 0), 'the imported policy differs from the base');
  // dpo annotate add-prompts' candidate generator samples from it.
  const gen = await loadLocalCandidateGenerator(out);
  const cands = await gen('Q1: ab cd?', 2, { ...DEFAULT_SAMPLING, maxNewTokens: 6 });
  assert.equal(cands.length, 2);
  // dpo eval reads it as the policy against the base.
  const ev = await evaluateModel({ model: out, ref: baseDir, prompts: ['Q1: ab cd?', 'Q2: ef?'], samplesPerPrompt: 1, maxNewTokens: 4, quiet: true });
  assert.ok(ev.models.length >= 1 && ev.models.every((m) => Number.isFinite(m.kl.mean)), 'KL(policy‖base) computed');
  const gguf = join(tmp('dpo-imp-gguf-'), 'm.gguf');
  await convertModel(out, gguf, { dtype: 'f32' });
  assert.ok(readFileSync(gguf).subarray(0, 4).toString() === 'GGUF');
});

test('the job\'s save_dtype (or --dtype) converts the weights; values are the rounded originals', async () => {
  const { run } = fullRun();
  writeFileSync(join(run, 'dpo_ts_job.json'), JSON.stringify({ trainer: 'dpo', trl_version: '1.9.0', import: { save_dtype: 'float32', watchdogs: true } }));
  const out = join(tmp('dpo-imported-f32-'), 'run');
  await importRun(run, { out });
  assert.ok(readSafetensorsHeader(join(out, 'model.safetensors')).tensors.every((t) => t.dtype === 'F32'));
  const a = readSafetensors(join(run, 'model.safetensors')), b = readSafetensors(join(out, 'model.safetensors'));
  for (const [k, w] of a) assert.deepEqual(b.get(k)!.data, w.data, k);
});

test('a PEFT adapter run is merged into its base: W + (α/r)·B·A, the adapter kept alongside', async () => {
  const run = tmp('trl-run-lora-');
  const base = await loadModelAndTokenizer(baseDir);
  const lora = { r: 4, alpha: 8, dropout: 0, targetModules: ['q_proj', 'v_proj'] };
  const attached = attachLora(base.model.linears(), lora, 3);
  const rng = new Rng(4);
  for (const l of attached) for (let i = 0; i < l.lora!.B.data.length; i++) l.lora!.B.data[i] = 0.05 * rng.normal();
  // PEFT names the base by the path it was loaded from: on the GPU machine, not here.
  savePeftAdapter(run, base.model.linears(), lora, 'llama', '/cluster/job/model');
  copyTokenizer(baseDir, run);
  writeTrainerState(run);

  const out = join(tmp('dpo-imported-lora-'), 'run');
  await assert.rejects(importRun(run, { out }), /PEFT adapter whose base model "\/cluster\/job\/model" is not on this machine; pass --base/);
  const res = await importRun(run, { out, base: baseDir });
  assert.equal(res.kind, 'adapter');
  // Expected merged weights computed here, independently of Linear.mergeLora.
  const baseW = loadHfDirectory(baseDir).weights, merged = loadHfDirectory(out).weights;
  for (const l of attached) {
    const name = `${l.path}.weight`, A = l.lora!.A.data, B = l.lora!.B.data, W = baseW.get(name)!.data, M = merged.get(name)!.data;
    const [outF, inF] = baseW.get(name)!.shape as [number, number];
    let maxErr = 0;
    for (let o = 0; o < outF; o++) {
      for (let i = 0; i < inF; i++) {
        let d = 0;
        for (let k = 0; k < lora.r; k++) d += B[o * lora.r + k]! * A[k * inF + i]!;
        maxErr = Math.max(maxErr, Math.abs(W[o * inF + i]! + (lora.alpha / lora.r) * d - M[o * inF + i]!));
      }
    }
    assert.ok(maxErr < 1e-6, `${name}: merged weight off by ${maxErr}`);
  }
  for (const [k, w] of baseW) if (!/q_proj|v_proj/.test(k)) assert.deepEqual(merged.get(k)!.data, w.data, k);
  assert.deepEqual(readdirSync(join(out, 'adapter')).sort(), ['adapter_config.json', 'adapter_model.safetensors']);
  // An adapter setting the merge does not implement is refused by name.
  const cfgPath = join(run, 'adapter_config.json');
  const adapterCfg = readFileSync(cfgPath, 'utf8');
  writeFileSync(cfgPath, JSON.stringify({ ...JSON.parse(adapterCfg), use_dora: true }));
  await assert.rejects(importRun(run, { out: join(tmp('dpo-imported-dora-'), 'run'), base: baseDir }), /use_dora \(weight-decomposed LoRA\) not supported/);
  writeFileSync(cfgPath, adapterCfg);
  // The merged model computes what base + adapter computes.
  const ids = Int32Array.from([1, 40, 41, 42, 43, 44]), targets = Int32Array.from([40, 41, 42, 43, 44, 0]);
  const withAdapter = base.model.tokenLogprobs({ ids, batch: 1, seq: 6 }, targets).data;
  const fromMerged = (await loadModelAndTokenizer(out)).model.tokenLogprobs({ ids, batch: 1, seq: 6 }, targets).data;
  for (let i = 0; i < 6; i++) assert.ok(Math.abs(withAdapter[i]! - fromMerged[i]!) < 1e-4, `position ${i}: ${withAdapter[i]} vs ${fromMerged[i]}`);
});

test('modules_to_save weights in a causal-LM adapter replace the base weights; rsLoRA round-trips through our writer', async () => {
  const run = tmp('trl-run-lora-saved-');
  const base = await loadModelAndTokenizer(baseDir);
  const lora = { r: 4, alpha: 6, dropout: 0, targetModules: ['o_proj'], rslora: true };
  const attached = attachLora(base.model.linears(), lora, 5);
  const rng = new Rng(6);
  for (const l of attached) for (let i = 0; i < l.lora!.B.data.length; i++) l.lora!.B.data[i] = 0.05 * rng.normal();
  const emb = loadHfDirectory(baseDir).weights.get('model.embed_tokens.weight')!;
  const newEmb = { shape: [...emb.shape], data: emb.data.map((v) => v + 0.5) };
  savePeftAdapter(run, base.model.linears(), lora, 'llama', baseDir, { saved: new Map([['model.embed_tokens.weight', newEmb]]) });
  const cfg = JSON.parse(readFileSync(join(run, 'adapter_config.json'), 'utf8'));
  assert.deepEqual([cfg.use_rslora, cfg.modules_to_save], [true, ['model.embed_tokens']]);
  writeTrainerState(run);
  const out = join(tmp('dpo-imported-lora-saved-'), 'run');
  await importRun(run, { out });
  const merged = loadHfDirectory(out).weights;
  assert.deepEqual(merged.get('model.embed_tokens.weight')!.data, newEmb.data);
  const l0 = attached[0]!, W = loadHfDirectory(baseDir).weights.get(`${l0.path}.weight`)!.data, M = merged.get(`${l0.path}.weight`)!.data;
  const inF = l0.inFeatures;
  let d = 0;
  for (let k = 0; k < 4; k++) d += l0.lora!.B.data[k]! * l0.lora!.A.data[k * inF]!;
  assert.ok(Math.abs(W[0]! + (6 / Math.sqrt(4)) * d - M[0]!) < 1e-6, 'element [0,0] merged with α/√r');
  // The tiny model ties its LM head to the embeddings: a saved lm_head has nowhere to go and is refused.
  savePeftAdapter(run, base.model.linears(), lora, 'llama', baseDir, { saved: new Map([['lm_head.weight', newEmb]]) });
  await assert.rejects(importRun(run, { out: join(tmp('dpo-imported-lm-head-'), 'run') }), /modules_to_save weight lm_head\.weight is not a weight of the base model .* \(its LM head is tied to the embeddings\)/);
});

test('an adapter run inside its job folder (JOB/output) merges into the job\'s model/ without --base', async () => {
  const jobDir = tmp('trl-job-');
  mkdirSync(join(jobDir, 'model'));
  for (const f of readdirSync(baseDir)) copyFileSync(join(baseDir, f), join(jobDir, 'model', f));
  const run = join(jobDir, 'output');
  mkdirSync(run);
  const base = await loadModelAndTokenizer(baseDir);
  attachLora(base.model.linears(), { r: 2, alpha: 4, dropout: 0, targetModules: ['q_proj'] }, 1);
  savePeftAdapter(run, base.model.linears(), { r: 2, alpha: 4, dropout: 0, targetModules: ['q_proj'] }, 'llama', '/cluster/job/model');
  writeTrainerState(run);
  writeFileSync(join(run, 'dpo_ts_job.json'), JSON.stringify({ trainer: 'dpo', trl_version: '1.9.0', model: { ref: 'model', hub: false, source: 'x' }, import: {} }));
  const res = await importRun(run, { out: join(tmp('dpo-imported-injob-'), 'run') });
  assert.deepEqual([res.kind, res.merged, res.base], ['adapter', true, join(jobDir, 'model')]);
  // A hub model is never guessed from the folder.
  writeFileSync(join(run, 'dpo_ts_job.json'), JSON.stringify({ trainer: 'dpo', model: { ref: 'org/name', hub: true }, import: {} }));
  await assert.rejects(importRun(run, { out: join(tmp('dpo-imported-injob-hub-'), 'run') }), /is not on this machine; pass --base/);
});

test('a run stopped before its final save imports from its newest checkpoint; garbage is refused', async () => {
  const { run: finished } = fullRun();
  const run = tmp('trl-run-stopped-');
  for (const step of [1, 3]) {
    const ck = join(run, `checkpoint-${step}`);
    mkdirSync(ck);
    for (const f of readdirSync(finished)) if (!f.startsWith('checkpoint')) copyFileSync(join(finished, f), join(ck, f));
    writeTrainerState(ck, step);
  }
  const res = await importRun(run, { out: join(tmp('dpo-imported-stopped-'), 'run') });
  assert.equal(res.modelSource, join(run, 'checkpoint-3'));
  assert.equal(res.globalStep, 3);
  const empty = tmp('trl-run-empty-');
  await assert.rejects(importRun(empty, { out: join(empty, 'x') }), /neither a finished model/);
  const broken = tmp('trl-run-broken-');
  copyFileSync(join(finished, 'config.json'), join(broken, 'config.json'));
  writeFileSync(join(broken, 'trainer_state.json'), '{"log_history": 3}');
  await assert.rejects(importRun(broken, { out: join(tmp('x-'), 'run') }), /log_history is missing or not a list/);
});

test('dpo import-run on the command line', async () => {
  const { run } = fullRun();
  const out = join(tmp('dpo-imported-cli-'), 'run');
  await buildProgram().parseAsync(['node', 'dpo', 'import-run', run, '--out', out, '--quiet'], { from: 'node' });
  assert.ok(existsSync(join(out, 'metrics.jsonl')));
  await assert.rejects(buildProgram().parseAsync(['node', 'dpo', 'import-run', run, '--out', out, '--quiet'], { from: 'node' }), /not empty/);
  await assert.rejects(buildProgram().parseAsync(['node', 'dpo', 'import-run', run, '--out', join(out, 'y'), '--dtype', 'f16'], { from: 'node' }), /--dtype must be/);
});
