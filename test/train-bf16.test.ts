// bf16 autocast (`bf16: true`): the matmul op and its backward use the bf16 GEMM chosen at forward
// time, float32 is untouched outside the scope; DPO training in bf16 learns the same rule as
// float32 with losses within bf16 noise; the precision is restored after a run (also a failed
// one); reference log-probs cached under float32 are not reused under bf16.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../src/tensor/index.js';
import { kernels } from '../src/tensor/backend.js';
import { matmulPrecision, withMatmulPrecision, setMatmulPrecision } from '../src/tensor/autocast.js';
import { bf16Storage } from '../src/tensor/bf16-ops.js';
import { parseDpoConfig } from '../src/train/config.js';
import { runDpo } from '../src/train/dpo.js';
import { makeTinyModelDir, syntheticPairs, writeJsonl } from './fixtures/train/tiny.js';
import { mulberry32 as rng } from './helpers/rng.js';

const tmp = (p: string): string => mkdtempSync(join(tmpdir(), p));

function rand(n: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => r() * 2 - 1);
}

test('matmul under bf16 autocast: forward and backward are the bf16 GEMM, chosen at forward time', () => {
  const k = kernels();
  const M = 13, Kd = 37, N = 29;
  const A = rand(M * Kd, 1), B = rand(N * Kd, 2), G = rand(M * N, 3);
  const a = T.fromBuffer(A.slice(), [M, Kd], { requiresGrad: true });
  const b = T.fromBuffer(B.slice(), [N, Kd], { requiresGrad: true });
  assert.equal(matmulPrecision(), 'float32');
  const y = withMatmulPrecision('bf16', () => T.matmul(a, b, { transB: true }));
  assert.equal(matmulPrecision(), 'float32', 'restored after the scope');
  T.backward(y, G);  // outside the scope: the node still uses bf16
  const want = new Float32Array(M * N), ga = new Float32Array(M * Kd), gb = new Float32Array(N * Kd);
  k.gemmBf16(false, true, M, N, Kd, A, 0, B, 0, want, 0, 1, 1, 0);
  k.gemmBf16(false, false, M, Kd, N, G, 0, B, 0, ga, 0, 1, 1, 0);
  k.gemmBf16(true, false, N, Kd, M, G, 0, A, 0, gb, 0, 1, 1, 0);
  assert.deepEqual(y.data, want);
  assert.deepEqual(a.grad, ga);
  assert.deepEqual(b.grad, gb);
  // float32 outside the scope: the plain GEMM, which differs from the bf16 one.
  const f = T.noGrad(() => T.matmul(a, b, { transB: true }));
  const f32 = new Float32Array(M * N);
  k.gemm(false, true, M, N, Kd, A, 0, B, 0, f32, 0, 1, 1, 0);
  assert.deepEqual(f.data, f32);
  assert.notDeepEqual(f.data, want);
  // float64 tensors (the gradient-check oracle) are never autocast.
  const a64 = T.fromBuffer(Float64Array.from(A), [M, Kd]), b64 = T.fromBuffer(Float64Array.from(B), [N, Kd]);
  const y64 = withMatmulPrecision('bf16', () => T.noGrad(() => T.matmul(a64, b64, { transB: true })));
  const r64 = new Float64Array(M * N);
  T.referenceKernels.gemm(false, true, M, N, Kd, a64.data, 0, b64.data, 0, r64, 0, 1, 1, 0);
  assert.deepEqual(y64.data, r64);
  assert.throws(() => setMatmulPrecision('fp16' as 'bf16'), /expected 'float32' or 'bf16', got fp16/);
  // A throwing body restores the precision too.
  assert.throws(() => withMatmulPrecision('bf16', () => { throw new Error('boom'); }), /boom/);
  assert.equal(matmulPrecision(), 'float32');
});

const modelDir = await makeTinyModelDir();
const dataDir = tmp('bf16-data-');
const trainFile = writeJsonl(join(dataDir, 'train.jsonl'), syntheticPairs(96, 1));
const evalFile = writeJsonl(join(dataDir, 'eval.jsonl'), syntheticPairs(48, 2));
const base = {
  learning_rate: 3e-3, beta: 0.1, per_device_train_batch_size: 8, per_device_eval_batch_size: 16,
  max_length: 64, max_prompt_length: 32, logging_steps: 1, save_steps: 0, seed: 7, warmup_ratio: 0,
  lr_scheduler_type: 'constant', num_train_epochs: 1, eval_steps: 0,
} as const;

test('bf16: true DPO learns the preference rule as float32 does; step-1 loss within bf16 noise', async () => {
  const run = (bf16: boolean) => runDpo({
    model: modelDir, data: [trainFile], evalData: [evalFile], outputDir: tmp('bf16-out-'), quiet: true,
    config: parseDpoConfig({ ...base, max_steps: 36, bf16 }),
  });
  const f32 = await run(false);
  assert.equal(matmulPrecision(), 'float32');
  const bf = await run(true);
  assert.equal(matmulPrecision(), 'float32', 'runDpo restores the precision');
  assert.equal(bf.config.bf16, true);
  const accF = f32.evalHistory.at(-1)!['eval/rewards/accuracies']!, accB = bf.evalHistory.at(-1)!['eval/rewards/accuracies']!;
  assert.ok(accB >= 0.9, `bf16 held-out accuracy ${accB} (float32 ${accF})`);
  // Step 1: policy = reference, so the loss is ln 2 in both precisions whatever the rounding;
  // from step 2 the runs part by bf16 noise: the logged log-probs of step 1 differ (bf16 is on)
  // but by little: each per-sequence log-prob sums ~20 tokens whose logits carry a relative
  // error of a few 2⁻⁸ (one rounding of each operand per product, 2 layers): < 0.5 nats.
  const [f1, b1] = [f32.history[0]!, bf.history[0]!];
  assert.ok(Math.abs(f1.loss! - Math.LN2) < 1e-6 && Math.abs(b1.loss! - Math.LN2) < 1e-6);
  const dLogp = Math.abs(f1['logps/chosen']! - b1['logps/chosen']!);
  assert.ok(dLogp > 0 && dLogp < 0.5, `step-1 chosen log-prob differs by ${dLogp} nats`);
  for (const h of bf.history) assert.ok(Number.isFinite(h.loss!) && Number.isFinite(h.grad_norm!));
});

