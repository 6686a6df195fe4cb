// bf16 GEMM (native/gemm_bf16.cc) against the float64 reference, every path this CPU has
// (amx = TDPBF16PS tiles where the CPU and OS allow, avx512bf16 = vdpbf16ps, avx512 = converted
// float32, portable, and amx-emulated = the AMX kernel on the software emulator of the tile
// instructions, native/amx-tiles.h, available everywhere), switched in-process and forced by
// DPO_GEMM_BF16_KERNEL in a child process; conversions (round-to-nearest-even, scalar and vector
// packers); odd/prime shapes, all transposes, batches, strides, broadcast, alpha/beta, Uint16Array
// (stored bf16) operands; bit-identical for 1 and 2 threads; the emulator's TDPBF16PS order and
// DAZ/FTZ; amx = amx-emulated bit for bit; the AMX start-up self-check; argument errors.
//
// The AMX bound: TDPBF16PS sums the low and the high pair elements in two chains of ≤ 16 pairs,
// adds them, then adds that to the accumulator; every product thus passes ≤ 16 + 1 + ⌈K/32⌉ ≤
// K + 2 roundings for K ≥ 2 (the first add of each chain is exact), so bound 1 below holds as is.
//
// Tolerances, derived from the rounding (u₈ = 2⁻⁸: unit roundoff of bf16's 8-bit significand;
// u = 2⁻²⁴: float32's). Write â = bf16(a) = a(1 + δ), |δ| ≤ u₈.
//  1. Products of bf16 values are exact in float32 (8 + 8 significant bits ≤ 24), so the kernel
//     computes the float32 sum of the K exact products â·b̂. A recursive float32 sum of K terms
//     (in any order and blocking: K − 1 additions), then ·alpha (one rounding), + beta·c (two
//     roundings), differs from the exact value by at most γ_{K+2}·(|alpha|·Σ|â·b̂| + |beta·c|),
//     γ_n = n·u/(1 − n·u) (Higham, Accuracy and Stability, §3.1). This is the TIGHT check, against
//     the float64 product of the bf16-rounded inputs: a kernel that skipped the rounding (plain
//     float32) or truncated instead of rounding to nearest misses it by orders of magnitude.
//  2. Against the float64 product of the ORIGINAL inputs: |â·b̂ − a·b| ≤ (2u₈ + u₈²)·|a·b|, and
//     Σ|â·b̂| ≤ (1 + u₈)²·Σ|a·b|, so |C − C_exact| ≤ ((2u₈ + u₈²) + γ_{K+2}(1 + u₈)²)·|alpha|·Σ|a·b|
//     + γ_2·|beta·c|. This is the bound a user relies on (the matmuls of bf16 autocast).
// Inputs are uniform in [−1, 1) (no denormals: vdpbf16ps flushes those, the converted paths do
// not, see native/gemm_bf16.cc).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { nativeForTests, spawnNode } from './helpers/native.js';
import { gemm as refGemm, gemmBf16 as refGemmBf16 } from '../src/tensor/reference/gemm.js';
import { f32BitsToBf16Bits, f32ToBf16, gemmBf16ViaGemm, roundBf16, BF16_UNIT_ROUNDOFF } from '../src/tensor/bf16.js';
import { gemmBf16Path, kernels, nativePath } from '../src/tensor/backend.js';
import type { Kernels } from '../src/tensor/kernels.js';
import { mulberry32 as rng } from './helpers/rng.js';
import { uniformF32 } from './helpers/numeric.js';

const { native: nat, skip } = nativeForTests(['gemmBf16']);

interface Bf16Addon {
  gemmBf16Kernel(): string;
  gemmBf16SetKernel(name: string): void;
  gemmBf16KernelsSupported(): string[];
  f32ToBf16(src: Float32Array, dst: Uint16Array): void;
  gemmBf16(...args: unknown[]): void;
}
// The raw addon (kernel selection lives there), from the file the backend loaded.
const raw = (): Bf16Addon => createRequire(import.meta.url)(nativePath!) as Bf16Addon;

function forEachPath(body: (path: string) => void): void {
  const a = raw();
  const before = a.gemmBf16Kernel();
  try {
    for (const p of a.gemmBf16KernelsSupported()) {
      a.gemmBf16SetKernel(p);
      assert.equal(a.gemmBf16Kernel(), p);
      body(p);
    }
  } finally {
    a.gemmBf16SetKernel(before);
  }
}

const rand = uniformF32;

