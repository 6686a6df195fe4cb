// Loads the WebAssembly kernels in Node (DPO_BACKEND=wasm, tests, benches): finds dist/wasm/
// above this file, as backend.ts finds the native addon.
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { createWasmKernels, wasmRelaxedSimdAvailable, type WasmKernels, type WasmSimd } from './wasm.js';

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
 * Whether relaxed SIMD runs here. Node 20's V8 (11.3) has it behind --experimental-wasm-relaxed-simd
 * (on by default from V8 11.4, Node 22): the flag is switched on before the first check, so
 * Node runs the same relaxed build as chromium. DPO_WASM_SIMD=simd128 avoids touching it.
 */
function relaxedSimdInNode(): boolean {
  if (wasmRelaxedSimdAvailable()) return true;
  setFlagsFromString('--experimental-wasm-relaxed-simd');
  return wasmRelaxedSimdAvailable();
}

/**
 * The wasm kernels with `threads` threads (default DPO_NUM_THREADS, else the cores available):
 * the threaded build through worker_threads when threads > 1. `simd` (default DPO_WASM_SIMD,
 * else 'auto'): the relaxed-SIMD build when it was built and the engine runs it.
 */
export async function loadWasmKernelsNode(threads?: number, simd?: WasmSimd): Promise<WasmKernels> {
  const dir = wasmBuildDir();
  if (!dir) throw new Error(WASM_MISSING);
  const env = Number(process.env.DPO_NUM_THREADS);
  const n = threads ?? (Number.isInteger(env) && env > 0 ? env : availableParallelism());
  const mode = simd ?? (process.env.DPO_WASM_SIMD || 'auto');
  if (mode !== 'auto' && mode !== 'relaxed' && mode !== 'simd128') {
    throw new TypeError(`DPO_WASM_SIMD must be auto, relaxed or simd128, got '${mode}'`);
  }
  const plain = n > 1 ? 'dpo_kernels_mt' : 'dpo_kernels';
  const hasRelaxed = existsSync(join(dir, `${plain}_relaxed.wasm`));
  if (mode === 'relaxed' && !hasRelaxed) throw new Error(`${join(dir, `${plain}_relaxed.wasm`)} is missing: the relaxed-SIMD builds need clang-19 and lld-19 (then npm run build:wasm)`);
  const relaxed = mode !== 'simd128' && hasRelaxed && relaxedSimdInNode();
  if (mode === 'relaxed' && !relaxed) throw new Error(`this Node (${process.version}) cannot run relaxed SIMD`);
  const build = relaxed ? `${plain}_relaxed` : plain;
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
