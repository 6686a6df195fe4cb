// Training-state hardening: the reference log-prob cache's inputs (each one invalidates alone),
// config checks (aot_unpaired, Mistral's sliding window), bco_pair's running mean in training
// with its state across a resume, and kill + resume across an epoch boundary with gradient
// accumulation, LoRA and dropout (weights, optimizer state and metrics.jsonl identical).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { llamaConfig, parseModelConfig, type ModelConfig } from '../src/io/config.js';
import { createModel, randomModel } from '../src/models/index.js';
import { kernels, nativeKernels, referenceKernels, setKernels } from '../src/tensor/backend.js';
import type { TokenizedPair } from '../src/data/tokenize.js';
import { precomputeReferenceLogps } from '../src/train/dpo.js';
import { parseDpoConfig } from '../src/train/config.js';

const tmp = (p: string): string => mkdtempSync(join(tmpdir(), p));

const CFG: ModelConfig = llamaConfig({
  vocabSize: 64, hiddenSize: 16, intermediateSize: 32, numLayers: 1, numHeads: 4, numKvHeads: 2, maxPositions: 64,
  tieWordEmbeddings: true, bosTokenId: 1, eosTokenId: [0],
});

function pairs(n: number, shift = 0): TokenizedPair[] {
  return Array.from({ length: n }, (_, i) => ({
    index: i, loc: { file: 'mem', line: i + 1 } as TokenizedPair['loc'],
    promptIds: [1, 2 + i, 3], chosenIds: [4 + ((i + shift) % 50), 5, 0], rejectedIds: [6 + i, 0],
    promptTruncated: false, chosenTruncated: false, rejectedTruncated: false,
  }));
}

