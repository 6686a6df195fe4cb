// Chooses the kernel backend: the native addon when it loads, else the portable reference
// (with a one-line warning saying what it costs). DPO_BACKEND=reference forces the reference,
// DPO_BACKEND=wasm the WebAssembly build of the native kernels (src/tensor/wasm.ts; loaded
// asynchronously while this module loads, with DPO_NUM_THREADS threads or one per core).
import { createRequire } from 'node:module';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join, resolve } from 'node:path';
import type { Kernels } from './kernels.js';
import { referenceKernels } from './reference/index.js';
import { loadWasmKernelsNode } from './wasm-node.js';
import type { WasmKernels } from './wasm.js';

let wasm: WasmKernels | null = null;
let wasmError: string | null = null;
if (process.env.DPO_BACKEND === 'wasm') {
  try {
    wasm = await loadWasmKernelsNode();
  } catch (e) {
    wasmError = (e as Error).message;
  }
}

/** The WebAssembly kernels when DPO_BACKEND=wasm loaded them (else null; see wasmLoadError()). */
export function wasmKernels(): WasmKernels | null {
  return wasm;
}
export function wasmLoadError(): string | null {
  return process.env.DPO_BACKEND === 'wasm' ? wasmError : 'DPO_BACKEND is not wasm';
}

const KERNEL_NAMES: (keyof Kernels)[] = [
  'gemm', 'gemmBf16', 'rmsnormForward', 'rmsnormBackward', 'layernormForward', 'layernormBackward', 'rope',
  'attentionForward', 'attentionBackward', 'activationForward', 'activationBackward',
  'swigluForward', 'swigluBackward', 'softmaxForward', 'softmaxBackward', 'logSoftmaxGather',
  'logSoftmaxGatherBackward', 'embeddingForward', 'embeddingBackward', 'adamw', 'sumSquares',
  'scale', 'add', 'mul', 'axpy', 'addRowVector', 'sumRows', 'copy2d',
];

/**
 * Where the addon may be, in order: DPO_NATIVE_ADDON, a local build (build/Release, from `npm
 * install` compiling native/), then the prebuilt binary for this platform shipped in the package
 * (prebuilds/<platform>-<arch>/, built by scripts/prebuild.mjs).
 */
function addonCandidates(): string[] {
  if (process.env.DPO_NATIVE_ADDON) return [resolve(process.env.DPO_NATIVE_ADDON)];
  const out: string[] = [];
  // dist/src/tensor/backend.js or src/tensor/backend.ts: walk up to the package root.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    for (const candidate of [join(dir, 'build', 'Release', 'dpo_native.node'),
      join(dir, 'prebuilds', `${process.platform}-${process.arch}`, 'dpo_native.node')]) {
      if (existsSync(candidate)) out.push(candidate);
    }
    if (out.length > 0) break;
    dir = resolve(dir, '..');
  }
  return out;
}

let nativeError: string | null = null;
let addonGemmKernel: (() => string) | null = null;
let addonGemmBf16Kernel: (() => string) | null = null;

