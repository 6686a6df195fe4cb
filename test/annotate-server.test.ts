// Server security: binding, tokens, admin auth, isolation between annotators, escaping of
// untrusted texts, CSRF, size limits, login rate limiting, static-file confinement.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { openDatabase } from '../src/annotate/db.js';
import { seededRng } from '../src/annotate/queue.js';
import { startServer, type AnnotateServer } from '../src/annotate/server.js';
import { addPairs, dbPath } from '../src/annotate/store.js';
import { Client, http, inviteToken, makeProject } from './annotate-helpers.js';

const XSS = [
  'Hello **bold** <script>alert("p")</script> <img src=x onerror=alert(1)>',
  '<script>alert("block")</script>\n\n<img src=x onerror=alert(1)>',
  '[click me](javascript:alert(1)) <a href="javascript:alert(2)">raw</a> <svg onload=alert(3)>',
  '<iframe src="https://evil.example"></iframe> <div onclick="alert(4)" style="x">d</div> [x](JaVaScRiPt:alert(5))',
];

let srv: AnnotateServer;
let dir: string;
let adminToken: string;
const admin = (path: string, body?: unknown) =>
  http(srv.url + path, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { Authorization: `Bearer ${adminToken}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });

async function newAnnotator(name: string): Promise<{ client: Client; invite: string }> {
  const r = await admin('/api/admin/annotators', { name });
  assert.equal(r.status, 200, r.text);
  const client = new Client(srv.url);
  const invite = inviteToken(r.json.inviteUrl);
  await client.loginAndConsent(invite);
  return { client, invite };
}

before(async () => {
  ({ dir, adminToken } = makeProject({ overlap: 2, goldRate: 0, limits: { maxBodyBytes: 4096, loginAttemptsPerMinute: 20, maxRationaleChars: 4000, sessionDays: 1 } }, 0));
  const db = openDatabase(dbPath(dir));
  addPairs(db, XSS.map((t, i) => ({ format: 'text', prompt: `${t} prompt ${i}`, chosen: `${t} chosen ${i}`, rejected: `${t} rejected ${i}`, line: i + 1 })), 'xss', false);
  db.close();
  srv = await startServer({ dir, port: 0, rng: seededRng(3), log: () => {} });
});
after(async () => {
  await srv.close();
});

test('binds 127.0.0.1 by default and sends security headers', async () => {
  assert.match(srv.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  const r = await http(srv.url + '/app');
  assert.equal(r.status, 200);
  assert.match(String(r.headers['content-security-policy']), /script-src 'self'/);
  assert.match(String(r.headers['content-security-policy']), /default-src 'none'/);
  assert.equal(r.headers['x-content-type-options'], 'nosniff');
  assert.equal(r.headers['x-frame-options'], 'DENY');
});

test('admin routes need the admin token; invite tokens are 128-bit and stored hashed', async () => {
  assert.equal((await http(srv.url + '/api/admin/quality')).status, 401);
  assert.equal((await http(srv.url + '/api/admin/quality', { headers: { Authorization: 'Bearer nope' } })).status, 401);
  const anon = await http(srv.url + '/api/admin/annotators', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"name":"x"}' });
  assert.equal(anon.status, 401);
  assert.equal((await admin('/api/admin/quality')).status, 200);
  const r = await admin('/api/admin/annotators', { name: 'Tokyo' });
  const token = inviteToken(r.json.inviteUrl);
  assert.equal(Buffer.from(token, 'base64url').length, 16);
  const dbBytes = readFileSync(dbPath(dir)).toString('latin1') + readFileSync(dbPath(dir) + '-wal').toString('latin1');
  assert.ok(!dbBytes.includes(token), 'invite token found in clear in the database');
  // An annotator session is not an admin session.
  const c = new Client(srv.url);
  await c.loginAndConsent(token);
  assert.equal((await c.call('GET', '/api/admin/quality')).status, 401);
  // Admin cookie session: POST needs the CSRF token.
  const login = await http(srv.url + '/api/admin/login', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ token: adminToken }) });
  assert.equal(login.status, 200);
  const cookie = String(login.headers['set-cookie']).split(';')[0]!;
  assert.match(String(login.headers['set-cookie']), /HttpOnly; SameSite=Strict/);
  const noCsrf = await http(srv.url + '/api/admin/annotators', { method: 'POST', headers: { Cookie: cookie, 'Content-Type': 'application/json' }, body: '{"name":"y"}' });
  assert.equal(noCsrf.status, 403);
  const me = await http(srv.url + '/api/admin/me', { headers: { Cookie: cookie } });
  const ok = await http(srv.url + '/api/admin/annotators', { method: 'POST', headers: { Cookie: cookie, 'Content-Type': 'application/json', 'X-CSRF-Token': me.json.csrf }, body: '{"name":"y"}' });
  assert.equal(ok.status, 200);
});

test('consent first (recorded with time), then only your own queue', async () => {
  const r = await admin('/api/admin/annotators', { name: 'Consent' });
  const c = new Client(srv.url);
  assert.equal((await c.call('GET', '/api/me')).status, 401);
  assert.equal((await c.login(inviteToken(r.json.inviteUrl))).status, 200);
  assert.equal((await c.call('GET', '/api/me')).json.consented, false);
  assert.equal((await c.call('POST', '/api/next', {})).status, 403);
  assert.equal((await c.call('POST', '/api/consent', { agree: true })).status, 200);
  const row = srv.db.prepare('SELECT consented_at, consent_sha256 FROM annotators WHERE id = ?').get(r.json.id) as { consented_at: string; consent_sha256: string };
  assert.ok(Math.abs(Date.parse(row.consented_at) - Date.now()) < 60_000);
  assert.match(row.consent_sha256, /^[0-9a-f]{64}$/);

  const alice = (await newAnnotator('Alice')).client;
  const bob = (await newAnnotator('Bob')).client;
  const a = (await alice.call('POST', '/api/next', {})).json.assignment;
  assert.ok(a, 'alice got an item');
  // Bob can neither read nor vote on Alice's assignment, nor reuse her idempotency key.
  assert.equal((await bob.call('GET', `/api/assignments/${a.id}`)).status, 404);
  const steal = await bob.call('POST', '/api/vote', { assignmentId: a.id, choice: 'A', idempotencyKey: 'bob-steal-000' });
  assert.equal(steal.status, 404);
  assert.equal((await alice.call('GET', `/api/assignments/${a.id}`)).status, 200);
  const vote = await alice.call('POST', '/api/vote', { assignmentId: a.id, choice: 'B', idempotencyKey: 'alice-key-001' });
  assert.equal(vote.status, 200, vote.text);
  const b = (await bob.call('POST', '/api/next', {})).json.assignment;
  const reuse = await bob.call('POST', '/api/vote', { assignmentId: b.id, choice: 'A', idempotencyKey: 'alice-key-001' });
  assert.equal(reuse.status, 409);
  const again = await alice.call('POST', '/api/vote', { assignmentId: a.id, choice: 'B', idempotencyKey: 'alice-key-001' });
  assert.deepEqual([again.status, again.json.duplicate, again.json.voteId], [200, true, vote.json.voteId]);
  // Disabled annotators lose their session at once.
  const bobId = (srv.db.prepare("SELECT id FROM annotators WHERE name = 'Bob'").get() as { id: number }).id;
  assert.equal((await admin(`/api/admin/annotators/${bobId}/disable`, {})).status, 200);
  assert.equal((await bob.call('GET', '/api/me')).status, 401);
});

test('untrusted prompts and responses are served sanitized', async () => {
  const c = (await newAnnotator('Reader')).client;
  let html = '';
  for (let i = 0; i < XSS.length; i++) {
    const a = (await c.call('POST', '/api/next', {})).json.assignment;
    assert.ok(a, `item ${i}`);
    html += a.promptHtml + a.aHtml + a.bHtml;
    await c.call('POST', '/api/vote', { assignmentId: a.id, choice: 'tie', idempotencyKey: `reader-${i}-xxxx` });
  }
  assert.ok(html.includes('<strong>bold</strong>'), 'Markdown is rendered');
  assert.ok(html.includes('&lt;script&gt;'), 'script tags shown as text');
  assert.doesNotMatch(html, /<script/i);
  assert.doesNotMatch(html, /<(iframe|svg|img|div)\b/i);
  assert.doesNotMatch(html, /<[^>]*\son\w+\s*=/i, 'no event-handler attribute inside a tag');
  assert.doesNotMatch(html, /<[^>]*\bstyle\s*=/i);
  assert.doesNotMatch(html, /<[^>]*href\s*=\s*["']?\s*javascript:/i);
  assert.match(html, /<a rel="noopener noreferrer nofollow" target="_blank">click me<\/a>/);
});

test('CSRF: token header, JSON content type and same origin required on state changes', async () => {
  const c = (await newAnnotator('Csrf')).client;
  assert.equal((await c.call('POST', '/api/next', {}, { 'X-CSRF-Token': '' })).status, 403);
  assert.equal((await c.call('POST', '/api/next', {}, { 'X-CSRF-Token': 'x'.repeat(43) })).status, 403);
  assert.equal((await c.call('POST', '/api/next', {}, { Origin: 'http://evil.example' })).status, 403);
  const form = await http(srv.url + '/api/next', { method: 'POST', headers: { Cookie: c.cookie, 'Content-Type': 'text/plain', 'X-CSRF-Token': c.csrf }, body: '{}' });
  assert.equal(form.status, 415);
  assert.equal((await c.call('POST', '/api/next', {}, { Origin: srv.url })).status, 200);
});

test('request size limit, bad JSON, unknown routes and methods', async () => {
  const c = (await newAnnotator('Big')).client;
  const big = await c.call('POST', '/api/vote', { assignmentId: 1, choice: 'A', rationale: 'x'.repeat(5000), idempotencyKey: 'big-body-01' });
  assert.equal(big.status, 413);
  const bad = await http(srv.url + '/api/vote', { method: 'POST', headers: { Cookie: c.cookie, 'Content-Type': 'application/json', 'X-CSRF-Token': c.csrf }, body: '{"assignmentId": ' });
  assert.equal(bad.status, 400);
  assert.equal((await http(srv.url + '/api/nothing')).status, 404);
  assert.equal((await http(srv.url + '/api/me', { method: 'DELETE' })).status, 405);
});

test('static files cannot escape their folder', async () => {
  assert.equal((await http(srv.url + '/static/style.css')).status, 200);
  for (const p of [
    '/static/../annotate.yaml',
    '/static/../../package.json',
    '/static/%2e%2e/%2e%2e/%2e%2e/package.json',
    '/static/..%2f..%2fserver.ts',
    '/static/..%5c..%5cpackage.json',
    '/static/%2fetc%2fpasswd',
    '/static//etc/passwd',
    '/static/style.css%00.js',
    '/static/',
  ]) {
    const r = await http(srv.url + p);
    assert.ok(r.status === 404 || r.status === 400, `${p} → ${r.status}`);
    assert.ok(!r.text.includes('root:') && !r.text.includes('"name"'), p);
  }
});

test('login attempts are rate limited per client', async () => {
  let last = 0;
  const statuses: number[] = [];
  for (let i = 0; i < 25; i++) {
    const r = await http(srv.url + '/api/login', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ invite: `wrong-${i}` }) });
    statuses.push(r.status);
    last = r.status;
    if (r.status === 429) assert.ok(Number(r.headers['retry-after']) > 0);
  }
  assert.equal(last, 429);
  assert.ok(statuses.includes(401));
});
