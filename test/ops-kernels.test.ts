// Non-GEMM kernels: gradient checks of the float64 reference (the oracle), native-vs-reference
// parity on awkward shapes, bit-identical native results for 1 and 2 threads, and error messages.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { referenceKernels } from '../src/tensor/backend.js';
import { Act, type ActKind, type Buf, type Kernels } from '../src/tensor/kernels.js';
import { Rng, randnF32, randnF64, randInt32 } from './helpers/rng.js';
import { numericGradient, dot, maxAbs, sub, toF32 } from './helpers/numeric.js';
import { assertClose, assertCloseScalar, assertBitIdentical } from './helpers/assert.js';
import { nativeForTests, spawnNode, wasmRerun } from './helpers/native.js';

const ref = referenceKernels;

const OPS: (keyof Kernels)[] = [
  'rmsnormForward', 'rmsnormBackward', 'layernormForward', 'layernormBackward', 'rope',
  'activationForward', 'activationBackward', 'swigluForward', 'swigluBackward', 'softmaxForward',
  'softmaxBackward', 'logSoftmaxGather', 'logSoftmaxGatherBackward', 'embeddingForward',
  'embeddingBackward', 'adamw', 'sumSquares', 'scale', 'add', 'mul', 'axpy',
];
const { native, skip: nativeSkip, mustFail } = nativeForTests(OPS);

const ACTS: [string, ActKind][] = [
  ['silu', Act.silu], ['geluTanh', Act.geluTanh], ['gelu', Act.gelu], ['relu', Act.relu],
];

// Gradient-check tolerance: central differences with h = 1e-6 in float64 are good to ~1e-9.
const GRAD = { rtol: 1e-6, atol: 1e-8 };

/** Tolerance for float32 native vs reference: relative, with a floor scaled to the array's size. */
function parity(expected: ArrayLike<number>, label: string, rtol = 1e-5): { rtol: number; atol: number; label: string } {
  return { rtol, atol: rtol * Math.max(1e-30, maxAbs(finite(expected))), label };
}
/**
 * The norms' dx = rstd·(w·dy − …) cancels when dim is tiny (dim 1: the exact dx is 0 or
 * w·dy·eps/(x² + eps)), so float32 is only accurate relative to the size of the terms,
 * max rstd·|w·dy| (or the largest |dx|, whichever is larger).
 */
function termScale(rstd: Float32Array, w: Float32Array, dy: Float32Array, rows: number, dim: number, floor: number): number {
  let m = floor;
  for (let r = 0; r < rows; r++) for (let j = 0; j < dim; j++) m = Math.max(m, rstd[r]! * Math.abs(w[j]! * dy[r * dim + j]!));
  return m;
}
function finite(x: ArrayLike<number>): number[] {
  return Array.from(x).filter((v) => Number.isFinite(v));
}

/** rope cos/sin tables [maxPos, half] for the usual inverse frequencies. */
function ropeTables(maxPos: number, headDim: number, theta = 10000): { cos: Float64Array; sin: Float64Array } {
  const half = headDim / 2;
  const cos = new Float64Array(maxPos * half);
  const sin = new Float64Array(maxPos * half);
  for (let p = 0; p < maxPos; p++) {
    for (let i = 0; i < half; i++) {
      const ang = p * Math.pow(theta, (-2 * i) / headDim);
      cos[p * half + i] = Math.cos(ang);
      sin[p * half + i] = Math.sin(ang);
    }
  }
  return { cos, sin };
}

// =============================================================================================
// 1. The reference in float64: finite-difference gradient checks and hand-computed values.

