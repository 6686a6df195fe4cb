// Builds the WebAssembly kernels from the same C++ sources as the native addon (native/*.cc
// except the N-API binding, napi*.cc), with Debian's emscripten:
//   dist/wasm/dpo_kernels.mjs + .wasm          one thread, SIMD128 (any page, any browser)
//   dist/wasm/dpo_kernels_mt.mjs + .wasm + .worker.js  SIMD128 + pthreads (SharedArrayBuffer:
//                                              Node worker_threads, cross-origin-isolated pages)
//   dist/wasm/dpo_kernels[_mt]_relaxed.*       the same with relaxed SIMD's FMA in the GEMM (when
//                                              clang-19 is installed; chosen at load time when the
//                                              engine has relaxed SIMD)
//   dist/wasm-probe/dpo_kernels[_relaxed].*  with --probe only: the one-thread build (relaxed when
//                                              possible) compiled with -DDPO_GEMM_PROBE, whose GEMM
//                                              can skip its packing or kernel (native/gemm.cc), for
//                                              `node dist/bench/wasm-gemm.js --breakdown`; never loaded otherwise
// `npm run build:wasm` builds (and fails without emcc); `--if-available` (the npm test step)
// only notes a missing emcc, so `npm ci` never fails for it. Up-to-date outputs are not rebuilt
// (`--force` rebuilds). Generated files are never committed (dist/ is ignored); outside build/, which node-gyp
// rebuild wipes.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = new Set(process.argv.slice(2));
const ifAvailable = args.has('--if-available');
const force = args.has('--force');
const probe = args.has('--probe');
const outDir = join(root, 'dist', probe ? 'wasm-probe' : 'wasm');

const emcc = spawnSync('emcc', ['--version'], { encoding: 'utf8' });
if (emcc.error || emcc.status !== 0) {
  const msg = 'dpo-ts: emcc (emscripten) not found: the WebAssembly kernels are not built ' +
    '(Debian: `apt-get install emscripten`, or run scripts/install-system-deps.sh; then `npm run build:wasm`).';
  if (ifAvailable && process.env.DPO_REQUIRE_WASM !== '1') {
    console.warn(msg);
    process.exit(0);
  }
  console.error(msg);
  process.exit(1);
}

const nativeDir = join(root, 'native');
const sources = readdirSync(nativeDir).filter((f) => f.endsWith('.cc') && !f.startsWith('napi')).map((f) => join(nativeDir, f));
const inputs = [...readdirSync(nativeDir).map((f) => join(nativeDir, f)), fileURLToPath(import.meta.url)];
const newest = Math.max(...inputs.map((f) => statSync(f).mtimeMs));

