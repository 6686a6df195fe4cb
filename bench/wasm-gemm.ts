// WebAssembly GEMM: our wasm kernels against the browser peers in the same chromium page, and
// against our native addon in Node, on this machine.
//
//   npm run build:wasm && npx tsc -p . && node dist/bench/wasm-gemm.js [--threads 1,2] [--rounds 3] [--reps 5] [--shapes N] [--node-only | --browser-only] [--clock wall|cpu]
//   node scripts/build-wasm.mjs --probe && node dist/bench/wasm-gemm.js --breakdown [--shapes N] [--rounds R] [--reps N] [--clock cpu] [--node-only | --browser-only]
//
// Browser (Debian's /usr/bin/chromium through playwright-core, headless): one page served from
// 127.0.0.1 with COOP/COEP headers (cross-origin isolated, so SharedArrayBuffer and threads work),
// holding three engines: ours (createWasmKernels, dist/wasm/), onnxruntime-web's WebAssembly
// execution provider running a one-node ONNX MatMul model, and @tensorflow/tfjs-backend-wasm's
// tf.matMul. Same shapes, same thread count (ort.env.wasm.numThreads, tf.wasm.setThreadsCount —
// tfjs fixes its count once per page, so each thread count gets a fresh page; tfjs also caps its
// pool at navigator.hardwareConcurrency / 2, which the page lifts while tfjs starts so it runs the
// threads asked for; the output says what each engine actually ran with). Every call starts
// and ends with JavaScript Float32Arrays (ours copies them into and out of wasm memory, ORT
// wraps them in tensors and returns a new one, tfjs makes tensors and reads the result back).
// Rounds interleave the engines shape by shape; each figure is the best of --reps calls, the
// table shows the best over rounds and the spread (min–max) of the per-round ratios. Before the
// engines start, the page times a wasm loop of independent 4-lane multiply-adds (relaxed_madd, and
// mul + add) on the page's thread, or on that many workers at once; "ours/loop" is our GEMM against
// the faster of the two. It is a reference rate, not a proven bound: on EPYC Zen 5 our GEMM reaches
// it on 1 thread (98-103%), so the loop (12 accumulators, its local.get/set moves) is itself short of
// the core's limit.
//
// Node: our wasm (the same .wasm files, DPO_BACKEND=wasm's loader: the relaxed-SIMD build where
// it exists, and the SIMD128 one) against the native addon, interleaved the same way, 1 and N
// threads. `--clock cpu` times the Node part in process CPU time (all threads) instead of wall
// time: on a loaded machine the 1-thread figures then measure the code, not the queue.
import { createServer, type Server } from 'node:http';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, extname, join, normalize, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { nativeKernels, nativeLoadError } from '../src/tensor/backend.js';
import { loadWasmKernelsNode, wasmBuildDir, WASM_MISSING } from '../src/tensor/wasm-node.js';
import { seededUniform } from './shapes.js';

