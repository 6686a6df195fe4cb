// The WebAssembly backend: the native kernels' C++ (native/*.cc) compiled to wasm32 + SIMD128
// with emscripten (scripts/build-wasm.mjs → dist/wasm/), behind the same Kernels contract.
// No Node built-ins here: the browser bundle uses this file as is (src/tensor/wasm-node.ts loads
// it in Node for DPO_BACKEND=wasm).
//
// Two builds: dpo_kernels.wasm (one thread, runs anywhere) and dpo_kernels_mt.wasm (pthreads on
// a SharedArrayBuffer: Node worker_threads, or a cross-origin-isolated page), each also as
// *_relaxed (the GEMM with relaxed SIMD's FMA), loaded where the engine validates relaxed SIMD.
// Results are bit-identical across thread counts (the kernels split work into fixed chunks, as
// native); a relaxed build's GEMM rounds once per multiply-add where the engine fuses.
//
// Each kernel wrapper is built from the kernel table the module exports (dpo_kernel_table, the
// same table that generates the N-API binding): typed arrays are copied into the module's memory
// (one reused arena), the C entry point runs, and the written arrays ('F' arguments) are copied
// back. Outputs a kernel overwrites without reading (OVERWRITTEN below) are not copied in, and
// only the part written is copied back. A status other than 0 becomes a TypeError or RangeError
// with the kernel's message, as in the native addon. The same typed-array object passed twice
// (out = x) maps to one region (and is copied in).
import type { Kernels } from './kernels.js';
import { gemmBf16ViaGemm } from './bf16.js';

// The WebAssembly JS API, typed here (the project's lib setting has no DOM types).
interface WasmJsApi {
  validate(bytes: Uint8Array): boolean;
  Module: { new (bytes: Uint8Array): object; imports(m: object): { module: string; name: string; kind: string }[] };
}
const WA = (globalThis as unknown as { WebAssembly: WasmJsApi }).WebAssembly;

/** What the emscripten glue module (dist/wasm/dpo_kernels*.mjs) resolves to. */
interface EmModule {
  HEAPU8: Uint8Array;
  wasmMemory?: { buffer: ArrayBuffer | SharedArrayBuffer };
  UTF8ToString(ptr: number): string;
  stringToUTF8(s: string, ptr: number, max: number): void;
  lengthBytesUTF8(s: string): number;
  _malloc(n: number): number;
  _free(p: number): void;
  [fn: `_dpo_${string}`]: (...args: number[]) => number;
}
/** The default export of an emscripten glue module. */
export type WasmFactory = (moduleArg: Record<string, unknown>) => Promise<EmModule>;

export type WasmSource = string | URL | ArrayBuffer | ArrayBufferView;

/**
 * Which SIMD build: 'relaxed' (the GEMM uses f32x4.relaxed_madd, fused on engines with FMA),
 * 'simd128' (plain SIMD128), or 'auto' (default: relaxed when the engine validates relaxed SIMD
 * and the build directory has the *_relaxed files, else simd128).
 */
export type WasmSimd = 'auto' | 'relaxed' | 'simd128';

export interface WasmKernelOptions {
  /** SIMD build chosen from a directory URL (default 'auto'); ignored for bytes, whose build is what it is. */
  simd?: WasmSimd;
  /**
   * Threads (default 1). More than one needs SharedArrayBuffer (Node, or a page served with
   * COOP/COEP headers, `crossOriginIsolated`) and the threaded build dpo_kernels_mt.wasm;
   * without SharedArrayBuffer the single-thread build runs and numThreads() says 1.
   */
  threads?: number;
  /**
   * The emscripten glue: a URL of dpo_kernels[_mt].mjs to import(), or its default export.
   * Default: the .mjs next to the .wasm when the source is a URL; required with bytes.
   */
  glue?: string | URL | WasmFactory;
  /** With bytes and threads > 1: the URL of dpo_kernels_mt.worker.js (default: next to glue). */
  workerUrl?: string | URL;
  /**
   * Tests: fill the outputs that are not copied in (OVERWRITTEN) with NaN before each call, so a
   * kernel that leaves part of such an output unwritten shows NaN instead of stale memory.
   */
  poisonOutputs?: boolean;
}

