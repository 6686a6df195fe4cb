// Speed of the native non-GEMM kernels against the TypeScript reference, in the same run.
//   npx tsc -p . && node dist/bench/ops-kernels.js [--threads 1,2] [--only NAME]
// (DPO_NATIVE_ADDON=... selects a private addon build.) Prints ms per call (minimum of several
// runs) and the speed-up over the reference; the reference runs once per kernel (it is slow).
import { nativeKernels, nativeLoadError, referenceKernels } from '../src/tensor/backend.js';
import { Act, type Kernels } from '../src/tensor/kernels.js';
import { seededUniform } from './shapes.js';

const rand = (n: number, seed: number, scale = 1): Float32Array => seededUniform(n, seed, -scale, scale);


function time(fn: () => void, minMs: number, maxRuns: number): number {
  fn(); // warm-up
  const times: number[] = [];
  const start = performance.now();
  while (times.length < maxRuns && (times.length < 3 || performance.now() - start < minMs)) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  // The minimum: the machine is shared, and interference only ever adds time.
  return Math.min(...times);
}

interface Case {
  name: string;
  run: (k: Kernels) => void;
  /** bytes read + written, for a rough GB/s figure */
  bytes: number;
}

function cases(): Case[] {
  const R = 2048, D = 768;
  const x = rand(R * D, 1), w = rand(D, 2), out = new Float32Array(R * D), rstd = new Float32Array(R);
  const mean = new Float32Array(R), b = rand(D, 3), dy = rand(R * D, 4), dx = new Float32Array(R * D);
  const dw = new Float32Array(D), db = new Float32Array(D);
  const V = 50257, LR = 512;
  const logits = rand(LR * V, 5, 8), targets = new Int32Array(LR).map((_, i) => (i * 7919) % V);
  const logp = new Float32Array(LR), lse = new Float32Array(LR), dlogp = rand(LR, 6);
  const dlogits = new Float32Array(LR * V);
  const N = 2048 * 3072;
  const a1 = rand(N, 7, 4), a2 = rand(N, 8), a3 = new Float32Array(N);
  const P = 1 << 24;
  const param = rand(P, 9), grad = rand(P, 10), m = new Float32Array(P), v = new Float32Array(P);
  const B = 4, T = 512, H = 12, HD = 64, half = HD / 2;
  const q = rand(B * T * H * HD, 11), angle = rand(T * half, 12, Math.PI);
  // True rotations, so repeated in-place runs keep q's scale (no overflow, no denormals).
  const cos = angle.map(Math.cos), sin = angle.map(Math.sin);
  const pos = new Int32Array(B * T).map((_, i) => i % T);
  const ids = new Int32Array(R).map((_, i) => (i * 131) % V), table = rand(V * D, 14);
  const dtable = new Float32Array(V * D);
  const f = 4;
  return [
    { name: `rmsnormForward ${R}x${D}`, run: (k) => k.rmsnormForward(x, w, out, rstd, R, D, 1e-5), bytes: 2 * R * D * f },
    { name: `rmsnormBackward ${R}x${D}`, run: (k) => k.rmsnormBackward(dy, x, w, rstd, dx, dw, R, D), bytes: 3 * R * D * f },
    { name: `layernormForward ${R}x${D}`, run: (k) => k.layernormForward(x, w, b, out, mean, rstd, R, D, 1e-5), bytes: 2 * R * D * f },
    { name: `layernormBackward ${R}x${D}`, run: (k) => k.layernormBackward(dy, x, w, mean, rstd, dx, dw, db, R, D), bytes: 3 * R * D * f },
    { name: `logSoftmaxGather ${LR}x${V}`, run: (k) => k.logSoftmaxGather(logits, targets, logp, lse, LR, V), bytes: LR * V * f },
    { name: `logSoftmaxGatherBackward ${LR}x${V}`, run: (k) => k.logSoftmaxGatherBackward(logits, targets, lse, dlogp, dlogits, LR, V), bytes: 2 * LR * V * f },
    { name: `softmaxForward ${LR}x${V}`, run: (k) => k.softmaxForward(logits, dlogits, LR, V), bytes: 2 * LR * V * f },
    { name: `activationForward geluTanh ${N}`, run: (k) => k.activationForward(Act.geluTanh, a1, a3, N), bytes: 2 * N * f },
    { name: `activationBackward geluTanh ${N}`, run: (k) => k.activationBackward(Act.geluTanh, a1, a2, a3, N), bytes: 3 * N * f },
    { name: `activationForward gelu ${N}`, run: (k) => k.activationForward(Act.gelu, a1, a3, N), bytes: 2 * N * f },
    { name: `swigluForward ${N}`, run: (k) => k.swigluForward(a1, a2, a3, N), bytes: 3 * N * f },
    { name: `swigluBackward ${R * D}`, run: (k) => k.swigluBackward(a1, a2, a2, a3, out, Math.min(N, R * D)), bytes: 5 * R * D * f },
    { name: `rope ${B}x${T}x${H}x${HD} in place`, run: (k) => k.rope(q, q, cos, sin, pos, B, T, H, HD, false), bytes: 2 * q.length * f },
    { name: `embeddingForward ${R}x${D}`, run: (k) => k.embeddingForward(ids, table, out, R, D), bytes: 2 * R * D * f },
    { name: `embeddingBackward ${R}x${D}`, run: (k) => k.embeddingBackward(ids, dy, dtable, R, D), bytes: 3 * R * D * f },
    { name: `adamw ${P}`, run: (k) => k.adamw(param, grad, m, v, P, 1e-4, 0.9, 0.999, 1e-8, 0.01, 0.1, 0.001), bytes: 7 * P * f },
    { name: `sumSquares ${P}`, run: (k) => void k.sumSquares(param, P), bytes: P * f },
    { name: `axpy ${N}`, run: (k) => k.axpy(0.5, a1, a3, N), bytes: 3 * N * f },
  ];
}

function main(): void {
  const args = process.argv.slice(2);
  const threadArg = args.indexOf('--threads') >= 0 ? args[args.indexOf('--threads') + 1]! : '1,2';
  const only = args.indexOf('--only') >= 0 ? args[args.indexOf('--only') + 1]! : '';
  const threads = threadArg.split(',').map(Number);
  const native = nativeKernels();
  if (!native) {
    console.error(`native kernels unavailable: ${nativeLoadError()}`);
    process.exit(1);
  }
  const header = ['kernel', 'reference ms', ...threads.map((t) => `native ${t}t ms`), ...threads.map((t) => `speed-up ${t}t`), `GB/s ${threads[threads.length - 1]}t`];
  console.log(header.join(' | '));
  for (const c of cases()) {
    if (only && !c.name.includes(only)) continue;
    const ref = time(() => c.run(referenceKernels), 0, 1);
    const nat = threads.map((t) => {
      native.setNumThreads(t);
      return time(() => c.run(native), 300, 50);
    });
    const last = nat[nat.length - 1]!;
    console.log([
      c.name, ref.toFixed(1), ...nat.map((t) => t.toFixed(2)), ...nat.map((t) => `${(ref / t).toFixed(0)}x`),
      (c.bytes / last / 1e6).toFixed(1),
    ].join(' | '));
  }
}

main();