interface Case {
  ta: boolean; tb: boolean; M: number; N: number; K: number;
  batch?: number; sA?: number; sB?: number; sC?: number; alpha?: number; beta?: number;
  /** Pass this operand as a Uint16Array of bf16 bits instead of float32. */
  stored?: 'A' | 'B';
}

const u = 2 ** -24, u8 = BF16_UNIT_ROUNDOFF;
const gamma = (n: number) => (n * u) / (1 - n * u);

const refCache = new Map<string, Float64Array[]>();

function check(k: Pick<Kernels, 'gemmBf16'>, c: Case, seed: number, label: string): void {
  const { ta, tb, M, N, K } = c;
  const batch = c.batch ?? 1, alpha = c.alpha ?? 1, beta = c.beta ?? 0;
  const sA = c.sA ?? M * K, sB = c.sB ?? K * N, sC = c.sC ?? M * N;
  const r = rng(seed);
  const span = (s: number, n: number) => (batch - 1) * s + n;
  const A = rand(span(sA, M * K), r), B = rand(span(sB, K * N), r);
  const C = rand(span(sC, M * N), r);
  const C0 = C.slice();
  k.gemmBf16(ta, tb, M, N, K, c.stored === 'A' ? f32ToBf16(A) : A, sA, c.stored === 'B' ? f32ToBf16(B) : B, sB,
    C, sC, batch, alpha, beta);

  const exact = (x: Float32Array, round: boolean, abs: boolean) => Float64Array.from(x, (v) => {
    const w = round ? roundBf16(v) : v;
    return abs ? Math.abs(w) : w;
  });
  const prod = (round: boolean, abs: boolean) => {
    const out = new Float64Array(C.length);
    refGemm(ta, tb, M, N, K, exact(A, round, abs), sA, exact(B, round, abs), sB, out, sC, batch, 1, 0);
    return out;
  };
  // The float64 products depend on the case and seed only: computed once for all paths.
  const key = JSON.stringify([c, seed]);
  let refs = refCache.get(key);
  if (!refs) {
    refs = [prod(true, false), prod(true, true), prod(false, false), prod(false, true)];
    refCache.set(key, refs);
  }
  const [Rb, Sb, R, S] = refs;
  const name = `${label} ${ta ? 'T' : 'N'}${tb ? 'T' : 'N'} M=${M} N=${N} K=${K} batch=${batch} alpha=${alpha} beta=${beta}${c.stored ? ` stored ${c.stored}` : ''}`;
  let distBf16 = 0, distOrig = 0;
  for (let b = 0; b < batch; b++) {
    for (let i = 0; i < M * N; i++) {
      const at = b * sC + i;
      const c0 = beta === 0 ? 0 : beta * C0[at]!;
      const got = C[at]!;
      const tight = gamma(K + 2) * (Math.abs(alpha) * Sb[at]! + Math.abs(c0)) + 1e-38;
      const wantB = alpha * Rb[at]! + c0;
      if (!(Math.abs(got - wantB) <= tight)) {
        assert.fail(`${name}: C[${b}][${Math.floor(i / N)},${i % N}] = ${got}, float64 of the bf16 inputs ${wantB} (tol ${tight})`);
      }
      const loose = (2 * u8 + u8 * u8 + gamma(K + 2) * (1 + u8) ** 2) * Math.abs(alpha) * S[at]! + gamma(2) * Math.abs(c0) + 1e-38;
      const want = alpha * R[at]! + c0;
      if (!(Math.abs(got - want) <= loose)) {
        assert.fail(`${name}: C[${b}][${Math.floor(i / N)},${i % N}] = ${got}, float64 of the inputs ${want} (tol ${loose})`);
      }
      distBf16 += Math.abs(got - wantB);
      distOrig += Math.abs(got - want);
    }
  }
  // The result must be the product of the ROUNDED inputs: far closer to it than to the unrounded
  // product (a float32 kernel would be the other way round).
  if (M * N * K >= 1000) assert.ok(distBf16 < 0.05 * distOrig, `${name}: not bf16 (Σ|C − C_bf16| = ${distBf16}, Σ|C − C_f32| = ${distOrig})`);
}

const SHAPES: [number, number, number][] = [
  [1, 1, 1], [7, 13, 5], [127, 61, 257], [33, 129, 65], [2, 50, 31], [50, 3, 17], [12, 32, 1], [13, 33, 384],
  [25, 97, 769], [12, 32, 2],
  // Large enough for the shared-slab path (row blocks × a packed slab of B), several K blocks
  // (K > 512, odd) and N over one slab (1024 columns).
  [120, 150, 1031], [13, 1100, 600],
];
const TRANS: [boolean, boolean][] = [[false, false], [false, true], [true, false], [true, true]];