test('reference cache: weights, data, batching, model config, backend, kernel, threads, version and checksum each invalidate it alone', () => {
  const dir = tmp('dpo-refcache-');
  const model = randomModel(CFG, 3);
  const data = pairs(6);
  const order = [[0, 1, 2], [3, 4, 5]];
  const run = (m = model, d = data, o: number[][] = order, pad?: number) => precomputeReferenceLogps(m, d, o, 0, pad, dir, true);
  const first = run();
  assert.deepEqual([first.hit, first.stale], [false, null]);
  const again = run();
  assert.equal(again.hit, true);
  assert.deepEqual(again.chosen, first.chosen);

  // Inputs that name the file: another entry, computed fresh.
  const otherWeights = createModel(CFG, new Map([...model.exportWeights()].map(([k, w]) => [k, { ...w, data: w.data.map((x, i) => (i === 0 ? x + 1 : x)) }])));
  for (const [what, r] of [
    ['weights', run(otherWeights)],
    ['token ids', run(model, pairs(6, 1))],
    ['batch composition', run(model, data, [[0, 1], [2, 3, 4, 5]])],
    ['padding multiple', run(model, data, order, 8)],
  ] as const) {
    assert.equal(r.hit, false, `${what} changed: cache used`);
    assert.notEqual(r.path, first.path, what);
  }

  // Inputs kept in the header: same file, refused with the input named, then replaced.
  const withConfig = (patch: Partial<ModelConfig>) => createModel({ ...CFG, ...patch }, model.exportWeights());
  const cases: [string, () => ReturnType<typeof run>, RegExp][] = [
    ['rope_theta', () => run(withConfig({ ropeTheta: 5e5 })), /model config ropeTheta: 10000 → 500000/],
    ['rope scaling', () => run(withConfig({ ropeScaling: { type: 'linear', factor: 2 } })), /model config ropeScaling: null → \{"type":"linear","factor":2\}/],
    ['norm eps', () => run(withConfig({ normEps: 1e-3 })), /model config normEps: [0-9.e-]+ → 0\.001/],
    ['head counts', () => run(withConfig({ numHeads: 2, numKvHeads: 1, headDim: 8 })), /model config numHeads: 4 → 2; model config numKvHeads: 2 → 1; model config headDim: 4 → 8/],
    ['activation', () => run(withConfig({ activation: 'gelu' })), /model config activation: "silu" → "gelu"/],
    ['config.json', () => run(withConfig({ raw: { ...CFG.raw, torch_dtype: 'bfloat16' } })), /configJson: /],
  ];
  const native = nativeKernels();
  if (native) {
    cases.push(['backend', () => {
      setKernels(referenceKernels);
      try {
        return run();
      } finally {
        setKernels(native);
      }
    }, /backend: "native" → "reference"/]);
    const threads = native.numThreads();
    cases.push(['threads', () => {
      native.setNumThreads(threads === 1 ? 2 : 1);
      try {
        return run();
      } finally {
        native.setNumThreads(threads);
      }
    }, new RegExp(`threads: ${threads} → ${threads === 1 ? 2 : 1}`)]);
  }
  for (const [what, f, msg] of cases) {
    run(); // the file matches the current inputs again
    const r = f();
    assert.equal(r.path, first.path, what);
    assert.equal(r.hit, false, `${what} changed: stale cache used`);
    assert.match(r.stale ?? '', msg, what);
  }

  // Inputs only a different build can change: the dpo-ts version and the GEMM kernel, as an
  // older version would have written them; and a damaged payload.
  run();
  // Rewrites the cache header's inputs as another build would have written them.
  const editInputs = (patch: Record<string, unknown>) => {
    const buf = readFileSync(first.path);
    const magic = buf.indexOf(10) + 1;
    const len = buf.readUInt32LE(magic);
    const header = JSON.parse(buf.subarray(magic + 4, magic + 4 + len).toString('utf8'));
    header.inputs = { ...header.inputs, ...patch };
    const h = Buffer.from(JSON.stringify(header));
    const l = Buffer.alloc(4);
    l.writeUInt32LE(h.length);
    writeFileSync(first.path, Buffer.concat([buf.subarray(0, magic), l, h, buf.subarray(magic + 4 + len)]));
  };
  editInputs({ dpoTs: '0.0.1' });
  assert.match(run().stale ?? '', /dpoTs: "0\.0\.1" → "\d+\.\d+\.\d+"/);
  editInputs({ nativeAddon: 'deadbeef' });
  assert.match(run().stale ?? '', /nativeAddon: "deadbeef" → /);
  if (native) {
    editInputs({ gemmKernel: 'portable-old' });
    assert.match(run().stale ?? '', /gemmKernel: "portable-old" → "/);
  }
  const ok = readFileSync(first.path);
  ok[ok.length - 1] ^= 1;
  writeFileSync(first.path, ok);
  assert.match(run().stale ?? '', /checksum mismatch/);
  assert.equal(run().hit, true, 'rewritten after the mismatch');
  void kernels;
});

test('config: aot_unpaired (TRL v1.9 name) is accepted like aot_pair', () => {
  assert.equal(parseDpoConfig({ loss_type: 'aot_unpaired' }).loss_type, 'aot_unpaired');
  assert.deepEqual(parseDpoConfig({ loss_type: ['sigmoid', 'aot_unpaired'], loss_weights: [1, 0.5] }).loss_type, ['sigmoid', 'aot_unpaired']);
});

test("Mistral's sliding_window: sequences within it run, longer ones are refused (not silently computed as full attention)", () => {
  const raw = {
    architectures: ['MistralForCausalLM'], model_type: 'mistral', vocab_size: 64, hidden_size: 16, intermediate_size: 32,
    num_hidden_layers: 1, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, sliding_window: 8,
  };
  const cfg = parseModelConfig(raw);
  assert.equal(cfg.slidingWindow, 8);
  assert.equal(parseModelConfig({ ...raw, sliding_window: null }).slidingWindow, null);
  assert.equal(parseModelConfig({ ...raw, sliding_window: undefined }).slidingWindow, 4096, "transformers' default");
  assert.equal(parseModelConfig({ ...raw, architectures: ['LlamaForCausalLM'], model_type: 'llama' }).slidingWindow, null);
  const qwen = { ...raw, architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2' };
  assert.equal(parseModelConfig(qwen).slidingWindow, null, 'Qwen2 without use_sliding_window');
  assert.equal(parseModelConfig({ ...qwen, use_sliding_window: true }).slidingWindow, 8);
  const m = randomModel(cfg, 1);
  const ids = (n: number) => Int32Array.from({ length: n }, (_, i) => 1 + (i % 60));
  const targets = (n: number) => Int32Array.from({ length: n }, (_, i) => (i % 60) + 2);
  const lp = m.tokenLogprobs({ ids: ids(8), batch: 1, seq: 8 }, targets(8));
  assert.equal(lp.data.length, 8);
  assert.throws(() => m.tokenLogprobs({ ids: ids(9), batch: 1, seq: 9 }, targets(9)), /a sequence of 9 tokens is longer than the model's sliding_window \(8\)/);
  // Generation: prompt + cache positions count too.
  const cache = m.newCache(1, 16);
  m.forwardCached(ids(8), 8, cache, null);
  assert.throws(() => m.forwardCached(ids(1), 1, cache, null), /sliding_window \(8\)/);
});

// ---- kill + resume ----------------------------------------------------------------------------

const { makeTinyModelDir, syntheticPairs, writeJsonl } = await import('./fixtures/train/tiny.js');
const { runDpo } = await import('../src/train/dpo.js');
const { spawnSync } = await import('node:child_process');
const { existsSync, readdirSync } = await import('node:fs');
const modelDir = await makeTinyModelDir();
const dataDir = tmp('dpo-hard-data-');
const trainFile = writeJsonl(join(dataDir, 'train.jsonl'), syntheticPairs(20, 5));
const evalFile = writeJsonl(join(dataDir, 'eval.jsonl'), syntheticPairs(8, 6));
const DIST = new URL('../src/', import.meta.url).href;

/** Trains in a child process that SIGKILLs itself right after logging step `killAt`. */
function trainKilledAt(out: string, cfg: Record<string, unknown>, killAt: number): void {
  const code = `
    const { runDpo } = await import(${JSON.stringify(DIST + 'train/dpo.js')});
    const { parseDpoConfig } = await import(${JSON.stringify(DIST + 'train/config.js')});
    const [model, data, evalData, out, cfg, killAt] = process.argv.slice(1);
    await runDpo({ model, data: [data], evalData: [evalData], outputDir: out, quiet: true, config: parseDpoConfig(JSON.parse(cfg)),
      onLog: (r) => { if (r.step === Number(killAt) && !('eval/loss' in r)) process.kill(process.pid, 'SIGKILL'); } });`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code, modelDir, trainFile, evalFile, out, JSON.stringify(cfg), String(killAt)], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.signal, 'SIGKILL', `child was not killed: ${r.status} ${r.stderr}`);
}

const metricsOf = (dir: string) =>
  readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => {
    const rec = JSON.parse(l) as Record<string, number>;
    delete rec['tokens/s']; // wall-clock
    return rec;
  });

