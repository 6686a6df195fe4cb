// The annotation server's edges: non-object JSON bodies, file permissions, rate-limited Bearer
// checks, single-use invite links, invisible rationales, and the admin token kept out of logs.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { registerAnnotateCommands } from '../src/cli/annotate.js';
import { openDatabase } from '../src/annotate/db.js';
import { seededRng } from '../src/annotate/queue.js';
import { startServer, type AnnotateServer } from '../src/annotate/server.js';
import { createAnnotator, dbPath, initProject } from '../src/annotate/store.js';
import { Client, http, makeProject, tmpDir } from './annotate-helpers.js';
import { Agent, request } from 'node:http';
import { recordPromotion } from './helpers/gc.js';

const MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'annotate-main.js');
const limits = (loginAttemptsPerMinute: number) => ({ maxBodyBytes: 4096, loginAttemptsPerMinute, maxRationaleChars: 4000, sessionDays: 1 });

async function withServer(cfg: Parameters<typeof makeProject>[0], f: (srv: AnnotateServer, adminToken: string, logs: string[], dir: string) => Promise<void>): Promise<void> {
  const { dir, adminToken } = makeProject(cfg, 4);
  const logs: string[] = [];
  const srv = await startServer({ dir, port: 0, rng: seededRng(1), log: (m) => logs.push(m) });
  try {
    await f(srv, adminToken, logs, dir);
  } finally {
    await srv.close();
  }
}

const post = (url: string, body: string, headers: Record<string, string> = {}) =>
  http(url, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body });

test('a JSON body that is not an object (null, array, number, string) is a 400 on every route, never a 500', async () => {
  await withServer({ overlap: 1, goldRate: 0, limits: limits(100) }, async (srv, adminToken, logs) => {
    const db = srv.db;
    const c = new Client(srv.url);
    assert.equal((await c.login(createAnnotator(db, 'Ann').inviteToken)).status, 200);
    for (const body of ['null', '[]', '[1]', '3', '"x"', 'true']) {
      const routes: [string, Record<string, string>][] = [
        ['/api/login', {}],
        ['/api/admin/login', {}],
        ['/api/consent', { Cookie: c.cookie, 'X-CSRF-Token': c.csrf }],
        ['/api/admin/annotators', { Authorization: `Bearer ${adminToken}` }],
      ];
      for (const [path, headers] of routes) {
        const r = await post(srv.url + path, body, headers);
        assert.equal(r.status, 400, `${path} with body ${body}: ${r.status} ${r.text}`);
        assert.match(r.json.error, /request body must be a JSON object/);
      }
    }
    assert.equal((await c.call('POST', '/api/consent', { agree: true })).status, 200);
    const v = await post(srv.url + '/api/vote', 'null', { Cookie: c.cookie, 'X-CSRF-Token': c.csrf });
    assert.equal(v.status, 400, v.text);
    assert.deepEqual(logs, [], 'no stack trace logged');
  });
});

test('project folder is created 0700 and the database with its -wal and -shm 0600 (umask 022); serve warns about open ones', async () => {
  const old = process.umask(0o022);
  try {
    const dir = join(tmpDir(), 'proj');
    initProject(dir, {});
    const db = openDatabase(dbPath(dir));
    createAnnotator(db, 'Perm'); // writes: -wal and -shm exist
    const mode = (p: string) => (statSync(p).mode & 0o777).toString(8);
    assert.equal(mode(dir), '700');
    for (const f of ['', '-wal', '-shm']) assert.equal(mode(dbPath(dir) + f), '600', `annotate.sqlite${f}`);
    db.close();
    const logs: string[] = [];
    let srv = await startServer({ dir, port: 0, log: (m) => logs.push(m) });
    await srv.close();
    assert.equal(logs.length, 0, `no warning for private files: ${logs.join('; ')}`);
    chmodSync(dir, 0o755);
    chmodSync(dbPath(dir), 0o644);
    srv = await startServer({ dir, port: 0, log: (m) => logs.push(m) });
    await srv.close();
    assert.equal(logs.length, 2, logs.join('\n'));
    assert.match(logs[0]!, new RegExp(`warning: ${dir} is mode 755: other local users can read .* run: chmod 700 ${dir}$`));
    assert.match(logs[1]!, /annotate\.sqlite is mode 644: .* run: chmod 600 /);
  } finally {
    process.umask(old);
  }
});

test('failed admin-token (Bearer) checks are rate-limited per client like logins; good tokens are not counted', async () => {
  await withServer({ overlap: 1, goldRate: 0, limits: limits(5) }, async (srv, adminToken) => {
    const bearer = (t: string) => http(srv.url + '/api/admin/quality', { headers: { Authorization: `Bearer ${t}` } });
    for (let i = 0; i < 10; i++) assert.equal((await bearer(adminToken)).status, 200, 'right token, not limited');
    for (let i = 0; i < 5; i++) assert.equal((await bearer(`guess-${i}`)).status, 401);
    const r = await bearer('guess-6');
    assert.equal(r.status, 429);
    assert.match(r.json.error, /too many failed admin-token attempts; retry in \d+ s/);
    assert.ok(Number(r.headers['retry-after']) > 0);
    // Once limited, no answer reveals whether a token is right, and the login routes share the budget.
    assert.equal((await bearer(adminToken)).status, 429);
    assert.equal((await post(srv.url + '/api/admin/login', JSON.stringify({ token: adminToken }))).status, 429);
  });
});

