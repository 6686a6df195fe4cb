// Causal attention forward + backward: native against the TypeScript reference, in the same run
// (the machine is shared, so ratios matter more than absolute times).
//   npx tsc -p . && node dist/bench/attention.js [--no-reference] [--threads N] [--short]
// DPO_NATIVE_ISA=generic times the portable native path instead of AVX-512.
// Shapes: B=4 T=512 H=12 D=64 (the reference case), then (unless --short) longer sequences and
// GQA, native only.
import { nativeKernels, nativeLoadError, nativeMissing, referenceKernels } from '../src/tensor/backend.js';
import type { Kernels } from '../src/tensor/kernels.js';

interface Case { B: number; T: number; H: number; Hkv: number; D: number; reference: boolean }

const args = process.argv.slice(2);
const withReference = !args.includes('--no-reference');
const threadsArg = args.indexOf('--threads');
const short = args.includes('--short');

function fill(n: number, seed: number): Float32Array {
  const x = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    x[i] = s / 2 ** 31 - 1;
  }
  return x;
}

// The machine is shared: wall time also counts waiting for a core, so the process CPU time
// (all threads) is reported too; with --threads 1 it is the kernel's own cost.
let cpuMs = 0;

/** Median of `reps` wall-clock timings (ms) of fn; adds the CPU time of that run to cpuMs. */
function time(fn: () => void, reps: number): number {
  const t: { wall: number; cpu: number }[] = [];
  for (let r = 0; r < reps; r++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    fn();
    const wall = performance.now() - t0;
    const c = process.cpuUsage(c0);
    t.push({ wall, cpu: (c.user + c.system) / 1000 });
  }
  t.sort((a, b) => a.wall - b.wall);
  const med = t[Math.floor(t.length / 2)];
  cpuMs += med.cpu;
  return med.wall;
}

function run(kern: Kernels, c: Case, reps: number): { fwd: number; bwd: number; cpu: number; out: Float32Array } {
  const { B, T, H, Hkv, D } = c;
  const q = fill(B * T * H * D, 1), k = fill(B * T * Hkv * D, 2), v = fill(B * T * Hkv * D, 3);
  const dout = fill(B * T * H * D, 4);
  const out = new Float32Array(q.length), lse = new Float32Array(B * H * T);
  const dq = new Float32Array(q.length), dk = new Float32Array(k.length), dv = new Float32Array(v.length);
  const scale = 1 / Math.sqrt(D);
  cpuMs = 0;
  const fwd = time(() => kern.attentionForward(q, k, v, out, lse, B, T, T, H, Hkv, D, scale, T * Hkv * D, null), reps);
  const bwd = time(() => kern.attentionBackward(dout, q, k, v, out, lse, dq, dk, dv, B, T, H, Hkv, D, scale, null), reps);
  return { fwd, bwd, cpu: cpuMs, out };
}

/** Useful flops of causal attention: 2 (QKᵀ, PV) matmuls forward, 5 backward (FlashAttention-2 count). */
function gflops(c: Case, ms: number, matmuls: number): string {
  const pairs = (c.T * (c.T + 1)) / 2;
  return ((2 * matmuls * c.B * c.H * c.D * pairs) / (ms * 1e6)).toFixed(1);
}

const nat = nativeKernels();
if (!nat || nativeMissing.includes('attentionForward')) {
  console.error(`native attention unavailable: ${nativeLoadError() ?? 'addon lacks attentionForward'}`);
  process.exit(1);
}
if (threadsArg >= 0) nat.setNumThreads(Number(args[threadsArg + 1]));
console.log(`native threads: ${nat.numThreads()}`);

const cases: Case[] = [
  { B: 4, T: 512, H: 12, Hkv: 12, D: 64, reference: withReference },
  { B: 1, T: 2048, H: 12, Hkv: 12, D: 64, reference: false },
  { B: 1, T: 4096, H: 8, Hkv: 2, D: 128, reference: false },
].slice(0, short ? 1 : undefined);

for (const c of cases) {
  const name = `B=${c.B} T=${c.T} H=${c.H} Hkv=${c.Hkv} D=${c.D}`;
  const avx = run(nat, c, 5);
  const line = (label: string, r: { fwd: number; bwd: number; cpu: number }) =>
    `  ${label.padEnd(18)} fwd ${r.fwd.toFixed(1).padStart(9)} ms (${gflops(c, r.fwd, 2)} GFLOP/s)` +
    `  bwd ${r.bwd.toFixed(1).padStart(9)} ms (${gflops(c, r.bwd, 5)} GFLOP/s)` +
    `  fwd+bwd ${(r.fwd + r.bwd).toFixed(1).padStart(9)} ms (CPU ${r.cpu.toFixed(1)} ms)`;
  console.log(name);
  console.log(line(`native (${process.env.DPO_NATIVE_ISA ?? 'auto'})`, avx));
  if (c.reference) {
    const r = run(referenceKernels, c, 1);
    console.log(line('reference (TS)', r));
    console.log(`  native vs reference: fwd ${(r.fwd / avx.fwd).toFixed(0)}x, bwd ${(r.bwd / avx.bwd).toFixed(0)}x, ` +
      `fwd+bwd ${((r.fwd + r.bwd) / (avx.fwd + avx.bwd)).toFixed(0)}x`);
    let diff = 0;
    for (let i = 0; i < r.out.length; i++) diff = Math.max(diff, Math.abs(r.out[i] - avx.out[i]));
    console.log(`  max |out native − out reference| = ${diff.toExponential(2)}`);
  }
}
