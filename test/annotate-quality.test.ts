// Agreement statistics (textbook values), per-annotator quality and spammer flags, export.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Command } from 'commander';
import { registerAnnotateCommands } from '../src/cli/annotate.js';
import { loadProject, type AnnotateConfig, type Label } from '../src/annotate/config.js';
import { nowIso, openDatabase, type DB } from '../src/annotate/db.js';
import { buildExport, DEFAULT_EXPORT, redactText } from '../src/annotate/export.js';
import { cohenKappa, computeQuality, fleissKappa, krippendorffAlphaNominal, median } from '../src/annotate/quality.js';
import { seededRng, submitVote } from '../src/annotate/queue.js';
import { addPairs, createAnnotator, dbPath } from '../src/annotate/store.js';
import { makePairs, makeProject, tmpDir } from './annotate-helpers.js';

test("Cohen's kappa: Wikipedia example (20/5/10/15 of 50) = 0.4", () => {
  const pairs: [string, string][] = [];
  const add = (n: number, x: string, y: string) => {
    for (let i = 0; i < n; i++) pairs.push([x, y]);
  };
  add(20, 'yes', 'yes');
  add(5, 'yes', 'no');
  add(10, 'no', 'yes');
  add(15, 'no', 'no');
  assert.ok(Math.abs(cohenKappa(pairs)! - 0.4) < 1e-12);
  assert.equal(cohenKappa([['a', 'a'], ['a', 'a']]), null, 'no variation: undefined');
});

test("Fleiss' kappa: Wikipedia example (10 subjects, 14 raters) = 0.210", () => {
  const t = [
    [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
  ];
  assert.ok(Math.abs(fleissKappa(t)! - 0.20993) < 1e-4, String(fleissKappa(t)));
  assert.throws(() => fleissKappa([[1, 1], [3, 0]]), /row 1 has 3 ratings, expected 2/);
});

test("Krippendorff's alpha (nominal): Krippendorff's reliability-data example = 0.743", () => {
  // 4 observers × 12 units, missing values allowed (Krippendorff 2011, "Computing Krippendorff's Alpha-Reliability").
  const obs = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, null, null, null],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, null, 3],
    [null, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, null],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, null],
  ];
  const units = obs[0]!.map((_, u) => obs.map((o) => o[u]).filter((v): v is number => v !== null).map(String));
  assert.ok(Math.abs(krippendorffAlphaNominal(units)! - 0.743) < 5e-4, String(krippendorffAlphaNominal(units)));
  assert.equal(krippendorffAlphaNominal([['a', 'a'], ['a', 'a']]), null);
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 2, 3]), 2.5);
});

/** Records a vote with a given canonical label for (annotator, item), through submitVote. */
function castVote(db: DB, config: AnnotateConfig, me: number, itemId: number, label: Label, timeMs: number, swapped: boolean, ratings = {}): void {
  const r = db.prepare('INSERT INTO assignments (item_id, annotator_id, swapped, served_at) VALUES (?, ?, ?, ?)').run(itemId, me, swapped ? 1 : 0, nowIso());
  const choice = label === 'a' ? (swapped ? 'B' : 'A') : label === 'b' ? (swapped ? 'A' : 'B') : label;
  submitVote(db, me, { assignmentId: Number(r.lastInsertRowid), choice, ratings, idempotencyKey: `key-${r.lastInsertRowid}-${me}-xxxx` }, config);
  db.prepare('UPDATE votes SET time_ms = ? WHERE assignment_id = ?').run(timeMs, r.lastInsertRowid);
}