type Shape = { name: string; M: number; N: number; K: number };
const SHAPES: Shape[] = [
  { name: '256³', M: 256, N: 256, K: 256 },
  { name: '512³', M: 512, N: 512, K: 512 },
  { name: '1024³', M: 1024, N: 1024, K: 1024 },
  { name: 'X·W 512×3072 K=768', M: 512, N: 3072, K: 768 },
  { name: 'X·W 512×768 K=3072', M: 512, N: 768, K: 3072 },
];

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : dflt;
}
const threadCounts = arg('threads', '1,2').split(',').map(Number);
const shapeCount = Number(arg('shapes', String(SHAPES.length))); // the first N shapes
const rounds = Number(arg('rounds', '3'));
const reps = Number(arg('reps', '5'));
const clock = arg('clock', 'wall');
if (clock !== 'wall' && clock !== 'cpu') throw new Error(`--clock must be wall or cpu, got ${clock}`);
/** Milliseconds since `t0` (a value this returned) on the chosen clock. */
function now(): number {
  if (clock === 'wall') return performance.now();
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

function cpuLine(): string {
  const c = cpus();
  return `${c[0]?.model ?? 'unknown CPU'} (${c.length} logical CPUs visible)`;
}

const rand = (n: number, seed: number): Float32Array => seededUniform(n, seed);

function stats(ratios: number[]): string {
  return `${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}`;
}

// ---------------------------------------------------------------------------------------------
// Node: wasm vs native.

async function nodeBench(): Promise<void> {
  const nat = nativeKernels();
  if (!nat) throw new Error(`native addon unavailable: ${nativeLoadError()}`);
  const natAddon = nat as unknown as { name: string };
  console.log(`\n== Node ${process.version}: our wasm vs our native addon, same process, interleaved`);
  console.log(`CPU: ${cpuLine()}`);
  console.log(`clock: ${clock === 'cpu' ? 'process CPU time (all threads)' : 'wall'}`);
  for (const threads of threadCounts) {
    const w = await loadWasmKernelsNode(threads);
    // The SIMD128 micro-kernel of the same build, for the relaxed-SIMD (FMA) gain.
    const plain = w.gemmKernelsSupported().includes('wasm-relaxed-simd') ? 'wasm-simd128' : null;
    nat.setNumThreads(threads);
    console.log(`\nthreads ${threads}: native backend ${natAddon.name} (GEMM ${nativeGemmKernel()}), wasm ${w.build} (${w.features}, GEMM ${w.gemmKernel()}, ${w.numThreads()} threads)`);
    console.log(`${'shape'.padEnd(22)} ${'native GFLOP/s'.padStart(15)} ${'wasm GFLOP/s'.padStart(13)} ${'wasm/native'.padStart(12)} ${'spread'.padStart(11)}${plain ? ` ${'simd128 GFLOP/s'.padStart(16)} ${'relaxed/simd128'.padStart(16)}` : ''}`);
    for (const s of SHAPES.slice(0, shapeCount)) {
      const A = rand(s.M * s.K, 1), B = rand(s.K * s.N, 2), C = new Float32Array(s.M * s.N);
      const flops = 2 * s.M * s.N * s.K;
      let bestN = 0, bestW = 0, bestP = 0;
      const ratios: number[] = [];
      for (let r = 0; r < rounds; r++) {
        const run = (k: typeof nat): number => {
          let best = 0;
          for (let i = 0; i < reps; i++) {
            const t0 = now();
            k.gemm(false, false, s.M, s.N, s.K, A, 0, B, 0, C, 0, 1, 1, 0);
            best = Math.max(best, flops / ((now() - t0) * 1e6));
          }
          return best;
        };
        const n = run(nat), wv = run(w);
        if (plain) {
          const active = w.gemmKernel();
          w.gemmSetKernel(plain);
          bestP = Math.max(bestP, run(w));
          w.gemmSetKernel(active);
        }
        bestN = Math.max(bestN, n);
        bestW = Math.max(bestW, wv);
        ratios.push(wv / n);
      }
      console.log(`${s.name.padEnd(22)} ${bestN.toFixed(1).padStart(15)} ${bestW.toFixed(1).padStart(13)} ${(bestW / bestN).toFixed(2).padStart(12)} ${stats(ratios).padStart(11)}` +
        (plain ? ` ${bestP.toFixed(1).padStart(16)} ${(bestW / bestP).toFixed(2).padStart(16)}` : ''));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// --breakdown (Node, then chromium): where the time of one of our 1-thread calls goes, from the probe build
// (`node scripts/build-wasm.mjs --probe` → dist/wasm-probe/: the same GEMM, compiled with
// -DDPO_GEMM_PROBE, can skip packing op(A), op(B) or its micro-kernel). Interleaved per round: the
// bench's call (copy A and B into wasm memory, GEMM, copy C out), the GEMM alone on operands already
// in wasm memory, the same without packing op(A) / op(B) / either (the kernel reading panels left by
// an earlier call), and packing alone; plus the regular build's call (the probe build must match it).

type ProbeModule = {
  HEAPF32: Float32Array;
  _malloc(n: number): number;
  _dpo_gemm(...a: number[]): number;
  _dpo_gemm_probe(mode: number): void;
  _free(p: number): void;
};

/** The breakdown's parts: key, label. */
const BREAKDOWN_PARTS: [string, string][] = [
  ['call', 'bench call (copies + GEMM)'], ['regular', 'regular build, bench call'], ['resident', 'GEMM, operands in wasm memory'],
  ['noA', 'GEMM without packing op(A)'], ['noB', 'GEMM without packing op(B)'], ['kernel', 'GEMM without packing (kernel + C)'], ['pack', 'packing alone (no kernel)'],
];

/**
 * Times the parts of one shape's call (BREAKDOWN_PARTS' keys) and the multiply-add loops, rounds
 * interleaved; the best ms of each (loop: of all loops, sized to the call's flops). Self-contained
 * (the page gets its source): m is the probe build's module, regularGemm the regular build's bench call.
 */
async function timeBreakdown(m: ProbeModule, regularGemm: () => void, loopFns: Record<string, (turns: number) => number>,
  loops: [string, number][], parts: string[], M: number, N: number, K: number, A: Float32Array, B: Float32Array, C: Float32Array,
  rounds: number, reps: number, now: () => number): Promise<Record<string, number>> {
  const flops = 2 * M * N * K;
  const pA = m._malloc(4 * A.length), pB = m._malloc(4 * B.length), pC = m._malloc(4 * C.length);
  if (!pA || !pB || !pC) throw new Error('probe build: out of wasm memory');
  const gemm = (): void => {
    const status = m._dpo_gemm(0, 0, M, N, K, pA, A.length, 0, pB, B.length, 0, pC, C.length, 0, 1, 1, 0);
    if (status !== 0) throw new Error(`probe build: dpo_gemm status ${status}`);
  };
  const run: Record<string, () => void> = {
    call: () => {
      m._dpo_gemm_probe(0);
      m.HEAPF32.set(A, pA >> 2);
      m.HEAPF32.set(B, pB >> 2);
      gemm();
      C.set(m.HEAPF32.subarray(pC >> 2, (pC >> 2) + C.length));
    },
    regular: regularGemm,
    resident: () => { m._dpo_gemm_probe(0); gemm(); },
    noA: () => { m._dpo_gemm_probe(1); gemm(); },
    noB: () => { m._dpo_gemm_probe(2); gemm(); },
    kernel: () => { m._dpo_gemm_probe(3); gemm(); },
    pack: () => { m._dpo_gemm_probe(4); gemm(); },
  };
  const loopRuns = loops.map(([name, acc]) => ({ f: loopFns[name]!, turns: Math.max(1, Math.round(flops / (4 * acc * 8))) }));
  // Warm-up to V8's optimizing tier; the pack buffers then hold valid panels for the skipping modes.
  for (let i = 0; i < 4; i++) {
    for (const k of parts) run[k]!();
    for (const l of loopRuns) l.f(l.turns);
    await new Promise((ok) => setTimeout(ok, 20));
  }
  run.call!();
  const best: Record<string, number> = {};
  for (let r = 0; r < rounds; r++) {
    for (const k of parts) {
      for (let i = 0; i < reps; i++) {
        const t0 = now();
        run[k]!();
        best[k] = Math.min(best[k] ?? Infinity, now() - t0);
      }
    }
    for (const l of loopRuns) {
      for (let i = 0; i < reps; i++) {
        const t0 = now();
        l.f(l.turns);
        best.loop = Math.min(best.loop ?? Infinity, now() - t0);
      }
    }
  }
  m._dpo_gemm_probe(0);
  m._free(pA);
  m._free(pB);
  m._free(pC);
  return best;
}

function printBreakdown(s: Shape, best: Record<string, number>): void {
  const flops = 2 * s.M * s.N * s.K;
  const call = best.call!;
  console.log(`\n${s.name}: bench call ${call.toFixed(2)} ms = ${(flops / (call * 1e6)).toFixed(1)} GFLOP/s; the kernel without packing ${(flops / (best.kernel! * 1e6)).toFixed(1)} GFLOP/s`);
  console.log(`  multiply-add loop (fastest of ${LOOPS.map(([n]) => n).join(', ')}) ${(flops / (best.loop! * 1e6)).toFixed(1)} GFLOP/s: ` +
    `the kernel without packing runs at ${(100 * best.loop! / best.kernel!).toFixed(1)}% of it, the bench call at ${(100 * best.loop! / call).toFixed(1)}%`);
  for (const [k, label] of BREAKDOWN_PARTS) console.log(`  ${label.padEnd(36)} ${best[k]!.toFixed(2).padStart(8)} ms ${(100 * best[k]! / call).toFixed(1).padStart(6)}%`);
  console.log(`  → copies ${(100 * (call - best.resident!) / call).toFixed(1)}%, packing op(A) ${(100 * (best.resident! - best.noA!) / call).toFixed(1)}%, ` +
    `op(B) ${(100 * (best.resident! - best.noB!) / call).toFixed(1)}%, the rest (kernel, C, partial tiles) ${(100 * best.kernel! / call).toFixed(1)}%`);
}

async function nodeBreakdown(): Promise<void> {
  const dir = join(root, 'dist', 'wasm-probe');
  const regular = await loadWasmKernelsNode(1); // also turns relaxed SIMD on in Node 20
  const build = ['dpo_kernels_relaxed', 'dpo_kernels'].find((b) => existsSync(join(dir, `${b}.wasm`)));
  if (!build) throw new Error(PROBE_MISSING);
  // Both builds record the newest source time they were built from: a probe build older than the
  // regular one times other code.
  const stamp = (d: string): string => (existsSync(join(d, `${build}.stamp`)) ? readFileSync(join(d, `${build}.stamp`), 'utf8') : '?');
  if (stamp(dir) !== stamp(join(root, 'dist', 'wasm'))) {
    console.warn(`warning: dist/wasm-probe/ and dist/wasm/ were built from different sources: rerun \`npm run build:wasm\` and \`node scripts/build-wasm.mjs --probe\``);
  }
  const factory = ((await import(pathToFileURL(join(dir, `${build}.mjs`)).href)) as { default: (m: object) => Promise<ProbeModule> }).default;
  const m = await factory({ wasmBinary: readFileSync(join(dir, `${build}.wasm`)), print: () => {}, printErr: (x: string) => console.warn(x) });
  // (WebAssembly's types are not in this project's lib: no DOM.)
  const WA = (globalThis as unknown as { WebAssembly: { Instance: new (m: object) => { exports: object }; Module: new (b: Uint8Array) => object } }).WebAssembly;
  const loopFns = new WA.Instance(new WA.Module(peakModule())).exports as Record<string, (turns: number) => number>;
  console.log(`\n== Node ${process.version}: where a 1-thread call of ours goes (probe build ${build}, kernel ${regular.gemmKernel()}; regular build ${regular.build})`);
  console.log(`CPU: ${cpuLine()}`);
  console.log(`clock: ${clock === 'cpu' ? 'process CPU time' : 'wall'}; best of ${reps} calls per round, ${rounds} interleaved rounds; ms per call, share of the bench's call`);
  for (const s of SHAPES.slice(0, shapeCount)) {
    const A = rand(s.M * s.K, 1), B = rand(s.K * s.N, 2), C = new Float32Array(s.M * s.N);
    const regularGemm = (): void => { regular.gemm(false, false, s.M, s.N, s.K, A, 0, B, 0, C, 0, 1, 1, 0); };
    printBreakdown(s, await timeBreakdown(m, regularGemm, loopFns, LOOPS.map(([n, , acc]) => [n, acc]), BREAKDOWN_PARTS.map(([k]) => k),
      s.M, s.N, s.K, A, B, C, rounds, reps, now));
  }
}

const PROBE_MISSING = 'dist/wasm-probe/ has no probe build: run `node scripts/build-wasm.mjs --probe` first';

function nativeGemmKernel(): string {
  // backend.ts's kernelPath() reads it from the addon; avoid switching the active backend here.
  return process.env.DPO_GEMM_KERNEL ?? 'auto';
}

// ---------------------------------------------------------------------------------------------
// Browser: ours vs onnxruntime-web vs tfjs-backend-wasm.

const MIME: Record<string, string> = {
  '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json',
};

/** Static files under the repository root, cross-origin isolated; '/' is the bench page. */
function serve(): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    const headers = {
      'Cross-Origin-Opener-Policy': 'same-origin',
      'Cross-Origin-Embedder-Policy': 'require-corp',
      'Cross-Origin-Resource-Policy': 'same-origin',
      'Cache-Control': 'no-store',
    };
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    if (path === '/favicon.ico') {
      res.writeHead(204, headers);
      res.end();
      return;
    }
    if (path === '/') {
      res.writeHead(200, { ...headers, 'Content-Type': 'text/html' });
      res.end(PAGE);
      return;
    }
    const file = normalize(join(root, path));
    const allowed = [join(root, 'dist'), join(root, 'node_modules')];
    if (!allowed.some((d) => file.startsWith(d + '/')) || !existsSync(file) || !statSync(file).isFile()) {
      console.log(`  [server] 404 ${path}`);
      res.writeHead(404, headers);
      res.end('not found');
      return;
    }
    res.writeHead(200, { ...headers, 'Content-Type': MIME[extname(file)] ?? 'application/octet-stream' });
    res.end(readFileSync(file));
  });
  return new Promise((ok) => server.listen(0, '127.0.0.1', () => {
    const a = server.address();
    ok({ server, url: `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}/` });
  }));
}

// The reference rate: wasm functions doing nothing but independent 4-lane multiply-adds
// (f32x4.relaxed_madd with 8, 10 or 12 accumulators, 4·acc per loop turn; f32x4.mul + f32x4.add with
// 12), encoded here byte by byte. GFLOP/s = turns · 4 · acc · 8 / time. A madd has a latency of 4
// cycles on recent x86 cores and two issue each cycle, so 8 in flight is the least that can reach
// the throughput; more than 12 no longer fit V8's 15 allocatable xmm registers (with the two
// operands) and spill. The best of them is the multiply-add throughput of one core as wasm sees it.
const LOOPS: [name: string, fma: boolean, accumulators: number][] = [['madd8', true, 8], ['madd10', true, 10], ['madd12', true, 12], ['muladd12', false, 12]];
// One home for the page (injected as source) and the Node breakdown.
function peakModule(): Uint8Array {
  const leb = (n: number): number[] => { const o: number[] = []; do { let b = n & 0x7f; n >>>= 7; if (n) b |= 0x80; o.push(b); } while (n); return o; };
  const f32 = (x: number): number[] => [...new Uint8Array(new Float32Array([x]).buffer)];
  const SIMD = 0xfd;
  const body = (fma: boolean, ACC: number): number[] => {
    const A = ACC + 1, B = ACC + 2;
    const c = [0x43, ...f32(1.0001), SIMD, 0x13, 0x21, A, 0x43, ...f32(0.9999), SIMD, 0x13, 0x21, B, 0x03, 0x40];
    for (let u = 0; u < 4; u++) {
      for (let i = 1; i <= ACC; i++) {
        c.push(0x20, A, 0x20, B);
        if (fma) c.push(0x20, i, SIMD, ...leb(0x105)); else c.push(SIMD, ...leb(0xe6), 0x20, i, SIMD, ...leb(0xe4));
        c.push(0x21, i);
      }
    }
    c.push(0x20, 0, 0x41, 1, 0x6b, 0x22, 0, 0x0d, 0, 0x0b, 0x20, 1);
    for (let i = 2; i <= ACC; i++) c.push(0x20, i, SIMD, ...leb(0xe4));
    c.push(SIMD, 0x1f, 0, 0x0b);
    const fn = [1, ACC + 2, 0x7b, ...c];
    return [...leb(fn.length), ...fn];
  };
  const section = (id: number, bytes: number[]): number[] => [id, ...leb(bytes.length), ...bytes];
  const name = (s: string): number[] => [s.length, ...new TextEncoder().encode(s)];
  return new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
    ...section(1, [1, 0x60, 1, 0x7f, 1, 0x7d]), ...section(3, [LOOPS.length, ...LOOPS.map(() => 0)]),
    ...section(7, [LOOPS.length, ...LOOPS.flatMap(([n], i) => [...name(n), 0, i])]),
    ...section(10, [LOOPS.length, ...LOOPS.flatMap(([, fma, acc]) => body(fma, acc))])]);
}

