// The Web Worker: the library's engine (src/web/engine.ts) behind messages, so training never
// blocks the page. A stop request aborts the run between two micro-batches (runDpo yields to the
// event loop there), keeping the weights trained so far.
import { WebEngine } from '../engine.js';
import { referenceKernels } from '../../tensor/reference/index.js';
import type { Kernels } from '../../tensor/kernels.js';
import type { Reply, Request } from './protocol.js';

interface WorkerScope {
  onmessage: ((ev: { data: Request }) => void) | null;
  postMessage(message: Reply, transfer?: ArrayBuffer[]): void;
}
const scope = self as unknown as WorkerScope;

let engine: WebEngine | null = null;
let running: AbortController | null = null;

/**
 * The WebAssembly kernels when the bundle has them (wasm-kernels.js + wasm/, added by build:web
 * after build:wasm; threads when the page is cross-origin isolated), else the TypeScript kernels.
 */
async function kernelsFor(threads: number): Promise<{ kernels: Kernels; note: string }> {
  const base = (self as unknown as { location: { href: string } }).location.href;
  try {
    const probe = await fetch(new URL('wasm/dpo_kernels.wasm', base), { method: 'HEAD' });
    if (!probe.ok) return { kernels: referenceKernels, note: 'TypeScript kernels (this build has no WebAssembly kernels: npm run build:wasm, then build:web)' };
    const mod = (await import(/* webpackIgnore: true */ new URL('wasm-kernels.js', base).href)) as {
      createWasmKernels(source: URL, o: { threads: number }): Promise<Kernels & { gemmKernel(): string }>;
    };
    const k = await mod.createWasmKernels(new URL('wasm/', base), { threads });
    return { kernels: k, note: `WebAssembly kernels (${k.gemmKernel()})` };
  } catch (e) {
    return { kernels: referenceKernels, note: `TypeScript kernels (the WebAssembly kernels did not load: ${e instanceof Error ? e.message : String(e)})` };
  }
}

async function handle(req: Request): Promise<unknown> {
  if (req.type === 'init') {
    const { kernels: k, note } = await kernelsFor(req.threads);
    engine = new WebEngine(k);
    return { backend: k.name, threads: k.numThreads(), note };
  }
  if (!engine) throw new Error('the worker has not been initialised');
  switch (req.type) {
    case 'files':
      engine.addFiles(req.files);
      return null;
    case 'load':
      try {
        return await engine.load(req.path);
      } catch (e) {
        if (req.dropDir) engine.removeDir(req.dropDir);
        throw e;
      }
    case 'sample':
      return engine.sample(req.prompts, req.settings);
    case 'readPreferences':
      return engine.readPreferences(req.path);
    case 'train': {
      running = new AbortController();
      try {
        return await engine.train(req.rows, req.settings, (r) => scope.postMessage({ type: 'step', step: r.step, totalSteps: r.totalSteps, metrics: r.metrics, seconds: r.seconds }), running.signal);
      } finally {
        running = null;
      }
    }
    case 'compare':
      return engine.compare(req.prompts, req.settings);
    case 'exportHf':
      return engine.exportHf();
    case 'exportGguf':
      return engine.exportGguf();
    case 'stop':
      running?.abort(new Error('stopped'));
      return null;
  }
}

scope.onmessage = (ev) => {
  const req = ev.data;
  handle(req).then(
    (result) => scope.postMessage({ id: req.id, ok: true, result }),
    (e: unknown) => scope.postMessage({ id: req.id, ok: false, error: e instanceof Error ? e.message : String(e) }),
  );
};
