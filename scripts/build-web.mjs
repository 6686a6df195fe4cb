#!/usr/bin/env node
// Builds the browser bundle of the page `dpo web` serves (npm run build:web) into dist/web/:
// page.js and worker.js (esbuild, ES modules), index.html, style.css and the bundled model
// (stories260K with its tokenizer, from test/fixtures). The core's Node built-ins are replaced by
// src/web/shims (file access: the in-memory volume of src/web/volume.ts). Also writes
// dist/web/engine.js, the worker's engine as a module the Node tests import. When the WebAssembly
// kernels are built (src/tensor/wasm.ts + dist/wasm/ from `npm run build:wasm`), they are added as
// wasm-kernels.js + wasm/ and the worker computes with them; otherwise with the TypeScript kernels.
// Generated files: never committed.
import { build } from 'esbuild';
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'web');
const shim = (f) => join(root, 'src', 'web', 'shims', f);

/** Node built-in → its browser shim. Anything else from node: fails the build (listed). */
export const SHIMS = {
  fs: shim('fs.ts'), 'fs/promises': shim('fs-promises.ts'), path: shim('path.ts'), crypto: shim('crypto.ts'),
  os: shim('misc.ts'), url: shim('misc.ts'), module: shim('misc.ts'), zlib: shim('misc.ts'), readline: shim('misc.ts'),
  stream: shim('misc.ts'), v8: shim('misc.ts'), buffer: join(root, 'node_modules', 'buffer', 'index.js'),
};

const nodeBuiltins = {
  name: 'node-builtins',
  setup(b) {
    b.onResolve({ filter: /^node:|^(fs|fs\/promises|path|crypto|os|url|module|zlib|readline|stream)$/ }, (args) => {
      const name = args.path.replace(/^node:/, '');
      if (SHIMS[name]) return { path: SHIMS[name] };
      return { errors: [{ text: `${args.path} (imported by ${args.importer}) has no browser shim: keep it out of the core or add one in src/web/shims` }] };
    });
  },
};

const common = {
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['chrome110', 'firefox110', 'safari16'],
  sourcemap: true,
  logLevel: 'warning',
  plugins: [nodeBuiltins],
  inject: [shim('globals.ts')],
  define: { 'process.env.NODE_ENV': '"production"' },
  metafile: true,
};

const t0 = Date.now();
mkdirSync(out, { recursive: true });
const results = await Promise.all([
  build({ ...common, entryPoints: { page: join(root, 'src', 'web', 'browser', 'page.ts') }, outdir: out }),
  build({ ...common, entryPoints: { worker: join(root, 'src', 'web', 'browser', 'worker.ts') }, outdir: out }),
  build({ ...common, entryPoints: { engine: join(root, 'src', 'web', 'engine.ts') }, outdir: out }),
]);
const wasmSrc = join(root, 'src', 'tensor', 'wasm.ts'), wasmDir = join(root, 'dist', 'wasm');
const withWasm = existsSync(wasmSrc) && existsSync(join(wasmDir, 'dpo_kernels.wasm'));
rmSync(join(out, 'wasm'), { recursive: true, force: true });
rmSync(join(out, 'wasm-kernels.js'), { force: true });
if (withWasm) {
  results.push(await build({ ...common, entryPoints: { 'wasm-kernels': wasmSrc }, outdir: out }));
  cpSync(wasmDir, join(out, 'wasm'), { recursive: true, filter: (f) => !f.endsWith('.stamp') });
}
for (const f of ['index.html', 'style.css']) copyFileSync(join(root, 'src', 'web', 'browser', f), join(out, f));
const model = join(out, 'models', 'stories260K');
mkdirSync(model, { recursive: true });
for (const f of ['stories260K.bin', 'tok512.bin', 'LICENSE', 'README.md']) copyFileSync(join(root, 'test', 'fixtures', 'models', 'stories260K', f), join(model, f));
const inputs = new Set(results.flatMap((r) => Object.keys(r.metafile.inputs)));
writeFileSync(join(out, 'build.json'), JSON.stringify({ wasm: withWasm, inputs: [...inputs].sort(), version: JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version }, null, 1));
if (!process.argv.includes('--quiet')) console.log(`dist/web: page.js, worker.js, engine.js, index.html, style.css, models/stories260K${withWasm ? ', wasm-kernels.js, wasm/' : ' (no WebAssembly kernels: npm run build:wasm)'} (${Date.now() - t0} ms)`);