export interface WasmKernels extends Kernels {
  /** The build in use: 'dpo_kernels', 'dpo_kernels_mt', 'dpo_kernels_relaxed' or 'dpo_kernels_mt_relaxed'. */
  readonly build: string;
  /** Features compiled in, e.g. "simd128,threads" or "simd128,relaxed-simd". */
  readonly features: string;
  /**
   * The kernel table the module was built with (native/abi.h): each kernel's name, argument
   * names and codes (f/F Float32Array read/written, i Int32Array, u Float32Array or Uint16Array
   * of bf16 bits, d number, b boolean, r result), and `call`, the wrapper generated from it (the
   * backend's kernel of that name, except gemmBf16: see below).
   */
  readonly table: readonly { name: string; codes: string; args: readonly string[]; call: (...args: unknown[]) => number | undefined }[];
  /** Upper bound for setNumThreads (the worker pool made at load time; larger requests are capped). */
  readonly maxThreads: number;
  /** The GEMM micro-kernel: 'wasm-relaxed-simd' (relaxed builds), 'wasm-simd128' (6×8 SIMD128 tile) or 'portable' (plain C++). */
  gemmKernel(): string;
  /** Micro-kernels this build has, best first. */
  gemmKernelsSupported(): string[];
  /** Switches the GEMM micro-kernel (benches and tests). */
  gemmSetKernel(name: string): void;
}

const WRONG_TYPE = 0xffffffff; // check.h's kWrongType for a 32-bit size_t

/** Whether this JavaScript engine can run the threaded build. */
export function wasmThreadsAvailable(): boolean {
  if (typeof SharedArrayBuffer === 'undefined') return false;
  const g = globalThis as { crossOriginIsolated?: boolean; process?: unknown };
  // Browsers expose SharedArrayBuffer to postMessage only when cross-origin isolated.
  return g.crossOriginIsolated !== false || g.process !== undefined;
}

// (module (func (param v128 v128 v128) (result v128) local.get 0 local.get 1 local.get 2 f32x4.relaxed_madd))
const RELAXED_PROBE = Uint8Array.of(0, 97, 115, 109, 1, 0, 0, 0, 1, 8, 1, 96, 3, 123, 123, 123, 1, 123, 3, 2, 1, 0,
  10, 13, 1, 11, 0, 32, 0, 32, 1, 32, 2, 253, 133, 2, 11);

/** Whether this engine has relaxed SIMD with the standard opcodes (the *_relaxed builds run). */
export function wasmRelaxedSimdAvailable(): boolean {
  try {
    return WA.validate(RELAXED_PROBE);
  } catch {
    return false;
  }
}

function isUrl(s: WasmSource): s is string | URL {
  return typeof s === 'string' || s instanceof URL;
}

/**
 * Loads the WebAssembly kernels. `source`: the .wasm file's URL (or a directory URL ending in
 * '/', holding both builds: the one matching `threads` is chosen), or its bytes (then `glue`
 * is needed and must be the matching build's).
 *
 *   const k = await createWasmKernels(new URL('./wasm/', location.href), { threads: navigator.hardwareConcurrency });
 *   setKernels(k);
 */