/** Uninterrupted run vs killed at `killAt` and resumed: same files, byte for byte. */
async function assertResumeIdentical(cfg: Record<string, unknown>, killAt: number, files: string[]): Promise<{ straight: string; killed: string }> {
  const straight = tmp('dpo-hard-straight-');
  await runDpo({ model: modelDir, data: [trainFile], evalData: [evalFile], outputDir: straight, quiet: true, config: parseDpoConfig(cfg) });
  const killed = tmp('dpo-hard-killed-');
  trainKilledAt(killed, cfg, killAt);
  const before = metricsOf(killed);
  assert.equal(before.filter((r) => !('eval/loss' in r)).at(-1)!.step, killAt, 'the child logged up to the kill');
  const resumed = await runDpo({ model: modelDir, data: [trainFile], evalData: [evalFile], outputDir: killed, quiet: true, resume: true, config: parseDpoConfig(cfg) });
  assert.equal(resumed.warnings.length, 0, resumed.warnings.join('\n'));
  for (const f of files) assert.ok(readFileSync(join(killed, f)).equals(readFileSync(join(straight, f))), `${f} differs after kill + resume`);
  assert.deepEqual(metricsOf(killed), metricsOf(straight), 'metrics.jsonl: no duplicated steps, same records');
  assert.equal(resumed.history.length, metricsOf(straight).filter((r) => !('eval/loss' in r)).length, 'history holds the whole run');
  return { straight, killed };
}