describe('reference kernels (float64): gradients and known values', () => {
  test('rmsnorm backward matches finite differences (dx, accumulated dweight)', () => {
    const rng = new Rng(1);
    const rows = 3, dim = 7, eps = 1e-5;
    const x = randnF64(rng, rows * dim), w = randnF64(rng, dim), G = randnF64(rng, rows * dim);
    const out = new Float64Array(rows * dim), rstd = new Float64Array(rows);
    const loss = (): number => {
      ref.rmsnormForward(x, w, out, rstd, rows, dim, eps);
      return dot(out, G);
    };
    const nx = numericGradient(loss, x), nw = numericGradient(loss, w);
    loss();
    const dx = new Float64Array(rows * dim);
    const dw0 = randnF64(rng, dim), dw = dw0.slice();
    ref.rmsnormBackward(G, x, w, rstd, dx, dw, rows, dim);
    assertClose(dx, nx, { ...GRAD, label: 'dx' });
    assertClose(sub(dw, dw0), nw, { ...GRAD, label: 'dweight (accumulated)' });
    // rstd is 1/sqrt(mean(x²) + eps)
    let ss = 0;
    for (let j = 0; j < dim; j++) ss += x[j]! * x[j]!;
    assertCloseScalar(rstd[0]!, 1 / Math.sqrt(ss / dim + eps), { rtol: 1e-14, label: 'rstd' });
  });

  test('layernorm backward matches finite differences (dx, dweight, dbias)', () => {
    const rng = new Rng(2);
    const rows = 4, dim = 5, eps = 1e-5;
    const x = randnF64(rng, rows * dim, 2), w = randnF64(rng, dim), b = randnF64(rng, dim);
    for (let i = 0; i < x.length; i++) x[i] = x[i]! + 3; // a large mean exercises the centring
    const G = randnF64(rng, rows * dim);
    const out = new Float64Array(rows * dim), mean = new Float64Array(rows), rstd = new Float64Array(rows);
    const loss = (): number => {
      ref.layernormForward(x, w, b, out, mean, rstd, rows, dim, eps);
      return dot(out, G);
    };
    const nx = numericGradient(loss, x), nw = numericGradient(loss, w), nb = numericGradient(loss, b);
    loss();
    const dx = new Float64Array(rows * dim);
    const dw0 = randnF64(rng, dim), dw = dw0.slice(), db0 = randnF64(rng, dim), db = db0.slice();
    ref.layernormBackward(G, x, w, mean, rstd, dx, dw, db, rows, dim);
    assertClose(dx, nx, { ...GRAD, label: 'dx' });
    assertClose(sub(dw, dw0), nw, { ...GRAD, label: 'dweight' });
    assertClose(sub(db, db0), nb, { ...GRAD, label: 'dbias' });
    // Normalized rows have mean 0 and variance 1/(1 + eps/var) before the affine part.
    const xs = x.slice(0, dim);
    const mu = xs.reduce((s, v) => s + v, 0) / dim;
    assertCloseScalar(mean[0]!, mu, { rtol: 1e-14, label: 'mean' });
  });

  test('rope: hand-computed rotation, inverse is the exact inverse and adjoint, gradient', () => {
    // One head, headDim 4 (pairs (0,2) and (1,3)), position 1 with angles a0 and a1.
    const a0 = 0.3, a1 = -1.1;
    const cos = new Float64Array([1, 1, Math.cos(a0), Math.cos(a1)]);
    const sin = new Float64Array([0, 0, Math.sin(a0), Math.sin(a1)]);
    const x = new Float64Array([1, 2, 3, 4]);
    const out = new Float64Array(4);
    ref.rope(x, out, cos, sin, new Int32Array([1]), 1, 1, 1, 4, false);
    const expected = [
      1 * Math.cos(a0) - 3 * Math.sin(a0), 2 * Math.cos(a1) - 4 * Math.sin(a1),
      3 * Math.cos(a0) + 1 * Math.sin(a0), 4 * Math.cos(a1) + 2 * Math.sin(a1),
    ];
    assertClose(out, expected, { rtol: 1e-15, atol: 1e-15, label: 'rotation' });
    ref.rope(x, out, cos, sin, new Int32Array([0]), 1, 1, 1, 4, false);
    assertClose(out, x, { rtol: 0, label: 'position 0 is the identity' });

    const rng = new Rng(3);
    const batch = 2, seq = 3, heads = 2, headDim = 6, maxPos = 9;
    const t = ropeTables(maxPos, headDim);
    const pos = randInt32(rng, batch * seq, 0, maxPos);
    const n = batch * seq * heads * headDim;
    const v = randnF64(rng, n), y = randnF64(rng, n);
    const fwd = new Float64Array(n), back = new Float64Array(n), yInv = new Float64Array(n);
    ref.rope(v, fwd, t.cos, t.sin, pos, batch, seq, heads, headDim, false);
    ref.rope(fwd, back, t.cos, t.sin, pos, batch, seq, heads, headDim, true);
    assertClose(back, v, { rtol: 1e-14, atol: 1e-14, label: 'inverse(rope(x)) = x' });
    ref.rope(y, yInv, t.cos, t.sin, pos, batch, seq, heads, headDim, true);
    assertCloseScalar(dot(fwd, y), dot(v, yInv), { rtol: 1e-13, label: '<rope(x), y> = <x, inverse(y)>' });
    // Gradient of Σ rope(x)·y is inverse(y).
    const g = numericGradient(() => {
      ref.rope(v, fwd, t.cos, t.sin, pos, batch, seq, heads, headDim, false);
      return dot(fwd, y);
    }, v);
    assertClose(yInv, g, { ...GRAD, label: 'rope gradient' });
    // In place (out = x) equals out of place.
    const inPlace = v.slice();
    ref.rope(inPlace, inPlace, t.cos, t.sin, pos, batch, seq, heads, headDim, false);
    ref.rope(v, fwd, t.cos, t.sin, pos, batch, seq, heads, headDim, false);
    assertClose(inPlace, fwd, { rtol: 0, label: 'in place' });
  });

  test('activations: known values', () => {
    const x = new Float64Array([1, -2.5, 0, -1]);
    const out = new Float64Array(4);
    ref.activationForward(Act.silu, x, out, 4);
    assertCloseScalar(out[0]!, 0.7310585786300049, { rtol: 1e-15, label: 'silu(1)' });
    ref.activationForward(Act.geluTanh, x, out, 4);
    assertCloseScalar(out[0]!, 0.8411919906082768, { rtol: 1e-14, label: 'geluTanh(1)' });
    assertCloseScalar(out[1]!, -0.015084266089998577, { rtol: 1e-12, label: 'geluTanh(-2.5)' });
    ref.activationForward(Act.gelu, x, out, 4);
    assertCloseScalar(out[0]!, 0.8413447460685429, { rtol: 1e-14, label: 'gelu(1)' });
    assertCloseScalar(out[3]!, -0.15865525393145707, { rtol: 1e-13, label: 'gelu(-1)' });
    ref.activationForward(Act.relu, x, out, 4);
    assert.deepEqual(Array.from(out), [1, 0, 0, 0]);
    // Far tails stay finite and accurate: gelu(-8) = -8·Φ(-8) ≈ -4.9e-15.
    const far = new Float64Array([-8]);
    ref.activationForward(Act.gelu, far, out, 1);
    assertCloseScalar(out[0]!, -8 * 6.22096057427178e-16, { rtol: 1e-9, label: 'gelu(-8)' });
  });

  for (const [name, kind] of ACTS) {
    test(`activation ${name}: backward matches finite differences`, () => {
      const rng = new Rng(10 + kind);
      const n = 40;
      const x = randnF64(rng, n, 2.5);
      if (kind === Act.relu) for (let i = 0; i < n; i++) if (Math.abs(x[i]!) < 1e-3) x[i] = 0.5; // off the kink
      const G = randnF64(rng, n), out = new Float64Array(n);
      const num = numericGradient(() => {
        ref.activationForward(kind, x, out, n);
        return dot(out, G);
      }, x);
      const dx = new Float64Array(n);
      ref.activationBackward(kind, x, G, dx, n);
      assertClose(dx, num, { ...GRAD, label: `${name} dx` });
      // dx may be dy
      const inPlace = G.slice();
      ref.activationBackward(kind, x, inPlace, inPlace, n);
      assertClose(inPlace, dx, { rtol: 0, label: `${name} dx = dy` });
    });
  }

  test('swiglu backward matches finite differences (dgate, dup)', () => {
    const rng = new Rng(4);
    const n = 33;
    const gate = randnF64(rng, n, 3), up = randnF64(rng, n), G = randnF64(rng, n), out = new Float64Array(n);
    const loss = (): number => {
      ref.swigluForward(gate, up, out, n);
      return dot(out, G);
    };
    const ng = numericGradient(loss, gate), nu = numericGradient(loss, up);
    const dg = new Float64Array(n), du = new Float64Array(n);
    ref.swigluBackward(gate, up, G, dg, du, n);
    assertClose(dg, ng, { ...GRAD, label: 'dgate' });
    assertClose(du, nu, { ...GRAD, label: 'dup' });
  });

  test('softmax: rows sum to 1, −Infinity entries get 0, backward matches finite differences', () => {
    const rng = new Rng(5);
    const rows = 3, cols = 6;
    const x = randnF64(rng, rows * cols, 3), G = randnF64(rng, rows * cols), y = new Float64Array(rows * cols);
    const num = numericGradient(() => {
      ref.softmaxForward(x, y, rows, cols);
      return dot(y, G);
    }, x);
    ref.softmaxForward(x, y, rows, cols);
    for (let r = 0; r < rows; r++) {
      assertCloseScalar(y.slice(r * cols, (r + 1) * cols).reduce((s, v) => s + v, 0), 1, { rtol: 1e-15, label: `row ${r} sum` });
    }
    const dx = new Float64Array(rows * cols);
    ref.softmaxBackward(y, G, dx, rows, cols);
    assertClose(dx, num, { ...GRAD, label: 'softmax dx' });
    // Large logits do not overflow; −Infinity is masked out; an all −Infinity row is all zeros.
    const m = new Float64Array([1000, 1000, -Infinity, -Infinity, -Infinity, -Infinity]);
    const o = new Float64Array(6);
    ref.softmaxForward(m, o, 2, 3);
    assert.deepEqual(Array.from(o), [0.5, 0.5, 0, 0, 0, 0]);
    // out may be x
    const inPlace = x.slice();
    ref.softmaxForward(inPlace, inPlace, rows, cols);
    assertClose(inPlace, y, { rtol: 0, label: 'in place' });
  });

  test('logSoftmaxGather: values, ignored rows, backward matches finite differences', () => {
    const rng = new Rng(6);
    const rows = 4, vocab = 7;
    const logits = randnF64(rng, rows * vocab, 3);
    const targets = new Int32Array([2, -1, 6, 0]);
    const G = randnF64(rng, rows);
    const logp = new Float64Array(rows), lse = new Float64Array(rows);
    const num = numericGradient(() => {
      ref.logSoftmaxGather(logits, targets, logp, lse, rows, vocab);
      return dot(logp, G);
    }, logits);
    ref.logSoftmaxGather(logits, targets, logp, lse, rows, vocab);
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let j = 0; j < vocab; j++) s += Math.exp(logits[r * vocab + j]!);
      assertCloseScalar(lse[r]!, Math.log(s), { rtol: 1e-14, label: `lse[${r}]` });
      const t = targets[r]!;
      assertCloseScalar(logp[r]!, t < 0 ? 0 : logits[r * vocab + t]! - Math.log(s), { rtol: 1e-14, atol: 0, label: `logp[${r}]` });
    }
    assert.equal(logp[1], 0, 'ignored row gives logp = 0');
    const dl = new Float64Array(rows * vocab).fill(123); // overwritten, including ignored rows
    ref.logSoftmaxGatherBackward(logits, targets, lse, G, dl, rows, vocab);
    assertClose(dl, num, { ...GRAD, label: 'dlogits' });
    assert.ok(dl.slice(vocab, 2 * vocab).every((v) => v === 0), 'ignored row gets zero gradient');
    // Stable for huge logits; −Infinity logits have zero probability and zero gradient.
    const big = new Float64Array([1e4, 1e4 - Math.log(3), -Infinity]);
    ref.logSoftmaxGather(big, new Int32Array([1]), logp, lse, 1, 3);
    assertCloseScalar(lse[0]!, 1e4 + Math.log(4 / 3), { rtol: 1e-15, label: 'lse of huge logits' });
    assertCloseScalar(logp[0]!, -Math.log(4), { rtol: 1e-12, label: 'logp of huge logits' });
    const dbig = new Float64Array(3);
    ref.logSoftmaxGatherBackward(big, new Int32Array([1]), lse, new Float64Array([1]), dbig, 1, 3);
    assertClose(dbig, [-0.75, 0.75, 0], { rtol: 1e-12, atol: 1e-15, label: 'dlogits of huge logits' });
  });

  test('embedding: backward accumulates in order over repeated ids and matches finite differences', () => {
    const rng = new Rng(7);
    const n = 6, dim = 3, V = 4;
    const ids = new Int32Array([1, 3, 1, 0, 1, 3]);
    const table = randnF64(rng, V * dim), G = randnF64(rng, n * dim), out = new Float64Array(n * dim);
    const num = numericGradient(() => {
      ref.embeddingForward(ids, table, out, n, dim);
      return dot(out, G);
    }, table);
    ref.embeddingForward(ids, table, out, n, dim);
    assert.deepEqual(Array.from(out.slice(3, 6)), Array.from(table.slice(9, 12)), 'row 1 is table row 3');
    const d0 = randnF64(rng, V * dim), d = d0.slice();
    ref.embeddingBackward(ids, G, d, n, dim);
    assertClose(sub(d, d0), num, { ...GRAD, label: 'dtable (accumulated)' });
    assert.ok(sub(d, d0).slice(2 * dim, 3 * dim).every((v) => v === 0), 'unused row 2 untouched');
  });

  test('adamw: two hand-computed steps with weight decay', () => {
    const lr = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1;
    const p = new Float64Array([1, -2, 0.5]), m = new Float64Array(3), v = new Float64Array(3);
    const g1 = new Float64Array([0.5, -1, 0]), g2 = new Float64Array([0.1, 2, -3]);
    const pe = [1, -2, 0.5], me = [0, 0, 0], ve = [0, 0, 0];
    for (const [t, g] of [[1, g1], [2, g2]] as const) {
      const bc1 = 1 - Math.pow(b1, t), bc2 = 1 - Math.pow(b2, t);
      ref.adamw(p, g, m, v, 3, lr, b1, b2, eps, wd, bc1, bc2);
      for (let i = 0; i < 3; i++) {
        me[i] = 0.9 * me[i]! + 0.1 * g[i]!;
        ve[i] = 0.999 * ve[i]! + 0.001 * g[i]! * g[i]!;
        const mhat = me[i]! / bc1, vhat = ve[i]! / bc2;
        pe[i] = pe[i]! - lr * mhat / (Math.sqrt(vhat) + eps) - lr * wd * pe[i]!;
      }
      assertClose(m, me, { rtol: 1e-15, label: `m after step ${t}` });
      assertClose(v, ve, { rtol: 1e-15, label: `v after step ${t}` });
      assertClose(p, pe, { rtol: 1e-14, label: `param after step ${t}` });
    }
    // First step of Adam moves each (nonzero-gradient) weight by about lr·sign(g), plus decay.
    const q = new Float64Array([1]);
    ref.adamw(q, new Float64Array([5]), new Float64Array(1), new Float64Array(1), 1, 0.01, 0.9, 0.999, 0, 0, 0.1, 0.001);
    assertCloseScalar(q[0]!, 0.99, { rtol: 1e-14, label: 'first step = lr·sign(g)' });
  });

  test('vector helpers: sumSquares, scale, add, mul (aliased), axpy', () => {
    const a = new Float64Array([1, -2, 3]), b = new Float64Array([0.5, 4, -1]);
    assert.equal(ref.sumSquares(a, 3), 14);
    assert.equal(ref.sumSquares(a, 2), 5, 'only the first n elements');
    const s = a.slice();
    ref.scale(s, 3, -2);
    assert.deepEqual(Array.from(s), [-2, 4, -6]);
    const o = new Float64Array(3);
    ref.add(a, b, o, 3);
    assert.deepEqual(Array.from(o), [1.5, 2, 2]);
    const m = a.slice();
    ref.mul(m, b, m, 3);
    assert.deepEqual(Array.from(m), [0.5, -8, -3]);
    const y = b.slice();
    ref.axpy(2, a, y, 3);
    assert.deepEqual(Array.from(y), [2.5, 0, 5]);
  });

  test('float32 buffers give float64 results rounded once (rmsnorm, logSoftmaxGather)', () => {
    const rng = new Rng(8);
    const rows = 5, dim = 61;
    const x = randnF64(rng, rows * dim), w = randnF64(rng, dim);
    const o64 = new Float64Array(rows * dim), r64 = new Float64Array(rows);
    const o32 = new Float32Array(rows * dim), r32 = new Float32Array(rows);
    ref.rmsnormForward(toF32(x), toF32(w), o32, r32, rows, dim, 1e-6);
    ref.rmsnormForward(Float64Array.from(toF32(x)), Float64Array.from(toF32(w)), o64, r64, rows, dim, 1e-6);
    assertClose(o32, o64, { rtol: 1e-7, atol: 1e-7 * maxAbs(o64), label: 'rmsnorm f32 vs f64' });
  });
});

