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
  // gemmBf16 is not in the table yet (its operands may be Float32Array or Uint16Array): the wasm
  // backend provides it in JavaScript over its gemm (gemmBf16ViaGemm, src/tensor/bf16.ts).
  assert.deepEqual(k.table.map((r) => r.name).sort(), CONTRACT.filter((n) => n !== 'gemmBf16'));
  assert.equal(typeof k.gemmBf16, 'function');
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
