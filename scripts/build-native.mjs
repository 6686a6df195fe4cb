// Install step for the native kernels (native/). A package from `npm pack` ships prebuilt binaries
// (prebuilds/<platform>-<arch>/, see scripts/prebuild.mjs): when one loads here, nothing is compiled.
// Otherwise node-gyp builds from source (DPO_BUILD_FROM_SOURCE=1 forces that). A failed build is
// not fatal for users: the library falls back to the portable TypeScript backend and says so at
// load time. CI sets DPO_REQUIRE_NATIVE=1 to fail instead.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const prebuilt = join(dirname(fileURLToPath(import.meta.url)), '..', 'prebuilds', `${process.platform}-${process.arch}`, 'dpo_native.node');
if (process.env.DPO_BUILD_FROM_SOURCE !== '1' && existsSync(prebuilt)) {
  try {
    const addon = require(prebuilt);
    console.log(`dpo-ts: using the prebuilt kernels for ${process.platform}-${process.arch} (GEMM path ${addon.gemmKernel()})`);
    process.exit(0);
  } catch (e) {
    console.warn(`dpo-ts: the prebuilt kernels for ${process.platform}-${process.arch} do not load (${e.message.split('\n')[0]}); building from source`);
  }
}
let gyp;
try {
  gyp = require.resolve('node-gyp/bin/node-gyp.js');
} catch {
  gyp = null;
}
const args = gyp ? [gyp, 'rebuild', '--release'] : [];
const result = gyp
  ? spawnSync(process.execPath, args, { stdio: 'inherit' })
  : spawnSync('node-gyp', ['rebuild', '--release'], { stdio: 'inherit', shell: true });
if (result.status !== 0) {
  const msg =
    'dpo-ts: building the native kernels failed; the portable TypeScript backend will be used ' +
    '(about 50-100x slower for matrix products). Install g++ and python3, then run `npm rebuild dpo-ts`.';
  if (process.env.DPO_REQUIRE_NATIVE === '1') {
    console.error(msg);
    process.exit(1);
  }
  console.warn(msg);
}
