// Finite-difference gradient checks (float64, reference backend) for every op of the tensor layer,
// plus tape behaviour: accumulation, noGrad, early release, errors naming op and shapes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../src/tensor/index.js';
import { Tensor } from '../src/tensor/index.js';
import { mulberry32 as rng } from './helpers/rng.js';

function randn(shape: number[], r: () => number, scale = 1): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const d = new Float64Array(n);
  for (let i = 0; i < n; i++) d[i] = (r() * 2 - 1) * scale;
  return T.tensor(d, shape, { dtype: 'float64', requiresGrad: true });
}

/**
 * Checks d(Σ w·f(inputs))/d inputs against central differences for every input element.
 * w is a fixed random weighting so every output element matters.
 */
function gradCheck(name: string, f: (...xs: Tensor[]) => Tensor, inputs: Tensor[], opts: { h?: number; tol?: number } = {}): void {
  const h = opts.h ?? 1e-6, tol = opts.tol ?? 1e-6;
  const r = rng(99);
  const out0 = T.noGrad(() => f(...inputs));
  const w = new Float64Array(out0.size);
  for (let i = 0; i < w.length; i++) w[i] = r() * 2 - 1;
  const lossOf = (): number => {
    const o = T.noGrad(() => f(...inputs));
    let s = 0;
    for (let i = 0; i < o.size; i++) s += o.data[i]! * w[i]!;
    return s;
  };
  for (const x of inputs) x.grad = null;
  const out = f(...inputs);
  T.backward(out, w);
  for (const [xi, x] of inputs.entries()) {
    if (!x.requiresGrad) continue;
    assert.ok(x.grad, `${name}: input ${xi} got no gradient`);
    for (let i = 0; i < x.size; i++) {
      const orig = x.data[i]!;
      x.data[i] = orig + h;
      const lp = lossOf();
      x.data[i] = orig - h;
      const lm = lossOf();
      x.data[i] = orig;
      const num = (lp - lm) / (2 * h);
      const ana = x.grad![i]!;
      const err = Math.abs(num - ana) / Math.max(1, Math.abs(num), Math.abs(ana));
      assert.ok(err < tol, `${name}: input ${xi} element ${i}: analytic ${ana} vs numeric ${num} (err ${err})`);
    }
  }
}

const r = rng(1);

test('grad: elementwise with broadcasting', () => {
  const a = randn([3, 4], r), b = randn([4], r), c = randn([3, 1], r);
  gradCheck('add', T.add, [a, b]);
  gradCheck('sub', T.sub, [a, c]);
  gradCheck('mul', T.mul, [a, b]);
  const pos = T.tensor(Float64Array.from({ length: 4 }, () => 1 + r()), [4], { dtype: 'float64', requiresGrad: true });
  gradCheck('div', T.div, [a, pos]);
  gradCheck('affine', (x) => T.affine(x, 1.7, 0.3), [a]);
});

test('grad: unary functions', () => {
  const a = randn([2, 5], r, 3);
  for (const [name, f] of Object.entries({ exp: T.exp, sigmoid: T.sigmoid, logSigmoid: T.logSigmoid, tanh: T.tanh, square: T.square })) {
    gradCheck(name, f, [a]);
  }
  const p = T.tensor(Float64Array.from({ length: 6 }, () => 0.5 + r()), [6], { dtype: 'float64', requiresGrad: true });
  gradCheck('log', T.log, [p]);
  gradCheck('sqrt', T.sqrt, [p]);
});

test('grad: reductions, views and copies', () => {
  const a = randn([2, 3, 4], r);
  gradCheck('sumAll', T.sumAll, [a]);
  gradCheck('meanAll', T.meanAll, [a]);
  for (const d of [0, 1, 2]) {
    gradCheck(`sum(${d})`, (x) => T.sum(x, d), [a]);
    gradCheck(`mean(${d}, keepdim)`, (x) => T.mean(x, d, true), [a]);
  }
  gradCheck('reshape', (x) => T.mul(T.reshape(x, [6, 4]), T.reshape(x, [6, -1])), [a]);
  gradCheck('permute', (x) => T.permute(x, [2, 0, 1]), [a]);
  gradCheck('transpose', (x) => T.transpose(x, 0, 2), [a]);
  gradCheck('narrow(1)', (x) => T.narrow(x, 1, 1, 2), [a]);
  gradCheck('narrowRows', (x) => T.narrowRows(x, 1, 1), [a]);
  const b = randn([2, 2, 4], r);
  gradCheck('concat', (x, y) => T.concat([x, y], 1), [a, b]);
});

