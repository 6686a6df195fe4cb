// The kernel table (native/abi.h) that generates both bindings: the N-API addon and the
// WebAssembly module expose exactly the Kernels contract, with the reference's arities, the same
// argument checks, and the wasm loader's own cases (empty arrays, aliasing, bad builds).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { referenceKernels } from '../src/tensor/backend.js';
import type { Kernels } from '../src/tensor/kernels.js';
import { createWasmKernels } from '../src/tensor/wasm.js';
import { loadWasmKernelsNode, wasmBuildDir, WASM_MISSING } from '../src/tensor/wasm-node.js';
import type { WasmKernels } from '../src/tensor/wasm.js';
import { f32ToBf16 } from '../src/tensor/bf16.js';
import { nativeForTests } from './helpers/native.js';

const { native, skip: nativeSkip } = nativeForTests();
const dir = wasmBuildDir();
const wasmSkip = dir || process.env.CI ? false : WASM_MISSING;

/** Kernel functions of the contract: every function of the reference backend but the thread API. */
const CONTRACT = Object.keys(referenceKernels)
  .filter((k) => typeof (referenceKernels as unknown as Record<string, unknown>)[k] === 'function' && !/umThreads$/.test(k))
  .sort();

test('the native addon exports every kernel of the contract', { skip: nativeSkip }, () => {
  for (const name of CONTRACT) assert.equal(typeof (native as unknown as Record<string, unknown>)[name], 'function', name);
});

test('the wasm kernel table is the contract: same names, arities equal to the reference', { skip: wasmSkip }, async () => {
  assert.ok(dir, WASM_MISSING);
  const k = await loadWasmKernelsNode(1);
  assert.deepEqual(k.table.map((r) => r.name).sort(), CONTRACT);
  // The bf16 GEMM's A and B are union operands (Float32Array or Uint16Array of bf16 bits).
  assert.equal(k.table.find((r) => r.name === 'gemmBf16')?.codes, 'bbdddudud' + 'Fdddd');
  for (const row of k.table) {
    const ref = (referenceKernels as unknown as Record<string, (...a: unknown[]) => unknown>)[row.name]!;
    assert.equal(row.args.length, ref.length, `${row.name}: table has ${row.args.join(',')}, reference takes ${ref.length}`);
    assert.equal(row.codes.replace('r', '').length, row.args.length, `${row.name}: codes ${row.codes}`);
  }
  assert.match(k.features, /simd128/);
  // The relaxed-SIMD build when it was built (clang-19) — Node switches V8's flag on for it.
  const relaxed = existsSync(join(dir, 'dpo_kernels_relaxed.wasm'));
  assert.equal(k.build, relaxed ? 'dpo_kernels_relaxed' : 'dpo_kernels');
  assert.equal(k.features.includes('relaxed-simd'), relaxed, k.features);
  assert.equal(k.gemmKernel(), relaxed ? 'wasm-relaxed-simd' : 'wasm-simd128');
  assert.deepEqual(k.gemmKernelsSupported(), [...(relaxed ? ['wasm-relaxed-simd'] : []), 'wasm-simd128', 'portable']);
  const plain = await loadWasmKernelsNode(1, 'simd128');
  assert.equal(plain.build, 'dpo_kernels');
  assert.equal(plain.features, 'simd128');
  assert.deepEqual(plain.gemmKernelsSupported(), ['wasm-simd128', 'portable']);
});