function loadNative(): Kernels | null {
  const paths = addonCandidates();
  if (paths.length === 0) {
    nativeError = `no native addon for ${process.platform}-${process.arch}: neither build/Release/dpo_native.node ` +
      `nor prebuilds/${process.platform}-${process.arch}/dpo_native.node (run \`npm rebuild dpo-ts\` with g++ and python3 installed)`;
    return null;
  }
  const errors: string[] = [];
  for (const path of paths) {
    try {
      const require = createRequire(import.meta.url);
      const addon = require(path) as Record<string, unknown>;
      const missing = KERNEL_NAMES.filter((k) => typeof addon[k] !== 'function');
      // A kernel the addon does not provide runs on the reference backend (listed in nativeMissing).
      const k: Record<string, unknown> = { ...referenceKernels, name: 'native' };
      for (const name of KERNEL_NAMES) if (!missing.includes(name)) k[name] = addon[name];
      k.numThreads = typeof addon.numThreads === 'function' ? addon.numThreads : () => 1;
      k.setNumThreads = typeof addon.setNumThreads === 'function' ? addon.setNumThreads : () => {};
      nativeMissing = missing;
      nativePath = path;
      if (typeof addon.gemmKernel === 'function') addonGemmKernel = addon.gemmKernel as () => string;
      nativeAddon = addon;
      if (typeof addon.gemmBf16Kernel === 'function') addonGemmBf16Kernel = addon.gemmBf16Kernel as () => string;
      return k as unknown as Kernels;
    } catch (e) {
      errors.push(`${path}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  nativeError = errors.join('; ');
  return null;
}

/** The file the native addon was loaded from (null until loaded, or when it could not be). */
export let nativePath: string | null = null;

/** The loaded addon's exports (null until loaded, or when it could not be): src/tensor/allocator.ts uses its memory functions. */
export let nativeAddon: Record<string, unknown> | null = null;

/** Kernels the native addon lacks (they run on the reference backend). */
export let nativeMissing: string[] = [];

let active: Kernels | null = null;
let native: Kernels | null | undefined;

/** The native kernels, or null when the addon is unavailable (see nativeLoadError()). */
export function nativeKernels(): Kernels | null {
  if (native === undefined) native = loadNative();
  return native;
}

export function nativeLoadError(): string | null {
  nativeKernels();
  return nativeError;
}

/** The backend in use. */
export function kernels(): Kernels {
  if (active) return active;
  if (process.env.DPO_BACKEND === 'reference') {
    active = referenceKernels;
  } else if (process.env.DPO_BACKEND === 'wasm') {
    if (!wasm) throw new Error(`DPO_BACKEND=wasm: ${wasmError}`);
    active = wasm;
  } else {
    const n = nativeKernels();
    if (n) {
      active = n;
      const threads = Number(process.env.DPO_NUM_THREADS);
      if (Number.isInteger(threads) && threads > 0) n.setNumThreads(threads);
    } else {
      process.emitWarning(
        `dpo-ts: native kernels unavailable (${nativeError}); using the TypeScript reference backend, ` +
          'about 50-100x slower for matrix products.',
      );
      active = referenceKernels;
    }
  }
  return active;
}

let addonDigest: string | null = null;

/**
 * What computed numbers depend on besides the inputs: the backend, the GEMM micro-kernel
 * (native: avx512, avx2 or portable), the thread count, and a digest of the native addon file
 * (a rebuilt or upgraded addon may round differently).
 */
export function kernelPath(): { backend: string; gemmKernel: string | null; threads: number; addon: string | null } {
  const k = kernels();
  if (wasm && k === wasm) return { backend: 'wasm', gemmKernel: `${wasm.build}:${wasm.gemmKernel()}`, threads: k.numThreads(), addon: null };
  const isNative = k === native && native !== null;
  if (isNative && addonDigest === null && nativePath) addonDigest = createHash('sha256').update(readFileSync(nativePath)).digest('hex').slice(0, 16);
  return {
    backend: k.name,
    gemmKernel: isNative && addonGemmKernel ? addonGemmKernel() : null,
    threads: k.numThreads(),
    addon: isNative ? addonDigest : null,
  };
}

/**
 * The bf16 GEMM path in use: the native micro-kernel (avx512bf16, avx512 = converted float32, or
 * portable), 'reference' on the TypeScript backend (or an addon without gemmBf16).
 */
export function gemmBf16Path(): string {
  const k = kernels();
  return k === native && native !== null && addonGemmBf16Kernel && !nativeMissing.includes('gemmBf16')
    ? addonGemmBf16Kernel()
    : 'reference';
}

/** Switches the backend for the rest of the process (tests compare backends this way). */
export function setKernels(k: Kernels): void {
  active = k;
}

export { referenceKernels };