const PAGE = `<!doctype html><meta charset="utf-8"><title>wasm GEMM bench</title>
<script>
// Every Worker the engines start, by script (their thread pools), so the output says what each ran with.
window.workersStarted = [];
const NativeWorker = Worker;
window.Worker = class extends NativeWorker {
  constructor(url, opts) { super(url, opts); window.workersStarted.push(String(url).split('/').pop().slice(0, 60)); }
};
</script>
<script src="/node_modules/@tensorflow/tfjs-core/dist/tf-core.min.js"></script>
<script src="/node_modules/@tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.min.js"></script>
<script src="/node_modules/onnxruntime-web/dist/ort.wasm.min.js"></script>
<script type="module">
import { createWasmKernels } from '/dist/src/tensor/wasm.js';

// A one-node ONNX model, Y = MatMul(A, B) with fixed shapes, encoded by hand (protobuf).
function onnxMatMul(M, K, N) {
  const enc = new TextEncoder();
  const varint = (n) => { const o = []; n = BigInt(n); do { let b = Number(n & 0x7fn); n >>= 7n; if (n) b |= 0x80; o.push(b); } while (n); return o; };
  const key = (f, w) => varint((f << 3) | w);
  const vi = (f, n) => [...key(f, 0), ...varint(n)];
  const bytes = (f, b) => [...key(f, 2), ...varint(b.length), ...b];
  const str = (f, s) => bytes(f, [...enc.encode(s)]);
  const dims = (ds) => ds.flatMap((d) => bytes(1, vi(1, d)));
  const valueInfo = (name, ds) => [...str(1, name), ...bytes(2, bytes(1, [...vi(1, 1), ...bytes(2, dims(ds))]))];
  const node = [...str(1, 'A'), ...str(1, 'B'), ...str(2, 'Y'), ...str(3, 'mm'), ...str(4, 'MatMul')];
  const graph = [...bytes(1, node), ...str(2, 'g'), ...bytes(11, valueInfo('A', [M, K])), ...bytes(11, valueInfo('B', [K, N])), ...bytes(12, valueInfo('Y', [M, N]))];
  return new Uint8Array([...vi(1, 8), ...bytes(8, [...str(1, ''), ...vi(2, 13)]), ...bytes(7, graph)]);
}

function rand(n, seed) {
  const x = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; x[i] = s / 4294967296 - 0.5; }
  return x;
}

const LOOPS = ${JSON.stringify(LOOPS)};
${peakModule.toString()}
// Warm-up: V8 first runs a wasm function on its baseline compiler (Liftoff: accumulators spilled to
// the stack, about half the speed) and switches to the optimizing tier (TurboFan) in the background
// once a call has used its budget, for the following calls; a few calls with pauses between them
// let the optimized code arrive before the timed calls (the first version timed Liftoff code now
// and then and printed a "peak" below our GEMM).
const PEAK_WORKER = 'onmessage = async (e) => { const f = new WebAssembly.Instance(e.data.module).exports[e.data.fn]; ' +
  'for (let i = 0; i < 5; i++) { f(e.data.turns); await new Promise((r) => setTimeout(r, 20)); } ' +
  'let best = Infinity; for (let i = 0; i < 3; i++) { const t0 = performance.now(); f(e.data.turns); best = Math.min(best, performance.now() - t0); } ' +
  'postMessage(best); };';

// The loops the page times between the engines on one thread (runBench), each sized to ~ms.
const pageLoops = [];

// Best GFLOP/s of reps runs of ~ms each, on the page's thread (threads 1) or on that many workers at
// once, per loop of LOOPS; madd is the best relaxed_madd one (maddLoop names it), muladd mul + add.
window.runPeak = async ({ threads, reps, ms }) => {
  const out = {};
  let module;
  try {
    module = await WebAssembly.compile(peakModule());
  } catch (e) {
    return { error: String(e) };
  }
  const inst = new WebAssembly.Instance(module);
  for (const [fn, , acc] of LOOPS) {
    const turnFlops = 4 * acc * 8;
    const f = inst.exports[fn];
    let t0 = 0, turns = 1e5;
    for (let i = 0; i < 5; i++) { f(turns); await new Promise((r) => setTimeout(r, 20)); } // up to the optimizing tier
    t0 = performance.now();
    f(turns);
    turns = Math.max(1e4, Math.round(turns * ms / Math.max(0.01, performance.now() - t0)));
    let best = 0;
    if (threads <= 1) {
      for (let r = 0; r < reps; r++) { t0 = performance.now(); f(turns); best = Math.max(best, turns * turnFlops / ((performance.now() - t0) * 1e6)); }
    } else {
      const url = URL.createObjectURL(new Blob([PEAK_WORKER], { type: 'text/javascript' }));
      const workers = Array.from({ length: threads }, () => new NativeWorker(url));
      for (let r = 0; r < reps; r++) {
        t0 = performance.now();
        // Each worker times its own best call (after its own warm-up), so the figure is the sum of their rates.
        const times = await Promise.all(workers.map((w) => new Promise((ok) => { w.onmessage = (m) => ok(m.data); w.postMessage({ module, fn, turns }); })));
        best = Math.max(best, times.reduce((s, t) => s + turns * turnFlops / (t * 1e6), 0));
      }
      workers.forEach((w) => w.terminate());
      URL.revokeObjectURL(url);
    }
    out[fn] = best;
    if (fn.startsWith('madd')) out.madd = Math.max(out.madd ?? 0, best);
    pageLoops.push({ f, turns, flops: turns * turnFlops });
  }
  out.muladd = out.muladd12;
  return out;
};

window.runBench = async ({ shapes, threads, rounds, reps }) => {
  const info = { crossOriginIsolated, hardwareConcurrency: navigator.hardwareConcurrency, userAgent: navigator.userAgent };
  const started = () => {
    const by = {};
    for (const w of window.workersStarted.splice(0)) { const k = /^[0-9a-f-]{36}$/.test(w) ? 'blob' : w; by[k] = (by[k] ?? 0) + 1; }
    return Object.entries(by).map(([k, n]) => n + '× ' + k).join(', ') || 'none';
  };
  const ours = await createWasmKernels(new URL('/dist/wasm/', location.href), { threads });
  info.ours = { build: ours.build, features: ours.features, threads: ours.numThreads(), gemm: ours.gemmKernel(), workers: started() };
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.wasmPaths = '/node_modules/onnxruntime-web/dist/';
  tf.wasm.setWasmPaths('/node_modules/@tensorflow/tfjs-backend-wasm/dist/');
  tf.wasm.setThreadsCount(threads);
  // tfjs-backend-wasm caps its XNNPACK pool at navigator.hardwareConcurrency / 2 (it assumes two
  // hyperthreads per core), so on a 2-vCPU machine setThreadsCount(2) alone gives 1 thread. For the
  // same threads as the others, it reads a concurrency of 2·threads while it starts.
  const hc = navigator.hardwareConcurrency;
  Object.defineProperty(navigator, 'hardwareConcurrency', { configurable: true, get: () => Math.max(hc, 2 * threads) });
  try {
    await tf.setBackend('wasm');
    await tf.ready();
  } finally {
    delete navigator.hardwareConcurrency;
  }
  info.tfjs = { backend: tf.getBackend(), threads: tf.wasm.getThreadsCount(), multithread: await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT'),
    simd: await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'), version: tf.version_core, workers: started() };
  info.ort = { version: ort.env.versions?.web ?? ort.version };
  const rows = [];
  for (const s of shapes) {
    const { M, N, K } = s;
    const A = rand(M * K, 1), B = rand(K * N, 2), C = new Float32Array(M * N);
    const flops = 2 * M * N * K;
    const session = await ort.InferenceSession.create(onnxMatMul(M, K, N), { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
    // ORT falls back to 1 thread (and says so in env.wasm.numThreads) where threads are unavailable.
    if (!info.ort.numThreads) Object.assign(info.ort, { numThreads: ort.env.wasm.numThreads, workers: started() });
    const engines = {
      ours: async () => { ours.gemm(false, false, M, N, K, A, 0, B, 0, C, 0, 1, 1, 0); return C; },
      ort: async () => {
        const out = await session.run({ A: new ort.Tensor('float32', A, [M, K]), B: new ort.Tensor('float32', B, [K, N]) });
        return out.Y.data;
      },
      tfjs: async () => {
        const a = tf.tensor2d(A, [M, K]), b = tf.tensor2d(B, [K, N]);
        const c = tf.matMul(a, b);
        const d = await c.data();
        tf.dispose([a, b, c]);
        return d;
      },
    };
    // Same product from all three (float32 tolerance).
    const ref = Float32Array.from(await engines.ours());
    const maxDiff = {};
    for (const [name, fn] of Object.entries(engines)) {
      const y = await fn();
      let m = 0;
      for (let i = 0; i < ref.length; i += 97) m = Math.max(m, Math.abs(y[i] - ref[i]));
      maxDiff[name] = m;
    }
    const best = { ours: 0, ort: 0, tfjs: 0 }, perRound = [];
    for (let r = 0; r < rounds; r++) {
      const g = {};
      for (const [name, fn] of Object.entries(engines)) {
        let b = 0;
        for (let i = 0; i < reps; i++) { const t0 = performance.now(); await fn(); b = Math.max(b, flops / ((performance.now() - t0) * 1e6)); }
        g[name] = b;
        best[name] = Math.max(best[name], b);
      }
      // On one thread the multiply-add loops are timed in every round too, between the engines, so
      // the ratios against the fastest of them come from the same minute of the machine.
      if (threads <= 1 && pageLoops.length) {
        let b = 0;
        for (const l of pageLoops) {
          for (let i = 0; i < reps; i++) { const t0 = performance.now(); l.f(l.turns); b = Math.max(b, l.flops / ((performance.now() - t0) * 1e6)); }
        }
        g.loop = b;
        best.loop = Math.max(best.loop ?? 0, b);
      }
      perRound.push(g);
    }
    await session.release();
    rows.push({ shape: s.name, best, perRound, maxDiff });
  }
  return { info, rows };
};
// --breakdown: where a 1-thread call of ours goes, from the probe build (dist/wasm-probe/), as in Node.
${timeBreakdown.toString()}
window.runBreakdown = async ({ shapes, rounds, reps, loops, parts }) => {
  let build = null, res = null;
  for (const b of ['dpo_kernels_relaxed', 'dpo_kernels']) {
    res = await fetch('/dist/wasm-probe/' + b + '.wasm');
    if (res.ok) { build = b; break; }
  }
  if (!build) return { error: 'no probe build' };
  const factory = (await import('/dist/wasm-probe/' + build + '.mjs')).default;
  const m = await factory({ wasmBinary: new Uint8Array(await res.arrayBuffer()), print() {}, printErr: console.warn });
  const regular = await createWasmKernels(new URL('/dist/wasm/', location.href), { threads: 1 });
  const loopFns = new WebAssembly.Instance(await WebAssembly.compile(peakModule())).exports;
  const out = [];
  for (const s of shapes) {
    const A = rand(s.M * s.K, 1), B = rand(s.K * s.N, 2), C = new Float32Array(s.M * s.N);
    const regularGemm = () => { regular.gemm(false, false, s.M, s.N, s.K, A, 0, B, 0, C, 0, 1, 1, 0); };
    out.push(await timeBreakdown(m, regularGemm, loopFns, loops, parts, s.M, s.N, s.K, A, B, C, rounds, reps, () => performance.now()));
  }
  return { build, regular: regular.build, kernel: regular.gemmKernel(), userAgent: navigator.userAgent, out };
};
window.benchReady = true;
</script>`;

