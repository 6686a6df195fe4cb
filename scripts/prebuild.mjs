// Prebuilt kernels in the ecosystem's usual layout: prebuilds/<platform>-<arch>/dpo_native.node,
// loaded by src/tensor/backend.ts when no local build exists. Compiles native/ with the sources,
// defines and flags of binding.gyp (one home for the build settings), for linux-x64 with the host
// g++ and for linux-arm64 with Debian's cross compiler (g++-aarch64-linux-gnu).
// Usage: node scripts/prebuild.mjs [x64] [arm64]   (default: both; run by `npm pack` via prepack)
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, renameSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const gyp = JSON.parse(readFileSync(join(root, 'binding.gyp'), 'utf8')).targets[0];
const compilers = { x64: 'g++', arm64: 'aarch64-linux-gnu-g++' };
const nodeInclude = join(dirname(process.execPath), '..', 'include', 'node');

export function prebuild(arch) {
  const cxx = compilers[arch];
  if (!cxx) throw new Error(`prebuild: unknown arch ${arch} (x64 or arm64)`);
  const outDir = join(root, 'prebuilds', `linux-${arch}`);
  mkdirSync(outDir, { recursive: true });
  const tmp = join(outDir, `dpo_native.node.tmp-${process.pid}`);
  const args = [
    ...gyp.cflags_cc, '-fPIC', '-shared', '-DBUILDING_NODE_EXTENSION',
    ...gyp.defines.map((d) => `-D${d}`),
    `-I${nodeInclude}`, `-I${require('node-addon-api').include_dir}`,
    ...gyp.sources.map((s) => join(root, s)),
    ...gyp.ldflags, '-o', tmp,
  ];
  const t0 = Date.now();
  const r = spawnSync(cxx, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.error || r.status !== 0) {
    throw new Error(`prebuild linux-${arch}: ${cxx} ${r.error ? r.error.message : `exited ${r.status}`}` +
      (arch === 'arm64' ? ' (install g++-aarch64-linux-gnu)' : ''));
  }
  renameSync(tmp, join(outDir, 'dpo_native.node'));
  console.log(`prebuilds/linux-${arch}/dpo_native.node (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  return join(outDir, 'dpo_native.node');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const named = process.argv.slice(2);
  // Without arguments (prepack): every platform whose compiler is installed; a missing one is a
  // warning (that platform then compiles from source at install). Named platforms must build.
  for (const arch of named.length ? named : ['x64', 'arm64']) {
    if (!named.length && spawnSync('sh', ['-c', `command -v ${compilers[arch]}`]).status !== 0) {
      console.warn(`prebuild: ${compilers[arch]} not installed, no prebuilds/linux-${arch} in this package`);
      continue;
    }
    prebuild(arch);
  }
}
