// The WebAssembly kernels in a real browser (Debian's chromium through playwright-core): the page
// imports dist/src/tensor/wasm.js and loads dist/wasm/ with createWasmKernels. Cross-origin
// isolated (COOP/COEP headers) it runs 2 threads, otherwise the one-thread build; every result is
// bit-identical to the same kernels in Node (thread counts and engines included).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, extname, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { loadWasmKernelsNode, wasmBuildDir, WASM_MISSING } from '../src/tensor/wasm-node.js';

const CHROMIUM = '/usr/bin/chromium';
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const skip = process.env.CI ? false
  : !existsSync(CHROMIUM) ? `${CHROMIUM} not installed (run scripts/install-system-deps.sh as root)`
  : !wasmBuildDir() ? WASM_MISSING : false;

const PAGE = `<!doctype html><meta charset="utf-8"><script type="module">
import { createWasmKernels } from '/dist/src/tensor/wasm.js';
function rand(n, seed) { const x = new Float32Array(n); let s = seed >>> 0; for (let i = 0; i < n; i++) { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; x[i] = s / 4294967296 - 0.5; } return x; }
window.run = async (threads) => {
  const k = await createWasmKernels(new URL('/dist/wasm/', location.href), { threads });
  const M = 300, N = 257, K = 190;
  const C = new Float32Array(M * N);
  k.gemm(false, true, M, N, K, rand(M * K, 1), 0, rand(N * K, 2), 0, C, 0, 1, 1, 0);
  const x = rand(64 * 300, 3), lse = new Float32Array(64), logp = new Float32Array(64);
  const targets = Int32Array.from({ length: 64 }, (_, i) => (i * 37) % 300);
  k.logSoftmaxGather(x, targets, logp, lse, 64, 300);
  let err = null;
  try { k.rmsnormForward(new Float32Array(5), new Float32Array(3), new Float32Array(6), new Float32Array(2), 2, 3, 1e-5); } catch (e) { err = e.constructor.name + ': ' + e.message; }
  return { isolated: crossOriginIsolated, build: k.build, threads: k.numThreads(), C: Array.from(C), logp: Array.from(logp), err };
};
window.ready = true;
</script>`;

function serve(isolated: boolean): Promise<{ url: string; close: () => void }> {
  const server = createServer((req, res) => {
    const headers: Record<string, string> = isolated
      ? { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' } : {};
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    if (path === '/') {
      res.writeHead(200, { ...headers, 'Content-Type': 'text/html' });
      res.end(PAGE);
      return;
    }
    const file = normalize(join(root, path));
    if (!file.startsWith(join(root, 'dist') + '/') || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404, headers);
      res.end();
      return;
    }
    const type = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm' }[extname(file)] ?? 'application/octet-stream';
    res.writeHead(200, { ...headers, 'Content-Type': type });
    res.end(readFileSync(file));
  });
  return new Promise((ok) => server.listen(0, '127.0.0.1', () => {
    const a = server.address();
    ok({ url: `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}/`, close: () => server.close() });
  }));
}

test('chromium loads the wasm kernels: 2 threads when cross-origin isolated, 1 otherwise, same bits as Node', { skip, timeout: 90_000 }, async () => {
  // Node reference: the same kernels, one thread.
  const node = await loadWasmKernelsNode(1);
  const rand = (n: number, seed: number): Float32Array => {
    const x = new Float32Array(n);
    let s = seed >>> 0;
    for (let i = 0; i < n; i++) { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; x[i] = s / 4294967296 - 0.5; }
    return x;
  };
  const M = 300, N = 257, K = 190;
  const C = new Float32Array(M * N);
  node.gemm(false, true, M, N, K, rand(M * K, 1), 0, rand(N * K, 2), 0, C, 0, 1, 1, 0);
  const logp = new Float32Array(64), lse = new Float32Array(64);
  node.logSoftmaxGather(rand(64 * 300, 3), Int32Array.from({ length: 64 }, (_, i) => (i * 37) % 300), logp, lse, 64, 300);

  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu'] });
  try {
    for (const isolated of [true, false]) {
      const srv = await serve(isolated);
      try {
        const page = await browser.newPage();
        const errors: string[] = [];
        page.on('pageerror', (e) => errors.push(e.message));
        await page.goto(srv.url);
        await page.waitForFunction('window.ready === true', undefined, { timeout: 20_000 });
        const r = await page.evaluate((t) => (globalThis as unknown as { run: (n: number) => Promise<unknown> }).run(t), 2) as {
          isolated: boolean; build: string; threads: number; C: number[]; logp: number[]; err: string | null;
        };
        await page.close();
        assert.deepEqual(errors, []);
        assert.equal(r.isolated, isolated);
        // Both pick the relaxed-SIMD build when it exists (chromium has relaxed SIMD; Node switches it on).
        assert.equal(r.build, (isolated ? 'dpo_kernels_mt' : 'dpo_kernels') + (node.build.endsWith('_relaxed') ? '_relaxed' : ''));
        assert.equal(r.threads, isolated ? 2 : 1);
        assert.ok(Float32Array.from(r.C).every((v, i) => Object.is(v, C[i])), `gemm differs from Node (isolated=${isolated})`);
        assert.ok(Float32Array.from(r.logp).every((v, i) => Object.is(v, logp[i])), `logSoftmaxGather differs from Node (isolated=${isolated})`);
        assert.match(r.err ?? '', /^RangeError: rmsnormForward: x has 5 elements, needs 6/);
      } finally {
        srv.close();
      }
    }
  } finally {
    await browser.close();
  }
});
