// Native SGEMM against the float64 reference: odd/prime shapes, all transposes, batches with
// strides and broadcast, alpha/beta, beta = 0 over NaN, every micro-kernel path (avx512, avx2,
// portable, switched in-process and forced by DPO_GEMM_KERNEL in a child process),
// bit-identical results for 1 and 2 threads, and argument errors naming gemm and the sizes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnNode, underWasm, wasmRerun } from './helpers/native.js';
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Kernels } from '../src/tensor/kernels.js';
import { nativeKernels, nativeLoadError, nativeMissing, wasmKernels, wasmLoadError } from '../src/tensor/backend.js';
import { gemm as refGemm } from '../src/tensor/reference/gemm.js';
import { mulberry32 as rng } from './helpers/rng.js';
import { uniformF32 } from './helpers/numeric.js';

// Under wasmRerun (DPO_BACKEND=wasm) the kernels under test are the WebAssembly build.
const nat = underWasm ? wasmKernels() : nativeKernels();
const ready = nat !== null && (underWasm || !nativeMissing.includes('gemm'));
const reason = nat === null ? (underWasm ? `wasm kernels unavailable: ${wasmLoadError()}` : `native addon unavailable: ${nativeLoadError()}`)
  : 'native addon lacks gemm (stale build)';
// Without CI a missing addon skips with the reason; under CI the tests run and fail.
const skip = !ready && !process.env.CI ? reason : false;

function native(): Kernels {
  assert.ok(ready, reason);
  return nat as Kernels;
}

// The extra exports for tests (kernel selection) live on the raw addon object. Same lookup as
// backend.ts: DPO_NATIVE_ADDON, else build/Release above this file.
interface GemmAddon {
  gemmKernel(): string;
  gemmSetKernel(name: string): void;
  gemmKernelsSupported(): string[];
}
function addonPath(): string | null {
  if (process.env.DPO_NATIVE_ADDON) return resolve(process.env.DPO_NATIVE_ADDON);
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const p = join(dir, 'build', 'Release', 'dpo_native.node');
    if (existsSync(p)) return p;
    dir = resolve(dir, '..');
  }
  return null;
}
function rawAddon(): GemmAddon {
  const p = addonPath();
  assert.ok(p, 'native addon not found');
  return createRequire(import.meta.url)(p) as GemmAddon;
}

const rand = uniformF32;

interface Case {
  ta: boolean; tb: boolean; M: number; N: number; K: number;
  batch?: number; sA?: number; sB?: number; sC?: number; alpha?: number; beta?: number;
}

// Runs one case natively and checks every element against the float64 reference:
// |C − C64| ≤ 2·K·u·(|alpha|·Σ|a·b| + |beta·c0|) + tiny, the float32 dot-product error bound
// (u = 2⁻²⁴). A dropped or misplaced term is ~Σ|a·b|/K, far above it for these K.
function check(k: Kernels, c: Case, seed: number, cInit: 'rand' | 'nan' = 'rand'): void {
  const { ta, tb, M, N, K } = c;
  const batch = c.batch ?? 1, alpha = c.alpha ?? 1, beta = c.beta ?? 0;
  const sA = c.sA ?? M * K, sB = c.sB ?? K * N, sC = c.sC ?? M * N;
  const r = rng(seed);
  const span = (s: number, n: number) => (batch - 1) * s + n;
  const A = rand(span(sA, M * K), r), B = rand(span(sB, K * N), r);
  const C = cInit === 'nan' ? new Float32Array(span(sC, M * N)).fill(NaN) : rand(span(sC, M * N), r);
  const C0 = C.slice();

  k.gemm(ta, tb, M, N, K, A, sA, B, sB, C, sC, batch, alpha, beta);

  const A64 = Float64Array.from(A), B64 = Float64Array.from(B);
  const absA = A64.map(Math.abs), absB = B64.map(Math.abs);
  const R = new Float64Array(C.length), S = new Float64Array(C.length);
  refGemm(ta, tb, M, N, K, A64, sA, B64, sB, R, sC, batch, 1, 0);
  refGemm(ta, tb, M, N, K, absA, sA, absB, sB, S, sC, batch, 1, 0);
  const u = 2 ** -24;
  const name = `${ta ? 'T' : 'N'}${tb ? 'T' : 'N'} M=${M} N=${N} K=${K} batch=${batch} alpha=${alpha} beta=${beta}`;
  for (let b = 0; b < batch; b++) {
    for (let i = 0; i < M * N; i++) {
      const at = b * sC + i;
      const c0 = beta === 0 ? 0 : beta * C0[at]!;
      const want = alpha * R[at]! + c0;
      const tol = 2 * (K + 2) * u * (Math.abs(alpha) * S[at]! + Math.abs(c0)) + 1e-30;
      const got = C[at]!;
      if (!(Math.abs(got - want) <= tol)) {
        assert.fail(`${name}: C[${b}][${Math.floor(i / N)},${i % N}] = ${got}, want ${want} (tol ${tol})`);
      }
    }
  }
}

