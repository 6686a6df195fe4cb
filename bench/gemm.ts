// GEMM throughput: the native kernel against numpy (OpenBLAS) on the same machine, same run.
//
//   node dist/bench/gemm.js [--rounds 4] [--reps 8] [--threads 1,2] [--avx2]
//
// --avx2 compares the laptop case (x86 without AVX-512): our AVX2 micro-kernel (as DPO_GEMM_KERNEL=avx2)
// against OpenBLAS forced to its Haswell kernels (OPENBLAS_CORETYPE=Haswell in that child only).
//
// Shapes: 1024³ and the three GEMMs of a transformer linear layer (GPT-2 small MLP, 1024
// tokens): Y = X·W, dX = dY·Wᵀ, dW = Xᵀ·dY. Each round measures, shape by shape, ours then numpy
// for every thread count (best of --reps calls each); the table shows the best figure over rounds and the
// spread (min–max) of the per-round ratio, because other processes share the CPU. At 1 thread
// it also shows the ratio of CPU-time throughputs (process CPU time instead of wall time on both
// sides), which time-slicing by other processes barely affects.
// numpy runs in a child python3 (tried: python3 on PATH, /usr/bin/python3) with
// OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE removed (they can force a slower core) and
// OPENBLAS_NUM_THREADS / OMP_NUM_THREADS set to the thread count.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { existsSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { createRequire } from 'node:module';
import { nativeKernels, nativeLoadError, nativePath } from '../src/tensor/backend.js';
import { seededUniform } from './shapes.js';

type Shape = { name: string; M: number; N: number; K: number; ta: boolean; tb: boolean };
const SHAPES: Shape[] = [
  { name: '1024x1024x1024', M: 1024, N: 1024, K: 1024, ta: false, tb: false },
  { name: 'Y=X·W    1024x3072 K=768', M: 1024, N: 3072, K: 768, ta: false, tb: false },
  { name: 'dX=dY·Wᵀ 1024x768 K=3072', M: 1024, N: 768, K: 3072, ta: false, tb: true },
  { name: 'dW=Xᵀ·dY 768x3072 K=1024', M: 768, N: 3072, K: 1024, ta: true, tb: false },
];

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : dflt;
}
const rounds = Number(arg('rounds', '4'));
const reps = Number(arg('reps', '8'));
const threadCounts = arg('threads', '1,2').split(',').map(Number);
const avx2 = process.argv.includes('--avx2');

const k = nativeKernels();
if (!k) {
  console.error(`native addon unavailable: ${nativeLoadError()}`);
  process.exit(1);
}
// The raw addon (the same module instance the kernels come from) for the micro-kernel switch.
const addon = createRequire(import.meta.url)(nativePath!) as { gemmKernel(): string; gemmSetKernel(name: string): void };
if (avx2) addon.gemmSetKernel('avx2');

const rand = (n: number, seed: number): Float32Array => seededUniform(n, seed);

const data = SHAPES.map((s, i) => ({
  A: rand(s.M * s.K, 1 + i), B: rand(s.K * s.N, 100 + i), C: new Float32Array(s.M * s.N),
}));

type Speed = { wall: number[]; cpu: number[] };

function ours(threads: number, only: Shape[]): Speed {
  k!.setNumThreads(threads);
  const wall: number[] = [], cpu: number[] = [];
  only.forEach((s) => {
    const i = SHAPES.indexOf(s);
    const { A, B, C } = data[i]!;
    const call = () => k!.gemm(s.ta, s.tb, s.M, s.N, s.K, A, 0, B, 0, C, 0, 1, 1, 0);
    call();  // warm-up: pack buffers, page faults, wakes the pool
    let best = Infinity, bestCpu = Infinity;
    for (let r = 0; r < reps; r++) {
      const c0 = process.cpuUsage();
      const t0 = process.hrtime.bigint();
      call();
      best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
      const c = process.cpuUsage(c0);
      bestCpu = Math.min(bestCpu, (c.user + c.system) / 1e6);
    }
    const flop = 2 * s.M * s.N * s.K;
    wall.push(flop / best / 1e9);
    cpu.push(flop / Math.max(bestCpu, 1e-6) / 1e9);
  });
  return { wall, cpu };
}

const script = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'gemm_numpy.py');