// 20 pairs in batches of 4 = 5 micro-batches per epoch; 2 per step: step 3 spans epochs 0 and 1,
// the checkpoint at step 4 is mid-epoch 1, the kill at step 6 is after epoch 2 began, and the
// log window (every 3 steps) is open at the checkpoint.
const resumeCfg = {
  learning_rate: 1e-2, beta: 0.1, per_device_train_batch_size: 4, per_device_eval_batch_size: 8, gradient_accumulation_steps: 2,
  num_train_epochs: 3, max_length: 48, max_prompt_length: 24, logging_steps: 3, eval_steps: 3, save_steps: 4, seed: 11,
  lr_scheduler_type: 'linear', warmup_ratio: 0.2,
};

test('kill (SIGKILL) + resume across an epoch boundary with gradient accumulation, LoRA and dropout: weights, optimizer state and metrics.jsonl identical', async () => {
  const cfg = { ...resumeCfg, use_peft: true, lora_r: 4, lora_alpha: 8, lora_dropout: 0.2, disable_dropout: false };
  const ck = join('checkpoint-8');
  await assertResumeIdentical(cfg, 6, ['adapter_model.safetensors', join(ck, 'weights.safetensors'), join(ck, 'optimizer.safetensors'), join(ck, 'trainer_state.json')]);
});

test('bco_pair: the running-mean δ runs in training, is checkpointed, and resumes bit-identically', async () => {
  const cfg = { ...resumeCfg, loss_type: 'bco_pair' };
  const { killed } = await assertResumeIdentical(cfg, 6, ['model.safetensors', join('checkpoint-8', 'optimizer.safetensors'), join('checkpoint-8', 'trainer_state.json')]);
  const state = JSON.parse(readFileSync(join(killed, 'checkpoint-8', 'trainer_state.json'), 'utf8'));
  // One running-mean update per training micro-batch: 8 steps × 2.
  assert.equal(Math.round(state.lossState.count), 16);
  assert.notEqual(state.lossState.mean, 0);
  const logged = metricsOf(killed).filter((r) => 'bco_delta' in r && !('eval/loss' in r));
  assert.ok(logged.length >= 3 && logged.every((r) => r.bco_delta !== 0), 'δ logged and non-zero');
});

test('resume: metrics.jsonl is cut back to the checkpoint atomically, a torn last line dropped; another thread count or kernel warns', async () => {
  const { truncateMetrics } = await import('../src/train/loop.js');
  const dir = tmp('dpo-hard-trunc-');
  const p = join(dir, 'metrics.jsonl');
  writeFileSync(p, '{"loss":1,"step":2}\n{"eval/loss":1,"step":2}\n{"loss":1,"step":4}\n{"loss":0.5,"st');
  assert.deepEqual(truncateMetrics(p, 2).map((r) => r.step), [2, 2]);
  assert.equal(readFileSync(p, 'utf8'), '{"loss":1,"step":2}\n{"eval/loss":1,"step":2}\n');
  assert.deepEqual(readdirSync(dir), ['metrics.jsonl'], 'no temporary file left');

  const native = nativeKernels();
  if (!native || kernels() !== native) return;
  const cfg = { ...resumeCfg, max_steps: 4, save_steps: 2 };
  const out = tmp('dpo-hard-threads-');
  await runDpo({ model: modelDir, data: [trainFile], outputDir: out, quiet: true, stopAfterSteps: 2, config: parseDpoConfig(cfg) });
  const threads = native.numThreads();
  native.setNumThreads(threads === 1 ? 2 : 1);
  try {
    const r = await runDpo({ model: modelDir, data: [trainFile], outputDir: out, quiet: true, resume: true, config: parseDpoConfig(cfg) });
    assert.match(r.warnings.join('\n'), new RegExp(`written with ${threads} kernel threads, this run uses ${threads === 1 ? 2 : 1}`));
    assert.ok(existsSync(join(out, 'model.safetensors')));
  } finally {
    native.setNumThreads(threads);
  }
  // Another backend (or GEMM micro-kernel) warns the same way.
  const out2 = tmp('dpo-hard-kernels-');
  await runDpo({ model: modelDir, data: [trainFile], outputDir: out2, quiet: true, stopAfterSteps: 2, config: parseDpoConfig(cfg) });
  setKernels(referenceKernels);
  try {
    const r = await runDpo({ model: modelDir, data: [trainFile], outputDir: out2, quiet: true, resume: true, config: parseDpoConfig(cfg) });
    assert.match(r.warnings.join('\n'), /written with kernels native\/\w+, this run uses reference/);
  } finally {
    setKernels(native);
  }
});