const SHAPES: [number, number, number][] = [
  [1, 1, 1], [7, 13, 5], [127, 61, 257], [33, 129, 65], [2, 50, 31], [50, 3, 17], [12, 32, 1], [13, 33, 384],
  [25, 97, 769],
  // Above the shared-slab threshold (2·192³ flops): row blocks × shared B slab, and a thin M
  // with N over one slab (1024 columns) so the slab's columns are split too.
  [200, 300, 130], [13, 1100, 600],
];
const TRANS: [boolean, boolean][] = [[false, false], [false, true], [true, false], [true, true]];

function kernelsToTest(): string[] {
  return underWasm ? [] : rawAddon().gemmKernelsSupported();
}

/** Runs body with each supported micro-kernel path selected in-process, then restores the original. */
function forEachKernelPath(body: (path: string) => void): void {
  if (underWasm) return body('wasm');
  const addon = rawAddon();
  const before = addon.gemmKernel();
  try {
    for (const path of kernelsToTest()) {
      addon.gemmSetKernel(path);
      body(path);
    }
  } finally {
    addon.gemmSetKernel(before);
  }
}

test('gemm matches the float64 reference on odd shapes, all transposes, every kernel path', { skip }, () => {
  const k = native();
  if (!underWasm) assert.ok(kernelsToTest().includes('portable'), 'the portable path is always available');
  forEachKernelPath((path) => {
    if (!underWasm) assert.equal(rawAddon().gemmKernel(), path);
    let seed = 1;
    for (const [M, N, K] of SHAPES) {
      for (const [ta, tb] of TRANS) {
        check(k, { ta, tb, M, N, K }, seed++);
        check(k, { ta, tb, M, N, K, alpha: -1.5, beta: 0.75 }, seed++);
      }
    }
  });
});

test('gemm: batches with padded strides, broadcast operands (stride 0), alpha/beta', { skip }, () => {
  const k = native();
  forEachKernelPath(() => {
    let seed = 100;
    for (const [ta, tb] of TRANS) {
      // Padded strides: batch items are not adjacent.
      check(k, { ta, tb, M: 19, N: 41, K: 23, batch: 3, sA: 19 * 23 + 5, sB: 23 * 41 + 7, sC: 19 * 41 + 3, alpha: 0.5, beta: 2 }, seed++);
      // Broadcast B (one weight matrix for every batch item), then broadcast A.
      check(k, { ta, tb, M: 37, N: 70, K: 45, batch: 4, sB: 0, beta: 1 }, seed++);
      check(k, { ta, tb, M: 5, N: 66, K: 130, batch: 2, sA: 0 }, seed++);
      // Items large enough for the shared-slab path, one after the other.
      check(k, { ta, tb, M: 100, N: 200, K: 400, batch: 2, sB: 0, sC: 100 * 200 + 9, beta: -1 }, seed++);
    }
  });
});

