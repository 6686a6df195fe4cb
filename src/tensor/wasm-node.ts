// Loads the WebAssembly kernels in Node (DPO_BACKEND=wasm, tests, benches): finds dist/wasm/
// above this file, as backend.ts finds the native addon.
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createWasmKernels, type WasmKernels } from './wasm.js';

/** The directory holding the built wasm files, or null when they have not been built. */
export function wasmBuildDir(): string | null {
  if (process.env.DPO_WASM_DIR) return resolve(process.env.DPO_WASM_DIR);
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'dist', 'wasm');
    if (existsSync(join(candidate, 'dpo_kernels.wasm'))) return candidate;
    dir = resolve(dir, '..');
  }
  return null;
}

export const WASM_MISSING = 'the WebAssembly kernels are not built: install emscripten (Debian: `apt-get install emscripten`, ' +
  'or scripts/install-system-deps.sh) and run `npm run build:wasm`';

/**
 * The wasm kernels with `threads` threads (default DPO_NUM_THREADS, else the cores available):
 * the threaded build through worker_threads when threads > 1.
 */
export async function loadWasmKernelsNode(threads?: number): Promise<WasmKernels> {
  const dir = wasmBuildDir();
  if (!dir) throw new Error(WASM_MISSING);
  const env = Number(process.env.DPO_NUM_THREADS);
  const n = threads ?? (Number.isInteger(env) && env > 0 ? env : availableParallelism());
  const build = n > 1 ? 'dpo_kernels_mt' : 'dpo_kernels';
  const wasm = join(dir, `${build}.wasm`);
  if (!existsSync(wasm)) throw new Error(`${wasm} is missing: ${WASM_MISSING}`);
  return createWasmKernels(readFileSync(wasm), {
    threads: n,
    glue: pathToFileURL(join(dir, `${build}.mjs`)),
    workerUrl: pathToFileURL(join(dir, `${build}.worker.js`)),
    // The tests' wasm reruns set it: an output a kernel leaves partly unwritten shows NaN.
    poisonOutputs: process.env.DPO_WASM_POISON_OUTPUTS === '1',
  });
}
