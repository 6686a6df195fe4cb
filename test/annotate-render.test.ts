// Item texts are rendered to sanitized HTML once and kept in the project database
// (src/annotate/rendered.ts): the server renders what has no HTML when it starts and anything added
// later at its first request; what it serves is exactly the renderer's output (hostile HTML stays
// escaped); HTML kept under another renderer (an upgraded sanitizer) is dropped and rendered again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openDatabase, setMeta } from '../src/annotate/db.js';
import { renderMarkdown, renderPrompt, rendererKey } from '../src/annotate/render.js';
import { startServer } from '../src/annotate/server.js';
import { addPairs, createAnnotator, dbPath } from '../src/annotate/store.js';
import { seededRng } from '../src/annotate/queue.js';
import { Client, makePairs, makeProject } from './annotate-helpers.js';

const rows = (dir: string): number => {
  const db = openDatabase(dbPath(dir));
  try {
    return (db.prepare('SELECT COUNT(*) AS n FROM rendered_html').get() as { n: number }).n;
  } finally {
    db.close();
  }
};

test('the server renders item texts once, at start or first request, and serves exactly the renderer\'s HTML', async () => {
  const { dir } = makeProject({ overlap: 2, goldRate: 0 }, 5);
  {
    const db = openDatabase(dbPath(dir));
    addPairs(db, [{
      format: 'text', line: 1,
      prompt: '**Bold** <script>alert(1)</script>',
      chosen: '[x](javascript:alert(1)) <img src=x onerror=alert(1)>',
      rejected: '- a list\n- of items',
    }], 'hostile', false);
    db.close();
  }
  assert.equal(rows(dir), 0, 'nothing is rendered before the server starts');
  const logs: string[] = [];
  let srv = await startServer({ dir, port: 0, rng: seededRng(3), log: (m) => logs.push(m) });
  let kept = 0;
  try {
    kept = rows(dir);
    assert.equal(kept, 18, '6 items × (prompt, response a, response b), all distinct');
    assert.deepEqual(logs, [], 'a quick render is not worth a line');
    const c = new Client(srv.url);
    await c.loginAndConsent(createAnnotator(srv.db, 'Reader').inviteToken);
    const db = srv.db;
    for (let i = 0; i < 6; i++) {
      const nx = await c.call('POST', '/api/next', {});
      const a = nx.json.assignment;
      assert.ok(a, `no assignment ${i}: ${nx.text}`);
      const it = db.prepare('SELECT i.prompt, i.response_a, i.response_b, s.swapped FROM assignments s JOIN items i ON i.id = s.item_id WHERE s.id = ?').get(a.id) as { prompt: string; response_a: string; response_b: string; swapped: number };
      assert.equal(a.promptHtml, renderPrompt(JSON.parse(it.prompt)));
      assert.equal(a.aHtml, renderMarkdown(it.swapped ? it.response_b : it.response_a));
      assert.equal(a.bHtml, renderMarkdown(it.swapped ? it.response_a : it.response_b));
      const html = a.promptHtml + a.aHtml + a.bHtml;
      assert.ok(!/<script|<img|href="javascript:|<[^>]*\son\w+=/i.test(html), `hostile HTML got through: ${html}`);
      assert.equal((await c.call('POST', '/api/vote', { assignmentId: a.id, choice: 'tie', idempotencyKey: `render-${i}-0000` })).status, 200);
    }
    assert.equal(rows(dir), kept, 'serving rendered something again');
    // Added while the server runs: rendered at its first request, and kept.
    addPairs(db, makePairs(1, 'late'), 'late', false);
    const lateResp = await c.call('POST', '/api/next', {});
    const late = lateResp.json.assignment;
    assert.ok(late, `no assignment for the item added late: ${lateResp.text}`);
    assert.match(late.promptHtml, /late prompt 0/);
    assert.equal(rows(dir), kept + 3);
  } finally {
    await srv.close();
  }
  // HTML kept under another renderer (e.g. before a sanitize-html upgrade) is not served: dropped
  // at start and rendered again.
  {
    const db = openDatabase(dbPath(dir));
    db.prepare("UPDATE rendered_html SET html = '<p>STALE</p>'").run();
    setMeta(db, 'renderer', 'markdown format 0; marked 1.0.0; sanitize-html 1.0.0');
    db.close();
  }
  srv = await startServer({ dir, port: 0, rng: seededRng(3), log: () => {} });
  try {
    const c = new Client(srv.url);
    await c.loginAndConsent(createAnnotator(srv.db, 'Second').inviteToken);
    const a = (await c.call('POST', '/api/next', {})).json.assignment;
    assert.doesNotMatch(a.promptHtml + a.aHtml + a.bHtml, /STALE/);
    assert.equal(rows(dir), kept + 3);
  } finally {
    await srv.close();
  }
  assert.match(rendererKey(), /^markdown format \d+; marked \d+\.\d+\.\d+; sanitize-html \d+\.\d+\.\d+$/);
});