test('grad: matmul, all transposes, batched and broadcast', () => {
  const M = 3, K = 4, N = 5;
  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      const a = randn(transA ? [2, K, M] : [2, M, K], r);
      const b = randn(transB ? [N, K] : [K, N], r);
      gradCheck(`matmul broadcast tA=${transA} tB=${transB}`, (x, y) => T.matmul(x, y, { transA, transB }), [a, b]);
      const bb = randn(transB ? [2, N, K] : [2, K, N], r);
      gradCheck(`matmul batched tA=${transA} tB=${transB}`, (x, y) => T.matmul(x, y, { transA, transB }), [a, bb]);
    }
  }
  const x = randn([2, 3, 4], r), w = randn([5, 4], r), bias = randn([5], r);
  gradCheck('linear', (xx, ww, bb) => T.linear(xx, ww, bb), [x, w, bias]);
  gradCheck('addRowVector', (xx, bb) => T.addRowVector(xx, bb), [x, randn([4], r)]);
});

test('grad: transformer ops', () => {
  const table = randn([7, 3], r);
  const ids = Int32Array.from([1, 4, 1, 6, 0]);
  gradCheck('embedding', (t) => T.embedding(t, ids, [5]), [table]);
  const x = randn([4, 6], r), w = randn([6], r), b = randn([6], r);
  gradCheck('rmsnorm', (xx, ww) => T.rmsnorm(xx, ww, 1e-5), [x, w]);
  gradCheck('layernorm', (xx, ww, bb) => T.layernorm(xx, ww, bb, 1e-5), [x, w, b]);
  const q = randn([2, 3, 2, 4], r);
  const inv = [1, 0.1];
  const { cos, sin } = T.makeRopeTables(16, inv);
  const pos = Int32Array.from([0, 1, 2, 5, 6, 7]);
  gradCheck('rope', (t) => T.rope(t, cos, sin, pos), [q]);
  const qa = randn([2, 5, 4, 3], r), ka = randn([2, 5, 2, 3], r), va = randn([2, 5, 2, 3], r);
  gradCheck('attention (GQA)', (a, b2, c) => T.attention(a, b2, c), [qa, ka, va]);
  gradCheck('attention (kvStart)', (a, b2, c) => T.attention(a, b2, c, { kvStart: Int32Array.from([0, 2]) }), [qa, ka, va]);
  // Three sequences of lengths 3, 1, 4 packed in one row of 8 tokens.
  const qp = randn([1, 8, 4, 3], r), kp = randn([1, 8, 2, 3], r), vp = randn([1, 8, 2, 3], r);
  gradCheck('packedAttention (GQA)', (a, b2, c) => T.packedAttention(a, b2, c, Int32Array.from([3, 1, 4])), [qp, kp, vp]);
  const z = randn([3, 5], r, 2);
  gradCheck('silu', T.silu, [z]);
  gradCheck('geluTanh', T.geluTanh, [z]);
  gradCheck('gelu', T.gelu, [z]);
  gradCheck('swiglu', T.swiglu, [z, randn([3, 5], r)]);
  gradCheck('softmax', T.softmax, [z]);
  const targets = Int32Array.from([2, -1, 4]);
  gradCheck('logSoftmaxGather', (l) => T.logSoftmaxGather(l, targets), [z]);
  const h = randn([5, 3], r), W = randn([7, 3], r);
  const t5 = Int32Array.from([6, 0, -1, 3, 3]);
  gradCheck('lmHeadLogprobs (chunked)', (hh, ww) => T.lmHeadLogprobs(hh, ww, t5, { chunkRows: 2 }), [h, W]);
  gradCheck('lmHeadLogprobs (one chunk)', (hh, ww) => T.lmHeadLogprobs(hh, ww, t5, { chunkRows: 16 }), [h, W]);
});