test('an invite link signs in once; the session is the credential; a new link works once again', async () => {
  await withServer({ overlap: 1, goldRate: 0, limits: limits(100) }, async (srv, adminToken) => {
    const { id, inviteToken } = createAnnotator(srv.db, 'Once');
    const first = new Client(srv.url);
    assert.equal((await first.login(inviteToken)).status, 200);
    const second = new Client(srv.url);
    const again = await second.login(inviteToken);
    assert.equal(again.status, 401, 'a forwarded (used) link opens no session');
    assert.match(again.json.error, /already used/);
    assert.equal((await first.call('GET', '/api/me')).status, 200, 'the first session still works');
    const link = await post(srv.url + `/api/admin/annotators/${id}/invite`, '{}', { Authorization: `Bearer ${adminToken}` });
    const fresh = new URL(link.json.inviteUrl).hash.replace('#invite=', '');
    assert.equal((await second.login(fresh)).status, 200);
    assert.equal((await new Client(srv.url).login(fresh)).status, 401);
  });
});

test('rationale "required" counts visible text only; control characters are stripped before storing', async () => {
  await withServer({ overlap: 1, goldRate: 0, rationale: 'required', limits: limits(100) }, async (srv) => {
    const c = new Client(srv.url);
    await c.loginAndConsent(createAnnotator(srv.db, 'Why').inviteToken);
    const vote = async (rationale: string, key: string) => {
      const a = (await c.call('POST', '/api/next', {})).json.assignment;
      return c.call('POST', '/api/vote', { assignmentId: a.id, choice: 'A', rationale, idempotencyKey: key });
    };
    for (const [i, r] of ['\u0000', '\u0000\u0000\u0000', '\u200b\u200d\u2060', ' \t\n\u00a0\u3000', '\u0301\ufe0f', '\u2800\u3164', '\u001b\u007f\u0085'].entries()) {
      const res = await vote(r, `invisible-${i}`);
      assert.equal(res.status, 400, `rationale ${JSON.stringify(r)} accepted`);
      assert.match(res.json.error, /a rationale is required/);
    }
    assert.equal((await vote('too\u0000 long\u001b!', 'visible-1')).status, 200);
    const row = srv.db.prepare("SELECT rationale FROM votes WHERE idempotency_key = 'visible-1'").get() as { rationale: string };
    assert.equal(row.rationale, 'too long!');
  });
});

test('init and serve print the admin token only to a terminal', async () => {
  const dir = join(tmpDir(), 'proj');
  const run = async (isTerminal: boolean, ...args: string[]) => {
    const out: string[] = [];
    const program = new Command().exitOverride();
    registerAnnotateCommands(program, { print: (l) => out.push(l), isTerminal: () => isTerminal });
    await program.parseAsync(['node', 'dpo', 'annotate', ...args]);
    return out.join('\n');
  };
  const piped = await run(false, 'init', dir);
  const token = (await import('../src/annotate/server.js')).readAdminToken(dir)!;
  assert.ok(!piped.includes(token), piped);
  assert.match(piped, /admin token saved in .*admin-token \(mode 600; not printed: standard output is not a terminal/);
  assert.ok((await run(true, 'init', dir, '--force')).includes((await import('../src/annotate/server.js')).readAdminToken(dir)!));

  // serve with its output in a pipe (as in a saved log): the link without the token.
  const now = (await import('../src/annotate/server.js')).readAdminToken(dir)!;
  const child = spawn(process.execPath, [MAIN, 'annotate', 'serve', dir, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  await new Promise<void>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`serve did not start: ${out}`)), 20_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (/admin dashboard/.test(out)) {
        clearTimeout(timer);
        ok();
      }
    });
  });
  child.kill('SIGTERM');
  await new Promise((ok) => child.once('exit', ok));
  assert.ok(!out.includes(now), `token printed to a pipe: ${out}`);
  assert.match(out, /admin dashboard: http:\/\/127\.0\.0\.1:\d+\/admin \(sign in with the token in .*admin-token; not printed/);
});

test('a long-lived server keeps its responses young: 3,000 requests promote < 0.3 KiB each into V8\'s old generation', async () => {
  // Before: every response's headers were built as `{ ...SECURITY_HEADERS, …, ...extra }`, and V8
  // kept ~1 KiB of each such response alive across a scavenge (promoted, then old-space garbage:
  // the 10,000-request soak filled the old generation 18 → 48 MiB before the first full
  // collection). One keep-alive connection, the route every page polls.
  await withServer({ overlap: 1, goldRate: 0, limits: limits(100) }, async (srv) => {
    const c = new Client(srv.url);
    assert.equal((await c.login(createAnnotator(srv.db, 'Promo').inviteToken)).status, 200);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const me = (): Promise<void> => new Promise((ok, fail) => {
      const req = request(srv.url + '/api/me', { agent, headers: { Cookie: c.cookie } }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? ok() : fail(new Error(`status ${res.statusCode}`))));
      });
      req.on('error', fail);
      req.end();
    });
    try {
      for (let i = 0; i < 300; i++) await me();
      const rec = recordPromotion();
      const N = 3000;
      for (let i = 0; i < N; i++) await me();
      const { promoted, scavenges } = rec.stop();
      assert.ok(scavenges >= 2, `only ${scavenges} scavenges: the check measured too little`);
      assert.ok(promoted / N < 300, `promoted ${(promoted / N).toFixed(0)} bytes per request (${scavenges} scavenges)`);
    } finally {
      agent.destroy();
    }
  });
});