test('conversions: round-to-nearest-even, ties to even, NaN stays NaN, overflow to Inf (native = TypeScript)', { skip }, () => {
  const cases: [number, number][] = [
    [0x3f800000, 0x3f80], [0x3f808000, 0x3f80], [0x3f818000, 0x3f82], [0x3f808001, 0x3f81], [0x3f807fff, 0x3f80],
    [0xbf818000, 0xbf82], [0x7f7fffff, 0x7f80], [0x7f800000, 0x7f80], [0xff800000, 0xff80], [0x7f800001, 0x7fc0],
    [0xffc00000, 0xffc0], [0x00000001, 0x0000], [0x00008000, 0x0000], [0x00018000, 0x0002], [0x80000000, 0x8000],
  ];
  for (const [f, b] of cases) assert.equal(f32BitsToBf16Bits(f), b, `0x${f.toString(16)}`);
  // Native conversion equals the TypeScript one on the cases and on 200 000 random bit patterns.
  const bits = new Uint32Array(200_000 + cases.length);
  const r = rng(3);
  cases.forEach(([f], i) => (bits[i] = f));
  for (let i = cases.length; i < bits.length; i++) bits[i] = Math.floor(r() * 2 ** 32) >>> 0;
  const f32 = new Float32Array(bits.buffer);
  const out = new Uint16Array(f32.length);
  raw().f32ToBf16(f32, out);
  for (let i = 0; i < bits.length; i++) {
    if (out[i] !== f32BitsToBf16Bits(bits[i]!)) assert.fail(`f32ToBf16(0x${bits[i]!.toString(16)}) = 0x${out[i]!.toString(16)}`);
  }
  assert.throws(() => raw().f32ToBf16(new Float32Array(3), new Uint16Array(2)), /^RangeError: f32ToBf16: dst has 2 elements, needs 3 \(one per element of src\)$/);
});

test('gemmBf16 matches the float64 reference within the derived bf16 bounds: odd shapes, all transposes, every path', { skip }, () => {
  const k = nat!;
  assert.ok(raw().gemmBf16KernelsSupported().includes('portable'));
  forEachPath((path) => {
    let seed = 1;
    for (const [M, N, K] of SHAPES) {
      for (const [ta, tb] of TRANS) {
        // alpha/beta on the small shapes, plain products on the large ones (time).
        check(k, M * N * K < 1e6 ? { ta, tb, M, N, K, alpha: -1.5, beta: 0.75 } : { ta, tb, M, N, K }, seed++, path);
      }
    }
  });
});

test('gemmBf16: batches with padded strides, broadcast operands, Uint16Array (stored bf16) operands', { skip }, () => {
  const k = nat!;
  forEachPath((path) => {
    let seed = 100;
    for (const [ta, tb] of TRANS) {
      check(k, { ta, tb, M: 19, N: 41, K: 23, batch: 3, sA: 19 * 23 + 5, sB: 23 * 41 + 7, sC: 19 * 41 + 3, alpha: 0.5, beta: 2 }, seed++, path);
      check(k, { ta, tb, M: 37, N: 70, K: 45, batch: 4, sB: 0, beta: 1, stored: 'B' }, seed++, path);
      check(k, { ta, tb, M: 5, N: 66, K: 131, batch: 2, sA: 0, stored: 'A' }, seed++, path);
      check(k, { ta, tb, M: 60, N: 200, K: 401, batch: 2, sB: 0, sC: 100 * 200 + 9, beta: -1, stored: 'B' }, seed++, path);
    }
  });
});

test('gemmBf16: every path gives the same bits (vdpbf16ps order: high pair element, then low), stored = converted operands', { skip }, () => {
  // Intel documents vdpbf16ps as two float32 additions per lane (odd element first) with exact
  // products; the converted paths do the same two adds in that order, so on normal numbers all
  // paths agree bit for bit.
  const k = nat!;
  const r = rng(77);
  for (const [ta, tb, M, N, K] of [[false, true, 61, 97, 301], [true, false, 200, 130, 777], [false, false, 7, 33, 2]] as const) {
    const A = rand(M * K, r), B = rand(K * N, r);
    const results: [string, Uint32Array][] = [];
    forEachPath((path) => {
      const C = new Float32Array(M * N);
      k.gemmBf16(ta, tb, M, N, K, A, 0, B, 0, C, 0, 1, 1, 0);
      results.push([path, new Uint32Array(C.buffer)]);
      const D = new Float32Array(M * N);
      k.gemmBf16(ta, tb, M, N, K, f32ToBf16(A), 0, f32ToBf16(B), 0, D, 0, 1, 1, 0);
      assert.deepEqual(new Uint32Array(D.buffer), new Uint32Array(C.buffer), `${path}: Uint16Array operands differ from Float32Array`);
    });
    // amx-emulated sums in TDPBF16PS's order instead (hardware amx: see 'amx on the hardware' below,
    // whose bits decide whether the start-up self-check accepts it).
    const vdp = results.filter(([p]) => !p.startsWith('amx'));
    for (const [p, bits] of vdp.slice(1)) assert.deepEqual(bits, vdp[0]![1], `${p} differs from ${vdp[0]![0]}`);
  }
});

