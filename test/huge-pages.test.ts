// Large tensor blocks are advised to Linux as transparent huge pages (src/tensor/allocator.ts,
// native/napi-memory.cc): the advice covers exactly the whole 2 MiB pages inside a block, leaves
// its contents alone, and a freshly allocated large tensor buffer is then really backed by huge
// pages (AnonHugePages grows) wherever the kernel's THP mode allows it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import * as T from '../src/tensor/index.js';
import { adviseHugePages, HUGE_PAGE_MIN_BYTES } from '../src/tensor/allocator.js';
import { nativeKernels } from '../src/tensor/backend.js';

const MiB = 1 << 20;
const linux = process.platform === 'linux';
const thpFile = '/sys/kernel/mm/transparent_hugepage/enabled';
const thpMode = linux && existsSync(thpFile) ? (/\[(\w+)\]/.exec(readFileSync(thpFile, 'utf8'))?.[1] ?? 'never') : 'never';
const skip = !nativeKernels() ? 'no native addon' : !linux ? 'huge pages are advised on Linux only' : false;

function anonHugeBytes(): number {
  const m = /AnonHugePages:\s+(\d+) kB/.exec(readFileSync('/proc/self/smaps_rollup', 'utf8'));
  assert.ok(m, 'smaps_rollup has AnonHugePages');
  return Number(m[1]) * 1024;
}

test('adviseHugePages: the whole 2 MiB pages inside a large block, nothing for small ones, contents kept', { skip }, () => {
  assert.equal(adviseHugePages(new ArrayBuffer(HUGE_PAGE_MIN_BYTES - 4)), 0, 'below the minimum');
  const ab = new ArrayBuffer(24 * MiB + 4096);
  const f = new Float32Array(ab);
  for (let i = 0; i < f.length; i += 1021) f[i] = i * 0.5;
  const advised = adviseHugePages(ab);
  // 2 MiB-aligned interior: at least the size minus one page at each end, a whole number of pages.
  assert.ok(advised >= 24 * MiB + 4096 - 4 * MiB && advised <= 24 * MiB, `advised ${advised} bytes`);
  assert.equal(advised % (2 * MiB), 0);
  for (let i = 0; i < f.length; i += 1021) assert.equal(f[i], i * 0.5);
});

test('a fresh large tensor buffer is backed by huge pages (THP mode madvise or always)', { skip: skip || (thpMode === 'never' && 'THP is off on this system (never)') }, () => {
  const before = anonHugeBytes();
  // An odd size no earlier block of the pool can serve: a new block, advised before its first write.
  const buf = T.alloc('float32', (40 * MiB) / 4 + 12345, false);
  buf.fill(1);
  const grown = anonHugeBytes() - before;
  T.release(buf);
  assert.ok(grown >= 16 * MiB, `AnonHugePages grew by ${grown} bytes for a 40 MiB block`);
});

test('DPO_HUGE_PAGES=0 turns the advice off', { skip: skip || (thpMode !== 'madvise' && `THP mode ${thpMode}: only "madvise" tells advised from not`) }, () => {
  const script = `import * as T from ${JSON.stringify(new URL('../src/tensor/index.js', import.meta.url).href)};
import { readFileSync } from 'node:fs';
const h = () => Number(/AnonHugePages:\\s+(\\d+) kB/.exec(readFileSync('/proc/self/smaps_rollup', 'utf8'))[1]);
const b0 = h(); const buf = T.alloc('float32', 10 * 1048576 + 777, false); buf.fill(1); console.log(h() - b0);`;
  const run = (env: Record<string, string>): number => {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, ...env }, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return Number(r.stdout.trim()) * 1024;
  };
  assert.equal(run({ DPO_HUGE_PAGES: '0' }), 0, 'no huge pages with DPO_HUGE_PAGES=0');
  assert.ok(run({}) >= 16 * MiB, 'huge pages by default');
});