test('wasm GEMM builds: simd128 and relaxed-SIMD (FMA) within the float32 bound of the float64 product, 1 and 2 threads bit-identical', { skip: wasmSkip }, async () => {
  assert.ok(dir, WASM_MISSING);
  const builds: [string, 'simd128' | 'relaxed'][] = [['simd128', 'simd128']];
  if (existsSync(join(dir, 'dpo_kernels_relaxed.wasm'))) builds.push(['relaxed', 'relaxed']);
  else assert.ok(!process.env.CI || process.env.DPO_WASM_NO_RELAXED === '1', 'CI installs clang-19: the relaxed build must exist');
  // Odd sizes: edge tiles, two K blocks (K > 256), all four transpositions.
  const M = 53, N = 37, K = 301;
  const A = Float32Array.from({ length: M * K }, (_, i) => Math.sin(i * 0.37)), B = Float32Array.from({ length: K * N }, (_, i) => Math.cos(i * 0.11));
  // Each C element: K products summed in float32, fused or not: |error| ≤ γ_K·Σ|a·b|, γ_K = K·u/(1 − K·u), u = 2⁻²⁴.
  const u = 2 ** -24, gamma = (K * u) / (1 - K * u);
  for (const [label, simd] of builds) {
    const one = await loadWasmKernelsNode(1, simd), two = await loadWasmKernelsNode(2, simd);
    for (const kernel of one.gemmKernelsSupported()) {
      one.gemmSetKernel(kernel);
      two.gemmSetKernel(kernel);
      for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]] as const) {
        // op(A) = A (M×K) stored transposed when ta, likewise B.
        const At = ta ? Float32Array.from({ length: M * K }, (_, i) => A[(i % M) * K + Math.floor(i / M)]!) : A;
        const Bt = tb ? Float32Array.from({ length: K * N }, (_, i) => B[(i % K) * N + Math.floor(i / K)]!) : B;
        const c1 = new Float32Array(M * N), c2 = new Float32Array(M * N);
        one.gemm(ta, tb, M, N, K, At, 0, Bt, 0, c1, 0, 1, 1, 0);
        two.gemm(ta, tb, M, N, K, At, 0, Bt, 0, c2, 0, 1, 1, 0);
        assert.deepEqual(c2, c1, `${label}/${kernel} ta=${ta} tb=${tb}: 2 threads differ from 1`);
        for (let i = 0; i < M; i++) {
          for (let j = 0; j < N; j++) {
            let exact = 0, mag = 0;
            for (let p = 0; p < K; p++) { const t = A[i * K + p]! * B[p * N + j]!; exact += t; mag += Math.abs(t); }
            assert.ok(Math.abs(c1[i * N + j]! - exact) <= gamma * mag, `${label}/${kernel} ta=${ta} tb=${tb} C[${i},${j}] = ${c1[i * N + j]}, exact ${exact}`);
          }
        }
      }
    }
  }
});

for (const [label, get] of [
  ['native', async () => native!],
  ['wasm', async () => loadWasmKernelsNode(1)],
] as const) {
  test(`${label}: empty arrays, aliasing, missing arguments and non-numbers`, { skip: label === 'native' ? nativeSkip : wasmSkip }, async () => {
    const k: Kernels = await get();
    assert.equal(k.sumSquares(new Float32Array(0), 0), 0);
    assert.equal(k.sumSquares(Float32Array.of(3, 4), 2), 25);
    const a = Float32Array.of(1, 2, 3), b = Float32Array.of(10, 20, 30);
    k.add(a, b, a, 3); // out = a
    assert.deepEqual(Array.from(a), [11, 22, 33]);
    k.mul(a, a, a, 3); // all three the same array
    assert.deepEqual(Array.from(a), [121, 484, 1089]);
    assert.throws(() => (k.add as unknown as (...x: unknown[]) => void)(a, b, a), (e: unknown) => e instanceof TypeError && /^add: expected 4 arguments, got 3/.test((e as Error).message));
    assert.throws(() => k.scale(a, '3' as unknown as number, 2), (e: unknown) => e instanceof TypeError && /^scale: n must be a number/.test((e as Error).message));
    assert.throws(() => k.scale(a, 2.5, 2), (e: unknown) => e instanceof RangeError && /^scale: n must be a non-negative integer, got 2.5/.test((e as Error).message));
    assert.throws(() => k.embeddingForward(Float32Array.of(0) as unknown as Int32Array, b, a, 1, 3),
      (e: unknown) => e instanceof TypeError && /^embeddingForward: ids must be an Int32Array/.test((e as Error).message));
    // kvStart may be null; a Float32Array there is a type error.
    const q = new Float32Array(8), lse = new Float32Array(2);
    k.attentionForward(q, q, q, new Float32Array(8), lse, 1, 2, 2, 1, 1, 4, 0.5, 8, null);
    assert.throws(() => k.attentionForward(q, q, q, new Float32Array(8), lse, 1, 2, 2, 1, 1, 4, 0.5, 8, new Float32Array(1) as unknown as Int32Array),
      (e: unknown) => e instanceof TypeError && /^attentionForward: kvStart must be an Int32Array/.test((e as Error).message));
  });
}