test('gemmBf16: beta = 0 overwrites NaN, K = 0 and alpha = 0 give beta·C', { skip }, () => {
  const k = nat!;
  forEachPath(() => {
    const C = new Float32Array(30 * 70).fill(NaN);
    k.gemmBf16(false, true, 30, 70, 20, rand(600, rng(1)), 0, rand(1400, rng(2)), 0, C, 0, 1, 1, 0);
    assert.ok(C.every(Number.isFinite));
    const D = Float32Array.from([1, 2, 3, 4]);
    k.gemmBf16(false, false, 2, 2, 0, new Float32Array(0), 0, new Float32Array(0), 0, D, 0, 1, 1, 0.5);
    assert.deepEqual([...D], [0.5, 1, 1.5, 2]);
    const E = Float32Array.from([NaN, 2]);
    k.gemmBf16(false, false, 1, 2, 3, Float32Array.from([NaN, 1, 1]), 0, new Float32Array(6).fill(1), 0, E, 0, 1, 0, 0);
    assert.deepEqual([...E], [0, 0]);
  });
});

test('gemmBf16: bit-identical results with 1 and 2 threads, every path', { skip }, () => {
  const k = nat!;
  const threads = k.numThreads();
  try {
    forEachPath((path) => {
      let seed = 500;
      for (const c of [
        { ta: false, tb: true, M: 301, N: 1100, K: 700, batch: 1 },
        { ta: true, tb: false, M: 200, N: 333, K: 1100, batch: 1 },
        { ta: false, tb: false, M: 64, N: 100, K: 257, batch: 3 },
        { ta: true, tb: true, M: 3, N: 500, K: 99, batch: 2 },
      ]) {
        const r = rng(seed++);
        const A = rand(c.batch * c.M * c.K, r), B = rand(c.batch * c.K * c.N, r), C0 = rand(c.batch * c.M * c.N, r);
        const run = (n: number) => {
          k.setNumThreads(n);
          const C = C0.slice();
          k.gemmBf16(c.ta, c.tb, c.M, c.N, c.K, A, c.M * c.K, B, c.K * c.N, C, c.M * c.N, c.batch, 0.7, 0.3);
          return new Uint32Array(C.buffer);
        };
        assert.deepEqual(run(1), run(2), `${path} ${JSON.stringify(c)}`);
      }
    });
  } finally {
    k.setNumThreads(threads);
  }
});

test('gemmBf16 reference backend and the converted fallback over a float32 gemm (wasm) meet the same bounds', () => {
  let seed = 900;
  for (const [label, k] of [['reference', { gemmBf16: refGemmBf16 }], ['via gemm', { gemmBf16: gemmBf16ViaGemm(refGemm) }]] as const) {
    for (const [M, N, K] of [[7, 13, 5], [33, 29, 65], [5, 8, 200]] as const) {
      for (const [ta, tb] of TRANS) {
        check(k, { ta, tb, M, N, K, alpha: 1.25, beta: 0.5 }, seed++, label);
        check(k, { ta, tb, M, N, K, stored: 'B' }, seed++, label);
      }
    }
  }
});