test('lmHeadLogprobs equals logSoftmaxGather of the full logits', () => {
  const h = randn([6, 4], r), W = randn([9, 4], r);
  const t = Int32Array.from([0, 8, 3, -1, 2, 2]);
  const fused = T.noGrad(() => T.lmHeadLogprobs(h, W, t, { chunkRows: 4 }));
  const full = T.noGrad(() => T.logSoftmaxGather(T.matmul(h, W, { transB: true }), t));
  for (let i = 0; i < 6; i++) assert.ok(Math.abs(fused.data[i]! - full.data[i]!) < 1e-12);
  assert.equal(fused.data[3], 0);
  // meanLogits: each row's mean logit over the vocabulary.
  const means = new Float64Array(6);
  T.noGrad(() => T.lmHeadLogprobs(h, W, t, { meanLogits: means }));
  const logits = T.noGrad(() => T.matmul(h, W, { transB: true }));
  for (let i = 0; i < 6; i++) {
    let m = 0;
    for (let v = 0; v < 9; v++) m += logits.data[i * 9 + v]! / 9;
    assert.ok(Math.abs(means[i]! - m) < 1e-12, `row ${i}: ${means[i]} vs ${m}`);
  }
});

test('tape: gradients accumulate across uses and backward calls', () => {
  const x = T.tensor([1, 2, 3], [3], { dtype: 'float64', requiresGrad: true });
  const y = T.sumAll(T.add(T.mul(x, x), x)); // Σ x² + x → 2x + 1
  T.backward(y);
  assert.deepEqual(Array.from(x.grad!), [3, 5, 7]);
  const y2 = T.sumAll(x);
  T.backward(y2);
  assert.deepEqual(Array.from(x.grad!), [4, 6, 8]);
  T.zeroGrad([x]);
  assert.equal(x.grad, null);
});

test('tape: noGrad records nothing and backward then refuses', () => {
  const x = T.tensor([1, 2], [2], { requiresGrad: true });
  const y = T.noGrad(() => T.sumAll(T.mul(x, x)));
  assert.equal(y.requiresGrad, false);
  assert.equal(y.node, null);
  assert.throws(() => T.backward(y), /does not require grad/);
});

test('tape: saved activations are released after backward', () => {
  const x = T.tensor(Float32Array.from({ length: 64 }, (_, i) => i / 64), [8, 8], { requiresGrad: true });
  const w = T.tensor(Float32Array.from({ length: 64 }, (_, i) => (i % 7) / 7), [8, 8], { requiresGrad: true });
  const h = T.matmul(x, w); // intermediate, saved by the next matmul
  const y = T.sumAll(T.matmul(h, w));
  assert.equal(h.data.length, 64);
  T.backward(y);
  assert.equal(h.data.length, 0, 'intermediate activation still held after backward');
  assert.equal(x.data.length, 64, 'leaf was released');
  assert.ok(x.grad && w.grad);
});

test('memory stats track allocation and release', () => {
  T.clearPool();
  const before = T.memoryStats().currentBytes;
  const t = T.zeros([1000]);
  assert.equal(T.memoryStats().currentBytes - before, 4000);
  assert.ok(T.memoryStats().peakBytes >= before + 4000);
  t.dispose();
  assert.equal(T.memoryStats().currentBytes, before);
  // A released buffer is reused.
  const u = T.empty([1000]);
  assert.equal(T.memoryStats().pooledBytes, 0);
  u.dispose();
});

test('errors name the op and both shapes', () => {
  const a = T.zeros([2, 3]), b = T.zeros([4, 5]);
  assert.throws(() => T.matmul(a, b), /matmul: inner dimensions differ: \[2, 3\] · \[4, 5\]/);
  assert.throws(() => T.add(a, b), /add: shapes \[2, 3\] and \[4, 5\] do not broadcast/);
  assert.throws(() => T.linear(a, b), /linear: weight \[4, 5\] does not fit input \[2, 3\]/);
  assert.throws(() => T.reshape(a, [4, 2]), /reshape: cannot reshape \[2, 3\]/);
  assert.throws(() => T.add(a, T.zeros([2, 3], 'float64')), /add: dtype mismatch/);
  assert.throws(() => T.embedding(T.zeros([4, 2]), Int32Array.from([5])), /embedding: id 5 at position 0 out of range \[0, 4\)/);
  assert.throws(() => T.rmsnorm(a, T.zeros([4]), 1e-5), /rmsnorm: weight \[4\] does not fit input \[2, 3\]/);
});