test('gemm: beta = 0 overwrites NaN; K = 0 and alpha = 0 give beta·C', { skip }, () => {
  const k = native();
  forEachKernelPath(() => {
    for (const [M, N, K] of [[1, 1, 1], [30, 70, 20], [3, 5, 7]] as const) {
      for (const [ta, tb] of TRANS) check(k, { ta, tb, M, N, K, alpha: 2 }, 7, 'nan');
    }
  });
  const C = Float32Array.from([NaN, 1, 2, 3]);
  k.gemm(false, false, 2, 2, 0, new Float32Array(0), 0, new Float32Array(0), 0, C, 0, 1, 1, 0);
  assert.deepEqual([...C], [0, 0, 0, 0]);
  const D = Float32Array.from([1, 2, 3, 4]);
  k.gemm(false, false, 2, 2, 0, new Float32Array(0), 0, new Float32Array(0), 0, D, 0, 1, 1, 0.5);
  assert.deepEqual([...D], [0.5, 1, 1.5, 2]);
  const E = Float32Array.from([NaN, 2]);
  k.gemm(false, false, 1, 2, 3, Float32Array.from([NaN, 1, 1]), 0, new Float32Array(6).fill(1), 0, E, 0, 1, 0, 0);
  assert.deepEqual([...E], [0, 0]);
});

test('gemm: bit-identical results with 1 and 2 threads', { skip: skip || (underWasm && (nat?.numThreads() ?? 1) < 2 && 'the single-thread wasm build has one thread') }, () => {
  const k = native();
  const threads = k.numThreads();
  try {
    forEachKernelPath((path) => {
      let seed = 500;
      for (const c of [
        { ta: false, tb: false, M: 301, N: 520, K: 700, batch: 1 },
        { ta: true, tb: false, M: 200, N: 333, K: 1100, batch: 1 },
        { ta: false, tb: true, M: 64, N: 1000, K: 257, batch: 3 },
        { ta: false, tb: true, M: 2, N: 5000, K: 300, batch: 1 },  // thin M (direct) path
        { ta: false, tb: true, M: 11, N: 3000, K: 577, batch: 2 },  // few rows against W (decoding)
        { ta: true, tb: false, M: 3000, N: 3, K: 700, batch: 1 },  // thin N (direct) path
      ]) {
        const r = rng(seed++);
        const A = rand(c.batch * c.M * c.K, r), B = rand(c.batch * c.K * c.N, r);
        const C0 = rand(c.batch * c.M * c.N, r);
        const run = (n: number) => {
          k.setNumThreads(n);
          assert.equal(k.numThreads(), n);
          const C = C0.slice();
          k.gemm(c.ta, c.tb, c.M, c.N, c.K, A, c.M * c.K, B, c.K * c.N, C, c.M * c.N, c.batch, 0.7, 0.3);
          return C;
        };
        const one = run(1), two = run(2);
        const bits1 = new Uint32Array(one.buffer), bits2 = new Uint32Array(two.buffer);
        for (let i = 0; i < bits1.length; i++) {
          if (bits1[i] !== bits2[i]) assert.fail(`${path} ${JSON.stringify(c)}: element ${i} differs: ${one[i]} vs ${two[i]}`);
        }
      }
    });
  } finally {
    k.setNumThreads(threads);
  }
});

