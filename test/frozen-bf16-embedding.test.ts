// frozen_dtype: bfloat16 for embeddings (a LoRA base's token embedding, also its tied LM head):
// stored once as bf16, lookups give the bf16 values exactly, the LM head's log-probs and input
// gradients equal those of the float32 table rounded to bf16 under bf16 autocast (the bf16 GEMM
// rounds a float32 operand to the same bits), the cached-generation head too; trainable tensors and
// float32 export are refused. And the LM head's memory: keepLogits false (gradient checkpointing)
// recomputes the logits per chunk with the same values and gradients, and W's gradient accumulates
// in place (no V×d temporary).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../src/tensor/index.js';
import { withMatmulPrecision } from '../src/tensor/autocast.js';
import { bf16Storage, storeTensorAsBf16 } from '../src/tensor/bf16-ops.js';
import { lastLogits, storeFrozenEmbeddingsAsBf16, weightOf } from '../src/models/decoder.js';
import { randomModel } from '../src/models/index.js';
import { parseModelConfig } from '../src/io/config.js';
import { mulberry32 as rng } from './helpers/rng.js';

function rand(n: number, seed: number, s = 1): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => (r() * 2 - 1) * s);
}

/** The float32 values of x rounded to bf16 (round-to-nearest-even). */
const rounded = (x: Float32Array): Float32Array => T.bf16ToF32(T.f32ToBf16(x));

test('a frozen table stored as bf16: embedding rows are its bf16 values, exactly; trainable tensors are refused', () => {
  const V = 37, D = 13;
  const data = rand(V * D, 1);
  const table = T.tensor(data.slice(), [V, D], { name: 'model.embed_tokens.weight' });
  assert.throws(() => storeTensorAsBf16(T.tensor(data.slice(), [V, D], { requiresGrad: true, name: 'w' })), /only a frozen tensor/);
  assert.equal(storeTensorAsBf16(table), 2 * V * D);
  assert.equal(table.data.length, 0);
  assert.equal(storeTensorAsBf16(table), 0);  // already stored
  const ids = Int32Array.from([0, 36, 5, 5, 17, 2]);
  const out = T.embedding(table, ids, [2, 3]);
  assert.deepEqual(out.shape, [2, 3, D]);
  const want = rounded(data);
  for (let i = 0; i < ids.length; i++) assert.deepEqual(out.data.subarray(i * D, (i + 1) * D), want.subarray(ids[i]! * D, (ids[i]! + 1) * D));
  assert.throws(() => T.embedding(table, Int32Array.from([V])), /out of range/);
  assert.throws(() => weightOf(table), /stored as bf16.*cannot export/);
});

test('LM head over a bf16-stored W = the float32 W under bf16 autocast: log-probs, mean logits, dh, generation logits', () => {
  const N = 11, d = 24, V = 53;
  const w = rand(V * d, 2, 0.5), hData = rand(N * d, 3);
  const targets = Int32Array.from({ length: N }, (_, i) => (i === 4 ? -1 : (i * 7) % V));
  const g = rand(N, 4);
  const run = (W: T.Tensor): { lp: Float32Array; dh: Float32Array; means: Float32Array } => {
    const h = T.tensor(hData.slice(), [N, d], { requiresGrad: true });
    const means = new Float32Array(N);
    const lp = withMatmulPrecision('bf16', () => T.lmHeadLogprobs(h, W, targets, { meanLogits: means }));
    T.backward(lp, g);
    return { lp: Float32Array.from(lp.data), dh: Float32Array.from(h.grad!), means };
  };
  const ref = run(T.tensor(w.slice(), [V, d]));
  const W = T.tensor(w.slice(), [V, d], { name: 'lm_head.weight' });
  storeTensorAsBf16(W);
  const got = run(W);
  assert.deepEqual(got.lp, ref.lp);
  assert.deepEqual(got.dh, ref.dh);
  // Mean logits: h·mean(bf16(W)) — the float32 path averages the unrounded W, so compare to float64.
  const wr = rounded(w);
  for (let i = 0; i < N; i++) {
    let m = 0;
    for (let v = 0; v < V; v++) for (let j = 0; j < d; j++) m += hData[i * d + j]! * wr[v * d + j]! / V;
    assert.ok(Math.abs(got.means[i]! - m) < 1e-5, `row ${i}: ${got.means[i]} vs ${m}`);
  }
  // Cached generation's last-position logits use the bf16 GEMM on the stored bits.
  const h = T.tensor(hData.slice(), [N, d]);
  const a = lastLogits(h, 1, N, W);
  const b = withMatmulPrecision('bf16', () => {
    const out = new Float32Array(V);
    T.kernels().gemmBf16(false, true, 1, V, d, hData.subarray((N - 1) * d), 0, w, 0, out, 0, 1, 1, 0);
    return out;
  });
  assert.deepEqual(a, b);
});

