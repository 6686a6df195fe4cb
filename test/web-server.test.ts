// `dpo web`'s static server: the built page with COOP/COEP (cross-origin isolation), nothing
// outside its directory, GET/HEAD only; the CLI command starts it on 127.0.0.1 and prints the URL.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startWebServer } from '../src/web/server.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

test('serves the page with cross-origin isolation headers and nothing outside its directory', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dpo-web-root-'));
  const root = join(dir, 'web');
  mkdirSync(join(root, 'models'), { recursive: true });
  writeFileSync(join(root, 'index.html'), '<!doctype html><title>x</title>');
  writeFileSync(join(root, 'page.js'), 'export {};');
  writeFileSync(join(root, 'models', 'm.bin'), new Uint8Array([1, 2, 3]));
  writeFileSync(join(dir, 'secret.txt'), 'do not serve');
  const srv = await startWebServer({ port: 0, root });
  try {
    assert.match(srv.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    const r = await fetch(srv.url);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.equal(r.headers.get('cross-origin-opener-policy'), 'same-origin');
    assert.equal(r.headers.get('cross-origin-embedder-policy'), 'require-corp');
    assert.match(r.headers.get('content-security-policy')!, /script-src 'self' 'wasm-unsafe-eval'/);
    assert.equal((await fetch(`${srv.url}page.js`)).headers.get('content-type'), 'text/javascript; charset=utf-8');
    assert.deepEqual([...new Uint8Array(await (await fetch(`${srv.url}models/m.bin`)).arrayBuffer())], [1, 2, 3]);
    for (const p of ['../secret.txt', '%2e%2e/secret.txt', 'models/../../secret.txt', 'nope.js', 'models']) {
      assert.equal((await fetch(`${srv.url}${p}`)).status, 404, p);
    }
    assert.equal((await fetch(srv.url, { method: 'POST', body: 'x' })).status, 405);
  } finally {
    await srv.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('dpo web starts the server on 127.0.0.1 and prints its URL; a bad port is refused', { timeout: 30_000 }, async () => {
  const bad = spawnSync(process.execPath, [join(ROOT, 'bin', 'dpo.js'), 'web', '--port', '70000'], { encoding: 'utf8' });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /--port: expected 0-65535, got 70000/);
  const dir = mkdtempSync(join(tmpdir(), 'dpo-web-cli-'));
  writeFileSync(join(dir, 'index.html'), '<!doctype html><title>page</title>');
  writeFileSync(join(dir, 'page.js'), 'export {};');
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'dpo.js'), 'web', '--port', '0'], { env: { ...process.env, DPO_WEB_DIR: dir } });
  try {
    const url = await new Promise<string>((ok, fail) => {
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /open (http:\/\/127\.0\.0\.1:\d+\/)/.exec(out);
        if (m) ok(m[1]!);
      });
      child.once('exit', (code) => fail(new Error(`dpo web exited (${code})`)));
    });
    assert.match(await (await fetch(url)).text(), /<title>page<\/title>/);
  } finally {
    child.kill('SIGINT');
    rmSync(dir, { recursive: true, force: true });
  }
});
