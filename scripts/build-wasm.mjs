// Builds the WebAssembly kernels from the same C++ sources as the native addon (native/*.cc
// except the N-API binding), with Debian's emscripten:
//   dist/wasm/dpo_kernels.mjs + .wasm          one thread, SIMD128 (any page, any browser)
//   dist/wasm/dpo_kernels_mt.mjs + .wasm + .worker.js  SIMD128 + pthreads (SharedArrayBuffer:
//                                              Node worker_threads, cross-origin-isolated pages)
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
const outDir = join(root, 'dist', 'wasm');

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
const sources = readdirSync(nativeDir).filter((f) => f.endsWith('.cc') && f !== 'napi.cc').map((f) => join(nativeDir, f));
const inputs = [...readdirSync(nativeDir).map((f) => join(nativeDir, f)), fileURLToPath(import.meta.url)];
const newest = Math.max(...inputs.map((f) => statSync(f).mtimeMs));

// -O3, SIMD128; relaxed SIMD is not used: Debian's clang 14 only knows the pre-standard
// relaxed-SIMD opcodes, which today's engines reject. No FMA in plain SIMD128, so
// -ffp-contract has nothing to fuse.
const common = [
  '-std=c++17', '-O3', '-msimd128', '-fno-math-errno', '-Wno-unknown-pragmas',
  '-sMODULARIZE=1', '-sEXPORT_ES6=1', '-sENVIRONMENT=web,worker,node', '-sFILESYSTEM=0',
  '-sALLOW_MEMORY_GROWTH=1', '-sMAXIMUM_MEMORY=4GB', '-sINITIAL_MEMORY=32MB', '-sTOTAL_STACK=1MB',
  '-sEXPORTED_FUNCTIONS=_malloc,_free', '-sEXPORTED_RUNTIME_METHODS=UTF8ToString,stringToUTF8,lengthBytesUTF8',
  '-sINCOMING_MODULE_JS_API=wasmBinary,instantiateWasm,locateFile,mainScriptUrlOrBlob,dpoPoolSize,print,printErr',
  '-Wno-pthreads-mem-growth', '-sTEXTDECODER=2', '-sNODEJS_CATCH_EXIT=0', '-sNODEJS_CATCH_REJECTION=0', '-sASSERTIONS=0', '-sSUPPORT_ERRNO=0',
];
// Every dpo_* function of the C ABI is exported (EMSCRIPTEN_KEEPALIVE is only on wasm.cc's).
const abi = spawnSync('grep', ['-ohE', '^[a-z].* \\*?(dpo_[a-z0-9_]+)\\(', join(nativeDir, 'abi.h')], { encoding: 'utf8' }).stdout;
const exported = [...new Set([...abi.matchAll(/(dpo_[a-z0-9_]+)\(/g)].map((m) => `_${m[1]}`))];
exported.push('_dpo_kernel_table', '_dpo_build_features', '_malloc', '_free');
common[common.findIndex((a) => a.startsWith('-sEXPORTED_FUNCTIONS='))] = `-sEXPORTED_FUNCTIONS=${exported.join(',')}`;

const variants = [
  { name: 'dpo_kernels', flags: [] },
  // The worker pool is created at load time (a blocked main thread cannot start workers):
  // createWasmKernels passes its size as Module.dpoPoolSize.
  { name: 'dpo_kernels_mt', flags: ['-pthread', '-sUSE_PTHREADS=1', '-sPTHREAD_POOL_SIZE=Module.dpoPoolSize', '-sPTHREAD_POOL_SIZE_STRICT=0'] },
];

mkdirSync(outDir, { recursive: true });
for (const v of variants) {
  const js = join(outDir, `${v.name}.mjs`), wasm = join(outDir, `${v.name}.wasm`);
  // The stamp holds the newest input time the outputs were built from (read at the start of
  // the build, so an edit during a build triggers the next one).
  const stamp = join(outDir, `${v.name}.stamp`);
  const built = existsSync(stamp) ? Number(readFileSync(stamp, 'utf8')) : -1;
  if (!force && existsSync(js) && existsSync(wasm) && built >= newest) continue;
  const cmd = [...common, ...v.flags, `-sEXPORT_NAME=create_${v.name}`, '-o', js, ...sources];
  console.log(`dpo-ts: building ${v.name}.wasm with emscripten (${emcc.stdout.split('\n')[0].replace(/^emcc \(.*?\) /, '')})`);
  // Debian's emscripten runs its JavaScript optimizer with Debian's node-acorn, which a Node from
  // another source does not find without NODE_PATH.
  const nodePath = [process.env.NODE_PATH, existsSync('/usr/share/nodejs') ? '/usr/share/nodejs' : null].filter(Boolean).join(':');
  const r = spawnSync('emcc', cmd, { stdio: 'inherit', cwd: root, env: { ...process.env, NODE_PATH: nodePath } });
  if (r.status !== 0) {
    // Never fatal for `npm ci` (--if-available) unless DPO_REQUIRE_WASM=1 (CI).
    const fatal = !ifAvailable || process.env.DPO_REQUIRE_WASM === '1';
    (fatal ? console.error : console.warn)(`dpo-ts: emcc failed building ${v.name}${fatal ? '' : '; the WebAssembly kernels are unavailable'}`);
    process.exit(fatal ? 1 : 0);
  }
  writeFileSync(stamp, String(newest));
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