test('quality report: gold accuracy, share of A, median time, agreement, spammer flagged', () => {
  const { dir } = makeProject({ overlap: 3 }, 12, 4);
  const { config } = loadProject(dir);
  const db = openDatabase(dbPath(dir));
  const good1 = createAnnotator(db, 'good one').id;
  const good2 = createAnnotator(db, 'good two').id;
  const spam = createAnnotator(db, 'spammer').id;
  const items = db.prepare('SELECT id, is_gold FROM items ORDER BY id').all() as { id: number; is_gold: number }[];
  const rng = seededRng(7);
  items.forEach((it, i) => {
    castVote(db, config, good1, it.id, 'a', 20_000 + i, i % 2 === 0);
    castVote(db, config, good2, it.id, i === 3 ? 'b' : 'a', 15_000, i % 2 === 1);
    // The spammer always clicks the left button (screen "A"), in one second.
    const sw = rng() < 0.5;
    castVote(db, config, spam, it.id, sw ? 'b' : 'a', 1_000, sw);
  });
  const q = computeQuality(db, config);
  assert.equal(q.votes, 48);
  assert.equal(q.items.regular, 12);
  assert.equal(q.items.gold, 4);
  assert.equal(q.items.complete, 12);
  const [g1, g2, sp] = q.annotators;
  assert.equal(g1!.goldAccuracy, 1);
  assert.equal(g1!.shareA, 0.5);
  assert.equal(g1!.medianSeconds, 20.0075);
  assert.deepEqual(g1!.flags, []);
  assert.equal(g1!.likelySpammer, false);
  assert.equal(g2!.labelCounts.b, 1);
  assert.deepEqual(g2!.flags, []);
  assert.equal(sp!.shareA, 1);
  assert.equal(sp!.medianSeconds, 1);
  assert.ok(sp!.flags.includes('position_bias') && sp!.flags.includes('too_fast') && sp!.flags.includes('straight_lining'), sp!.flags.join());
  assert.equal(sp!.likelySpammer, true);
  // Agreement figures equal the statistics computed on the same units by hand.
  const labels = new Map<number, string[]>();
  for (const r of db.prepare('SELECT s.item_id AS item, v.label FROM votes v JOIN assignments s ON s.id = v.assignment_id ORDER BY v.id').all() as { item: number; label: string }[]) {
    labels.set(r.item, [...(labels.get(r.item) ?? []), r.label]);
  }
  assert.equal(q.agreement.krippendorffAlpha, krippendorffAlphaNominal([...labels.values()]));
  assert.equal(q.agreement.fleissItems, 16);
  assert.equal(q.agreement.fleissRaters, 3);
  assert.equal(q.agreement.pairwise.length, 3);
  const g1g2 = q.agreement.pairwise.find((p) => p.a === g1!.pseudonym && p.b === g2!.pseudonym)!;
  assert.equal(g1g2.shared, 16);
  assert.equal(g1g2.kappa, 0, 'good1 never varies: agreement is exactly chance');
  db.close();
});

test('export: majority vote with minimum agreement, ties and both-bad dropped, gold-failing excluded, pseudonyms only', () => {
  const { dir } = makeProject({ overlap: 3 }, 0, 0);
  const { config } = loadProject(dir);
  const db = openDatabase(dbPath(dir));
  addPairs(db, makePairs(7, 'e'), 'e', false);
  addPairs(
    db,
    [{ format: 'chat', prompt: [{ role: 'user', content: 'Mail me at jo@example.com' }], chosen: 'Call +1 (555) 123-4567', rejected: 'no', line: 1 }],
    'chat',
    false,
  );
  addPairs(db, makePairs(3, 'gold'), 'gold', true);
  const [x, y, z, bad] = ['Xavier', 'Yolanda', 'Zoe', 'Bad'].map((n) => createAnnotator(db, n).id) as [number, number, number, number];
  const id = (i: number) => i + 1; // item ids in insertion order
  const plan: [number, Label[]][] = [
    [1, ['a', 'a', 'b']], // chosen = response_a
    [2, ['b', 'b', 'a']], // chosen = response_b
    [3, ['tie', 'tie', 'a']], // dropped: tie
    [4, ['both_bad', 'both_bad', 'a']], // dropped: both bad
    [5, ['a', 'b', 'tie']], // dropped: no majority
    [6, ['a']], // dropped: too few votes (min 2)
    [8, ['a', 'a']], // chat item, exported with redaction
  ];
  for (const [item, labels] of plan) labels.forEach((l, k) => castVote(db, config, [x, y, z][k]!, id(item - 1), l, 5000, k % 2 === 1));
  // Item 7: only the gold-failing annotator, who outvotes nobody elsewhere.
  for (const g of [9, 10, 11]) castVote(db, config, bad, g, 'b', 5000, false); // gold answer is 'a': 0/3
  castVote(db, config, bad, 7, 'a', 5000, false);
  castVote(db, config, bad, 5, 'a', 5000, false); // makes item 5 a 2-of-4 'a' plurality unless excluded

  const base = { ...DEFAULT_EXPORT, minVotes: 2 };
  const r = buildExport(db, config, base);
  assert.deepEqual(
    r.pairs.map((p) => [p.chosen, p.rejected]),
    [
      ['e good answer 0', 'e bad answer 0'],
      ['e bad answer 1', 'e good answer 1'],
      ['e good answer 4', 'e bad answer 4'],
      [[{ role: 'assistant', content: 'Call +1 (555) 123-4567' }], [{ role: 'assistant', content: 'no' }]],
    ],
  );
  assert.equal(r.stats.droppedTie, 1);
  assert.equal(r.stats.droppedBothBad, 1);
  assert.equal(r.stats.droppedTooFewVotes, 2); // items 6 and 7
  assert.equal(r.raw.length, 3 + 3 + 3 + 3 + 3 + 1 + 2 + 5);

  const ex = buildExport(db, config, { ...base, excludeGoldFailing: true, redact: true });
  const badPseudo = (db.prepare('SELECT pseudonym FROM annotators WHERE id = ?').get(bad) as { pseudonym: string }).pseudonym;
  assert.deepEqual(ex.stats.excludedAnnotators, [badPseudo]);
  assert.equal(ex.stats.droppedLowAgreement, 1, 'item 5 has no majority without the excluded annotator');
  assert.equal(ex.pairs.length, 3);
  assert.deepEqual(ex.pairs[2], {
    prompt: [{ role: 'user', content: 'Mail me at [EMAIL]' }],
    chosen: [{ role: 'assistant', content: 'Call [PHONE]' }],
    rejected: [{ role: 'assistant', content: 'no' }],
  });
  assert.ok(ex.raw.filter((v) => v.excluded).every((v) => v.annotator === badPseudo));
  const rawText = JSON.stringify(ex.raw);
  for (const name of ['Xavier', 'Yolanda', 'Zoe', 'Bad']) assert.ok(!rawText.includes(name), `${name} leaked into the raw export`);
  assert.ok(!rawText.includes('jo@example.com'));

  const strict = buildExport(db, config, { ...base, minAgreement: 0.7 });
  assert.deepEqual(strict.pairs.map((p) => p.chosen).slice(0, 1), [[{ role: 'assistant', content: 'Call +1 (555) 123-4567' }]], '2-of-3 items fall below 0.7');
  const withGold = buildExport(db, config, { ...base, minVotes: 1, includeGold: true });
  assert.ok(withGold.pairs.some((p) => p.chosen === 'gold bad answer 0'));
  db.close();
});

