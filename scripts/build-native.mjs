// Builds the native kernels (native/) with node-gyp at install time.
// A failed build is not fatal for users: the library falls back to the portable
// TypeScript backend and says so at load time. CI sets DPO_REQUIRE_NATIVE=1 to fail instead.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
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