// SIMD128 everywhere. No FMA in plain SIMD128, so -ffp-contract has nothing to fuse.
const cflags = ['-std=c++17', '-O3', '-msimd128', '-fno-math-errno', '-Wno-unknown-pragmas', ...(probe ? ['-DDPO_GEMM_PROBE'] : [])];
const common = [
  '-O3', '-msimd128',
  '-sMODULARIZE=1', '-sEXPORT_ES6=1', '-sENVIRONMENT=web,worker,node', '-sFILESYSTEM=0',
  '-sALLOW_MEMORY_GROWTH=1', '-sMAXIMUM_MEMORY=4GB', '-sINITIAL_MEMORY=32MB', '-sTOTAL_STACK=1MB',
  '-sEXPORTED_FUNCTIONS=_malloc,_free', '-sEXPORTED_RUNTIME_METHODS=UTF8ToString,stringToUTF8,lengthBytesUTF8',
  '-sINCOMING_MODULE_JS_API=wasmBinary,instantiateWasm,locateFile,mainScriptUrlOrBlob,dpoPoolSize,print,printErr',
  '-Wno-pthreads-mem-growth', '-sTEXTDECODER=2', '-sNODEJS_CATCH_EXIT=0', '-sNODEJS_CATCH_REJECTION=0', '-sASSERTIONS=0', '-sSUPPORT_ERRNO=0',
];
// Every dpo_* function of the C ABI is exported (EMSCRIPTEN_KEEPALIVE is only on wasm.cc's).
const abi = spawnSync('grep', ['-ohE', '^[a-z].* \\*?(dpo_[a-z0-9_]+)\\(', join(nativeDir, 'abi.h')], { encoding: 'utf8' }).stdout;
const exported = [...new Set([...abi.matchAll(/(dpo_[a-z0-9_]+)\(/g)].map((m) => `_${m[1]}`))];
exported.push('_dpo_kernel_table', '_dpo_build_features', '_malloc', '_free', ...(probe ? ['_dpo_gemm_probe'] : []));
common[common.findIndex((a) => a.startsWith('-sEXPORTED_FUNCTIONS='))] = `-sEXPORTED_FUNCTIONS=${exported.join(',')}`;

// Relaxed SIMD (f32x4.relaxed_madd, an FMA where the engine has one) needs the standard opcodes,
// which Debian's clang 14 (behind emscripten 3.1.6) does not emit — it knows only the
// pre-standard ones engines reject — and binaryen 108 cannot read. So the *_relaxed builds
// compile the GEMM (native/gemm.cc, the only user) with clang 19 (Debian's clang-19, lld-19)
// through the same emcc front end (EM_LLVM_ROOT), link the other objects of the SIMD128 build
// with it, and keep binaryen off the result: link at -O1 (no wasm-opt; every object is already
// -O3), BigInt i64 at the JS boundary (nothing to legalize) and emscripten's Python metadata
// reader (EMCC_READ_METADATA=python) instead of wasm-emscripten-finalize.
// Without clang-19 only the SIMD128 builds are made; the loader (src/tensor/wasm.ts) picks a
// relaxed build when one is present and the engine validates relaxed SIMD.
const LLVM19 = process.env.DPO_WASM_LLVM19 ?? '/usr/lib/llvm-19/bin';
const relaxedAvailable = existsSync(join(LLVM19, 'clang')) && existsSync(join(LLVM19, 'wasm-ld')) && process.env.DPO_WASM_NO_RELAXED !== '1';
const llvm19Env = { EM_LLVM_ROOT: LLVM19, EM_LLVM_ADD_VERSION: '', EM_CLANG_ADD_VERSION: '' };
const relaxedLink = ['-O1', '-sWASM_BIGINT=1'];

const PTHREAD = ['-pthread'];
const allVariants = [
  { name: 'dpo_kernels', threads: false, relaxed: false },
  // The worker pool is created at load time (a blocked main thread cannot start workers):
  // createWasmKernels passes its size as Module.dpoPoolSize.
  { name: 'dpo_kernels_mt', threads: true, relaxed: false },
  ...(relaxedAvailable ? [
    { name: 'dpo_kernels_relaxed', threads: false, relaxed: true },
    { name: 'dpo_kernels_mt_relaxed', threads: true, relaxed: true },
  ] : []),
];
// The probe build: one thread, the kernel chromium runs (relaxed when built).
const variants = probe ? allVariants.filter((v) => !v.threads && v.relaxed === relaxedAvailable) : allVariants;
if (!relaxedAvailable) {
  console.warn(`dpo-ts: ${LLVM19}/clang and wasm-ld not found: building the SIMD128 kernels only (the relaxed-SIMD builds need ` +
    'clang-19 and lld-19: `apt-get install clang-19 lld-19`, or scripts/install-system-deps.sh)');
}

// Debian's emscripten runs its JavaScript optimizer with Debian's node-acorn, which a Node from
// another source does not find without NODE_PATH.
const nodePath = [process.env.NODE_PATH, existsSync('/usr/share/nodejs') ? '/usr/share/nodejs' : null].filter(Boolean).join(':');
const emEnv = { ...process.env, NODE_PATH: nodePath };

function fail(what) {
  // Never fatal for `npm ci` (--if-available) unless DPO_REQUIRE_WASM=1 (CI).
  const fatal = !ifAvailable || process.env.DPO_REQUIRE_WASM === '1';
  (fatal ? console.error : console.warn)(`dpo-ts: emcc failed ${what}${fatal ? '' : '; the WebAssembly kernels are unavailable'}`);
  process.exit(fatal ? 1 : 0);
}

// Runs emcc jobs, two at a time (each is one compiler process).
async function runAll(jobs) {
  const { spawn } = await import('node:child_process');
  let next = 0, failed = null;
  const worker = async () => {
    while (next < jobs.length && !failed) {
      const job = jobs[next++];
      const code = await new Promise((ok) => {
        const p = spawn('emcc', job.args, { stdio: 'inherit', cwd: root, env: { ...emEnv, ...job.env } });
        p.on('close', ok);
        p.on('error', () => ok(-1));
      });
      if (code !== 0) failed = job.what;
    }
  };
  await Promise.all([worker(), worker()]);
  if (failed) fail(failed);
}

mkdirSync(outDir, { recursive: true });
const version = emcc.stdout.split('\n')[0].replace(/^emcc \(.*?\) /, '');
const todo = variants.filter((v) => {
  // The stamp holds the newest input time the outputs were built from (read at the start of
  // the build, so an edit during a build triggers the next one).
  const js = join(outDir, `${v.name}.mjs`), wasm = join(outDir, `${v.name}.wasm`);
  const stamp = join(outDir, `${v.name}.stamp`);
  const built = existsSync(stamp) ? Number(readFileSync(stamp, 'utf8')) : -1;
  return force || !existsSync(js) || !existsSync(wasm) || built < newest;
});
if (todo.length > 0) {
  // Objects: every source once per thread mode; gemm.cc once more with clang 19 for relaxed builds.
  // Objects outside dist/wasm/, which the web build copies as a whole.
  const objDir = (threads) => join(root, 'dist', 'wasm-obj', probe ? 'probe' : threads ? 'mt' : 'st');
  const obj = (threads, src, relaxed = false) => join(objDir(threads), `${src.split('/').pop().replace(/\.cc$/, '')}${relaxed ? '.relaxed' : ''}.o`);
  const compile = [];
  for (const threads of [...new Set(todo.map((v) => v.threads))]) {
    mkdirSync(objDir(threads), { recursive: true });
    const tflags = threads ? PTHREAD : [];
    for (const src of sources) {
      compile.push({ what: `compiling ${src}`, args: [...cflags, ...tflags, '-c', src, '-o', obj(threads, src)] });
    }
    if (todo.some((v) => v.threads === threads && v.relaxed)) {
      const gemm = join(nativeDir, 'gemm.cc');
      compile.push({ what: `compiling ${gemm} with clang 19 (relaxed SIMD)`, env: llvm19Env,
        args: [...cflags, '-mrelaxed-simd', ...tflags, '-c', gemm, '-o', obj(threads, gemm, true)] });
    }
  }
  console.log(`dpo-ts: compiling ${compile.length} objects with emscripten (${version})${relaxedAvailable ? ' and clang 19' : ''}`);
  await runAll(compile);
  const links = todo.map((v) => {
    const objs = sources.map((src) => obj(v.threads, src, v.relaxed && src.endsWith('/gemm.cc')));
    const flags = v.threads ? [...PTHREAD, '-sUSE_PTHREADS=1', '-sPTHREAD_POOL_SIZE=Module.dpoPoolSize', '-sPTHREAD_POOL_SIZE_STRICT=0'] : [];
    const args = [...common, ...(v.relaxed ? relaxedLink : []), ...flags, `-sEXPORT_NAME=create_${v.name}`, '-o', join(outDir, `${v.name}.mjs`), ...objs];
    return { what: `linking ${v.name}`, args, env: v.relaxed ? { EMCC_READ_METADATA: 'python' } : {}, v };
  });
  console.log(`dpo-ts: linking ${todo.map((v) => `${v.name}.wasm`).join(', ')}`);
  await runAll(links);
  for (const v of todo) writeFileSync(join(outDir, `${v.name}.stamp`), String(newest));
}

// emscripten 3.1.6's ES-module glue still calls require() and __dirname when it runs in Node;
// give it both (a no-op in browsers, where the Node branches never run). Its pthread worker
// (.worker.js) is a CommonJS script in Node: dist/wasm/package.json says so, since the project's
// package.json declares "type": "module".
const PRELUDE = '// dpo-ts: Node prelude\n' +
  'var require = globalThis.require ?? (typeof process == "object" && process.versions && process.versions.node ? ' +
  '(await import("node:" + "module")).createRequire(import.meta.url) : undefined);\n' +
  'var __dirname = require ? require("path").dirname(require("url").fileURLToPath(import.meta.url)) : "";\n';
for (const v of variants) {
  const js = join(outDir, `${v.name}.mjs`);
  const text = readFileSync(js, 'utf8');
  if (!text.startsWith(PRELUDE)) writeFileSync(js, PRELUDE + text);
}
writeFileSync(join(outDir, 'package.json'), '{ "type": "commonjs" }\n');
