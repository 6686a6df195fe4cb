// What the wasm backend's copies cost in a DPO step: every kernel call copies its arrays into the
// module's memory and the written ones back (src/tensor/wasm.ts). On stories260K (full fine-tune,
// the page's default: 8 pairs, batch 4), one thread:
//   - an instrumented run: CPU time inside the C entry points against CPU time in the wrappers
//     (the difference is the marshalling: argument checks and copies), and the bytes copied;
//   - with --against PATH (a compiled wasm.js, e.g. an older src/tensor/wasm.ts built elsewhere):
//     CPU time per step of the two wrappers over the same .wasm, rounds interleaved (A, B, A, B...).
//
//   npm run build:wasm && npx tsc -p . && node dist/bench/wasm-copies.js [--rounds 5] [--steps 6] [--against dist/src/tensor/wasm-before.js]
//
// CPU time (process.cpuUsage between step callbacks), not wall time: the machine may be shared.
// Measured (2026-12-04, AMD EPYC 2 cores shared, load 12-24, Node 20.20.2, SIMD128 build, 1 thread):
// marshalling 13-18% of the step CPU as instrumented (the timing syscalls inflate it; the copies
// themselves ~135 MB a step, a few ms); skipping the copy-in of overwritten outputs (812 → 618 MB
// over 6 steps) left the step at 0.98x / 1.04x of the previous wrapper in two 5- and 3-round runs.
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { setKernels } from '../src/tensor/backend.js';
import type { Kernels } from '../src/tensor/kernels.js';
import { createWasmKernels, type WasmFactory, type WasmKernels } from '../src/tensor/wasm.js';
import { wasmBuildDir, WASM_MISSING } from '../src/tensor/wasm-node.js';
import { runDpo } from '../src/train/dpo.js';
import { dpoConfigOf } from '../src/web/engine.js';

const arg = (name: string, def: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : def;
};
const rounds = Number(arg('rounds', '5')), steps = Number(arg('steps', '6')), against = arg('against', '');
const STORIES260K = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'fixtures', 'models', 'stories260K', 'stories260K.bin');
const dir = wasmBuildDir();
if (!dir) throw new Error(WASM_MISSING);
const wasmBytes = readFileSync(join(dir, 'dpo_kernels.wasm'));
const glueUrl = pathToFileURL(join(dir, 'dpo_kernels.mjs'));
const glue = ((await import(glueUrl.href)) as { default: WasmFactory }).default;

const words = 'the little cat saw a big red ball in the garden and she ran to play with her friend tom who was happy'.split(' ');
const text = (seed: number): string => Array.from({ length: 19 }, (_, i) => words[(seed * 7 + i * 3) % words.length]).join(' ') + '.';
const rows = Array.from({ length: 8 }, (_, i) => ({ prompt: `Once upon a time ${words[i % words.length]}`, chosen: text(i), rejected: text(i + 11) }));
const config = dpoConfigOf({ beta: 0.1, lossType: 'sigmoid', learningRate: 1e-3, steps, lora: false, batchSize: 4 });
const cpuMs = (): number => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
const median = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;

/** CPU ms of each step after the first (the first also loads and compiles). */
async function stepCpu(k: Kernels): Promise<number[]> {
  setKernels(k);
  const at: number[] = [];
  await runDpo({ model: STORIES260K, data: rows, config, quiet: true, on: { step: () => void at.push(cpuMs()) } });
  return at.slice(1).map((t, i) => t - at[i]!);
}

console.log(`CPU: ${cpus()[0]?.model ?? '?'} (${cpus().length} cores), load ${loadavg()[0]!.toFixed(1)}; ${process.version}; wasm ${dir}, 1 thread`);

// 1. The instrumented run: time in C against time in the wrappers, bytes passed.
async function instrumented(label: string, create: typeof createWasmKernels): Promise<void> {
  let inC = 0;
  const timedGlue: WasmFactory = async (moduleArg) => {
    const m = await glue(moduleArg);
    const table = m.UTF8ToString(m._dpo_kernel_table()).trim().split('\n').map((l) => `_${l.split(' ')[1]}`);
    for (const name of table) {
      const f = m[name as `_dpo_${string}`];
      m[name as `_dpo_${string}`] = (...a: number[]) => { const t = cpuMs(); try { return f(...a); } finally { inC += cpuMs() - t; } };
    }
    return m;
  };
  const timed = await create(wasmBytes, { glue: timedGlue });
  let inWrap = 0, calls = 0, bytesIn = 0;
  const wrapped: Record<string, unknown> = { ...timed };
  for (const row of timed.table) {
    const f = (timed as unknown as Record<string, (...a: unknown[]) => unknown>)[row.name]!;
    wrapped[row.name] = (...a: unknown[]) => {
      calls++;
      for (const v of a) if (v instanceof Float32Array || v instanceof Int32Array) bytesIn += v.byteLength;
      const t = cpuMs();
      try { return f(...a); } finally { inWrap += cpuMs() - t; }
    };
  }
  await stepCpu(wrapped as unknown as Kernels); // warm-up
  inC = 0; inWrap = 0; calls = 0; bytesIn = 0;
  const t0 = cpuMs();
  const s = await stepCpu(wrapped as unknown as Kernels);
  const total = cpuMs() - t0;
  console.log(`${label}, instrumented (${steps} steps, incl. model load): ${total.toFixed(0)} ms CPU; ${calls} kernel calls passing ${(bytesIn / 1e6).toFixed(0)} MB of arrays; ` +
    `in C ${inC.toFixed(0)} ms, in the wrappers ${inWrap.toFixed(0)} ms: marshalling ${(inWrap - inC).toFixed(0)} ms = ${(100 * (inWrap - inC) / total).toFixed(1)}% ` +
    `(median step ${median(s).toFixed(1)} ms; the timing adds 4 syscalls a call)`);
}
await instrumented('this wrapper', createWasmKernels);
const other = against ? (await import(pathToFileURL(resolve(against)).href)) as { createWasmKernels: typeof createWasmKernels } : null;
if (other) await instrumented(against, other.createWasmKernels);

// 2. Against another wrapper build, interleaved.
if (other) {
  const kA: WasmKernels = await createWasmKernels(wasmBytes, { glue });
  const kB: WasmKernels = await other.createWasmKernels(wasmBytes, { glue });
  const a: number[] = [], b: number[] = [];
  await stepCpu(kA); await stepCpu(kB); // warm both
  for (let r = 0; r < rounds; r++) {
    a.push(median(await stepCpu(kA)));
    b.push(median(await stepCpu(kB)));
    console.log(`round ${r + 1}: this ${a.at(-1)!.toFixed(1)} ms, ${against} ${b.at(-1)!.toFixed(1)} ms CPU per step (load ${loadavg()[0]!.toFixed(1)})`);
  }
  const ratios = a.map((x, i) => b[i]! / x);
  console.log(`median CPU per step: this ${median(a).toFixed(1)} ms, ${against} ${median(b).toFixed(1)} ms: ${(median(b) / median(a)).toFixed(2)}x ` +
    `(per-round ratios ${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)})`);
}