export async function createWasmKernels(source: WasmSource, options: WasmKernelOptions = {}): Promise<WasmKernels> {
  const wanted = Math.max(1, Math.floor(options.threads ?? 1));
  const threaded = wanted > 1 && wasmThreadsAvailable();
  const simd = options.simd ?? 'auto';
  if (!['auto', 'relaxed', 'simd128'].includes(simd)) throw new TypeError(`createWasmKernels: options.simd must be 'auto', 'relaxed' or 'simd128', got ${String(simd)}`);
  const relaxedOk = wasmRelaxedSimdAvailable();
  if (simd === 'relaxed' && !relaxedOk) throw new TypeError("createWasmKernels: simd 'relaxed' but this engine does not validate relaxed SIMD (standard opcodes)");
  const plain = threaded ? 'dpo_kernels_mt' : 'dpo_kernels';
  let build = plain;
  let wasmUrl: URL | null = null;
  let bytes: ArrayBuffer | ArrayBufferView | null = null;
  if (isUrl(source)) {
    const base = new URL(String(source), (globalThis as { location?: { href: string } }).location?.href);
    if (base.pathname.endsWith('/')) {
      // A directory: the relaxed build when wanted and present (a build without clang-19 has none).
      if (simd !== 'simd128' && relaxedOk) {
        const relaxedUrl = new URL(`${plain}_relaxed.wasm`, base);
        let res: Response | null = null, why = '';
        try {
          res = await fetch(relaxedUrl);
          why = `HTTP ${res.status}`;
        } catch (e) {
          why = (e as Error).message;
        }
        if (res?.ok) {
          build = `${plain}_relaxed`;
          wasmUrl = relaxedUrl;
          bytes = await res.arrayBuffer();
        } else if (simd === 'relaxed') {
          throw new Error(`createWasmKernels: cannot fetch ${relaxedUrl.href}: ${why} (built without clang-19?)`);
        }
      }
      wasmUrl ??= new URL(`${build}.wasm`, base);
    } else {
      wasmUrl = base;
    }
  } else {
    bytes = source;
  }
  let factory: WasmFactory;
  let glueUrl: URL | null = null;
  if (typeof options.glue === 'function') {
    factory = options.glue;
  } else {
    if (options.glue) glueUrl = new URL(String(options.glue), wasmUrl ?? undefined);
    else if (wasmUrl) glueUrl = new URL(wasmUrl.href.replace(/\.wasm$/, '.mjs'));
    else throw new TypeError('createWasmKernels: with wasm bytes, options.glue (the dpo_kernels*.mjs URL or module) is required');
    factory = ((await import(/* @vite-ignore */ /* webpackIgnore: true */ glueUrl.href)) as { default: WasmFactory }).default;
  }
  if (bytes === null) {
    const res = await fetch(wasmUrl!);
    if (!res.ok) throw new Error(`createWasmKernels: cannot fetch ${wasmUrl!.href}: HTTP ${res.status}`);
    bytes = await res.arrayBuffer();
  }
  const wasmBinary = bytes instanceof ArrayBuffer ? new Uint8Array(bytes) : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let compiled: object;
  try {
    compiled = new WA.Module(wasmBinary);
  } catch (e) {
    throw new TypeError(`createWasmKernels: the wasm does not compile here: ${(e as Error).message}` +
      (relaxedOk ? '' : ' (a *_relaxed build needs an engine with relaxed SIMD; use dpo_kernels[_mt].wasm)'));
  }
  const moduleImportsShared = WA.Module.imports(compiled).some((i) => i.kind === 'memory');
  if (moduleImportsShared !== threaded) {
    throw new TypeError(`createWasmKernels: the given wasm is the ${moduleImportsShared ? 'threaded (dpo_kernels_mt)' : 'single-thread (dpo_kernels)'} ` +
      `build but ${threaded ? 'threads > 1' : 'one thread'} needs ${build}.wasm` +
      (wanted > 1 && !threaded ? ' (SharedArrayBuffer is unavailable here: the page must be cross-origin isolated)' : ''));
  }
  const moduleArg: Record<string, unknown> = { wasmBinary, dpoPoolSize: threaded ? wanted - 1 : 0, print: () => {}, printErr: (s: string) => console.warn(`dpo wasm: ${s}`) };
  if (threaded) {
    const worker = options.workerUrl ? new URL(String(options.workerUrl), glueUrl ?? undefined)
      : glueUrl ? new URL(glueUrl.href.replace(/\.mjs$/, '.worker.js')) : null;
    // Node's Worker takes a file path, browsers a URL.
    const workerRef = worker && worker.protocol === 'file:' ? decodeURIComponent(worker.pathname) : worker?.href;
    if (workerRef) moduleArg.locateFile = (path: string) => (path.endsWith('.worker.js') ? workerRef : path);
    if (glueUrl) moduleArg.mainScriptUrlOrBlob = glueUrl.href;
  }
  const m = await factory(moduleArg);
  // With bytes the build is what the module says it is.
  if (bytes !== null && !isUrl(source) && m.UTF8ToString(m._dpo_build_features()).includes('relaxed-simd')) build = `${plain}_relaxed`;
  return wrapModule(m, build, threaded ? wanted : 1, options.poisonOutputs === true);
}