test('gemmBf16: argument errors name the function and the operand', { skip }, () => {
  const k = nat!;
  assert.throws(() => k.gemmBf16(false, false, 2, 2, 2, new Float64Array(4) as unknown as Float32Array, 0, new Float32Array(4), 0, new Float32Array(4), 0, 1, 1, 0),
    (e: unknown) => e instanceof TypeError && /^gemmBf16: A must be a Float32Array or a Uint16Array of bf16 values$/.test((e as Error).message));
  assert.throws(() => k.gemmBf16(false, false, 2, 2, 2, new Float32Array(4), 0, new Uint16Array(3), 0, new Float32Array(4), 0, 1, 1, 0),
    (e: unknown) => e instanceof RangeError && /^gemmBf16: B has 3 elements, needs 4 \(B is K×N, strideB=0, M=2 N=2 K=2 batch=1\)$/.test((e as Error).message));
  assert.throws(() => k.gemmBf16(false, false, 2, 2, 2, new Float32Array(4), 0, new Float32Array(4), 0, new Uint16Array(4) as unknown as Float32Array, 0, 1, 1, 0),
    (e: unknown) => e instanceof TypeError && /^gemmBf16: C must be a Float32Array$/.test((e as Error).message));
  assert.throws(() => k.gemmBf16(false, false, -1, 2, 2, new Float32Array(4), 0, new Float32Array(4), 0, new Float32Array(4), 0, 1, 1, 0),
    (e: unknown) => e instanceof RangeError && /^gemmBf16: M must be a non-negative integer, got -1$/.test((e as Error).message));
  assert.throws(() => raw().gemmBf16SetKernel('tpu'), /^RangeError: gemmBf16SetKernel: unknown kernel 'tpu' \(amx, avx512bf16, avx512, portable, amx-emulated\)$/);
  if (!raw().gemmBf16KernelsSupported().includes('amx')) {
    assert.throws(() => raw().gemmBf16SetKernel('amx'), /^RangeError: gemmBf16SetKernel: kernel 'amx' is not supported by this CPU$/);
  }
  assert.throws(() => raw().f32ToBf16(new Float32Array(3), new Int16Array(3) as unknown as Uint16Array),
    (e: unknown) => e instanceof TypeError && /^f32ToBf16: dst must be a Uint16Array$/.test((e as Error).message));
});