async function browserBench(): Promise<void> {
  const { chromium } = await import('playwright-core');
  const exe = '/usr/bin/chromium';
  if (!existsSync(exe)) throw new Error('Debian chromium not found at /usr/bin/chromium (apt-get install chromium)');
  for (const dep of ['onnxruntime-web', '@tensorflow/tfjs-core', '@tensorflow/tfjs-backend-wasm']) {
    if (!existsSync(join(root, 'node_modules', dep))) throw new Error(`${dep} is not installed (npm install: it is a devDependency)`);
  }
  const { server, url } = await serve();
  const browser = await chromium.launch({ executablePath: exe, headless: true, args: ['--no-sandbox'] });
  try {
    console.log(`\n== chromium (headless, ${url}, cross-origin isolated): ours vs onnxruntime-web (wasm EP, MatMul) vs tfjs-backend-wasm (matMul)`);
    console.log(`CPU: ${cpuLine()}`);
    for (const threads of threadCounts) {
      const page = await browser.newPage();
      page.on('console', (m) => { if (m.type() === 'error') console.log(`  [page] ${m.text()}`); });
      await page.goto(url);
      await page.waitForFunction('window.benchReady === true');
      // The measured bound first, while no engine's threads exist yet.
      const peak = await page.evaluate((a) => (globalThis as unknown as { runPeak: (x: unknown) => Promise<unknown> }).runPeak(a),
        { threads, reps: Math.max(3, reps), ms: 40 }) as { madd?: number; madd8?: number; madd10?: number; madd12?: number; muladd?: number; error?: string };
      const res = await page.evaluate((a) => (globalThis as unknown as { runBench: (x: unknown) => Promise<unknown> }).runBench(a),
        { shapes: SHAPES.slice(0, shapeCount), threads, rounds, reps }) as {
        info: Record<string, unknown>; rows: { shape: string; best: Record<string, number>; perRound: Record<string, number>[]; maxDiff: Record<string, number> }[];
      };
      await page.close();
      const info = res.info as { crossOriginIsolated: boolean; userAgent: string; hardwareConcurrency: number; ours: Record<string, unknown>; ort: Record<string, unknown>; tfjs: Record<string, unknown> };
      const { ours, ort, tfjs } = info;
      console.log(`\nthreads ${threads} (${info.userAgent.match(/(Headless)?Chrome\/[\d.]+/)?.[0] ?? info.userAgent}, crossOriginIsolated ${info.crossOriginIsolated}, hardwareConcurrency ${info.hardwareConcurrency}), what each engine ran with:`);
      console.log(`  ours: ${ours.build} (${ours.features}), ${ours.threads} thread(s), GEMM kernel ${ours.gemm}; workers started: ${ours.workers}`);
      console.log(`  onnxruntime-web ${ort.version}: env.wasm.numThreads ${ort.numThreads} after session creation; workers started: ${ort.workers}`);
      console.log(`  tfjs-backend-wasm ${tfjs.version}: backend ${tfjs.backend}, XNNPACK pool of ${tfjs.threads} thread(s) (multithread build ${tfjs.multithread}, SIMD ${tfjs.simd}); workers started: ${tfjs.workers} (its pre-started pool)`);
      console.log(peak.madd ? `multiply-add loops on ${threads} thread${threads > 1 ? 's (workers)' : ''}: f32x4.relaxed_madd with 8 / 10 / 12 accumulators ` +
        `${[peak.madd8, peak.madd10, peak.madd12].map((x) => x!.toFixed(1)).join(' / ')} GFLOP/s, f32x4.mul + f32x4.add ${peak.muladd!.toFixed(1)} GFLOP/s` +
        (threads <= 1 ? `; all four are timed again in every round, 'loop' below is the fastest` : '') : `multiply-add loop: unavailable (${peak.error})`);
      // loop: the multiply-add throughput (per round on 1 thread, else the figure above). peer/loop is
      // how close the faster peer gets to it; loop/peer is the ratio ours/peer would have if our whole
      // call (copies, packing, partial tiles included) ran at the loop's rate: the ceiling of ours/peer.
      console.log(`${'shape'.padEnd(22)} ${'ours GFLOP/s'.padStart(13)} ${'ORT'.padStart(7)} ${'tfjs'.padStart(7)} ${'ours/best peer'.padStart(15)} ${'spread'.padStart(11)} ` +
        `${'loop'.padStart(6)} ${'ours/loop'.padStart(10)} ${'peer/loop'.padStart(10)} ${'loop/peer'.padStart(10)} ${'max |Δ| ort,tfjs'.padStart(18)}`);
      const pct = (x: number): string => `${(100 * x).toFixed(0)}%`;
      for (const r of res.rows) {
        const peer = Math.max(r.best.ort!, r.best.tfjs!);
        const ratios = r.perRound.map((g) => g.ours! / Math.max(g.ort!, g.tfjs!));
        const loop = r.best.loop ?? (peak.madd ? Math.max(peak.madd, peak.muladd ?? 0) : 0);
        // Per-round ratios against the loop of the same round where there is one.
        const within = (x: 'ours' | 'peer'): string => {
          const v = r.perRound.filter((g) => g.loop).map((g) => (x === 'ours' ? g.ours! : Math.max(g.ort!, g.tfjs!)) / g.loop!);
          return v.length ? `${pct(Math.min(...v))}–${pct(Math.max(...v))}` : loop ? pct((x === 'ours' ? r.best.ours! : peer) / loop) : '-';
        };
        const ceiling = r.perRound.filter((g) => g.loop).map((g) => g.loop! / Math.max(g.ort!, g.tfjs!));
        console.log(`${r.shape.padEnd(22)} ${r.best.ours!.toFixed(1).padStart(13)} ${r.best.ort!.toFixed(1).padStart(7)} ${r.best.tfjs!.toFixed(1).padStart(7)} ` +
          `${(r.best.ours! / peer).toFixed(2).padStart(15)} ${stats(ratios).padStart(11)} ${(loop ? loop.toFixed(1) : '-').padStart(6)} ${within('ours').padStart(10)} ${within('peer').padStart(10)} ` +
          `${(ceiling.length ? stats(ceiling) : loop ? (loop / peer).toFixed(2) : '-').padStart(10)} ${`${r.maxDiff.ort!.toExponential(1)},${r.maxDiff.tfjs!.toExponential(1)}`.padStart(18)}`);
      }
    }
  } finally {
    await browser.close();
    server.close();
  }
}