interface Row { js: string; fn: (...a: number[]) => number; codes: string; names: string[] }

/** A call's number arguments by name. */
type NumArg = (name: string) => number;
/**
 * Outputs each kernel overwrites without reading them first (src/tensor/kernels.ts: "out"
 * arguments; accumulated ones are not here), with the elements it writes, a prefix of the array,
 * from the call's number arguments; null when this call reads the output (gemm with beta ≠ 0, or
 * batch items with gaps between them). Only these are skipped when copying in: an output passed
 * as an input too (out = x) is copied as before. Names must match the kernel table (checked at load).
 */
const OVERWRITTEN: Record<string, Record<string, (a: NumArg) => number | null>> = {
  gemm: { C: (a) => (a('beta') === 0 && (a('batch') <= 1 || a('strideC') === a('M') * a('N')) ? a('batch') * a('M') * a('N') : null) },
  rmsnormForward: { out: (a) => a('rows') * a('dim'), rstd: (a) => a('rows') },
  rmsnormBackward: { dx: (a) => a('rows') * a('dim') },
  layernormForward: { out: (a) => a('rows') * a('dim'), mean: (a) => a('rows'), rstd: (a) => a('rows') },
  layernormBackward: { dx: (a) => a('rows') * a('dim') },
  rope: { out: (a) => a('batch') * a('seq') * a('heads') * a('headDim') },
  attentionForward: { out: (a) => a('batch') * a('Tq') * a('H') * a('D'), lse: (a) => a('batch') * a('H') * a('Tq') },
  attentionBackward: {
    dq: (a) => a('batch') * a('T') * a('H') * a('D'),
    dk: (a) => a('batch') * a('T') * a('Hkv') * a('D'),
    dv: (a) => a('batch') * a('T') * a('Hkv') * a('D'),
  },
  activationForward: { out: (a) => a('n') },
  activationBackward: { dx: (a) => a('n') },
  swigluForward: { out: (a) => a('n') },
  swigluBackward: { dgate: (a) => a('n'), dup: (a) => a('n') },
  softmaxForward: { out: (a) => a('rows') * a('cols') },
  softmaxBackward: { dx: (a) => a('rows') * a('cols') },
  logSoftmaxGather: { logp: (a) => a('rows'), lse: (a) => a('rows') },
  logSoftmaxGatherBackward: { dlogits: (a) => a('rows') * a('vocab') },
  embeddingForward: { out: (a) => a('n') * a('dim') },
  add: { out: (a) => a('n') },
  mul: { out: (a) => a('n') },
  addRowVector: { out: (a) => a('rows') * a('n') },
};