function findPython(): string | null {
  for (const py of ['python3', '/usr/bin/python3']) {
    const r = spawnSync(py, ['-c', 'import numpy'], { encoding: 'utf8' });
    if (r.status === 0) return py;
  }
  return null;
}
const python = existsSync(script) ? findPython() : null;
let blas = '';

function numpy(threads: number, only: Shape[]): Speed | null {
  if (!python) return null;
  const env: NodeJS.ProcessEnv = { ...process.env, OPENBLAS_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads) };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  if (avx2) env.OPENBLAS_CORETYPE = 'Haswell';
  const shapes = JSON.stringify(only.map((s) => [s.M, s.N, s.K, s.ta, s.tb]));
  const r = spawnSync(python, [script, shapes, String(reps)], { env, encoding: 'utf8' });
  if (r.status !== 0) {
    console.error(`numpy run failed: ${r.stderr}`);
    return null;
  }
  const out = JSON.parse(r.stdout) as { blas: string; numpy: string; gflops: number[]; cpu_gflops: number[] };
  blas = `numpy ${out.numpy}, ${out.blas}`;
  return { wall: out.gflops, cpu: out.cpu_gflops };
}

console.log(
  `native gemm: kernel ${addon.gemmKernel()}${avx2 ? ' (--avx2)' : process.env.DPO_GEMM_KERNEL ? ' (DPO_GEMM_KERNEL)' : ' (best the CPU supports)'}, ` +
    `rounds ${rounds}, best of ${reps} calls, cores ${availableParallelism()}, CPU ${cpus()[0]?.model ?? 'unknown'}`,
);
if (!python) console.log('numpy: not available (tried python3, /usr/bin/python3; `apt-get install python3-numpy`)');

type Sample = { ours: number; np: number | null; oursCpu: number; npCpu: number | null };
// results[threads][shape] = one sample per round
const results = new Map<number, Sample[][]>();
for (const t of threadCounts) results.set(t, SHAPES.map(() => []));
// Ours and numpy alternate shape by shape, so a burst of load from other processes hits both.
for (let round = 0; round < rounds; round++) {
  for (const t of threadCounts) {
    SHAPES.forEach((shape, i) => {
      const o = ours(t, [shape]);
      const n = numpy(t, [shape]);
      results.get(t)![i]!.push({ ours: o.wall[0]!, np: n ? n.wall[0]! : null, oursCpu: o.cpu[0]!, npCpu: n ? n.cpu[0]! : null });
    });
  }
}
if (blas) console.log(`reference: ${blas} (${avx2 ? 'OPENBLAS_CORETYPE=Haswell, OPENBLAS_L2_SIZE unset' : 'OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset'})`);

const pad = (s: string, n: number) => s.padEnd(n);
const lpad = (s: string, n: number) => s.padStart(n);
console.log(
  `${pad('shape', 28)}${lpad('threads', 8)}${lpad('ours GF/s', 11)}${lpad('numpy GF/s', 12)}${lpad('ratio', 8)}` +
    `${lpad('ratio spread', 14)}${lpad('cpu-time ratio', 16)}`,
);
for (const t of threadCounts) {
  SHAPES.forEach((s, i) => {
    const rs = results.get(t)![i]!;
    const bestOurs = Math.max(...rs.map((r) => r.ours));
    const nps = rs.map((r) => r.np).filter((x): x is number => x !== null);
    const bestNp = nps.length ? Math.max(...nps) : null;
    const ratios = rs.filter((r) => r.np !== null).map((r) => r.ours / r.np!);
    const ratio = bestNp ? (bestOurs / bestNp).toFixed(2) : '-';
    const spread = ratios.length ? `${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}` : '-';
    // CPU-time throughput only compares like with like when each side runs on one thread.
    const npCpu = rs.map((r) => r.npCpu).filter((x): x is number => x !== null);
    const cpuRatio = t === 1 && npCpu.length
      ? (Math.max(...rs.map((r) => r.oursCpu)) / Math.max(...npCpu)).toFixed(2)
      : '-';
    console.log(
      `${pad(s.name, 28)}${lpad(String(t), 8)}${lpad(bestOurs.toFixed(1), 11)}` +
        `${lpad(bestNp ? bestNp.toFixed(1) : '-', 12)}${lpad(ratio, 8)}${lpad(spread, 14)}${lpad(cpuRatio, 16)}`,
    );
  });
}