// ---- one TRL version (v1.9.0) where versions differ ---------------------------------------------

test('TRL v1.9.0 semantics: sigmoid ignores label smoothing, rewards are β·log-ratios whenever a reference is used, simpo carries cpo_alpha·NLL', async () => {
  const { computePreferenceLoss, sftLoss } = await import('../src/losses/index.js');
  const f = (a: number[]) => Float64Array.from(a);
  const logps = {
    policyChosen: f([-12, -30, -8, -20]), policyRejected: f([-15, -25, -9, -28]),
    refChosen: f([-13, -29, -9, -21]), refRejected: f([-14, -26, -8.5, -27]),
    chosenTokens: [4, 10, 2, 5], rejectedTokens: [5, 8, 3, 7],
  };
  // sigmoid: −log σ(βh) whatever label_smoothing says (TRL v0.x's cDPO is gone).
  assert.equal(computePreferenceLoss('sigmoid', logps, { beta: 0.5, labelSmoothing: 0.2 }).loss, computePreferenceLoss('sigmoid', logps, { beta: 0.5 }).loss);
  // Rewards: the reference-based ones for any list that uses a reference, in any order.
  for (const types of [['simpo', 'sigmoid'], ['sigmoid', 'simpo'], ['orpo', 'ipo'], ['sft', 'hinge']]) {
    const r = computePreferenceLoss(types, logps, { beta: 0.5 });
    assert.deepEqual(Array.from(r.chosenRewards), Array.from(logps.policyChosen, (p, i) => 0.5 * (p - logps.refChosen[i]!)), types.join('+'));
    assert.deepEqual(Array.from(r.rejectedRewards), Array.from(logps.policyRejected, (p, i) => 0.5 * (p - logps.refRejected[i]!)), types.join('+'));
  }
  const noRef = { policyChosen: logps.policyChosen, policyRejected: logps.policyRejected, chosenTokens: logps.chosenTokens, rejectedTokens: logps.rejectedTokens };
  assert.deepEqual(Array.from(computePreferenceLoss('simpo', noRef, { beta: 0.5 }).chosenRewards), [-1.5, -1.5, -2, -2], 'reference-free: β·average');
  // SimPO as CPOTrainer(loss_type="simpo") computes it: cpo_alpha (default 1) · token-mean chosen NLL added.
  const pure = computePreferenceLoss('simpo', noRef, { beta: 2, simpoGamma: 0.5, cpoAlpha: 0 });
  const cpo = computePreferenceLoss('simpo', noRef, { beta: 2, simpoGamma: 0.5 });
  const nll = sftLoss(noRef.policyChosen, noRef.chosenTokens).loss;
  assert.equal(pure.nll, undefined);
  assert.equal(cpo.nll, nll);
  assert.ok(Math.abs(cpo.loss - (pure.loss + nll)) < 1e-12);
  const half = computePreferenceLoss('simpo', noRef, { beta: 2, simpoGamma: 0.5, cpoAlpha: 0.5 });
  assert.ok(Math.abs(half.loss - (pure.loss + 0.5 * nll)) < 1e-12);
});