// The wasm wrapper does not copy in outputs a kernel overwrites without reading (wasm.ts, OVERWRITTEN)
// and copies back only what was written: the results must be the native addon's in every case where
// an output is read after all or only partly written.
for (const [label, get] of [
  ['native', async () => native!],
  ['wasm', async () => loadWasmKernelsNode(1)],
  ['wasm (poisoned outputs)', async () => createWasmKernels(readFileSync(join(dir!, 'dpo_kernels.wasm')), { glue: pathToFileURL(join(dir!, 'dpo_kernels.mjs')), poisonOutputs: true })],
] as const) {
  test(`${label}: outputs read in place, accumulated, partly written or with gaps keep their contents`, { skip: label === 'native' ? nativeSkip : wasmSkip }, async () => {
    const k: Kernels = await get();
    const big = new Float32Array(4096).fill(5);
    k.add(big, big, big.slice(), 4096); // leaves 10s in the wasm arena
    // Written prefix only: the tail of a longer output is untouched.
    const out = new Float32Array(6).fill(7);
    k.add(Float32Array.of(1, 2), Float32Array.of(3, 4), out, 2);
    assert.deepEqual(Array.from(out), [4, 6, 7, 7, 7, 7]);
    // gemm: beta ≠ 0 reads C; beta = 0 with gaps between batch items keeps the gaps.
    const C = Float32Array.of(1, 1);
    k.gemm(false, false, 1, 1, 1, Float32Array.of(2), 0, Float32Array.of(3), 0, C, 1, 2, 1, 0.5);
    assert.deepEqual(Array.from(C), [6.5, 6.5]);
    const G = Float32Array.of(9, 9, 9, 9);
    k.gemm(false, false, 1, 1, 1, Float32Array.of(2, 4), 1, Float32Array.of(3), 0, G, 2, 2, 1, 0);
    assert.deepEqual(Array.from(G), [6, 9, 12, 9]);
    // In place (out = x) is an input too.
    const x = Float32Array.of(0, Math.log(3));
    k.softmaxForward(x, x, 1, 2);
    assert.deepEqual(Array.from(x).map((v) => Math.round(v * 1e6) / 1e6), [0.25, 0.75]);
    // Accumulated outputs are read: dweight += Σ, dtable += dy.
    const dtable = Float32Array.of(1, 1, 1, 1);
    k.embeddingBackward(Int32Array.of(1), Float32Array.of(2, 3), dtable, 1, 2);
    assert.deepEqual(Array.from(dtable), [1, 1, 3, 4]);
    const bias = Float32Array.of(10, 20);
    k.sumRows(Float32Array.of(1, 2, 3, 4), bias, 2, 2);
    assert.deepEqual(Array.from(bias), [14, 26]);
    // Every element of an overwritten output is written: no NaN from the poisoned arena.
    const o = new Float32Array(2 * 3 * 2 * 4), lse = new Float32Array(2 * 2 * 3);
    const q = Float32Array.from({ length: o.length }, (_, i) => Math.sin(i));
    k.attentionForward(q, q, q, o, lse, 2, 3, 3, 2, 2, 4, 0.5, 3 * 2 * 4, Int32Array.of(0, 2));
    assert.ok(o.every(Number.isFinite) && lse.every((v) => Number.isFinite(v) || v === -Infinity), `${o} / ${lse}`);
  });
}

// The bf16 GEMM as generated from the table: on wasm the table's wrapper (the backend itself
// runs gemmBf16 over its float32 gemm, src/tensor/wasm.ts), natively the addon's function.
const tableFn = (k: Kernels, name: string): ((...a: unknown[]) => unknown) => {
  const row = (k as Partial<WasmKernels>).table?.find((r) => r.name === name);
  return row ? row.call : (k as unknown as Record<string, (...a: unknown[]) => unknown>)[name]!.bind(k);
};

