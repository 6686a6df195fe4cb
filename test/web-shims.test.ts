// The browser bundle's stand-ins for Node built-ins (src/web/shims), checked against Node's own:
// SHA-256 against node:crypto, the volume-backed fs against node:fs semantics the core relies on
// (atomic write + rename, positional reads, errors with codes), the POSIX path functions against
// node:path. And the bundle itself: built by scripts/build-web.mjs with no Node built-in left.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as nodePath from 'node:path';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createHash as shimHash } from '../src/web/shims/crypto.js';
import * as fs from '../src/web/shims/fs.js';
import * as path from '../src/web/shims/path.js';
import { volume } from '../src/web/volume.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

test('sha256 equals node:crypto for lengths around the block boundaries and streamed updates', () => {
  let seed = 7;
  const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) & 0xff;
  for (const n of [0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 128, 1000, 4099]) {
    const bytes = Uint8Array.from({ length: n }, rand);
    assert.equal(shimHash('sha256').update(bytes).digest('hex'), createHash('sha256').update(bytes).digest('hex'), `length ${n}`);
    const cut = Math.floor(n / 3);
    assert.equal(
      shimHash('sha256').update(bytes.subarray(0, cut)).update('é中').update(new Int32Array([n, -1])).update(bytes.subarray(cut)).digest('hex'),
      createHash('sha256').update(bytes.subarray(0, cut)).update('é中').update(new Int32Array([n, -1])).update(bytes.subarray(cut)).digest('hex'),
    );
  }
  assert.throws(() => shimHash('md5'), /only sha256/);
});

test('volume fs: atomic write then rename, positional reads, listings, errors with codes', () => {
  fs.mkdirSync('/t/a/b', { recursive: true });
  const fd = fs.openSync('/t/a/b/x.tmp', 'w');
  fs.writeSync(fd, new Uint8Array([1, 2, 3]));
  fs.writeSync(fd, new Uint8Array([9, 4, 5, 9]), 1, 2);
  assert.equal(fs.statSync('/t/a/b/x.tmp')!.size, 0, 'nothing visible before close');
  fs.closeSync(fd);
  fs.renameSync('/t/a/b/x.tmp', '/t/a/b/x.bin');
  assert.deepEqual([...(fs.readFileSync('/t/a/b/x.bin') as Uint8Array)], [1, 2, 3, 4, 5]);
  assert.equal(fs.existsSync('/t/a/b/x.tmp'), false);
  const rfd = fs.openSync('/t/a/b/x.bin', 'r');
  const buf = new Uint8Array(4);
  assert.equal(fs.readSync(rfd, buf, 1, 3, 2), 3);
  assert.deepEqual([...buf], [0, 3, 4, 5]);
  assert.equal(fs.fstatSync(rfd).size, 5);
  fs.closeSync(rfd);
  fs.writeFileSync('/t/a/note.txt', 'héllo\n');
  fs.appendFileSync('/t/a/note.txt', 'more');
  assert.equal(fs.readFileSync('/t/a/note.txt', 'utf8'), 'héllo\nmore');
  assert.deepEqual(fs.readdirSync('/t/a'), ['b', 'note.txt']);
  assert.equal(fs.statSync('/t/a')!.isDirectory(), true);
  assert.throws(() => fs.readFileSync('/t/missing.json'), (e: Error & { code?: string }) => e.code === 'ENOENT' && /no such file or directory, open '\/t\/missing\.json'/.test(e.message));
  assert.throws(() => fs.writeFileSync('/nodir/f', 'x'), { code: 'ENOENT' });
  assert.throws(() => fs.openSync('/t/a/note.txt', 'wx'), { code: 'EEXIST' });
  assert.throws(() => fs.rmSync('/t/a'), { code: 'ENOTEMPTY' });
  fs.renameSync('/t/a', '/t/c');
  assert.deepEqual(volume.walk('/t').map(([p]) => p), ['c/b/x.bin', 'c/note.txt']);
  fs.rmSync('/t', { recursive: true });
  assert.equal(fs.existsSync('/t/c/note.txt'), false);
  fs.rmSync('/t', { recursive: true, force: true });
});

test('path functions agree with node:path (POSIX)', () => {
  const cases = ['/a/b/c.txt', 'a/b/', '/a/../b/./c', '../x/y', '/', '.', 'a//b', '/a/b.tar.gz', 'file', '.hidden'];
  for (const c of cases) {
    assert.equal(path.normalize(c), nodePath.posix.normalize(c), `normalize ${c}`);
    assert.equal(path.dirname(c), nodePath.posix.dirname(c), `dirname ${c}`);
    assert.equal(path.basename(c), nodePath.posix.basename(c), `basename ${c}`);
    assert.equal(path.extname(c), nodePath.posix.extname(c), `extname ${c}`);
    assert.equal(path.join('/r', c, 'z'), nodePath.posix.join('/r', c, 'z'), `join ${c}`);
    assert.equal(path.resolve('/base', c), nodePath.posix.resolve('/base', c), `resolve ${c}`);
  }
  assert.equal(path.relative('/a/b/c', '/a/d'), nodePath.posix.relative('/a/b/c', '/a/d'));
});

test('build:web bundles the core with no Node built-in left (each is a shim)', { timeout: 60_000 }, () => {
  const b = spawnSync(process.execPath, [join(ROOT, 'scripts', 'build-web.mjs'), '--quiet'], { encoding: 'utf8' });
  assert.equal(b.status, 0, b.stderr);
  const { inputs } = JSON.parse(readFileSync(join(ROOT, 'dist', 'web', 'build.json'), 'utf8')) as { inputs: string[] };
  for (const dir of ['src/tensor/', 'src/nn/', 'src/models/', 'src/io/', 'src/data/', 'src/losses/', 'src/train/']) {
    assert.ok(inputs.some((i) => i.startsWith(dir)), `${dir} is in the bundle`);
  }
  assert.deepEqual(inputs.filter((i) => i.startsWith('node:') || /^(fs|path|crypto|os)$/.test(i)), []);
  for (const f of ['worker.js', 'engine.js']) {
    const js = readFileSync(join(ROOT, 'dist', 'web', f), 'utf8');
    assert.doesNotMatch(js, /from\s*["']node:|require\(["']node:/, `${f} imports no node: module`);
  }
});