test('redaction (the data layer\'s detector): e-mails, phones and IPs replaced, dates, decimals and plain numbers kept', () => {
  const cases: [string, string][] = [
    ['write to a.b+c@mail.example.co.uk today', 'write to [EMAIL] today'],
    ['call +1 (555) 123-4567.', 'call [PHONE].'],
    ['or 555-123-4567 or 555.123.4567', 'or [PHONE] or [PHONE]'],
    ['London +44 20 7946 0958', 'London [PHONE]'],
    ['Berlin 030 1234567', 'Berlin [PHONE]'],
    ['on 2024-01-15 at 10.0.0.12', 'on 2024-01-15 at [IP]'],
    ['pi is 3.14159265, n = 1000000 and 12345678', 'pi is 3.14159265, n = 1000000 and 12345678'],
    ['range 1-2-3', 'range 1-2-3'],
  ];
  for (const [input, want] of cases) assert.equal(redactText(input), want, input);
});

test('CLI: init, add-pairs, create-annotator, export through registerAnnotateCommands', async () => {
  const dir = join(tmpDir(), 'proj');
  const out: string[] = [];
  const run = async (...args: string[]) => {
    const program = new Command().exitOverride().configureOutput({ writeErr: () => {} });
    registerAnnotateCommands(program, { print: (l) => out.push(l) });
    await program.parseAsync(['node', 'dpo', 'annotate', ...args]);
  };
  await run('init', dir, '--overlap', '1', '--criteria', 'helpful,harmless', '--rationale', 'off');
  assert.match(out.join('\n'), /created annotation project/);
  const cfg = loadProject(dir).config;
  assert.deepEqual([cfg.overlap, cfg.criteria.map((c) => c.id), cfg.rationale], [1, ['helpful', 'harmless'], 'off']);
  const pairs = join(dir, 'in.jsonl');
  writeFileSync(pairs, JSON.stringify({ prompt: 'p', chosen: 'c', rejected: 'r' }) + '\n');
  await run('add-pairs', dir, pairs);
  assert.match(out.at(-1)!, /added 1 pairs/);
  await run('create-annotator', dir, 'Ann', '--base-url', 'http://10.0.0.5:9000');
  assert.match(out.at(-1)!, /http:\/\/10\.0\.0\.5:9000\/login#invite=[A-Za-z0-9_-]{22}$/);
  await assert.rejects(run('add-prompts', dir, pairs, '--model', 'x'), /no model loader was passed to registerAnnotateCommands/);
  await assert.rejects(run('init', dir, '--overlap', '0'), /--overlap must be an integer in \[1, 50\]/);
  const db = openDatabase(dbPath(dir));
  castVote(db, cfg, 1, 1, 'b', 4000, false, { helpful: { A: 2, B: 4 }, harmless: { A: 5, B: 5 } });
  db.close();
  const prefs = join(dir, 'prefs.jsonl');
  const raw = join(dir, 'raw.jsonl');
  await run('export', dir, '--out', prefs, '--raw', raw);
  assert.deepEqual(readFileSync(prefs, 'utf8').trim().split('\n').map((l) => JSON.parse(l)), [{ prompt: 'p', chosen: 'r', rejected: 'c' }]);
  assert.equal(readFileSync(raw, 'utf8').trim().split('\n').length, 1);
  assert.match(out.at(-1)!, /exported 1 pairs/);
});
