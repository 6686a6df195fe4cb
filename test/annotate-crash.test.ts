// Durability: 20 concurrent clients vote over loopback while the server (a child process) is
// killed with SIGKILL; after a restart on the same database every acknowledged vote is present
// exactly once, and retrying the unacknowledged ones with their idempotency keys records none twice.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { openDatabase } from '../src/annotate/db.js';
import { createAnnotator, dbPath } from '../src/annotate/store.js';
import { Client, makeProject } from './annotate-helpers.js';

const MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'annotate-main.js');

function startChild(dir: string): Promise<{ child: ChildProcess; url: string }> {
  return new Promise((ok, fail) => {
    const child = spawn(process.execPath, [MAIN, 'annotate', 'serve', dir, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => fail(new Error(`server did not start in 15 s: ${out} ${err}`)), 15_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        ok({ child, url: m[1]! });
      }
    });
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`server exited early (${code}): ${err}`));
    });
  });
}

interface Vote {
  /** Which client (the assignment's owner) sent it. */
  w: number;
  body: { assignmentId: number; choice: string; idempotencyKey: string };
}

test('SIGKILL mid-run: every acknowledged vote present once, none twice after retries', { timeout: 60_000 }, async (t) => {
  const N = 20;
  const { dir } = makeProject({ overlap: 1, goldRate: 0, limits: { loginAttemptsPerMinute: 100, maxBodyBytes: 65536, maxRationaleChars: 4000, sessionDays: 1 } }, 2000);
  const db = openDatabase(dbPath(dir));
  const invites = Array.from({ length: N }, (_, i) => createAnnotator(db, `client ${i}`).inviteToken);
  db.close();

  let { child, url } = await startChild(dir);
  const clients = await Promise.all(
    invites.map(async (inv) => {
      const c = new Client(url);
      await c.loginAndConsent(inv);
      return c;
    }),
  );

  const acked = new Map<string, Vote>();
  const pending: Vote[] = [];
  const choices = ['A', 'B', 'tie', 'both_bad'];
  const worker = async (c: Client, w: number) => {
    for (let n = 0; ; n++) {
      let next;
      try {
        next = await c.call('POST', '/api/next', {});
      } catch {
        return; // server gone before this item was served: nothing in flight
      }
      if (next.status !== 200 || !next.json.assignment) return;
      const body = { assignmentId: next.json.assignment.id as number, choice: choices[(w + n) % 4]!, idempotencyKey: randomBytes(12).toString('base64url') };
      try {
        const r = await c.call('POST', '/api/vote', body);
        if (r.status === 200) acked.set(body.idempotencyKey, { w, body });
        else pending.push({ w, body });
      } catch {
        pending.push({ w, body }); // no answer: the vote may or may not have been committed
        return;
      }
    }
  };
  const running = clients.map((c, w) => worker(c, w));
  // Kill once a good number of votes are in, while all 20 clients are still submitting.
  await new Promise<void>((ok) => {
    const t = setInterval(() => {
      if (acked.size >= 150) {
        clearInterval(t);
        ok();
      }
    }, 5);
  });
  child.kill('SIGKILL');
  await Promise.all(running);
  const ackedAtKill = acked.size;
  assert.ok(ackedAtKill >= 150, `only ${ackedAtKill} votes acknowledged`);

  // Restart on the same database (sessions survive: they are in it).
  child.removeAllListeners('exit');
  ({ child, url } = await startChild(dir));
  try {
    const check = new Database(dbPath(dir), { readonly: true });
    const count = (key: string) => (check.prepare('SELECT COUNT(*) AS n FROM votes WHERE idempotency_key = ?').get(key) as { n: number }).n;
    for (const [key, { body }] of acked) {
      assert.equal(count(key), 1, `acknowledged vote ${key} missing after the crash`);
      const row = check.prepare('SELECT shown_choice, assignment_id FROM votes WHERE idempotency_key = ?').get(key) as { shown_choice: string; assignment_id: number };
      assert.deepEqual([row.shown_choice, row.assignment_id], [body.choice, body.assignmentId]);
    }
    const before = (check.prepare('SELECT COUNT(*) AS n FROM votes').get() as { n: number }).n;
    const committed = new Set(pending.filter((p) => count(p.body.idempotencyKey) === 1).map((p) => p.body.idempotencyKey));
    assert.equal(before, acked.size + committed.size, 'votes in the database are the acknowledged ones plus in-flight ones');
    t.diagnostic(`acknowledged ${acked.size}, in flight at the kill ${pending.length} (${committed.size} of them committed)`);

    // Each client retries with the same key what got no answer, and, as a network retry
    // would, some acknowledged votes too. Clients keep their cookies: sessions are in the database.
    const resend = async (v: Vote) => {
      const c = Object.assign(new Client(url), { cookie: clients[v.w]!.cookie, csrf: clients[v.w]!.csrf });
      const r = await c.call('POST', '/api/vote', v.body);
      assert.equal(r.status, 200, r.text);
      return r.json as { duplicate: boolean };
    };
    for (const p of pending) assert.equal((await resend(p)).duplicate, committed.has(p.body.idempotencyKey));
    for (const v of [...acked.values()].slice(0, 20)) assert.equal((await resend(v)).duplicate, true);

    const after = (check.prepare('SELECT COUNT(*) AS n FROM votes').get() as { n: number }).n;
    assert.equal(after, acked.size + pending.length, 'each vote recorded exactly once');
    const dupAssignments = check.prepare('SELECT COUNT(*) AS n FROM (SELECT assignment_id FROM votes GROUP BY assignment_id HAVING COUNT(*) > 1)').get() as { n: number };
    assert.equal(dupAssignments.n, 0);
    check.close();
  } finally {
    child.removeAllListeners('exit');
    child.kill('SIGKILL');
  }
});
