// Bias and block-copy kernels (addRowVector, sumRows, copy2d): reference values, native-vs-reference
// parity on awkward shapes, bit-identical native results for 1 and 2 threads, error messages; the
// float32 narrow/concat ops built on copy2d; and the tape's
// gradient pass-through (add, addRowVector, reshape hand their incoming gradient on) checked
// against finite differences.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { referenceKernels } from '../src/tensor/backend.js';
import type { Kernels } from '../src/tensor/kernels.js';
import * as T from '../src/tensor/index.js';
import { Rng, randnF32, randnF64 } from './helpers/rng.js';
import { numericGradient, maxAbs } from './helpers/numeric.js';
import { assertClose, assertBitIdentical } from './helpers/assert.js';
import { nativeForTests, wasmRerun } from './helpers/native.js';

const ref = referenceKernels;
const { native, skip: nativeSkip } = nativeForTests(['addRowVector', 'sumRows', 'copy2d']);

describe('bias kernels', () => {
  test('reference: known values; sumRows accumulates', () => {
    const x = new Float64Array([1, 2, 3, 4, 5, 6]), b = new Float64Array([10, 20, 30]);
    const out = new Float64Array(6);
    ref.addRowVector(x, b, out, 2, 3);
    assert.deepEqual(Array.from(out), [11, 22, 33, 14, 25, 36]);
    const s = new Float64Array([100, 0, -1]);
    ref.sumRows(x, s, 2, 3);
    assert.deepEqual(Array.from(s), [105, 7, 8]);
    ref.addRowVector(x, b, x, 2, 3);
    assert.deepEqual(Array.from(x), [11, 22, 33, 14, 25, 36], 'out may alias x');
  });

  test('native matches the reference (awkward shapes, aliasing)', { skip: nativeSkip }, () => {
    const k = native!;
    const rng = new Rng(11);
    for (const [rows, n] of [[1, 1], [3, 17], [33, 5], [97, 769], [2048, 48]] as const) {
      const x = randnF32(rng, rows * n), b = randnF32(rng, n), acc = randnF32(rng, n);
      const oR = new Float32Array(rows * n), oN = new Float32Array(rows * n);
      ref.addRowVector(x, b, oR, rows, n);
      k.addRowVector(x, b, oN, rows, n);
      assertBitIdentical(oN, oR, `addRowVector ${rows}x${n}`);
      const alias = x.slice();
      k.addRowVector(alias, b, alias, rows, n);
      assertBitIdentical(alias, oR, `addRowVector out = x ${rows}x${n}`);
      const sR = acc.slice(), sN = acc.slice();
      ref.sumRows(x, sR, rows, n);
      k.sumRows(x, sN, rows, n);
      assertClose(sN, sR, { rtol: 1e-6, atol: 1e-6 * maxAbs(sR), label: `sumRows ${rows}x${n}` });
    }
  });

  test('native: bit-identical for 1 and 2 threads', { skip: nativeSkip }, () => {
    const k = native!;
    const rng = new Rng(12);
    const rows = 1031, n = 770;
    const x = randnF32(rng, rows * n), b = randnF32(rng, n);
    const before = k.numThreads();
    const run = (): Float32Array[] => {
      const out = new Float32Array(rows * n), s = new Float32Array(n);
      k.addRowVector(x, b, out, rows, n);
      k.sumRows(x, s, rows, n);
      const c = out.slice();
      k.copy2d(x.subarray(1), n, c, n, rows - 1, n - 3, true);
      return [out, s, c];
    };
    try {
      k.setNumThreads(1);
      const one = run();
      k.setNumThreads(2);
      const two = run();
      one.forEach((a, i) => assertBitIdentical(two[i]!, a, `output ${i}`));
    } finally {
      k.setNumThreads(before);
    }
  });

  test('reference copy2d: known values, strides, accumulate, empty blocks', () => {
    const src = new Float64Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    const dst = new Float64Array(8).fill(-1);
    // Rows of 2 from src every 4 elements (offset 1) into dst every 3 elements.
    ref.copy2d(src.subarray(1), 4, dst, 3, 3, 2, false);
    assert.deepEqual(Array.from(dst), [2, 3, -1, 6, 7, -1, 10, 11]);
    ref.copy2d(src.subarray(1), 4, dst, 3, 3, 2, true);
    assert.deepEqual(Array.from(dst), [4, 6, -1, 12, 14, -1, 20, 22]);
    ref.copy2d(new Float64Array(0), 5, dst, 5, 0, 3, false);
    ref.copy2d(new Float64Array(0), 5, dst, 5, 4, 0, true);
    assert.deepEqual(Array.from(dst), [4, 6, -1, 12, 14, -1, 20, 22], 'empty blocks touch nothing');
  });

  test('native copy2d matches the reference bit for bit (copy and accumulate, awkward shapes)', { skip: nativeSkip }, () => {
    const k = native!;
    const rng = new Rng(16);
    for (const [rows, cols, sPad, dPad] of [[1, 1, 0, 0], [3, 17, 5, 0], [97, 769, 1537, 3], [2048, 768, 1536, 0], [5, 4096, 0, 7]] as const) {
      const src = randnF32(rng, rows * (cols + sPad) + 3), base = randnF32(rng, rows * (cols + dPad) + 2);
      for (const accumulate of [false, true]) {
        const dR = base.slice(), dN = base.slice();
        ref.copy2d(src.subarray(3), cols + sPad, dR.subarray(2), cols + dPad, rows, cols, accumulate);
        k.copy2d(src.subarray(3), cols + sPad, dN.subarray(2), cols + dPad, rows, cols, accumulate);
        assertBitIdentical(dN, dR, `copy2d ${rows}x${cols} strides ${cols + sPad}/${cols + dPad} accumulate=${accumulate}`);
      }
    }
    k.copy2d(new Float32Array(0), 9, new Float32Array(0), 9, 0, 9, true);
  });

  test('float32 narrow and concat (native copy2d) give the right values and gradients', () => {
    const rng = new Rng(17);
    const rows = 37, cols = 9;
    const xv = randnF32(rng, rows * cols), yv = randnF32(rng, rows * 4);
    const x = T.tensor(xv, [rows, cols], { requiresGrad: true }), y = T.tensor(yv, [rows, 4], { requiresGrad: true });
    const n = T.narrow(x, 1, 2, 5); // columns 2..6
    for (let r = 0; r < rows; r++) for (let c = 0; c < 5; c++) assert.equal(n.data[r * 5 + c], xv[r * cols + 2 + c]);
    const cat = T.concat([n, y], 1); // [rows, 9]
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < 9; c++) assert.equal(cat.data[r * 9 + c], c < 5 ? xv[r * cols + 2 + c] : yv[r * 4 + c - 5]);
    }
    const w = randnF32(rng, rows * 9);
    T.backward(T.sumAll(T.mul(cat, T.tensor(w, [rows, 9]))));
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) assert.equal(x.grad![r * cols + c], c >= 2 && c < 7 ? w[r * 9 + c - 2] : 0, `dx[${r}, ${c}]`);
      for (let c = 0; c < 4; c++) assert.equal(y.grad![r * 4 + c], w[r * 9 + 5 + c], `dy[${r}, ${c}]`);
    }
  });

  const f = (n: number): Float32Array => new Float32Array(n);
  const shortCalls: [string, (k: Kernels) => unknown][] = [
    ['addRowVector', (k) => k.addRowVector(f(6), f(2), f(6), 2, 3)],
    ['addRowVector', (k) => k.addRowVector(f(6), f(3), f(5), 2, 3)],
    ['sumRows', (k) => k.sumRows(f(5), f(3), 2, 3)],
    ['sumRows', (k) => k.sumRows(f(6), f(2), 2, 3)],
    ['copy2d', (k) => k.copy2d(f(10), 4, f(20), 5, 3, 3, false)],
    ['copy2d', (k) => k.copy2d(f(11), 4, f(12), 5, 3, 3, true)],
  ];
  for (const [label, get] of [['reference', () => ref], ['native', () => native!]] as const) {
    test(`${label}: a short buffer is a RangeError naming the kernel`, { skip: label === 'native' && nativeSkip }, () => {
      for (const [name, call] of shortCalls) {
        assert.throws(() => call(get()), (e: unknown) => e instanceof RangeError && new RegExp(`^${name}: \\w+ has \\d+ elements, needs \\d+`).test(e.message), name);
      }
    });
  }
});