// =============================================================================================
// 2. Native vs reference (float32).

const DIMS = [1, 3, 7, 61, 127, 769];
const ROWS = [1, 5, 130];

function nativeTest(name: string, fn: (k: Kernels) => void): void {
  test(name, { skip: nativeSkip }, () => fn(native!));
}

describe('native kernels vs reference (float32)', () => {
  test('native addon provides every kernel (required when CI is set)', { skip: !mustFail && nativeSkip }, () => {
    assert.ok(!mustFail, `CI is set but ${nativeSkip}`);
  });

  nativeTest('rmsnorm forward/backward on odd shapes', (k) => {
    const rng = new Rng(100);
    for (const rows of ROWS) {
      for (const dim of DIMS) {
        const n = rows * dim;
        const x = randnF32(rng, n, 2), w = randnF32(rng, dim), dy = randnF32(rng, n), dw0 = randnF32(rng, dim);
        const oR = new Float32Array(n), rR = new Float32Array(rows), oN = new Float32Array(n), rN = new Float32Array(rows);
        ref.rmsnormForward(x, w, oR, rR, rows, dim, 1e-5);
        k.rmsnormForward(x, w, oN, rN, rows, dim, 1e-5);
        const tag = `${rows}x${dim}`;
        assertClose(oN, oR, parity(oR, `rmsnorm out ${tag}`));
        assertClose(rN, rR, parity(rR, `rmsnorm rstd ${tag}`));
        const dxR = new Float32Array(n), dxN = new Float32Array(n), dwR = dw0.slice(), dwN = dw0.slice();
        ref.rmsnormBackward(dy, x, w, rR, dxR, dwR, rows, dim);
        k.rmsnormBackward(dy, x, w, rR, dxN, dwN, rows, dim);
        assertClose(dxN, dxR, { rtol: 1e-5, atol: 1e-5 * termScale(rR, w, dy, rows, dim, maxAbs(dxR)), label: `rmsnorm dx ${tag}` });
        assertClose(dwN, dwR, parity(dwR, `rmsnorm dweight ${tag}`));
      }
    }
  });

  nativeTest('layernorm forward/backward on odd shapes', (k) => {
    const rng = new Rng(101);
    for (const rows of ROWS) {
      for (const dim of DIMS) {
        const n = rows * dim;
        const x = randnF32(rng, n, 2), w = randnF32(rng, dim), b = randnF32(rng, dim), dy = randnF32(rng, n);
        for (let i = 0; i < n; i++) x[i] = x[i]! + 1.5;
        const oR = new Float32Array(n), mR = new Float32Array(rows), rR = new Float32Array(rows);
        const oN = new Float32Array(n), mN = new Float32Array(rows), rN = new Float32Array(rows);
        ref.layernormForward(x, w, b, oR, mR, rR, rows, dim, 1e-5);
        k.layernormForward(x, w, b, oN, mN, rN, rows, dim, 1e-5);
        const tag = `${rows}x${dim}`;
        assertClose(oN, oR, parity(oR, `layernorm out ${tag}`));
        assertClose(mN, mR, parity(mR, `layernorm mean ${tag}`));
        assertClose(rN, rR, parity(rR, `layernorm rstd ${tag}`));
        const dxR = new Float32Array(n), dxN = new Float32Array(n);
        const dw0 = randnF32(rng, dim), db0 = randnF32(rng, dim);
        const dwR = dw0.slice(), dwN = dw0.slice(), dbR = db0.slice(), dbN = db0.slice();
        ref.layernormBackward(dy, x, w, mR, rR, dxR, dwR, dbR, rows, dim);
        k.layernormBackward(dy, x, w, mR, rR, dxN, dwN, dbN, rows, dim);
        assertClose(dxN, dxR, { rtol: 1e-5, atol: 1e-5 * termScale(rR, w, dy, rows, dim, maxAbs(dxR)), label: `layernorm dx ${tag}` });
        assertClose(dwN, dwR, parity(dwR, `layernorm dweight ${tag}`));
        assertClose(dbN, dbR, parity(dbR, `layernorm dbias ${tag}`));
      }
    }
  });

  nativeTest('rope forward/inverse, in place and out of place', (k) => {
    const rng = new Rng(102);
    for (const half of [1, 3, 7, 61]) {
      const headDim = 2 * half, batch = 2, seq = 5, heads = 3, maxPos = 40;
      const t = ropeTables(maxPos, headDim);
      const cos = toF32(t.cos), sin = toF32(t.sin);
      const pos = randInt32(rng, batch * seq, 0, maxPos);
      const n = batch * seq * heads * headDim;
      const x = randnF32(rng, n);
      for (const inverse of [false, true]) {
        const oR = new Float32Array(n), oN = new Float32Array(n);
        ref.rope(x, oR, cos, sin, pos, batch, seq, heads, headDim, inverse);
        k.rope(x, oN, cos, sin, pos, batch, seq, heads, headDim, inverse);
        assertClose(oN, oR, parity(oR, `rope headDim ${headDim} inverse ${inverse}`));
        const inPlace = x.slice();
        k.rope(inPlace, inPlace, cos, sin, pos, batch, seq, heads, headDim, inverse);
        assertClose(inPlace, oR, parity(oR, `rope in place headDim ${headDim}`));
      }
    }
  });

  nativeTest('activations forward/backward, including out = x and dx = dy', (k) => {
    const rng = new Rng(103);
    for (const [name, kind] of ACTS) {
      for (const n of [...DIMS, 130 * 769]) {
        const x = randnF32(rng, n, 3), dy = randnF32(rng, n);
        if (n > 2) { x[0] = 0; x[1] = -20; x[2] = 20; } // relu's kink, saturated tails
        const oR = new Float32Array(n), oN = new Float32Array(n);
        ref.activationForward(kind, x, oR, n);
        k.activationForward(kind, x, oN, n);
        assertClose(oN, oR, parity(oR, `${name} forward n=${n}`));
        const inPlace = x.slice();
        k.activationForward(kind, inPlace, inPlace, n);
        assertClose(inPlace, oR, parity(oR, `${name} forward in place n=${n}`));
        const dR = new Float32Array(n), dN = new Float32Array(n);
        ref.activationBackward(kind, x, dy, dR, n);
        k.activationBackward(kind, x, dy, dN, n);
        assertClose(dN, dR, parity(dR, `${name} backward n=${n}`));
        const dInPlace = dy.slice();
        k.activationBackward(kind, x, dInPlace, dInPlace, n);
        assertClose(dInPlace, dR, parity(dR, `${name} backward dx = dy n=${n}`));
      }
    }
  });

  nativeTest('exact GELU stays accurate over its whole range', (k) => {
    const n = 4001;
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) x[i] = -10 + (20 * i) / (n - 1);
    const oR = new Float32Array(n), oN = new Float32Array(n), dR = new Float32Array(n), dN = new Float32Array(n);
    const one = new Float32Array(n).fill(1);
    ref.activationForward(Act.gelu, x, oR, n);
    k.activationForward(Act.gelu, x, oN, n);
    assertClose(oN, oR, { rtol: 2e-6, atol: 1e-30, label: 'gelu forward (elementwise relative)' });
    ref.activationBackward(Act.gelu, x, one, dR, n);
    k.activationBackward(Act.gelu, x, one, dN, n);
    assertClose(dN, dR, { rtol: 1e-5, atol: 1e-7, label: 'gelu derivative' });
  });

  nativeTest('swiglu forward/backward', (k) => {
    const rng = new Rng(104);
    for (const n of [...DIMS, 130 * 769]) {
      const g = randnF32(rng, n, 3), u = randnF32(rng, n), dy = randnF32(rng, n);
      const oR = new Float32Array(n), oN = new Float32Array(n);
      ref.swigluForward(g, u, oR, n);
      k.swigluForward(g, u, oN, n);
      assertClose(oN, oR, parity(oR, `swiglu forward n=${n}`));
      const gR = new Float32Array(n), uR = new Float32Array(n), gN = new Float32Array(n), uN = new Float32Array(n);
      ref.swigluBackward(g, u, dy, gR, uR, n);
      k.swigluBackward(g, u, dy, gN, uN, n);
      assertClose(gN, gR, parity(gR, `swiglu dgate n=${n}`));
      assertClose(uN, uR, parity(uR, `swiglu dup n=${n}`));
    }
  });

  nativeTest('softmax forward/backward, in place, −Infinity entries and rows', (k) => {
    const rng = new Rng(105);
    for (const rows of ROWS) {
      for (const cols of DIMS) {
        const n = rows * cols;
        const x = randnF32(rng, n, 4), dy = randnF32(rng, n);
        for (let i = 0; i < n; i += 5) x[i] = -Infinity;
        if (rows > 1) x.fill(-Infinity, cols, 2 * cols); // a fully masked row → zeros
        const tag = `${rows}x${cols}`;
        const yR = new Float32Array(n), yN = new Float32Array(n);
        ref.softmaxForward(x, yR, rows, cols);
        k.softmaxForward(x, yN, rows, cols);
        assertClose(yN, yR, parity(yR, `softmax ${tag}`));
        const inPlace = x.slice();
        k.softmaxForward(inPlace, inPlace, rows, cols);
        assertClose(inPlace, yR, parity(yR, `softmax in place ${tag}`));
        const dR = new Float32Array(n), dN = new Float32Array(n);
        ref.softmaxBackward(yR, dy, dR, rows, cols);
        k.softmaxBackward(yR, dy, dN, rows, cols);
        assertClose(dN, dR, parity(dR, `softmax backward ${tag}`));
      }
    }
  });

  nativeTest('logSoftmaxGather forward/backward: odd vocabularies, ignored targets, −Infinity', (k) => {
    const rng = new Rng(106);
    const check = (rows: number, vocab: number, scale: number): void => {
      const n = rows * vocab;
      const logits = randnF32(rng, n, scale);
      const targets = randInt32(rng, rows, 0, vocab);
      for (let r = 0; r < rows; r += 3) targets[r] = -1; // ignored rows
      for (let i = 7; i < n; i += 11) logits[i] = -Infinity;
      if (rows > 2) logits.fill(-Infinity, 2 * vocab, 3 * vocab); // a fully masked row
      const dlogp = randnF32(rng, rows);
      const tag = `${rows}x${vocab}`;
      const lpR = new Float32Array(rows), lseR = new Float32Array(rows);
      const lpN = new Float32Array(rows), lseN = new Float32Array(rows);
      ref.logSoftmaxGather(logits, targets, lpR, lseR, rows, vocab);
      k.logSoftmaxGather(logits, targets, lpN, lseN, rows, vocab);
      // logp and lse are O(log vocab + scale): compare relative to that size.
      assertClose(lseN, lseR, parity(lseR, `lse ${tag}`));
      assertClose(lpN, lpR, { rtol: 1e-5, atol: 1e-5 * Math.max(1, maxAbs(finite(lseR))), label: `logp ${tag}` });
      for (let r = 0; r < rows; r += 3) assert.equal(lpN[r], 0, `ignored row ${r} gives logp 0`);
      const dR = new Float32Array(n), dN = new Float32Array(n).fill(NaN);
      ref.logSoftmaxGatherBackward(logits, targets, lseR, dlogp, dR, rows, vocab);
      k.logSoftmaxGatherBackward(logits, targets, lseR, dlogp, dN, rows, vocab);
      assertClose(dN, dR, { rtol: 1e-5, atol: 1e-6 * maxAbs(dlogp), label: `dlogits ${tag}` });
    };
    for (const rows of ROWS) for (const vocab of DIMS) check(rows, vocab, 3);
    check(5, 50257, 8); // GPT-2's vocabulary: several online-rescaling blocks per row
    check(4, 50257, 30); // spread logits: the running max changes often
    // A NaN logit poisons its row in both backends, even after a leading all −Infinity block.
    const V = 5000, x = new Float32Array(2 * V).fill(-Infinity);
    x[10] = NaN; x[4000] = 1; x[V + 3] = 2;
    const t = new Int32Array([4000, 3]);
    for (const kk of [ref, k]) {
      const lp = new Float32Array(2), lse = new Float32Array(2);
      kk.logSoftmaxGather(x, t, lp, lse, 2, V);
      assert.ok(Number.isNaN(lse[0]) && Number.isNaN(lp[0]), `${kk.name}: NaN row gives NaN`);
      assert.equal(lse[1], 2, `${kk.name}: single finite logit`);
      assert.equal(lp[1], 0, `${kk.name}: its log-probability is 0`);
    }
  });

  nativeTest('embedding forward/backward with repeated ids', (k) => {
    const rng = new Rng(107);
    for (const dim of DIMS) {
      const V = 11, n = 37;
      const ids = randInt32(rng, n, 0, V);
      ids[1] = ids[0]!; ids[2] = ids[0]!; // repeats
      const table = randnF32(rng, V * dim), dy = randnF32(rng, n * dim), d0 = randnF32(rng, V * dim);
      const oR = new Float32Array(n * dim), oN = new Float32Array(n * dim);
      ref.embeddingForward(ids, table, oR, n, dim);
      k.embeddingForward(ids, table, oN, n, dim);
      assertBitIdentical(oN, oR, `embedding forward dim ${dim}`);
      const dR = d0.slice(), dN = d0.slice();
      ref.embeddingBackward(ids, dy, dR, n, dim);
      k.embeddingBackward(ids, dy, dN, n, dim);
      // Same additions in the same order, each rounded to float32 (the reference stores every sum).
      assertBitIdentical(dN, dR, `embedding backward dim ${dim}`);
    }
  });

  nativeTest('adamw and vector helpers (with aliasing)', (k) => {
    const rng = new Rng(108);
    for (const n of [...DIMS, 130 * 769]) {
      const p = randnF32(rng, n), g = randnF32(rng, n), m = randnF32(rng, n, 0.1), v = randnF32(rng, n, 0.1).map(Math.abs);
      const [pR, mR, vR, pN, mN, vN] = [p.slice(), m.slice(), v.slice(), p.slice(), m.slice(), v.slice()];
      ref.adamw(pR, g, mR, vR, n, 1e-3, 0.9, 0.95, 1e-8, 0.1, 1 - 0.9 ** 3, 1 - 0.95 ** 3);
      k.adamw(pN, g, mN, vN, n, 1e-3, 0.9, 0.95, 1e-8, 0.1, 1 - 0.9 ** 3, 1 - 0.95 ** 3);
      assertClose(pN, pR, parity(pR, `adamw param n=${n}`));
      assertClose(mN, mR, parity(mR, `adamw m n=${n}`));
      assertClose(vN, vR, parity(vR, `adamw v n=${n}`));
      assertCloseScalar(k.sumSquares(p, n), ref.sumSquares(p, n), { rtol: 1e-12, label: `sumSquares n=${n}` });
      const a = randnF32(rng, n), b = randnF32(rng, n);
      const sR = a.slice(), sN = a.slice();
      ref.scale(sR, n, -0.37);
      k.scale(sN, n, -0.37);
      assertClose(sN, sR, parity(sR, 'scale'));
      for (const op of ['add', 'mul'] as const) {
        const oR = new Float32Array(n), oN = new Float32Array(n);
        ref[op](a, b, oR, n);
        k[op](a, b, oN, n);
        assertBitIdentical(oN, oR, `${op} n=${n}`);
        const outA = a.slice(), outB = b.slice();
        k[op](outA, b, outA, n);
        k[op](a, outB, outB, n);
        assertBitIdentical(outA, oR, `${op} out = a`);
        assertBitIdentical(outB, oR, `${op} out = b`);
      }
      const yR = b.slice(), yN = b.slice();
      ref.axpy(0.75, a, yR, n);
      k.axpy(0.75, a, yN, n);
      assertClose(yN, yR, parity(yR, `axpy n=${n}`));
    }
  });
});

