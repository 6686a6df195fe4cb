// bf16 GEMM (native/gemm_bf16.cc) against our float32 GEMM, every bf16 path this CPU has, on the
// matrix products of a linear layer (GPT-2 small MLP and SmolLM2-135M attention, 1024 tokens):
//
//   node dist/bench/gemm-bf16.js [--rounds 3] [--reps 3] [--threads 2]
//
// Rounds interleave the kernels shape by shape (f32, then each bf16 path), best of --reps calls
// each, and report per-round ratios of CPU-time throughput (process CPU seconds, which other
// processes on a shared machine barely affect) as median (min–max), with the CPU model, the
// kernel names and the load average.
import { createRequire } from 'node:module';
import { cpus, loadavg } from 'node:os';
import { nativeKernels, nativeLoadError, nativePath } from '../src/tensor/backend.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : def;
}
const rounds = Number(arg('rounds', '3')), reps = Number(arg('reps', '3')), threads = Number(arg('threads', '2'));
const k = nativeKernels();
if (!k || !nativePath) throw new Error(`native kernels unavailable: ${nativeLoadError()}`);
const addon = createRequire(import.meta.url)(nativePath) as {
  gemmKernel(): string; gemmBf16Kernel(): string; gemmBf16SetKernel(n: string): void; gemmBf16KernelsSupported(): string[];
};
k.setNumThreads(threads);
const SHAPES = [
  { name: 'Y=X·Wᵀ   1024x3072 K=768', M: 1024, N: 3072, K: 768, ta: false, tb: true },
  { name: 'dX=dY·W  1024x768 K=3072', M: 1024, N: 768, K: 3072, ta: false, tb: false },
  { name: 'dW=dYᵀ·X 3072x768 K=1024', M: 3072, N: 768, K: 1024, ta: true, tb: false },
  { name: 'q_proj   1024x576 K=576', M: 1024, N: 576, K: 576, ta: false, tb: true },
];
// amx-emulated is the test path (the AMX kernel on a scalar emulator): not benched.
const auto = addon.gemmBf16Kernel();
const paths = addon.gemmBf16KernelsSupported().filter((p) => p !== 'portable' && p !== 'amx-emulated');
const rand = (n: number) => Float32Array.from({ length: n }, () => Math.random() * 2 - 1);
const cpuNow = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };
console.log(`CPU ${cpus()[0]?.model}; float32 kernel ${addon.gemmKernel()}; bf16 path chosen at start-up ${auto}${paths.includes('amx') ? '' : ' (no usable AMX)'}; benched ${paths.join(', ')}; ${threads} threads; load ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
for (const s of SHAPES) {
  const A = rand(s.M * s.K), B = rand(s.K * s.N), C = new Float32Array(s.M * s.N);
  const flops = 2 * s.M * s.N * s.K;
  const best = (f: () => void) => {
    let b = Infinity;
    for (let r = 0; r < reps; r++) { const c0 = cpuNow(); f(); b = Math.min(b, cpuNow() - c0); }
    return flops / b / 1e9;  // GFLOP per CPU-second
  };
  const ratios = new Map<string, number[]>(paths.map((p) => [p, []]));
  const f32s: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const f32 = best(() => k.gemm(s.ta, s.tb, s.M, s.N, s.K, A, 0, B, 0, C, 0, 1, 1, 0));
    f32s.push(f32);
    for (const p of paths) {
      addon.gemmBf16SetKernel(p);
      ratios.get(p)!.push(best(() => k.gemmBf16(s.ta, s.tb, s.M, s.N, s.K, A, 0, B, 0, C, 0, 1, 1, 0)) / f32);
    }
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const parts = paths.map((p) => { const x = ratios.get(p)!; return `${p} ${med(x).toFixed(2)}× (${Math.min(...x).toFixed(2)}–${Math.max(...x).toFixed(2)})`; });
  console.log(`${s.name}: float32 ${med(f32s).toFixed(0)} GFLOP/CPU-s; bf16 vs float32: ${parts.join(', ')}`);
}
console.log(`load after ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