test('bf16: reference log-probs cached under float32 are not reused (the header names the precision)', async () => {
  const cacheDir = tmp('bf16-cache-');
  const cfg = { ...base, max_steps: 2, precompute_ref_log_probs: true };
  const f32 = await runDpo({ model: modelDir, data: [trainFile], outputDir: tmp('bf16-c1-'), quiet: true, cacheDir, config: parseDpoConfig(cfg) });
  assert.equal(f32.refCacheHit, false);
  const bf = await runDpo({ model: modelDir, data: [trainFile], outputDir: tmp('bf16-c2-'), quiet: true, cacheDir, config: parseDpoConfig({ ...cfg, bf16: true }) });
  assert.equal(bf.refCacheHit, false, 'a float32 cache must not serve a bf16 run');
  const again = await runDpo({ model: modelDir, data: [trainFile], outputDir: tmp('bf16-c3-'), quiet: true, cacheDir, config: parseDpoConfig({ ...cfg, bf16: true }) });
  assert.equal(again.refCacheHit, true);
  assert.deepEqual(again.history.map((h) => h.loss), bf.history.map((h) => h.loss));
});

test('a run that fails inside still restores float32', async () => {
  await assert.rejects(runDpo({ model: modelDir, data: [join(dataDir, 'missing.jsonl')], quiet: true, config: parseDpoConfig({ ...base, bf16: true }) }));
  assert.equal(matmulPrecision(), 'float32');
});

test('frozen_dtype: bfloat16 stores the reference copy and a LoRA base (embeddings included) once as bf16; losses as float32-stored within bf16 noise', async () => {
  for (const lora of [false, true]) {
    const cfg = { ...base, max_steps: 3, bf16: true, ...(lora ? { use_peft: true, lora_target_modules: ['q_proj', 'v_proj'] } : {}) };
    const f32 = await runDpo({ model: modelDir, data: [trainFile], outputDir: tmp('bf16-f1-'), quiet: true, config: parseDpoConfig(cfg) });
    const bf = await runDpo({ model: modelDir, data: [trainFile], outputDir: tmp('bf16-f2-'), quiet: true, config: parseDpoConfig({ ...cfg, frozen_dtype: 'bfloat16' }) });
    // Under autocast the products round float32 weights to the same bf16 values the stored ones
    // hold; what differs is the embedding lookup (the frozen token embedding is stored as bf16
    // too, its rows rounded by at most 2⁻⁸ relative): the losses agree to well within bf16 noise.
    assert.ok(Math.abs(bf.history[0]!.loss - Math.LN2) < 1e-4, `lora=${lora}: step-1 loss ${bf.history[0]!.loss}`);
    bf.history.forEach((h, i) => assert.ok(Math.abs(h.loss - f32.history[i]!.loss) < 1e-3, `lora=${lora} step ${i + 1}: ${h.loss} vs ${f32.history[i]!.loss}`));
    // The frozen weights really are bf16 only (LoRA: the base linears and embeddings of the returned model).
    if (lora) {
      const lin = bf.model.linears();
      assert.ok(lin.every((l) => l.weightBf16 !== null && l.weight.data.length === 0));
      for (const [name, t] of bf.model.parameters()) {
        if (/embed_tokens|lm_head/.test(name)) assert.ok(bf16Storage(t) && t.data.length === 0, name);
      }
    }
  }
  await assert.rejects(runDpo({ model: modelDir, data: [trainFile], quiet: true, config: parseDpoConfig({ ...base, frozen_dtype: 'bfloat16', sync_ref_model: true }) }),
    /frozen_dtype: bfloat16 cannot be used with sync_ref_model/);
});

test('frozen_dtype: bfloat16 with precompute_ref_log_probs: the reference is computed from the bf16-stored base (step 1 at ln 2)', async () => {
  for (const bf16 of [false, true]) {
    const cfg = { ...base, max_steps: 1, bf16, use_peft: true, lora_target_modules: ['q_proj', 'v_proj'], frozen_dtype: 'bfloat16', precompute_ref_log_probs: true };
    const r = await runDpo({ model: modelDir, data: [trainFile], outputDir: tmp('bf16-pre-'), cacheDir: tmp('bf16-cache-'), quiet: true, config: parseDpoConfig(cfg) });
    // Policy (adapters B = 0) = reference: the loss is ln 2 up to float32 summation.
    assert.ok(Math.abs(r.history[0]!.loss - Math.LN2) < 1e-6, `bf16=${bf16}: ${r.history[0]!.loss}`);
  }
});