for (const [label, get] of [
  ['native', async () => native!],
  ['wasm', async () => loadWasmKernelsNode(1)],
] as const) {
  // One argument style (native/check.h) for every kernel of the table: the bf16 GEMM's wrapper is
  // generated like the float32 GEMM's, so the same mistake gets the same error class and message
  // but for the kernel's name. A bespoke wrapper (its own checks and wording) fails this.
  test(`${label}: gemmBf16 and gemm give the same error (class and message) for the same wrong operand`, { skip: label === 'native' ? nativeSkip : wasmSkip }, async () => {
    const k = await get();
    const gemm = tableFn(k, 'gemm'), gemmBf16 = tableFn(k, 'gemmBf16');
    const f = (n: number) => new Float32Array(n);
    const cases: [string, unknown[]][] = [
      ['A of the wrong type', [false, false, 2, 2, 2, new Float64Array(4), 0, f(4), 0, f(4), 0, 1, 1, 0]],
      ['B of the wrong type', [false, false, 2, 2, 2, f(4), 0, new Int32Array(4), 0, f(4), 0, 1, 1, 0]],
      ['A missing (null)', [false, false, 2, 2, 2, null, 0, f(4), 0, f(4), 0, 1, 1, 0]],
      ['C of the wrong type', [false, false, 2, 2, 2, f(4), 0, f(4), 0, new Float64Array(4), 0, 1, 1, 0]],
      ['A too short', [false, false, 2, 3, 5, f(9), 0, f(15), 0, f(6), 0, 1, 1, 0]],
      ['A too short, transposed, batched', [true, false, 2, 3, 5, f(19), 10, f(15), 0, f(12), 6, 2, 1, 0]],
      ['B too short, transposed', [false, true, 2, 3, 5, f(10), 0, f(14), 0, f(6), 0, 1, 1, 0]],
      ['C too short', [false, false, 2, 3, 5, f(10), 0, f(15), 0, f(5), 0, 1, 1, 0]],
      ['overlapping batch outputs', [false, false, 2, 3, 5, f(10), 0, f(15), 0, f(12), 5, 2, 1, 0]],
      ['M not an integer', [false, false, 2.5, 2, 2, f(4), 0, f(4), 0, f(4), 0, 1, 1, 0]],
      ['strideB negative', [false, false, 2, 2, 2, f(4), 0, f(4), -1, f(4), 0, 1, 1, 0]],
      ['batch not a number', [false, false, 2, 2, 2, f(4), 0, f(4), 0, f(4), 0, '1', 1, 0]],
      ['alpha not a number', [false, false, 2, 2, 2, f(4), 0, f(4), 0, f(4), 0, 1, null, 0]],
      ['too few arguments', [false, false, 2, 2, 2, f(4), 0, f(4), 0, f(4), 0, 1, 1]],
    ];
    const caught = (fn: (...a: unknown[]) => unknown, args: unknown[]): Error => {
      try { fn(...args); } catch (e) { return e as Error; }
      return assert.fail(`no error for ${String(args)}`);
    };
    for (const [what, args] of cases) {
      const e32 = caught(gemm, args), e16 = caught(gemmBf16, args);
      assert.match(e32.message, /^gemm: /, what);
      // The one wording difference: A and B may also be a Uint16Array of bf16 bits.
      const expected = e32.message.replace(/^gemm: /, 'gemmBf16: ').replace(/^(gemmBf16: [AB] must be a Float32Array)$/, '$1 or a Uint16Array of bf16 values');
      assert.equal(e16.constructor, e32.constructor, `${what}: ${e16.message}`);
      assert.equal(e16.message, expected, what);
    }
    // A Uint16Array operand is counted in bf16 elements, as a Float32Array in float32 ones.
    assert.equal(caught(gemmBf16, [false, false, 2, 3, 5, new Uint16Array(9), 0, f(15), 0, f(6), 0, 1, 1, 0]).message,
      caught(gemm, cases[4]![1]).message.replace(/^gemm: /, 'gemmBf16: '));
  });

  test(`${label}: the table's gemmBf16 takes each operand as a Float32Array (rounded to bf16) or a Uint16Array of bf16 bits`, { skip: label === 'native' ? nativeSkip : wasmSkip }, async () => {
    const k = await get();
    const gemmBf16 = tableFn(k, 'gemmBf16');
    // 1 + 2⁻⁸ rounds to 1 in bf16 (a tie, to even); small integers are exact; every sum is exact in float32.
    const A = Float32Array.of(1 + 2 ** -8, 2, 3, 4, 5, 6); // 2×3
    const B = Float32Array.of(1, 2, 3, 4, 5, 6); // 3×2
    const want = [22, 28, 49, 64]; // A rounded: [[1,2,3],[4,5,6]]
    for (const [a, b] of [[A, B], [f32ToBf16(A), B], [A, f32ToBf16(B)], [f32ToBf16(A), f32ToBf16(B)]] as const) {
      const C = new Float32Array(4);
      gemmBf16(false, false, 2, 2, 3, a, 0, b, 0, C, 0, 1, 1, 0);
      assert.deepEqual(Array.from(C), want, `${a.constructor.name} × ${b.constructor.name}`);
    }
  });
}

test('createWasmKernels refuses a build that does not match the thread count, naming both', { skip: wasmSkip }, async () => {
  assert.ok(dir, WASM_MISSING);
  const single = readFileSync(join(dir, 'dpo_kernels.wasm'));
  await assert.rejects(createWasmKernels(single, { threads: 2, glue: pathToFileURL(join(dir, 'dpo_kernels_mt.mjs')) }),
    /the given wasm is the single-thread \(dpo_kernels\) build but threads > 1 needs dpo_kernels_mt\.wasm/);
  await assert.rejects(createWasmKernels(single), /options\.glue .* is required/);
  const k = await createWasmKernels(single, { glue: pathToFileURL(join(dir, 'dpo_kernels.mjs')) });
  assert.equal(k.numThreads(), 1);
  k.setNumThreads(4); // capped: the one-thread build has no workers
  assert.equal(k.numThreads(), 1);
});
