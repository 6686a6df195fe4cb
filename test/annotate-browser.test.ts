// The annotation UI in a real browser (Debian's chromium through playwright-core): the admin
// creates an annotator, who logs in by invite, consents and labels by keyboard; the dashboard
// shows the agreement figures; the export holds exactly the votes. Screenshots go to test-artifacts/.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { chromium } from 'playwright-core';
import { registerAnnotateCommands } from '../src/cli/annotate.js';
import { openDatabase } from '../src/annotate/db.js';
import { computeQuality } from '../src/annotate/quality.js';
import { seededRng } from '../src/annotate/queue.js';
import { startServer } from '../src/annotate/server.js';
import { addPairs, createAnnotator, dbPath } from '../src/annotate/store.js';
import { Client, makeProject, tmpDir } from './annotate-helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test-artifacts');
const skip = !existsSync(CHROMIUM) && !process.env.CI && `${CHROMIUM} not installed (run scripts/install-system-deps.sh as root)`;

const ITEMS = [
  {
    prompt: 'Write a Python function that reverses a string, and explain it briefly.',
    chosen: 'Use slicing with a step of -1:\n\n```python\ndef reverse(s: str) -> str:\n    return s[::-1]\n```\n\n`s[::-1]` walks the string **backwards**, so `reverse("abc")` returns `"cba"`.',
    rejected: 'You can loop over it:\n\n```python\ndef reverse(s):\n    out = ""\n    for ch in s:\n        out = out + ch\n    return out\n```\n\nThis returns the reversed string.',
  },
  {
    prompt: 'What is the capital of Australia? <script>window.__xss = 1</script>',
    chosen: 'The capital of Australia is **Canberra**, not Sydney.',
    rejected: 'Sydney. <img src=x onerror="window.__xss = 2"> [more](javascript:window.__xss=3)',
  },
  {
    prompt: 'Give me three tips for better sleep.',
    chosen: '1. Keep a regular schedule.\n2. Avoid screens an hour before bed.\n3. Keep the bedroom cool and dark.',
    rejected: 'Just drink more coffee in the evening so you are tired later.',
  },
  {
    prompt: 'Summarize the plot of *Hamlet* in one sentence.',
    chosen: 'Prince Hamlet seeks revenge on his uncle Claudius, who murdered his father to seize the throne, and the quest ends in tragedy for nearly everyone.',
    rejected: 'Hamlet is a play by Shakespeare.',
  },
];

