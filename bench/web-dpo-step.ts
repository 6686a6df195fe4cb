// DPO step time of the page's engine in chromium against the Node library on the same machine:
// the page's engine (dist/web/engine.js, the bundle the worker runs) with the WebAssembly kernels
// (when built; --threads, cross-origin isolated) and with the TypeScript kernels, against Node with
// the native addon and Node with the TypeScript kernels (same code, browser's V8 against Node's).
//
//   npx tsc -p . && node scripts/build-web.mjs && node dist/bench/web-dpo-step.js [--rounds 3] [--steps 6] [--pairs 8] [--tokens 24] [--threads 2]
//
// Same model (stories260K), pairs, options and seed on every side; rounds are interleaved
// (browser, node-native, node-ts, browser, ...) so load changes on a shared machine hit all sides.
// A step's time is the median over its steps after the first; the table gives medians over rounds.
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpus, loadavg } from 'node:os';
import { chromium } from 'playwright-core';
import { kernelPath, nativeKernels, referenceKernels, setKernels } from '../src/tensor/backend.js';
import { runDpo } from '../src/train/dpo.js';
import { dpoConfigOf, type TrainSettings } from '../src/web/engine.js';
import { startWebServer } from '../src/web/server.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const arg = (name: string, def: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
};
const rounds = arg('rounds', 3), steps = arg('steps', 6), nPairs = arg('pairs', 8), tokens = arg('tokens', 24), threads = arg('threads', 2);
const wasmBuilt = (JSON.parse(readFileSync(join(root, 'dist', 'web', 'build.json'), 'utf8')) as { wasm: boolean }).wasm;

// Pairs of TinyStories-like text, about `tokens` tokens a response.
const words = 'the little cat saw a big red ball in the garden and she ran to play with her friend tom who was happy'.split(' ');
const text = (seed: number): string => Array.from({ length: Math.round(tokens * 0.8) }, (_, i) => words[(seed * 7 + i * 3) % words.length]).join(' ') + '.';
const rows = Array.from({ length: nPairs }, (_, i) => ({ prompt: `Once upon a time ${words[i % words.length]}`, chosen: text(i), rejected: text(i + 11) }));
const settings: TrainSettings = { beta: 0.1, lossType: 'sigmoid', learningRate: 1e-3, steps, lora: false, batchSize: 4 };
const median = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
const modelPath = join(root, 'test', 'fixtures', 'models', 'stories260K', 'stories260K.bin');

async function nodeStep(): Promise<number> {
  const secs: number[] = [];
  await runDpo({ model: modelPath, data: rows, config: dpoConfigOf(settings), quiet: true, on: { step: (r) => void secs.push(r.seconds) } });
  return median(secs.slice(1));
}

const native = nativeKernels();
if (!native) throw new Error('the native addon does not load: build it first (npm run build:native)');
setKernels(native);
const nativePath = kernelPath();
const srv = await startWebServer({ port: 0 });
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox', '--disable-gpu'] });
try {
  const page = await browser.newPage();
  await page.goto(srv.url);
  await page.waitForSelector('body[data-ready="1"]');
  const model = readFileSync(modelPath), tok = readFileSync(join(dirname(modelPath), 'tok512.bin'));
  const browserStep = async (wasm: boolean): Promise<{ seconds: number; backend: string; ua: string }> =>
    page.evaluate(async ({ rows, settings, model, tok, wasm, threads }) => {
      const base = (globalThis as unknown as { location: { href: string } }).location.href;
      const { WebEngine } = (await import(new URL('engine.js', base).href)) as typeof import('../src/web/engine.js');
      let k: import('../src/tensor/kernels.js').Kernels | undefined;
      if (wasm) {
        const w = (await import(new URL('wasm-kernels.js', base).href)) as typeof import('../src/tensor/wasm.js');
        k = await w.createWasmKernels(new URL('wasm/', base), { threads });
      }
      const e = new WebEngine(k);
      e.addFiles([{ path: '/bench/stories260K.bin', bytes: new Uint8Array(model) }, { path: '/bench/tok512.bin', bytes: new Uint8Array(tok) }]);
      await e.load('/bench/stories260K.bin');
      const secs: number[] = [];
      await e.train(rows, settings, (r) => void secs.push(r.seconds));
      const s = secs.slice(1).sort((x, y) => x - y);
      return { seconds: s[Math.floor(s.length / 2)]!, backend: k ? `${k.name} ${k.numThreads()} threads` : 'TypeScript kernels', ua: (globalThis as unknown as { navigator: { userAgent: string } }).navigator.userAgent };
    }, { rows, settings, model: [...model], tok: [...tok], wasm, threads });
  const b: number[] = [], bw: number[] = [], n: number[] = [], r: number[] = [];
  let wasmBackend = '';
  let ua = '';
  for (let i = 0; i < rounds; i++) {
    const load = loadavg()[0]!.toFixed(2);
    const br = await browserStep(false);
    ua = br.ua;
    b.push(br.seconds);
    if (wasmBuilt) {
      const bwr = await browserStep(true);
      wasmBackend = bwr.backend;
      bw.push(bwr.seconds);
    }
    setKernels(native);
    n.push(await nodeStep());
    setKernels(referenceKernels);
    r.push(await nodeStep());
    console.log(`round ${i + 1}: load ${load}  chromium-wasm ${bw.length ? (bw[i]! * 1e3).toFixed(1) : '-'} ms  chromium-ts ${(br.seconds * 1e3).toFixed(1)} ms  node-native ${(n[i]! * 1e3).toFixed(1)} ms  node-ts ${(r[i]! * 1e3).toFixed(1)} ms`);
  }
  console.log(`\nCPU: ${cpus()[0]?.model} (${cpus().length} logical), node ${process.version}, ${ua.match(/Chrome\/[\d.]+/)?.[0] ?? ua}`);
  console.log(`native kernel path: ${JSON.stringify(nativePath)}; page engine: ${wasmBuilt ? `wasm (${wasmBackend}) and ` : ''}TypeScript kernels (1 thread)`);
  console.log(`DPO step, stories260K, ${nPairs} pairs, batch ${settings.batchSize}, ~${tokens} tokens a response (median of ${rounds} rounds):`);
  if (bw.length) console.log(`  chromium, wasm kernels   ${(median(bw) * 1e3).toFixed(1)} ms   wasm/native = ${(median(bw) / median(n)).toFixed(2)}x`);
  console.log(`  chromium, TS kernels     ${(median(b) * 1e3).toFixed(1)} ms`);
  console.log(`  node, native addon       ${(median(n) * 1e3).toFixed(1)} ms   chromium/native = ${(median(b) / median(n)).toFixed(1)}x`);
  console.log(`  node, TypeScript kernels ${(median(r) * 1e3).toFixed(1)} ms   chromium/node-ts = ${(median(b) / median(r)).toFixed(2)}x`);
} finally {
  await browser.close();
  await srv.close();
}