async function browserBreakdown(): Promise<void> {
  const { chromium } = await import('playwright-core');
  const exe = '/usr/bin/chromium';
  if (!existsSync(exe)) throw new Error('Debian chromium not found at /usr/bin/chromium (apt-get install chromium)');
  const { server, url } = await serve();
  const browser = await chromium.launch({ executablePath: exe, headless: true, args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage();
    page.on('console', (msg) => { if (msg.type() === 'error') console.log(`  [page] ${msg.text()}`); });
    await page.goto(url);
    await page.waitForFunction('window.benchReady === true');
    const res = await page.evaluate((a) => (globalThis as unknown as { runBreakdown: (x: unknown) => Promise<unknown> }).runBreakdown(a), {
      shapes: SHAPES.slice(0, shapeCount), rounds, reps, loops: LOOPS.map(([n, , acc]) => [n, acc]), parts: BREAKDOWN_PARTS.map(([k]) => k),
    }) as { error?: string; build: string; regular: string; kernel: string; userAgent: string; out: Record<string, number>[] };
    if (res.error) throw new Error(PROBE_MISSING);
    console.log(`\n== chromium (${res.userAgent.match(/(Headless)?Chrome\/[\d.]+/)?.[0] ?? res.userAgent}, headless): where a 1-thread call of ours goes (probe build ${res.build}, kernel ${res.kernel}; regular build ${res.regular})`);
    console.log(`CPU: ${cpuLine()}`);
    console.log(`clock: wall; best of ${reps} calls per round, ${rounds} interleaved rounds; ms per call, share of the bench's call`);
    SHAPES.slice(0, shapeCount).forEach((s, i) => printBreakdown(s, res.out[i]!));
  } finally {
    await browser.close();
    server.close();
  }
}

if (!wasmBuildDir()) {
  console.error(WASM_MISSING);
  process.exit(1);
}
if (process.argv.includes('--breakdown')) {
  if (!process.argv.includes('--browser-only')) await nodeBreakdown();
  if (!process.argv.includes('--node-only')) await browserBreakdown();
  process.exit(0);
}
if (!process.argv.includes('--browser-only')) await nodeBench();
if (!process.argv.includes('--node-only')) await browserBench();
process.exit(0);