test('storeFrozenEmbeddingsAsBf16: a LoRA base stores its tied embedding once; log-probs equal the rounded float32 model under autocast', () => {
  const cfg = parseModelConfig({
    architectures: ['LlamaForCausalLM'], vocab_size: 97, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2,
    num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, tie_word_embeddings: true,
  }, 'test');
  const a = randomModel(cfg, 3), b = randomModel(cfg, 3);
  // The float32 model with its embedding rounded to bf16 is what the bf16-stored one must equal.
  for (const m of [a, b]) for (const p of m.parameters().values()) p.requiresGrad = false;
  const embA = a.parameters().get('model.embed_tokens.weight')!;
  embA.data.set(rounded(embA.data as Float32Array));
  const bytes = storeFrozenEmbeddingsAsBf16(b);
  assert.equal(bytes, 2 * 97 * 32);  // tied: one tensor
  assert.ok(bf16Storage(b.parameters().get('model.embed_tokens.weight')!));
  const ids = Int32Array.from({ length: 2 * 9 }, (_, i) => (i * 13 + 5) % 97);
  const targets = Int32Array.from(ids, (x, i) => (i % 9 === 8 ? -1 : ids[i + 1]!));
  const lp = (m: typeof a): Float32Array => withMatmulPrecision('bf16', () => T.noGrad(() => Float32Array.from(m.tokenLogprobs({ ids, batch: 2, seq: 9 }, targets).data)));
  assert.deepEqual(lp(b), lp(a));
  // A trainable embedding (full fine-tune) is left alone.
  const c = randomModel(cfg, 3);
  assert.equal(storeFrozenEmbeddingsAsBf16(c), 0);
});

test('keepLogits false (checkpointing): chunks recomputed in backward, same values and gradients; dW accumulates in place', () => {
  const N = 40, d = 16, V = 29;
  const w = rand(V * d, 5), hData = rand(N * d, 6);
  const targets = Int32Array.from({ length: N }, (_, i) => (i % 5 === 0 ? -1 : (i * 3) % V));
  const g = rand(N, 7);
  const run = (opts: { keepLogits?: boolean; chunkRows?: number }, prior?: Float32Array) => {
    const h = T.tensor(hData.slice(), [N, d], { requiresGrad: true });
    const W = T.tensor(w.slice(), [V, d], { requiresGrad: true });
    if (prior) W.grad = prior.slice();
    const lp = T.lmHeadLogprobs(h, W, targets, opts);
    T.backward(lp, g);
    return { lp: Float32Array.from(lp.data), dh: Float32Array.from(h.grad!), dW: Float32Array.from(W.grad!) };
  };
  const kept = run({});
  const recomputed = run({ keepLogits: false });
  assert.deepEqual(recomputed.lp, kept.lp);
  assert.deepEqual(recomputed.dh, kept.dh);
  assert.deepEqual(recomputed.dW, kept.dW);
  // Several chunks: the same up to float32 rounding (the GEMM's blocking depends on the rows).
  const chunked = run({ keepLogits: false, chunkRows: 7 });
  for (let i = 0; i < N; i++) assert.ok(Math.abs(chunked.lp[i]! - kept.lp[i]!) <= 1e-6 * (1 + Math.abs(kept.lp[i]!)));
  for (let i = 0; i < kept.dh.length; i++) assert.ok(Math.abs(chunked.dh[i]! - kept.dh[i]!) <= 1e-6 * (1 + Math.abs(kept.dh[i]!)));
  for (let i = 0; i < kept.dW.length; i++) assert.ok(Math.abs(chunked.dW[i]! - kept.dW[i]!) <= 1e-6 * (1 + Math.abs(kept.dW[i]!)));
  // An existing gradient is added to (gradient accumulation), not overwritten.
  const prior = rand(V * d, 8);
  const acc = run({}, prior);
  for (let i = 0; i < kept.dW.length; i++) assert.ok(Math.abs(acc.dW[i]! - (prior[i]! + kept.dW[i]!)) <= 1e-6 * (1 + Math.abs(prior[i]!)));
});

test('addLinear (LoRA update): y + α·x·wᵀ and its gradients equal the composed ops; y consumed only when allowed', () => {
  const rows = 7, inF = 5, outF = 6, alpha = 0.75;
  const mk = (n: number, seed: number, shape: number[], requiresGrad = true) => T.tensor(Float64Array.from(rand(n, seed)), shape, { dtype: 'float64', requiresGrad });
  const g = Float64Array.from(rand(rows * outF, 14));
  const run = (fused: boolean) => {
    const x0 = mk(rows * 4, 10, [rows, 4]), W0 = mk(outF * 4, 11, [outF, 4]);
    const x = mk(rows * inF, 12, [rows, inF]), w = mk(outF * inF, 13, [outF, inF]);
    const y = T.linear(x0, W0);  // a fresh intermediate, as a LoRA layer's base output
    const out = fused ? T.addLinear(y, x, w, alpha, { consumeY: true }) : T.add(y, T.scale(T.linear(x, w), alpha));
    const value = Float64Array.from(out.data);
    if (fused) assert.equal(y.data.length, 0, 'y consumed');
    T.backward(out, g);
    return [value, x0.grad!, W0.grad!, x.grad!, w.grad!].map((b) => Float64Array.from(b));
  };
  const a = run(true), b = run(false);
  a.forEach((buf, i) => buf.forEach((v, j) => assert.ok(Math.abs(v - b[i]![j]!) < 1e-12, `part ${i}[${j}]: ${v} vs ${b[i]![j]}`)));
  // A leaf that wants a gradient, or a tensor a node saved, is copied, never taken over.
  const leaf = mk(rows * outF, 15, [rows, outF]);
  T.addLinear(leaf, mk(rows * inF, 16, [rows, inF]), mk(outF * inF, 17, [outF, inF]), alpha, { consumeY: true });
  assert.equal(leaf.data.length, rows * outF);
  const base = T.linear(mk(rows * 4, 18, [rows, 4]), mk(outF * 4, 19, [outF, 4]));
  T.mul(base, base);  // saves base for its backward
  T.addLinear(base, mk(rows * inF, 20, [rows, inF]), mk(outF * inF, 21, [outF, inF]), alpha, { consumeY: true });
  assert.equal(base.data.length, rows * outF);
});
