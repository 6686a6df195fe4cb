// The optional annotator questions in a real browser (Debian's chromium through playwright-core):
// consent first, then the questions with their purpose, then labeling; the dashboard shows the
// per-group figures with small groups merged into "other". Screenshots go to test-artifacts/.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { openDatabase } from '../src/annotate/db.js';
import { computeGroupReport } from '../src/annotate/groups.js';
import { seededRng } from '../src/annotate/queue.js';
import { startServer } from '../src/annotate/server.js';
import { createAnnotator, dbPath, inviteUrl } from '../src/annotate/store.js';
import { Client, makeProject, tmpDir } from './annotate-helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test-artifacts');
const skip = !existsSync(CHROMIUM) && !process.env.CI && `${CHROMIUM} not installed (run scripts/install-system-deps.sh as root)`;

test('attributes in chromium: asked after consent, saved, then labeling; dashboard groups merge small ones', { skip, timeout: 60_000 }, async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  const { dir, adminToken } = makeProject({
    overlap: 4, goldRate: 0,
    attributes: [{ id: 'expertise', question: 'Your field of expertise?', options: ['medicine', 'law', 'none'] }],
    privacy: { minGroupSize: 2, purpose: 'to see whose preferences the labels hold.' },
  }, 3);
  const db0 = openDatabase(dbPath(dir));
  const ada = createAnnotator(db0, 'Ada');
  const others = ['Bo', 'Cy', 'Di'].map((n) => createAnnotator(db0, n).inviteToken);
  db0.close();
  const srv = await startServer({ dir, port: 0, rng: seededRng(5), log: () => {} });
  const context = await chromium.launchPersistentContext(tmpDir('dpo-chromium-'), {
    executablePath: CHROMIUM, headless: true, viewport: { width: 1200, height: 900 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(e.message));
    await page.goto(inviteUrl(srv.url, ada.inviteToken));
    await page.waitForSelector('#consent-agree');
    assert.equal(await page.locator('#attributes').count(), 0, 'no questions before consent');
    assert.match((await page.textContent('#consent'))!, /Your field of expertise\?/);
    await page.click('#consent-agree');
    await page.waitForSelector('#attributes');
    assert.match((await page.textContent('#attributes'))!, /whose preferences the labels hold/);
    assert.deepEqual(await page.locator('#attr-expertise option').allTextContents(), ['— no answer —', 'medicine', 'law', 'none', 'prefer not to say']);
    await page.selectOption('#attr-expertise', 'medicine');
    await page.screenshot({ path: join(ARTIFACTS, 'annotate-attributes.png'), fullPage: true });
    await page.click('#attributes-save');
    await page.waitForSelector('.item[data-assignment]');
    assert.deepEqual(srv.db.prepare('SELECT attribute, value FROM annotator_attributes').all(), [{ attribute: 'expertise', value: 'medicine' }]);
    for (let i = 0; i < 3; i++) {
      const item = await page.waitForSelector('.item[data-assignment]');
      const id = await item.getAttribute('data-assignment');
      await page.keyboard.press('1');
      await page.keyboard.press('Enter');
      if (i < 2) await page.waitForSelector(`.item[data-assignment]:not([data-assignment="${id}"])`);
    }
    await page.waitForSelector('text=All done');

    // Bo answers "medicine" too (a group of 2), Cy "law" and Di "none" (1 each: merged into "other").
    const answers = ['medicine', 'law', 'none'];
    for (const [k, invite] of others.entries()) {
      const c = new Client(srv.url);
      await c.loginAndConsent(invite);
      assert.equal((await c.call('POST', '/api/attributes', { answers: { expertise: answers[k] } })).status, 200);
      for (;;) {
        const n = await c.call('POST', '/api/next', {});
        if (!n.json.assignment) break;
        await c.call('POST', '/api/vote', { assignmentId: n.json.assignment.id, choice: k === 0 ? 'A' : 'B', idempotencyKey: `k-${k}-${n.json.assignment.id}-xxxxxx` });
      }
    }
    await page.goto(`${srv.url}/admin#token=${adminToken}`);
    await page.waitForSelector('#groups table.groups');
    const groups = await page.locator('#groups tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-group')));
    assert.deepEqual(groups, ['medicine', 'other']);
    const shown = (await page.textContent('#groups'))!;
    assert.ok(!/\blaw\b/.test(shown.replace(/Your field of expertise\?/, '')), 'a group of one is never shown');
    const rep = computeGroupReport(srv.db, srv.project.config).attributes[0]!;
    assert.match((await page.textContent('#groups'))!, new RegExp(`Items where the groups' majorities differ: ${rep.disagreements.count}\\b`));
    assert.deepEqual(rep.groups.map((g) => [g.group, g.annotators, g.votes]), [['medicine', 2, 6], ['other', 2, 6]]);
    await page.screenshot({ path: join(ARTIFACTS, 'annotate-dashboard-groups.png'), fullPage: true });
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
    await srv.close();
  }
});