function wrapModule(m: EmModule, build: string, maxThreads: number, poison: boolean): WasmKernels {
  const rows: Row[] = m.UTF8ToString(m._dpo_kernel_table()).trim().split('\n').map((line) => {
    const [js, cname, codes, ...names] = line.split(' ');
    const fn = m[`_${cname}` as `_dpo_${string}`];
    if (typeof fn !== 'function') throw new Error(`dpo wasm: ${cname} is not exported by ${build}`);
    return { js: js!, fn, codes: codes!, names };
  });
  const features = m.UTF8ToString(m._dpo_build_features());

  // One arena for all arguments of a call, grown on demand (never shrunk).
  let arena = 0, arenaBytes = 0;
  const scratch = m._malloc(16); // result slot (double) and pointer for empty arrays
  const memory = (): ArrayBuffer | SharedArrayBuffer => (m.wasmMemory ? m.wasmMemory.buffer : m.HEAPU8.buffer);
  let heapBuf: ArrayBuffer | SharedArrayBuffer | null = null;
  let u8: Uint8Array<ArrayBufferLike> = new Uint8Array(0);
  const heap = (): Uint8Array<ArrayBufferLike> => {
    const b = memory();
    if (b !== heapBuf) { heapBuf = b; u8 = new Uint8Array(b); }
    return u8;
  };
  const fail = (status: number): never => {
    const msg = m.UTF8ToString(m._dpo_last_error());
    throw status === 1 ? new TypeError(msg) : new RangeError(msg);
  };

  const wrap = (row: Row) => {
    const { js, fn, codes, names } = row;
    const nArgs = codes.replace('r', '').length;
    const hasResult = codes.includes('r');
    // The outputs of OVERWRITTEN[js] as (argument index, extent), checked against the table.
    const over: { at: number; extent: (a: NumArg) => number | null }[] = [];
    const argAt = new Map(names.map((n, i) => [n, i]));
    for (const [name, extent] of Object.entries(OVERWRITTEN[js] ?? {})) {
      const at = argAt.get(name);
      if (at === undefined || codes[at] !== 'F') throw new Error(`dpo wasm: ${js}(${names.join(', ')}) has no written array ${name}`);
      over.push({ at, extent });
    }
    return (...args: unknown[]): number | undefined => {
      if (args.length < nArgs) throw new TypeError(`${js}: expected ${nArgs} arguments, got ${args.length}`);
      // Pass 1: types and sizes; repeated arrays share one region (first[i]: the argument it copies).
      const views: (Float32Array | Int32Array | Uint16Array | null)[] = new Array(nArgs).fill(null);
      const offsets: number[] = new Array(nArgs).fill(-1);
      const first: number[] = new Array(nArgs).fill(-1);
      let bytes = 0;
      for (let i = 0; i < nArgs; i++) {
        const c = codes[i]!, a = args[i];
        if (c === 'f' || c === 'F' || c === 'i' || c === 'u') {
          const ok = c === 'i' ? a instanceof Int32Array
            : a instanceof Float32Array || (c === 'u' && a instanceof Uint16Array);
          if (!ok) continue;
          const v = a as Float32Array | Int32Array | Uint16Array;
          views[i] = v;
          const prev = views.indexOf(v);
          if (prev < i) { offsets[i] = offsets[prev]!; first[i] = prev; first[prev] = prev; continue; }
          offsets[i] = bytes;
          bytes += (v.byteLength + 63) & ~63;
        } else if (c === 'd' && typeof a !== 'number') {
          throw new TypeError(`${js}: ${names[i] ?? `argument ${i}`} must be a number`);
        }
      }
      // Outputs written whole-prefix without being read: not copied in; elements written (else -1).
      const written: number[] = new Array(nArgs).fill(-1);
      for (const { at, extent } of over) {
        const v = views[at];
        if (!v || first[at] !== -1) continue; // not an array, or also passed as another argument
        const e = extent((name) => args[argAt.get(name)!] as number);
        if (e !== null && Number.isInteger(e) && e >= 0 && e <= v.length) written[at] = e;
      }
      if (bytes > arenaBytes) {
        if (arena) m._free(arena);
        arenaBytes = Math.max(bytes, Math.ceil(arenaBytes * 1.5));
        arena = m._malloc(arenaBytes);
        if (!arena) { arenaBytes = 0; throw new RangeError(`${js}: cannot allocate ${bytes} bytes of WebAssembly memory`); }
      }
      // Pass 2: copy in, build the C argument list.
      let h = heap();
      const cargs: number[] = [];
      for (let i = 0; i < nArgs; i++) {
        const c = codes[i]!, a = args[i];
        if (c === 'f' || c === 'F' || c === 'i' || c === 'u') {
          const v = views[i];
          if (v === null) {
            cargs.push(0, a === null || a === undefined ? 0 : WRONG_TYPE);
            if (c === 'u') cargs.push(0);
            continue;
          }
          const ptr = arena + offsets[i]!;
          const n = v.length;
          if (n > 0 && (first[i] === -1 || first[i] === i)) { // once for repeated arguments
            if (written[i] < 0) h.set(new Uint8Array(v.buffer, v.byteOffset, v.byteLength), ptr);
            else if (poison) h.fill(0xff, ptr, ptr + 4 * written[i]!); // NaN in every float
          }
          cargs.push(n > 0 ? ptr : scratch, n);
          // A union operand's dtype (abi.h dpo_dtype): DPO_F32 = 0, DPO_BF16 = 1 (bf16 bits).
          if (c === 'u') cargs.push(v instanceof Uint16Array ? 1 : 0);
        } else if (c === 'd') {
          cargs.push(a as number);
        } else if (c === 'b') {
          cargs.push(a ? 1 : 0);
        }
      }
      if (hasResult) cargs.push(scratch);
      const status = fn(...cargs);
      if (status !== 0) fail(status);
      // Pass 3: copy written arrays back (the memory may have grown during the call).
      h = heap();
      for (let i = 0; i < nArgs; i++) {
        if (codes[i] !== 'F') continue;
        const v = views[i];
        if (!v) continue;
        const len = written[i]! >= 0 ? 4 * written[i]! : v.byteLength;
        if (len > 0) new Uint8Array(v.buffer, v.byteOffset, len).set(h.subarray(arena + offsets[i]!, arena + offsets[i]! + len));
      }
      if (hasResult) return new Float64Array(h.buffer, scratch, 1)[0];
      return undefined;
    };
  };

  const k: Record<string, unknown> = {
    name: 'wasm',
    build,
    features,
    maxThreads,
    table: rows.map((r) => ({ name: r.js, codes: r.codes, args: r.names, call: wrap(r) })),
    numThreads: () => m._dpo_num_threads(),
    setNumThreads: (n: number) => {
      if (typeof n !== 'number') throw new TypeError('setNumThreads: expected a number of threads');
      // Threads beyond the worker pool made at load time cannot start (as when the OS refuses
      // threads natively): run with what there is; numThreads() tells.
      const status = m._dpo_set_num_threads(Number.isInteger(n) && n > maxThreads && n <= 256 ? maxThreads : n);
      if (status !== 0) fail(status);
    },
    gemmKernel: () => m.UTF8ToString(m._dpo_gemm_kernel()),
    gemmKernelsSupported: () => m.UTF8ToString(m._dpo_gemm_kernels_supported()).split(','),
    gemmSetKernel: (name: string) => {
      const bytes = m.lengthBytesUTF8(name) + 1;
      const p = m._malloc(bytes);
      m.stringToUTF8(name, p, bytes);
      const status = m._dpo_gemm_set_kernel(p);
      m._free(p);
      if (status !== 0) fail(status);
    },
  };
  for (const row of (k.table as WasmKernels['table'])) k[row.name] = row.call;
  // The table's gemmBf16 (native/gemm_bf16.cc's portable path compiled to wasm) is about 2x
  // slower than rounding the operands and running the SIMD128 float32 gemm (same results within
  // the bf16 bounds, test/gemm-bf16.test.ts), so bf16 autocast on wasm uses the latter.
  k.gemmBf16 = gemmBf16ViaGemm(k.gemm as Parameters<typeof gemmBf16ViaGemm>[0]);
  const kernels = k as unknown as WasmKernels;
  if (maxThreads > 1) kernels.setNumThreads(maxThreads);
  // Node: the pool's worker_threads must not keep the process alive (browsers have no unref).
  const pt = (m as unknown as { PThread?: { unusedWorkers: unknown[]; runningWorkers: unknown[] } }).PThread;
  for (const w of [...(pt?.unusedWorkers ?? []), ...(pt?.runningWorkers ?? [])]) (w as { unref?: () => void }).unref?.();
  return kernels;
}