describe('gradient pass-through on the tape', () => {
  // loss = Σ w ⊙ reshape(add(addRowVector(x, b), x) + y)): x reaches the loss along three paths,
  // so its gradient is accumulated from buffers that were handed on without copies.
  function lossOf(x: T.Tensor, b: T.Tensor, y: T.Tensor, w: Float64Array): T.Tensor {
    const h = T.add(T.add(T.addRowVector(x, b), x), y);
    const r = T.reshape(h, [-1]);
    return T.sumAll(T.mul(r, T.tensor(w, [w.length], { dtype: 'float64' })));
  }

  test('add / addRowVector / reshape gradients match finite differences (float64)', () => {
    const rng = new Rng(13);
    const rows = 5, n = 7;
    const xv = randnF64(rng, rows * n), bv = randnF64(rng, n), yv = randnF64(rng, rows * n), w = randnF64(rng, rows * n);
    const x = T.tensor(xv, [rows, n], { dtype: 'float64', requiresGrad: true });
    const b = T.tensor(bv, [n], { dtype: 'float64', requiresGrad: true });
    const y = T.tensor(yv, [rows, n], { dtype: 'float64', requiresGrad: true });
    T.backward(lossOf(x, b, y, w));
    const f = (): number => T.noGrad(() => lossOf(
      T.tensor(xv, [rows, n], { dtype: 'float64' }), T.tensor(bv, [n], { dtype: 'float64' }),
      T.tensor(yv, [rows, n], { dtype: 'float64' }), w).item());
    for (const [name, t, v] of [['x', x, xv], ['b', b, bv], ['y', y, yv]] as const) {
      assertClose(t.grad!, numericGradient(f, v), { rtol: 1e-6, atol: 1e-8, label: `d${name}` });
    }
  });

  test('a passed-on gradient is not recycled while still in use (float32, repeated steps)', () => {
    const rng = new Rng(14);
    const rows = 64, n = 96;
    const xv = randnF32(rng, rows * n), bv = randnF32(rng, n), yv = randnF32(rng, rows * n);
    const w = Float64Array.from(randnF32(rng, rows * n));
    const grads: Float32Array[] = [];
    for (let step = 0; step < 3; step++) {
      const x = T.tensor(xv, [rows, n], { requiresGrad: true });
      const b = T.tensor(bv, [n], { requiresGrad: true });
      const y = T.tensor(yv, [rows, n], { requiresGrad: true });
      const h = T.add(T.add(T.addRowVector(x, b), x), y);
      const loss = T.sumAll(T.mul(T.reshape(h, [-1]), T.tensor(Float32Array.from(w), [w.length])));
      T.backward(loss);
      // dx = 2w, db = Σ_rows w, dy = w, each time: pooled buffers must not alias live gradients.
      for (let i = 0; i < rows * n; i++) {
        assert.equal(x.grad![i], Math.fround(2 * Math.fround(w[i]!)), `step ${step} dx[${i}]`);
        assert.equal(y.grad![i], Math.fround(w[i]!), `step ${step} dy[${i}]`);
      }
      grads.push(Float32Array.from(b.grad!));
    }
    assertBitIdentical(grads[1]!, grads[0]!, 'db step 1');
    assertBitIdentical(grads[2]!, grads[0]!, 'db step 2');
  });
});