test('config: label_smoothing that no chosen loss uses, and exo_pair without it, are errors; cpo_alpha is an option', () => {
  assert.throws(() => parseDpoConfig({ loss_type: 'sigmoid', label_smoothing: 0.1 }), /label_smoothing 0\.1 with loss_type sigmoid: TRL v1\.9\.0's sigmoid loss has no label smoothing/);
  assert.throws(() => parseDpoConfig({ loss_type: ['hinge', 'ipo'], label_smoothing: 0.1 }), /label_smoothing 0\.1 acts only with loss_type robust, exo_pair, aot, aot_pair, aot_unpaired, simpo/);
  assert.throws(() => parseDpoConfig({ loss_type: 'sigmoid', cpo_alpha: 0 }), /cpo_alpha acts only with loss_type simpo/);
  assert.equal(parseDpoConfig({ loss_type: ['hinge', 'robust'], label_smoothing: 0.1 }).label_smoothing, 0.1);
  assert.throws(() => parseDpoConfig({ loss_type: 'exo_pair' }), /exo_pair needs label_smoothing > 0 \(the EXO paper recommends 1e-3\)/);
  assert.equal(parseDpoConfig({ loss_type: 'exo_pair', label_smoothing: 1e-3 }).label_smoothing, 1e-3);
  assert.equal(parseDpoConfig({ loss_type: 'simpo' }).cpo_alpha, 1);
  assert.equal(parseDpoConfig({ loss_type: 'simpo', cpo_alpha: 0 }).cpo_alpha, 0);
});

test('precomputed reference log-probs use the training loop\'s first-epoch batches, group_by_length included, and equal the live reference there', async () => {
  const cfg = { ...resumeCfg, gradient_accumulation_steps: 1, num_train_epochs: 1, logging_steps: 1, eval_steps: 0, save_steps: 0, group_by_length: true };
  const cacheDir = tmp('dpo-hard-cache-');
  const live = await runDpo({ model: modelDir, data: [trainFile], outputDir: tmp('dpo-hard-live-'), quiet: true, config: parseDpoConfig(cfg) });
  const pre = await runDpo({ model: modelDir, data: [trainFile], outputDir: tmp('dpo-hard-pre-'), quiet: true, cacheDir, config: parseDpoConfig({ ...cfg, precompute_ref_log_probs: true }) });
  for (const k of ['loss', 'rewards/chosen', 'rewards/rejected', 'rewards/margins']) {
    assert.deepEqual(pre.history.map((h) => h[k]), live.history.map((h) => h[k]), k);
  }
  // The cache entry is the one for the sampler's length-grouped batches (the file name is a
  // fingerprint of the batches): asking for exactly those finds it.
  const { loadModelAndTokenizer } = await import('../src/io/load-model.js');
  const { preparePreferenceData } = await import('../src/data/prepare.js');
  const { BatchSampler } = await import('../src/data/batch.js');
  const { model, tokenizer } = await loadModelAndTokenizer(modelDir);
  const { pairs: tp } = await preparePreferenceData([trainFile], tokenizer!, { maxLength: 48, maxPromptLength: 24, truncationMode: 'keep_end', onBadRow: 'error' });
  const lengths = tp.map((p) => p.promptIds.length + Math.max(p.chosenIds.length, p.rejectedIds.length));
  const grouped = new BatchSampler(tp.length, { batchSize: 4, seed: 11, lengths }).epochBatches(0);
  const plain = new BatchSampler(tp.length, { batchSize: 4, seed: 11 }).epochBatches(0);
  assert.notDeepEqual(grouped, plain, 'grouping changes the batches');
  const r = precomputeReferenceLogps(model, tp, grouped, tokenizer!.padId, undefined, join(cacheDir, 'ref-logps'), true);
  assert.equal(r.hit, true, 'the precomputed cache was made from the length-grouped batches');
});