// The addon picks AVX-512, AVX2 or baseline code at load time; on an AVX-512 machine only the
// first would be tested. DPO_NATIVE_ISA caps the choice, so rerun the parity tests above in a
// child process for each fallback.
describe('native fallback code paths (DPO_NATIVE_ISA) vs reference', () => {
  const child = Boolean(process.env.DPO_OPS_TEST_CHILD);
  // DPO_NATIVE_ISA caps x86 paths; elsewhere (arm64) only the baseline build exists.
  for (const isa of process.arch === 'x64' ? ['avx2', 'generic'] : ['generic']) {
    test(`DPO_NATIVE_ISA=${isa}`, { skip: child ? 'already in a child process' : nativeSkip }, () => {
      const env: NodeJS.ProcessEnv = { ...process.env, DPO_NATIVE_ISA: isa, DPO_OPS_TEST_CHILD: '1' };
      delete env.NODE_TEST_CONTEXT; // else the child talks the runner's internal protocol, not TAP
      // The file itself, run directly (no --test: no grandchild process), reporting TAP.
      const r = spawnNode(
        ['--test-reporter=tap', '--test-name-pattern=native kernels vs reference', fileURLToPath(import.meta.url)],
        { env, encoding: 'utf8', timeout: 120_000 },
      );
      const summary = (r.stdout ?? '').split('\n').filter((l) => /^# (pass|fail)/.test(l)).join(', ');
      assert.equal(r.status, 0, `parity tests failed with DPO_NATIVE_ISA=${isa}:\n${r.stdout}\n${r.stderr}`);
      assert.match(summary, /# fail 0/, summary);
      const passed = Number(/# pass (\d+)/.exec(summary)?.[1] ?? 0);
      assert.ok(passed >= 10, `expected the parity tests to run in the child, got: ${summary}`);
    });
  }
});

// =============================================================================================
// 3. Native results do not depend on the thread count.

describe('native kernels are bit-identical for 1 and 2 threads', () => {
  /** Runs `make()` → fresh outputs, then `run(k, outputs)` on 1 and 2 threads; compares bytes. */
  function sameForThreads(k: Kernels, label: string, run: () => ArrayBufferView[]): void {
    const before = k.numThreads();
    try {
      k.setNumThreads(1);
      const one = run();
      k.setNumThreads(2);
      const two = run();
      one.forEach((a, i) => assertBitIdentical(two[i]!, a, `${label} output ${i}`));
    } finally {
      k.setNumThreads(before);
    }
  }

  nativeTest('norms, rope, softmax, log-softmax gather, embedding, adamw, sumSquares', (k) => {
    const rng = new Rng(200);
    const rows = 301, dim = 769, n = rows * dim;
    const x = randnF32(rng, n, 2), w = randnF32(rng, dim), b = randnF32(rng, dim), dy = randnF32(rng, n);
    const dw0 = randnF32(rng, dim);
    sameForThreads(k, 'rmsnorm', () => {
      const out = new Float32Array(n), rstd = new Float32Array(rows), dx = new Float32Array(n), dw = dw0.slice();
      k.rmsnormForward(x, w, out, rstd, rows, dim, 1e-5);
      k.rmsnormBackward(dy, x, w, rstd, dx, dw, rows, dim);
      return [out, rstd, dx, dw];
    });
    sameForThreads(k, 'layernorm', () => {
      const out = new Float32Array(n), mean = new Float32Array(rows), rstd = new Float32Array(rows);
      const dx = new Float32Array(n), dw = dw0.slice(), db = dw0.slice();
      k.layernormForward(x, w, b, out, mean, rstd, rows, dim, 1e-5);
      k.layernormBackward(dy, x, w, mean, rstd, dx, dw, db, rows, dim);
      return [out, mean, rstd, dx, dw, db];
    });
    sameForThreads(k, 'softmax', () => {
      const y = new Float32Array(n), dx = new Float32Array(n);
      k.softmaxForward(x, y, rows, dim);
      k.softmaxBackward(y, dy, dx, rows, dim);
      return [y, dx];
    });
    const t = ropeTables(64, 64);
    const pos = randInt32(rng, 4 * 64, 0, 64), q = randnF32(rng, 4 * 64 * 12 * 64);
    sameForThreads(k, 'rope', () => {
      const out = new Float32Array(q.length);
      k.rope(q, out, toF32(t.cos), toF32(t.sin), pos, 4, 64, 12, 64, false);
      return [out];
    });
    const V = 50257, R = 24;
    const logits = randnF32(rng, R * V, 5), targets = randInt32(rng, R, -1, V), dlogp = randnF32(rng, R);
    sameForThreads(k, 'logSoftmaxGather', () => {
      const logp = new Float32Array(R), lse = new Float32Array(R), dl = new Float32Array(R * V);
      k.logSoftmaxGather(logits, targets, logp, lse, R, V);
      k.logSoftmaxGatherBackward(logits, targets, lse, dlogp, dl, R, V);
      return [logp, lse, dl];
    });
    const ids = randInt32(rng, 2000, 0, 50), e = randnF32(rng, 2000 * 96), table0 = randnF32(rng, 50 * 96);
    sameForThreads(k, 'embedding', () => {
      const out = new Float32Array(2000 * 96), dtable = table0.slice();
      k.embeddingForward(ids, table0, out, 2000, 96);
      k.embeddingBackward(ids, e, dtable, 2000, 96);
      return [out, dtable];
    });
    const N = 1_000_003;
    const p = randnF32(rng, N), g = randnF32(rng, N);
    sameForThreads(k, 'adamw, sumSquares, activations', () => {
      const pp = p.slice(), m = new Float32Array(N), v = new Float32Array(N), act = new Float32Array(N);
      k.adamw(pp, g, m, v, N, 1e-3, 0.9, 0.999, 1e-8, 0.01, 0.1, 0.001);
      k.activationForward(Act.geluTanh, p, act, N);
      return [pp, m, v, act, new Float64Array([k.sumSquares(p, N)])];
    });
  });
});

// =============================================================================================
// 4. Errors name the kernel.

describe('argument errors name the kernel', () => {
  const f = (n: number): Float32Array => new Float32Array(n);
  const i = (n: number): Int32Array => new Int32Array(n);
  // Each call has exactly one buffer one element short (rows 2, dim 3, n 4, vocab 5).
  const shortCalls: [string, (k: Kernels) => unknown][] = [
    ['rmsnormForward', (k) => k.rmsnormForward(f(5), f(3), f(6), f(2), 2, 3, 1e-5)],
    ['rmsnormBackward', (k) => k.rmsnormBackward(f(6), f(6), f(3), f(2), f(6), f(2), 2, 3)],
    ['layernormForward', (k) => k.layernormForward(f(6), f(3), f(2), f(6), f(2), f(2), 2, 3, 1e-5)],
    ['layernormBackward', (k) => k.layernormBackward(f(6), f(6), f(3), f(2), f(1), f(6), f(3), f(3), 2, 3)],
    ['rope', (k) => k.rope(f(8), f(7), f(4), f(4), i(2), 1, 2, 1, 4, false)],
    ['activationForward', (k) => k.activationForward(Act.silu, f(4), f(3), 4)],
    ['activationBackward', (k) => k.activationBackward(Act.gelu, f(4), f(3), f(4), 4)],
    ['swigluForward', (k) => k.swigluForward(f(4), f(3), f(4), 4)],
    ['swigluBackward', (k) => k.swigluBackward(f(4), f(4), f(4), f(4), f(3), 4)],
    ['softmaxForward', (k) => k.softmaxForward(f(9), f(10), 2, 5)],
    ['softmaxBackward', (k) => k.softmaxBackward(f(10), f(10), f(9), 2, 5)],
    ['logSoftmaxGather', (k) => k.logSoftmaxGather(f(10), i(1), f(2), f(2), 2, 5)],
    ['logSoftmaxGatherBackward', (k) => k.logSoftmaxGatherBackward(f(10), i(2), f(2), f(2), f(9), 2, 5)],
    ['embeddingForward', (k) => k.embeddingForward(i(2), f(12), f(5), 2, 3)],
    ['embeddingBackward', (k) => k.embeddingBackward(i(2), f(5), f(12), 2, 3)],
    ['adamw', (k) => k.adamw(f(4), f(4), f(4), f(3), 4, 1e-3, 0.9, 0.999, 1e-8, 0, 0.1, 0.001)],
    ['sumSquares', (k) => k.sumSquares(f(3), 4)],
    ['scale', (k) => k.scale(f(3), 4, 2)],
    ['add', (k) => k.add(f(4), f(3), f(4), 4)],
    ['mul', (k) => k.mul(f(4), f(4), f(3), 4)],
    ['axpy', (k) => k.axpy(2, f(3), f(4), 4)],
  ];
  const badIndex: [string, (k: Kernels) => unknown][] = [
    ['logSoftmaxGather', (k) => k.logSoftmaxGather(f(10), new Int32Array([1, 5]), f(2), f(2), 2, 5)],
    ['embeddingForward', (k) => k.embeddingForward(new Int32Array([0, 4]), f(12), f(6), 2, 3)],
    ['embeddingBackward', (k) => k.embeddingBackward(new Int32Array([-1, 0]), f(6), f(12), 2, 3)],
    ['rope', (k) => k.rope(f(8), f(8), f(4), f(4), new Int32Array([0, 2]), 1, 2, 1, 4, false)],
  ];

  for (const [label, get] of [['reference', () => ref], ['native', () => native!]] as const) {
    test(`${label}: a short buffer is a RangeError naming the kernel and sizes`, { skip: label === 'native' && nativeSkip }, () => {
      const k = get();
      for (const [name, call] of shortCalls) {
        assert.throws(() => call(k), (e: unknown) => {
          assert.ok(e instanceof RangeError, `${name}: expected RangeError, got ${String(e)}`);
          assert.match(e.message, new RegExp(`^${name}: \\w+ has \\d+ elements, needs \\d+`), `${name}: message "${e.message}"`);
          return true;
        }, `${name} accepted a short buffer`);
      }
    });
    test(`${label}: out-of-range ids, targets and positions are RangeErrors`, { skip: label === 'native' && nativeSkip }, () => {
      const k = get();
      for (const [name, call] of badIndex) {
        assert.throws(() => call(k), (e: unknown) => e instanceof RangeError && e.message.startsWith(`${name}: `), name);
      }
    });
  }

  nativeTest('native: a Float64Array is a TypeError naming the kernel and the argument', (k) => {
    assert.throws(
      () => k.rmsnormForward(new Float64Array(6) as unknown as Buf, f(3), f(6), f(2), 2, 3, 1e-5),
      (e: unknown) => e instanceof TypeError && /^rmsnormForward: x must be a Float32Array/.test(e.message),
    );
    assert.throws(
      () => k.activationForward(7 as ActKind, f(4), f(4), 4),
      (e: unknown) => e instanceof RangeError && /^activationForward: unknown activation kind 7/.test(e.message),
    );
  });
});

// The same parity, thread and error tests against the WebAssembly build of the kernels.
wasmRerun(import.meta.url, 'native kernels|argument errors', { minPassed: 15 });