test('label by keyboard in chromium, dashboard shows agreement, export holds exactly the votes', { skip, timeout: 60_000 }, async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  const { dir, adminToken } = makeProject({ overlap: 2, goldRate: 0, title: 'Which response is better?' }, 0);
  const db0 = openDatabase(dbPath(dir));
  addPairs(db0, ITEMS.map((p, i) => ({ format: 'text' as const, ...p, line: i + 1 })), 'demo', false);
  const bobInvite = createAnnotator(db0, 'Bob').inviteToken;
  db0.close();
  const srv = await startServer({ dir, port: 0, rng: seededRng(11), log: () => {} });
  const profile = tmpDir('dpo-chromium-'); // fresh --user-data-dir
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 900 },
  });
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    const problems: string[] = [];
    page.on('dialog', (d) => {
      problems.push(`dialog: ${d.message()}`);
      void d.dismiss();
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));

    // Admin: sign in through the link printed by `serve`, create an annotator, read the invite.
    await page.goto(`${srv.url}/admin#token=${adminToken}`);
    await page.waitForSelector('#new-name');
    assert.equal(new URL(page.url()).hash, '', 'admin token removed from the address bar');
    await page.fill('#new-name', 'Alice');
    await page.click('form.row button[type=submit]');
    const invite = await (await page.waitForSelector('#invite-url')).inputValue();
    assert.match(invite, /\/login#invite=[A-Za-z0-9_-]{22}$/);

    // Annotator: invite link → consent → label every item with the keyboard.
    await page.goto(invite);
    await page.waitForSelector('#consent-agree');
    await page.click('#consent-agree');
    const pressed: string[] = [];
    const keys = ['1', '2', '1', '3'];
    const names: Record<string, string> = { '1': 'A', '2': 'B', '3': 'tie', '4': 'both_bad' };
    for (let i = 0; i < ITEMS.length; i++) {
      const item = await page.waitForSelector(`.item[data-assignment]`);
      const id = await item.getAttribute('data-assignment');
      assert.equal(await page.textContent('#progress-text'), `${i} done · ${ITEMS.length - i} left`);
      if (i === 0) {
        await page.waitForSelector('#response-a pre code');
        await page.keyboard.press('2');
        await page.keyboard.press(keys[0]!); // changing one's mind before submitting
        await page.waitForTimeout(200); // let the selection transition finish for the screenshot
        await page.screenshot({ path: join(ARTIFACTS, 'annotate-labeling.png'), fullPage: true });
      } else await page.keyboard.press(keys[i]!);
      assert.equal(await page.getAttribute(`.choice[data-choice="${names[keys[i]!]}"]`, 'aria-pressed'), 'true');
      pressed.push(names[keys[i]!]!);
      await page.keyboard.press('Enter');
      if (i < ITEMS.length - 1) await page.waitForSelector(`.item[data-assignment]:not([data-assignment="${id}"])`);
    }
    await page.waitForSelector('text=All done');
    assert.equal(await page.textContent('#progress-text'), `${ITEMS.length} done · 0 left`);
    assert.equal(await page.evaluate('window.__xss'), undefined, 'injected script ran');
    assert.deepEqual(problems, []);

    // Phone-sized screenshot of an item (Bob's view) to check the stacked layout.
    const bob = new Client(srv.url);
    await bob.loginAndConsent(bobInvite);
    const mobile = await context.newPage();
    await mobile.setViewportSize({ width: 390, height: 844 });
    const bobSession = bob.cookie.split('=');
    await context.addCookies([{ name: bobSession[0]!, value: bobSession[1]!, url: srv.url }]);
    await mobile.goto(`${srv.url}/app`);
    await mobile.waitForSelector('.item[data-assignment]');
    await mobile.keyboard.press('1');
    await mobile.waitForTimeout(200);
    await mobile.screenshot({ path: join(ARTIFACTS, 'annotate-labeling-phone.png'), fullPage: true });
    await mobile.close();
    // Bob labels the same items (overlap 2) through the API: A, A, B, tie on screen.
    const bobChoices = ['A', 'A', 'B', 'tie'];
    for (let i = 0; ; i++) {
      const n = await bob.call('POST', '/api/next', {});
      if (!n.json.assignment) break;
      const v = await bob.call('POST', '/api/vote', { assignmentId: n.json.assignment.id, choice: bobChoices[i]!, idempotencyKey: `bob-vote-${i}` });
      assert.equal(v.status, 200, v.text);
    }

    // Dashboard: agreement figures as computed from the database.
    await page.goto(`${srv.url}/admin`);
    await page.waitForSelector('#stat-alpha');
    const q = computeQuality(srv.db, srv.project.config);
    assert.equal(q.votes, 8);
    const shown = (x: number | null) => (x === null ? '—' : x.toFixed(2));
    assert.equal(await page.textContent('#stat-alpha .stat-value'), shown(q.agreement.krippendorffAlpha));
    assert.equal(await page.textContent('#stat-fleiss .stat-value'), shown(q.agreement.fleissKappa));
    assert.equal(await page.textContent('#stat-cohen .stat-value'), shown(q.agreement.meanCohenKappa));
    assert.equal(await page.locator('#annotators tbody tr').count(), 2);
    await page.screenshot({ path: join(ARTIFACTS, 'annotate-dashboard.png'), fullPage: true });

    // Export: the raw file holds exactly these 8 votes; the pairs follow the majority.
    const out = join(dir, 'prefs.jsonl');
    const raw = join(dir, 'votes.jsonl');
    const program = new Command().exitOverride();
    registerAnnotateCommands(program, { print: () => {} });
    await program.parseAsync(['node', 'dpo', 'annotate', 'export', dir, '--out', out, '--raw', raw]);
    const votes = readFileSync(raw, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const pseud = (name: string) => (srv.db.prepare('SELECT pseudonym FROM annotators WHERE name = ?').get(name) as { pseudonym: string }).pseudonym;
    assert.deepEqual(votes.filter((v) => v.annotator === pseud('Alice')).map((v) => v.shown_choice), pressed);
    assert.deepEqual(votes.filter((v) => v.annotator === pseud('Bob')).map((v) => v.shown_choice), bobChoices);
    assert.equal(votes.length, 8);
    const prefs = readFileSync(out, 'utf8').trim().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l));
    const byItem = new Map<number, string[]>();
    for (const v of votes) byItem.set(v.item_id, [...(byItem.get(v.item_id) ?? []), v.label]);
    const agreed = [...byItem.entries()].filter(([, l]) => l[0] === l[1] && (l[0] === 'a' || l[0] === 'b'));
    assert.equal(prefs.length, agreed.length);
    for (const [itemId, l] of agreed) {
      const it = ITEMS[itemId - 1]!;
      assert.ok(prefs.some((p) => p.prompt === it.prompt && p.chosen === (l[0] === 'a' ? it.chosen : it.rejected)));
    }
  } finally {
    await context.close();
    await srv.close();
  }
});