test('gemm: short buffers, wrong types and overlapping batch outputs throw naming gemm and the sizes', { skip }, () => {
  const k = native();
  const f = (n: number) => new Float32Array(n);
  // A needs M·K = 6 elements.
  assert.throws(() => k.gemm(false, false, 2, 3, 3, f(5), 0, f(9), 0, f(6), 0, 1, 1, 0),
    (e: Error) => e instanceof RangeError && /gemm: A has 5 elements/.test(e.message) && /M=2 N=3 K=3/.test(e.message));
  // B needs K·N = 9.
  assert.throws(() => k.gemm(false, true, 2, 3, 3, f(6), 0, f(8), 0, f(6), 0, 1, 1, 0),
    (e: Error) => e instanceof RangeError && /gemm: B has 8 elements/.test(e.message) && /needs 9/.test(e.message));
  // Batched C: (batch − 1)·strideC + M·N = 2·10 + 6 = 26.
  assert.throws(() => k.gemm(false, false, 2, 3, 3, f(6), 0, f(9), 0, f(25), 10, 3, 1, 0),
    (e: Error) => e instanceof RangeError && /gemm: C has 25 elements/.test(e.message) && /needs 26/.test(e.message));
  // Batched A with a stride: 1·100 + 6 = 106.
  assert.throws(() => k.gemm(true, false, 2, 3, 3, f(105), 100, f(9), 0, f(12), 6, 2, 1, 0),
    (e: Error) => e instanceof RangeError && /gemm: A has 105 elements/.test(e.message) && /batch=2/.test(e.message));
  assert.throws(() => k.gemm(false, false, 2, 3, 3, f(6), 0, f(9), 0, f(12), 0, 2, 1, 0),
    (e: Error) => e instanceof RangeError && /gemm: strideC=0/.test(e.message) && /overlap/.test(e.message));
  assert.throws(() => k.gemm(false, false, -1, 3, 3, f(6), 0, f(9), 0, f(6), 0, 1, 1, 0),
    (e: Error) => e instanceof RangeError && /gemm: M must be a non-negative integer, got -1/.test(e.message));
  assert.throws(() => k.gemm(false, false, 2, 3, 3, new Float64Array(6) as unknown as Float32Array, 0, f(9), 0, f(6), 0, 1, 1, 0),
    (e: Error) => e instanceof TypeError && /gemm: A must be a Float32Array/.test(e.message));
  // Empty problems touch nothing and need no data.
  k.gemm(false, false, 0, 3, 3, f(0), 0, f(0), 0, f(0), 0, 1, 1, 0);
  k.gemm(false, false, 2, 3, 3, f(0), 0, f(0), 0, f(0), 0, 0, 1, 0);
});

test('setNumThreads resizes the pool and rejects bad counts', { skip }, () => {
  const k = native();
  const threads = k.numThreads();
  try {
    k.setNumThreads(3);
    assert.equal(k.numThreads(), 3);
    k.setNumThreads(1);
    assert.equal(k.numThreads(), 1);
    assert.throws(() => k.setNumThreads(0), /setNumThreads: n must be an integer/);
    assert.throws(() => k.setNumThreads(1.5), /setNumThreads: n must be an integer/);
  } finally {
    k.setNumThreads(threads);
  }
});

test('DPO_GEMM_KERNEL forces a path at start-up; DPO_NUM_THREADS sets the pool size', { skip }, () => {
  const p = addonPath();
  assert.ok(p, 'native addon not found');
  const script = `
    const a = require(${JSON.stringify(p)});
    const C = new Float32Array(4);
    let err = null;
    try { a.gemm(false, false, 2, 2, 1, Float32Array.from([1, 2]), 0, Float32Array.from([3, 4]), 0, C, 0, 1, 1, 0); }
    catch (e) { err = e.message; }
    console.log(JSON.stringify({ kernel: a.gemmKernel(), threads: a.numThreads(), C: Array.from(C), err }));`;
  const run = (env: Record<string, string>) => {
    const out = spawnNode(['-e', script], { env: { ...process.env, ...env }, encoding: 'utf8' });
    assert.equal(out.status, 0, out.stderr);
    return JSON.parse(out.stdout) as { kernel: string; threads: number; C: number[]; err: string | null };
  };
  for (const path of kernelsToTest()) {
    const got = run({ DPO_GEMM_KERNEL: path, DPO_NUM_THREADS: '3' });
    assert.equal(got.kernel, path);
    assert.equal(got.threads, 3);
    assert.deepEqual(got.C, [3, 4, 6, 8]);
    assert.equal(got.err, null);
  }
  const bad = run({ DPO_GEMM_KERNEL: 'sse9' });
  // The list names this platform's kernels (x86: avx512, avx2; arm64: neon; then portable).
  assert.match(bad.err ?? '', /gemm: DPO_GEMM_KERNEL='sse9' is not one of (avx512, avx2|neon), portable/);
});

// The same tests against the WebAssembly build of the kernels.
wasmRerun(import.meta.url, '^gemm', { minPassed: 4 });