describe('lmHeadLogprobs paths', () => {
  test('kept logits and recomputed chunks agree (float32, values and gradients, ignored rows)', () => {
    const rng = new Rng(15);
    const N = 23, d = 16, V = 301;
    const hv = randnF32(rng, N * d), Wv = randnF32(rng, V * d, 0.3);
    const t = new Int32Array(N).map((_, i) => (i % 4 === 0 ? -1 : (i * 37) % V));
    const g = randnF32(rng, N);
    const run = (opts: { chunkRows?: number; maxLogitsBytes?: number }): Float32Array[] => {
      const h = T.tensor(hv, [N, d], { requiresGrad: true }), W = T.tensor(Wv, [V, d], { requiresGrad: true });
      const lp = T.lmHeadLogprobs(h, W, t, opts);
      const vals = Float32Array.from(lp.data);
      T.backward(lp, g);
      return [vals, h.grad as Float32Array, W.grad as Float32Array];
    };
    const kept = run({});
    const chunked = run({ chunkRows: 5 });
    const tiny = run({ maxLogitsBytes: 3 * V * 4 });
    for (let i = 0; i < N; i++) if (t[i]! < 0) assert.equal(kept[0]![i], 0, `ignored row ${i}`);
    for (const [label, other] of [['chunkRows 5', chunked], ['3-row budget', tiny]] as const) {
      kept.forEach((a, i) => assertClose(other[i]!, a, { rtol: 1e-5, atol: 1e-5 * maxAbs(a), label: `${label} output ${i}` }));
    }
    const hd = kept[1]!;
    for (let i = 0; i < N; i++) if (t[i]! < 0) for (let j = 0; j < d; j++) assert.equal(hd[i * d + j], 0, `dh of ignored row ${i}`);
  });
});

// The same tests against the WebAssembly build of the kernels.
wasmRerun(import.meta.url, 'bias kernels|gradient pass-through|lmHeadLogprobs', { minPassed: 8 });