test('DPO_GEMM_BF16_KERNEL forces a path in a fresh process (and a bad value is an error naming it)', { skip }, () => {
  const script = `import { gemmBf16Path, kernels } from ${JSON.stringify(new URL('../src/tensor/backend.js', import.meta.url).href)};
    const k = kernels(); let err = '';
    try { k.gemmBf16(false, false, 1, 1, 1, new Float32Array(1), 0, new Float32Array(1), 0, new Float32Array(1), 0, 1, 1, 0); }
    catch (e) { err = e.message; }
    console.log(JSON.stringify({ path: err ? null : gemmBf16Path(), err }));`;
  for (const path of raw().gemmBf16KernelsSupported()) {
    const res = spawnNode(['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, DPO_GEMM_BF16_KERNEL: path }, timeout: 20_000 });
    assert.equal(res.status, 0, res.stderr);
    assert.deepEqual(JSON.parse(res.stdout.trim()), { path, err: '' });
  }
  const bad = spawnNode(['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, DPO_GEMM_BF16_KERNEL: 'tpu' }, timeout: 20_000 });
  assert.equal(bad.status, 0, bad.stderr);
  assert.match(JSON.parse(bad.stdout.trim()).err, /DPO_GEMM_BF16_KERNEL='tpu' is not one of amx, avx512bf16, avx512, portable, amx-emulated/);
  if (!raw().gemmBf16KernelsSupported().includes('amx')) {
    const no = spawnNode(['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, DPO_GEMM_BF16_KERNEL: 'amx' }, timeout: 20_000 });
    assert.equal(no.status, 0, no.stderr);
    assert.match(JSON.parse(no.stdout.trim()).err, /DPO_GEMM_BF16_KERNEL='amx' is not supported by this CPU/);
  }
  assert.equal(typeof gemmBf16Path(), 'string');
  assert.ok(kernels());
});

test('amx-emulated follows the SDM\'s TDPBF16PS: separate low/high chains, then their sum, then the accumulator', { skip }, () => {
  // Products (k order: low of pair 0, high of pair 0, low of pair 1, high of pair 1) 1, 2⁻²⁴, −1,
  // 2⁻²⁴, all exact. SDM order: low chain 1 + (−1) = 0, high chain 2⁻²⁴ + 2⁻²⁴ = 2⁻²³, sum 2⁻²³.
  // vdpbf16ps order (high then low, pair by pair): 2⁻²⁴, 1 + 2⁻²⁴ → 1 (tie to even), 1 + 2⁻²⁴ → 1,
  // 1 − 1 = 0. The Intrinsics Guide's single chain (low then high): 1, 1, 0, 2⁻²⁴.
  const k = nat!;
  const A = Float32Array.from([1, 2 ** -12, 1, 2 ** -12]);
  const B = Float32Array.from([1, 2 ** -12, -1, 2 ** -12]);
  const run = (): number => {
    const C = new Float32Array(1);
    k.gemmBf16(false, false, 1, 1, 4, A, 0, B, 0, C, 0, 1, 1, 0);
    return C[0]!;
  };
  const got = new Map<string, number>();
  forEachPath((p) => got.set(p, run()));
  assert.equal(got.get('amx-emulated'), 2 ** -23);
  for (const p of ['avx512bf16', 'avx512', 'portable']) if (got.has(p)) assert.equal(got.get(p), 0, p);
  // Hardware amx: its agreement with the emulator is checked (and acted on) in 'amx on the hardware'.
  // 17 pairs: the 17th lands in the second TDPBF16PS step (K padded to 32 pairs), summed into the
  // accumulator after the first step's chains: 16 products 2⁻²⁴ in the low chain give 2⁻²⁰, the
  // 17th pair's 1 then absorbs nothing: 1 + 2⁻²⁰ is exact; vdpbf16ps gives the same here (check
  // of the step boundary and the zero padding, not of the order).
  const K = 34;
  const A2 = new Float32Array(K).fill(0), B2 = new Float32Array(K).fill(0);
  for (let p = 0; p < 16; p++) { A2[2 * p] = 2 ** -12; B2[2 * p] = 2 ** -12; }
  A2[32] = 1; B2[32] = 1;
  const raw2 = raw();
  const before = raw2.gemmBf16Kernel();
  raw2.gemmBf16SetKernel('amx-emulated');
  try {
    const C = new Float32Array(1);
    k.gemmBf16(false, false, 1, 1, K, A2, 0, B2, 0, C, 0, 1, 1, 0);
    assert.equal(C[0], 1 + 2 ** -20);
  } finally {
    raw2.gemmBf16SetKernel(before);
  }
});

test('amx-emulated flushes denormal inputs and results (DAZ/FTZ), the converted paths keep them', { skip }, () => {
  const k = nat!;
  const den = new Float32Array(new Uint32Array([0x00010000]).buffer)[0]!;  // bf16 denormal 0x0001 = 2⁻¹³³
  const run = (a: number[], b: number[]) => {
    const C = new Float32Array(1);
    k.gemmBf16(false, false, 1, 1, a.length, Float32Array.from(a), 0, Float32Array.from(b), 0, C, 0, 1, 1, 0);
    return C[0]!;
  };
  const got = new Map<string, [number, number]>();
  forEachPath((p) => got.set(p, [run([den], [2 ** 100]), run([2 ** -70], [2 ** -70])]));
  assert.deepEqual(got.get('amx-emulated'), [0, 0]);
  assert.deepEqual(got.get('portable'), [2 ** -33, Math.fround(2 ** -140)]);
  if (got.has('amx')) assert.deepEqual(got.get('amx'), [0, 0]);
});

test('amx on the hardware: equal to amx-emulated bit for bit and chosen at start-up, or different and refused by the self-check', { skip }, (t) => {
  // Intel's two descriptions of TDPBF16PS (the SDM's Operation section, which the emulator follows,
  // and the Intrinsics Guide's single chain) round differently, and only an AMX CPU can say which
  // one the silicon does. Correctness of the hardware path is checked by the float64 bounds above
  // (forEachPath runs it); here: if its bits equal the emulator's, the automatic choice must take
  // it; if not, the start-up self-check must refuse it (never a silently different kernel).
  const paths = raw().gemmBf16KernelsSupported();
  assert.ok(paths.includes('amx-emulated'));
  if (!paths.includes('amx')) {
    t.diagnostic('this CPU/OS has no usable AMX: the AMX kernel was tested through amx-emulated only');
    return;
  }
  const k = nat!;
  const before = raw().gemmBf16Kernel();
  let seed = 4000;
  const differences: string[] = [];
  for (const [ta, tb, M, N, K] of [[false, true, 61, 97, 301], [true, false, 200, 130, 777], [false, false, 7, 33, 2], [true, true, 33, 65, 1031], [false, false, 37, 45, 70]] as const) {
    const r = rng(seed++);
    const A = rand(M * K, r), B = rand(K * N, r), C0 = rand(M * N, r);
    const out: Uint32Array[] = [];
    for (const p of ['amx', 'amx-emulated']) {
      raw().gemmBf16SetKernel(p);
      const C = C0.slice();
      k.gemmBf16(ta, tb, M, N, K, A, 0, B, 0, C, 0, 1, 0.5, 0.25);
      out.push(new Uint32Array(C.buffer));
    }
    raw().gemmBf16SetKernel(before);
    if (out[0]!.some((v, i) => v !== out[1]![i])) differences.push(`${ta ? 'T' : 'N'}${tb ? 'T' : 'N'} ${M}x${N}x${K}`);
  }
  const script = `import { gemmBf16Path, kernels } from ${JSON.stringify(new URL('../src/tensor/backend.js', import.meta.url).href)};
    kernels().gemmBf16(false, false, 1, 1, 1, new Float32Array(1), 0, new Float32Array(1), 0, new Float32Array(1), 0, 1, 1, 0);
    console.log(gemmBf16Path());`;
  const env = { ...process.env };
  delete env.DPO_GEMM_BF16_KERNEL;
  delete env.DPO_GEMM_BF16_AMX_STANDIN;
  const auto = spawnNode(['--input-type=module', '-e', script], { encoding: 'utf8', env, timeout: 20_000 });
  assert.equal(auto.status, 0, auto.stderr);
  if (differences.length === 0) {
    assert.equal(auto.stdout.trim(), 'amx', 'amx equals its emulation, so the automatic choice takes it');
  } else {
    t.diagnostic(`hardware amx differs from the SDM emulation on ${differences.join(', ')}: the self-check falls back`);
    assert.notEqual(auto.stdout.trim(), 'amx', `amx differs from amx-emulated (${differences.join(', ')}) but was chosen at start-up`);
  }
});

test('AMX start-up self-check: a path that differs from amx-emulated is refused with one warning, a matching one is used', { skip }, () => {
  // DPO_GEMM_BF16_AMX_STANDIN makes a path stand in for the hardware AMX one in the automatic
  // choice (test hook): portable sums in vdpbf16ps's order, so it fails the bitwise comparison.
  const script = `import { gemmBf16Path, kernels } from ${JSON.stringify(new URL('../src/tensor/backend.js', import.meta.url).href)};
    const k = kernels();
    k.gemmBf16(false, false, 1, 1, 1, new Float32Array(1), 0, new Float32Array(1), 0, new Float32Array(1), 0, 1, 1, 0);
    console.log(gemmBf16Path());`;
  const env = { ...process.env };
  delete env.DPO_GEMM_BF16_KERNEL;
  const best = raw().gemmBf16KernelsSupported().filter((p) => p !== 'amx')[0]!;
  const bad = spawnNode(['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...env, DPO_GEMM_BF16_AMX_STANDIN: 'portable' }, timeout: 20_000 });
  assert.equal(bad.status, 0, bad.stderr);
  assert.equal(bad.stdout.trim(), best);
  const warnings = bad.stderr.split('\n').filter((l) => l.includes('differs from its emulation of TDPBF16PS'));
  assert.equal(warnings.length, 1, bad.stderr);
  assert.match(warnings[0]!, /AMX bf16 GEMM \(portable\).*using the next bf16 path instead/);
  const good = spawnNode(['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...env, DPO_GEMM_BF16_AMX_STANDIN: 'amx-emulated' }, timeout: 20_000 });
  assert.equal(good.status, 0, good.stderr);
  assert.equal(good.stdout.trim(), 'amx-emulated');
  assert.doesNotMatch(good.stderr, /TDPBF16PS/);
});

/** Bit patterns that matter for round-to-nearest-even, spread so that some 32-value groups of the
 * vector converters hold a denormal (the vcvtne2ps2bf16 path hands those to the integer sequence)
 * and others do not. */
function specialBits(n: number, seed: number, finite: boolean): Uint32Array {
  const special = [0x3f808000, 0x3f818000, 0x3f808001, 0x3f807fff, 0xbf818000, 0x00018000, 0x00008000, 0x80018000,
    0x007fffff, 0x00ff8000, 0x80000000, 0, 0x7f7f7fff, 0xc0a08000, 0x00000001];
  // 0x7f7f8000 and up round to Inf.
  const nonFinite = [0x7f7f8000, 0x7f7fffff, 0x7f800000, 0xff800000, 0x7f800001, 0xffc00000, 0x7fbfffff, 0xff810000];
  const r = rng(seed);
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const group = Math.floor(i / 32);
    const pick = r();
    if (group % 3 === 0 && pick < 0.3) out[i] = special[Math.floor(r() * special.length)]!;
    else if (!finite && group % 3 === 1 && pick < 0.2) out[i] = nonFinite[Math.floor(r() * nonFinite.length)]!;
    else {
      // random sign and mantissa, exponent mostly normal, sometimes 0 (denormal) in groups 0 mod 3
      const e = group % 3 === 0 && pick < 0.4 ? 0 : 100 + Math.floor(r() * 60);
      out[i] = ((r() < 0.5 ? 0x80000000 : 0) | (e << 23) | Math.floor(r() * 0x800000)) >>> 0;
    }
  }
  return out;
}

test('vector bf16 packing = scalar RNE: f32ToBf16 (NaN, ties, denormals, overflow) and the GEMM packers of A and B', { skip }, () => {
  const k = nat!;
  const a = raw();
  // f32ToBf16 over lengths with every tail (the converters take 32 at a time, then scalar).
  for (const n of [1, 31, 32, 33, 64, 95, 1000, 4099]) {
    const bits = specialBits(n, n, false);
    const out = new Uint16Array(n);
    a.f32ToBf16(new Float32Array(bits.buffer), out);
    for (let i = 0; i < n; i++) {
      if (out[i] !== f32BitsToBf16Bits(bits[i]!)) assert.fail(`n=${n}: f32ToBf16(0x${bits[i]!.toString(16)}) = 0x${out[i]!.toString(16)}`);
    }
  }
  // The packers, seen through products that copy one operand: on the portable path (no
  // flushing) C = X·I (A packed, rows of pairs: converter with a stride) and C = I·X with B
  // stored K×N (two rows at a time) or N×K (transposed), finite values (an Inf times the
  // identity's zeros would be NaN). And X = a 1×N row of every kind (NaN included) times [1].
  const before = a.gemmBf16Kernel();
  a.gemmBf16SetKernel('portable');
  try {
    const M = 13, K = 77;
    const X = new Float32Array(specialBits(M * K, 5, true).buffer);
    const want = (v: number) => new Float32Array(new Uint32Array([f32BitsToBf16Bits(new Uint32Array(Float32Array.of(v).buffer)[0]!) << 16]).buffer)[0]!;
    const I = new Float32Array(K * K);
    for (let i = 0; i < K; i++) I[i * K + i] = 1;
    const cases: [string, boolean, boolean, number, number, Float32Array, Float32Array, (i: number, j: number) => number][] = [
      ['A row-major (X·I)', false, false, M, K, X, I, (i, j) => X[i * K + j]!],
      ['B transposed (I·Xᵀ, X stored N×K)', false, true, K, M, I, X, (i, j) => X[j * K + i]!],
    ];
    const XT = new Float32Array(K * M);
    for (let i = 0; i < M; i++) for (let j = 0; j < K; j++) XT[j * M + i] = X[i * K + j]!;
    const IM = new Float32Array(K * K);
    IM.set(I);
    cases.push(['B row-major (I·X, X stored K×N)', false, false, K, M, IM, XT, (i, j) => XT[i * M + j]!]);
    cases.push(['A transposed (X·I, X stored K×M)', true, false, M, K, XT, I, (i, j) => X[i * K + j]!]);
    for (const [label, ta, tb, m, n, A, B, at] of cases) {
      const C = new Float32Array(m * n);
      k.gemmBf16(ta, tb, m, n, K, A, 0, B, 0, C, 0, 1, 1, 0);
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          const w = want(at(i, j));
          if (C[i * n + j] !== w) assert.fail(`${label}: C[${i},${j}] = ${C[i * n + j]}, bf16 of ${at(i, j)} is ${w}`);
        }
      }
    }
    const row = specialBits(100, 9, false);
    const C = new Float32Array(100);
    k.gemmBf16(false, false, 1, 100, 1, Float32Array.of(1), 0, new Float32Array(row.buffer), 0, C, 0, 1, 1, 0);
    const cb = new Uint32Array(C.buffer);
    for (let j = 0; j < 100; j++) {
      const w = (f32BitsToBf16Bits(row[j]!) << 16) >>> 0;
      // 0 + (−0) = +0: the sign of a zero does not survive the accumulator.
      if (cb[j] !== w && !(w === 0x80000000 && cb[j] === 0)) assert.fail(`row of B: C[${j}] = 0x${cb[j]!.toString(16)}, want 0x${w.toString(16)} (input 0x${row[j]!.toString(16)})`);
    }
  } finally {
    a.gemmBf16SetKernel(before);
  }
});

test('the AVX2 and scalar bf16 converters (DPO_NATIVE_ISA=avx2 | generic) pass the same conversion and packing tests', { skip }, () => {
  const file = fileURLToPath(import.meta.url);
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT; // else the child talks the runner's internal protocol, not TAP
  for (const isa of ['avx2', 'generic']) {
    const res = spawnNode(['--test-reporter=tap', '--test-name-pattern=^(conversions|vector bf16 packing)', file],
      { encoding: 'utf8', env: { ...env, DPO_NATIVE_ISA: isa }, timeout: 60_000 });
    assert.equal(res.status, 0, `DPO_NATIVE_ISA=${isa}: ${res.stdout.slice(-3000)}${res.stderr}`);
    assert.match(res.stdout, /# pass 2\b/, `DPO_NATIVE_ISA=${isa}: expected the 2 tests to run\n${res.stdout.slice(-2000)}`);
  }
});
