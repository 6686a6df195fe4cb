// Whose preferences in `dpo annotate`: attributes asked only after consent and covered by its
// hash, stored apart from votes, deletable (forget), never shown for groups below the minimum
// size; per-group figures on a constructed project with known answers; the group-balance rule.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Command } from 'commander';
import { registerAnnotateCommands } from '../src/cli/annotate.js';
import { consentText, loadProject, parseConfig, type AnnotateConfig, type Label } from '../src/annotate/config.js';
import { nowIso, openDatabase, type DB } from '../src/annotate/db.js';
import { buildExport, DEFAULT_EXPORT, groupBalanceWeights } from '../src/annotate/export.js';
import { computeGroupReport, groupAssignments } from '../src/annotate/groups.js';
import { seededRng, submitVote } from '../src/annotate/queue.js';
import { startServer } from '../src/annotate/server.js';
import { createAnnotator, dbPath, sha256 } from '../src/annotate/store.js';
import { Client, http, makeProject } from './annotate-helpers.js';
import { auditPreferenceData } from '../src/data/audit.js';
import { parseDataCard } from '../src/data/card.js';
import { buildProgram } from '../src/cli/index.js';

const ATTRS: Partial<AnnotateConfig> = {
  attributes: [{ id: 'region', question: 'Where do you live?', options: ['north', 'south', 'east'] }],
  privacy: { minGroupSize: 3, purpose: 'to see whose preferences the labels hold.' },
  groups: { maxVoteShare: 0.45 },
};

function castVote(db: DB, config: AnnotateConfig, me: number, itemId: number, label: Label): void {
  const r = db.prepare('INSERT INTO assignments (item_id, annotator_id, swapped, served_at) VALUES (?, ?, 0, ?)').run(itemId, me, nowIso());
  const choice = label === 'a' ? 'A' : label === 'b' ? 'B' : label;
  submitVote(db, me, { assignmentId: Number(r.lastInsertRowid), choice, idempotencyKey: `key-${r.lastInsertRowid}-${me}-xxxx` }, config);
}

function setRegion(db: DB, id: number, value: string | null): void {
  db.prepare('UPDATE annotators SET consented_at = ?, attributes_answered_at = ? WHERE id = ?').run(nowIso(), nowIso(), id);
  if (value !== null) db.prepare('INSERT INTO annotator_attributes (annotator_id, attribute, value, created_at) VALUES (?, ?, ?, ?)').run(id, 'region', value, nowIso());
}

async function runCli(...args: string[]): Promise<string[]> {
  const out: string[] = [];
  const program = new Command().exitOverride().configureOutput({ writeErr: () => {} });
  registerAnnotateCommands(program, { print: (l) => out.push(l) });
  await program.parseAsync(['node', 'dpo', 'annotate', ...args]);
  return out;
}

test('attributes: asked only after consent, covered by the consent hash, stored once and apart from the votes', async () => {
  const { dir, adminToken } = makeProject({ overlap: 1, goldRate: 0, ...ATTRS }, 3);
  const db0 = openDatabase(dbPath(dir));
  const invite = createAnnotator(db0, 'Ada').inviteToken;
  db0.close();
  const srv = await startServer({ dir, port: 0, rng: seededRng(3), log: () => {} });
  try {
    const c = new Client(srv.url);
    assert.equal((await c.login(invite)).status, 200);
    let me = (await c.call('GET', '/api/me')).json;
    assert.deepEqual(me.attributes, [], 'no questions before consent');
    assert.match(me.consentHtml, /Where do you live\?/, 'the consent text names the optional questions');
    assert.match(me.consentHtml, /whose preferences the labels hold/, 'and their purpose');
    const early = await c.call('POST', '/api/attributes', { answers: { region: 'north' } });
    assert.equal(early.status, 403, early.text);
    assert.equal((srv.db.prepare('SELECT COUNT(*) AS n FROM annotator_attributes').get() as { n: number }).n, 0);

    assert.equal((await c.call('POST', '/api/consent', { agree: true })).status, 200);
    const rec = srv.db.prepare('SELECT consent_sha256 FROM annotators WHERE name = ?').get('Ada') as { consent_sha256: string };
    const project = loadProject(dir);
    assert.equal(rec.consent_sha256, sha256(consentText(project)));
    assert.notEqual(rec.consent_sha256, sha256(project.consent), 'the hash covers the questions, not only consent.md');

    me = (await c.call('GET', '/api/me')).json;
    assert.deepEqual(me.attributes, [{ id: 'region', question: 'Where do you live?', options: ['north', 'south', 'east', 'prefer not to say'] }]);
    const bad = await c.call('POST', '/api/attributes', { answers: { region: 'west' } });
    assert.equal(bad.status, 400);
    assert.match(bad.json.error, /"region" must be one of "north", "south", "east", "prefer not to say"/);
    assert.equal((await c.call('POST', '/api/attributes', { answers: { age: '30' } })).status, 400);
    const ok = await c.call('POST', '/api/attributes', { answers: { region: 'south' } });
    assert.equal(ok.status, 200, ok.text);
    assert.equal((await c.call('POST', '/api/attributes', { answers: { region: 'north' } })).status, 409, 'asked once');
    // Someone who consented to an earlier text (before the questions existed) is never asked.
    const earlier = createAnnotator(srv.db, 'Early');
    srv.db.prepare('UPDATE annotators SET consented_at = ?, consent_sha256 = ? WHERE id = ?').run(nowIso(), sha256(project.consent), earlier.id);
    const e = new Client(srv.url);
    await e.login(earlier.inviteToken);
    assert.deepEqual((await e.call('GET', '/api/me')).json.attributes, []);
    const refused = await e.call('POST', '/api/attributes', { answers: { region: 'north' } });
    assert.equal(refused.status, 403);
    assert.match(refused.json.error, /consent was given to a text that did not include these questions/);
    assert.deepEqual((await c.call('GET', '/api/me')).json.attributes, []);
    // Apart from the votes: the vote table has no attribute columns; answers live in their own table.
    const voteCols = (srv.db.prepare('PRAGMA table_info(votes)').all() as { name: string }[]).map((r) => r.name);
    assert.ok(!voteCols.some((n) => /region|attribute/.test(n)), voteCols.join());
    assert.deepEqual(srv.db.prepare('SELECT attribute, value FROM annotator_attributes').all(), [{ attribute: 'region', value: 'south' }]);
    // Answering is optional: labeling works regardless.
    const n = await c.call('POST', '/api/next', {});
    assert.ok(n.json.assignment);
    // The admin API reports groups, never one below the minimum size (Ada answered "south", Early nothing).
    const q = await http(`${srv.url}/api/admin/quality`, { headers: { Authorization: `Bearer ${adminToken}` } });
    assert.equal(q.status, 200);
    assert.deepEqual(q.json.groups.attributes[0].groups.map((g: { group: string; annotators: number }) => [g.group, g.annotators]), [['other', 2]]);
    assert.ok(!q.text.includes('south'), 'a group of one is not disclosed');
  } finally {
    await srv.close();
  }
});

test('small groups merge into "other": the rule, and whole groups merged until "other" is large enough', () => {
  const attrs = new Map<number, Record<string, string>>([
    [1, { r: 'north' }], [2, { r: 'north' }], [3, { r: 'north' }], [4, { r: 'south' }], [5, { r: 'south' }], [6, { r: 'east' }],
  ]);
  // min 3: south (2), east (1) and "not stated" (7) → other (4).
  const g = groupAssignments([1, 2, 3, 4, 5, 6, 7], attrs, 'r', 3);
  assert.deepEqual([...g.values()], ['north', 'north', 'north', 'other', 'other', 'other', 'other']);
  // min 2: only east (1) is small; "other" would hold 1 annotator, so the smallest group (south, 2) joins it.
  const h = groupAssignments([1, 2, 3, 4, 5, 6], attrs, 'r', 2);
  assert.deepEqual([...h.values()], ['north', 'north', 'north', 'other', 'other', 'other']);
  // Everyone in one small group: all "other".
  assert.deepEqual([...groupAssignments([1, 2], attrs, 'r', 5).values()], ['other', 'other']);
});

/**
 * 11 annotators: 5 north, 3 south, 1 east, 2 without an answer (→ east and "not stated" merge
 * into "other", 3 annotators). North and "other" vote A on items 1–4; south votes B on items 1–2
 * and A on 3–4. Item 5: all of north vote A, one south and one "other" vote B.
 */
function constructedProject() {
  const { dir } = makeProject({ overlap: 11, goldRate: 0, ...ATTRS }, 5);
  const { config } = loadProject(dir);
  const db = openDatabase(dbPath(dir));
  const regions = ['north', 'north', 'north', 'north', 'north', 'south', 'south', 'south', 'east', null, null];
  const ids = regions.map((r, i) => {
    const id = createAnnotator(db, `person ${i}`).id;
    setRegion(db, id, r);
    return id;
  });
  const north = ids.slice(0, 5), south = ids.slice(5, 8), other = ids.slice(8);
  for (let item = 1; item <= 4; item++) {
    for (const a of north) castVote(db, config, a, item, 'a');
    for (const a of south) castVote(db, config, a, item, item <= 2 ? 'b' : 'a');
    for (const a of other) castVote(db, config, a, item, 'a');
  }
  for (const a of north) castVote(db, config, a, 5, 'a');
  castVote(db, config, south[0]!, 5, 'b');
  castVote(db, config, other[0]!, 5, 'b');
  return { dir, config, db, ids, north, south, other };
}

test('per-group figures on a constructed project: vote shares, agreement within and across, disagreements, warning', () => {
  const { db, config } = constructedProject();
  const r = computeGroupReport(db, config);
  assert.equal(r.attributes.length, 1);
  const a = r.attributes[0]!;
  const byGroup = Object.fromEntries(a.groups.map((g) => [g.group, g]));
  assert.deepEqual(Object.keys(byGroup).sort(), ['north', 'other', 'south'], 'east (1 annotator) never appears');
  assert.equal(byGroup.north!.annotators, 5);
  assert.equal(byGroup.other!.annotators, 3);
  assert.equal(byGroup.north!.votes, 25);
  assert.equal(byGroup.south!.votes, 13);
  assert.equal(byGroup.other!.votes, 13);
  assert.equal(byGroup.north!.voteShare, 25 / 51);
  assert.equal(byGroup.north!.alphaWithin, null, 'north never varies');
  assert.equal(byGroup.south!.alphaWithin, 1, 'south agrees perfectly within (items 1–4 have ≥ 2 south votes)');
  const across = Object.fromEntries(a.across.map((p) => [[p.a, p.b].sort().join('|'), p]));
  // Item 5: south's and other's single B votes are their (one-vote) majorities.
  assert.deepEqual(across['north|south'], { a: 'north', b: 'south', items: 5, agreement: 2 / 5 });
  assert.deepEqual(across['north|other'], { a: 'north', b: 'other', items: 5, agreement: 4 / 5 });
  assert.equal(a.disagreements.count, 3);
  assert.deepEqual(a.disagreements.items.map((d) => d.itemId), [1, 2, 5]);
  assert.deepEqual(a.disagreements.items[0]!.majorities, { north: 'a', south: 'b', other: 'a' });
  assert.equal(a.warnings.length, 1);
  assert.match(a.warnings[0]!, /group "north" contributes 49\.0% of the votes \(more than 45%; 45\.5% of the annotators\)/);
  db.close();
});

test('export: group labels in the raw export only above the minimum size; --group-balance follows the stated rule', () => {
  const { db, config, north } = constructedProject();
  const plain = buildExport(db, config, { ...DEFAULT_EXPORT, minVotes: 1 });
  const text = JSON.stringify([plain.raw, plain.votePairs, plain.pairs]);
  assert.ok(!text.includes('east'), 'a group of 1 is never disclosed');
  assert.ok(!text.includes('not stated'), '"not stated" (2 annotators) is merged too');
  assert.deepEqual([...new Set(plain.raw.map((v) => v.groups!.region))].sort(), ['north', 'other', 'south']);
  assert.equal(plain.votePairs.length, 51, 'every A/B vote as a row');
  assert.deepEqual(Object.keys(plain.votePairs[0]!).sort(), ['annotator', 'chosen', 'item_id', 'prompt', 'region', 'rejected']);
  // Item 5 unweighted: 5 A against 2 B → A (response_a = "reg good answer 4").
  assert.equal(plain.pairs[4]!.chosen, 'reg good answer 4');

  // Balanced: shares north 5/11, south 3/11, other 3/11; item 5: A = 5/11 (north), B = 3/11 + 3/11.
  const w = groupBalanceWeights(
    [...north.map(() => ({ group: 'north' })), { group: 'south' }, { group: 'other' }],
    new Map([['north', 5 / 11], ['south', 3 / 11], ['other', 3 / 11]]),
  );
  assert.deepEqual(w.map((x) => +x.toFixed(6)), [...north.map(() => +(1 / 11).toFixed(6)), +(3 / 11).toFixed(6), +(3 / 11).toFixed(6)]);
  const bal = buildExport(db, config, { ...DEFAULT_EXPORT, minVotes: 1, groupBalance: 'region' });
  assert.deepEqual(bal.stats.groupBalance, { attribute: 'region', annotatorShare: { north: 5 / 11, south: 3 / 11, other: 3 / 11 } });
  assert.equal(bal.pairs[4]!.chosen, 'reg bad answer 4', 'the over-represented group no longer decides item 5');
  // Items 1–2: A = 5/11 + 3/11 against B = 3/11 → still A; same as unweighted.
  assert.equal(bal.pairs[0]!.chosen, 'reg good answer 0');
  assert.throws(() => buildExport(db, config, { ...DEFAULT_EXPORT, groupBalance: 'age' }), /--group-balance age: no such attribute \(annotate.yaml attributes: region\)/);
  db.close();
});

test('forget NAME removes attributes (and with --votes the votes) from the database and later exports', async () => {
  const { dir, db, ids } = constructedProject();
  db.close();
  const target = 'person 5'; // a south annotator
  const pseudo = (() => {
    const d = openDatabase(dbPath(dir));
    const p = (d.prepare('SELECT pseudonym FROM annotators WHERE id = ?').get(ids[5]) as { pseudonym: string }).pseudonym;
    d.close();
    return p;
  })();
  const out = await runCli('forget', dir, target);
  assert.match(out.join('\n'), new RegExp(`forgot ${pseudo}: 1 attribute answers deleted`));
  const raw = join(dir, 'raw.jsonl');
  await runCli('export', dir, '--out', join(dir, 'p.jsonl'), '--raw', raw, '--min-votes', '1');
  const votes = readFileSync(raw, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { annotator: string; groups: { region: string } });
  const mine = votes.filter((v) => v.annotator === pseudo);
  assert.equal(mine.length, 5, 'votes kept without --votes');
  // The forgotten annotator is "not stated" now (3 with the two who never answered: a group of its
  // own); south has 2 annotators left (< 3) and is merged into "other" with east.
  assert.ok(votes.every((v) => v.groups.region !== 'south'));
  assert.ok(mine.every((v) => v.groups.region === 'not stated'));
  assert.deepEqual([...new Set(votes.map((v) => v.groups.region))].sort(), ['north', 'not stated', 'other']);

  await runCli('forget', dir, pseudo, '--votes');
  await runCli('export', dir, '--out', join(dir, 'p.jsonl'), '--raw', raw, '--min-votes', '1');
  const after = readFileSync(raw, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { annotator: string });
  assert.equal(after.filter((v) => v.annotator === pseudo).length, 0);
  assert.equal(after.length, votes.length - 5);
  const d = openDatabase(dbPath(dir));
  const left = d.prepare('SELECT COUNT(*) AS n FROM votes v JOIN assignments s ON s.id = v.assignment_id WHERE s.annotator_id = ?').get(ids[5]) as { n: number };
  assert.equal(left.n, 0);
  assert.equal((d.prepare('SELECT COUNT(*) AS n FROM annotator_attributes WHERE annotator_id = ?').get(ids[5]) as { n: number }).n, 0);
  d.close();
  await assert.rejects(runCli('forget', dir, 'nobody'), /no annotator named "nobody"/);
});

test('end to end: export --vote-pairs → data check --slice region → data card --project (through the dpo program)', async () => {
  const { dir, db } = constructedProject();
  db.close();
  const votePairs = join(dir, 'vote-pairs.jsonl');
  const pairs = join(dir, 'pairs.jsonl');
  await runCli('export', dir, '--out', pairs, '--vote-pairs', votePairs, '--min-votes', '1');
  const audit = await auditPreferenceData({ train: votePairs, sliceColumns: ['region'], diversity: false });
  const bySlice = Object.fromEntries(audit.train.slices!.region!.map((s) => [s.value, s]));
  assert.deepEqual(Object.keys(bySlice).sort(), ['north', 'other', 'south']);
  assert.equal(bySlice.north!.rows, 25);
  assert.equal(bySlice.north!.withinAgreement, 1);
  // South's majorities: B on items 1–2, A on 3–4, B on item 5 (one vote); the others' pooled majority is A everywhere.
  assert.equal(bySlice.south!.sharedPairs, 5);
  assert.equal(bySlice.south!.agreementWithOthers, 2 / 5);

  const card = join(dir, 'README.md');
  const program = buildProgram().exitOverride();
  const stderr = process.stderr.write;
  process.stderr.write = (() => true) as typeof process.stderr.write;
  try {
    await program.parseAsync(['node', 'dpo', 'data', 'card', pairs, '--out', card, '--project', dir, '--license', 'mit']);
  } finally {
    process.stderr.write = stderr;
  }
  const { meta, body } = parseDataCard(readFileSync(card, 'utf8'));
  assert.equal(meta.license, 'mit');
  assert.deepEqual(meta.tags, ['dpo', 'preference', 'rlhf', 'human-feedback']);
  assert.match(body, /5 items, 51 votes by 11 annotators \(11 consented\), 11 annotators per item/);
  assert.match(body, /Vote share by region: north 49\.0%, other 25\.5%, south 25\.5%\./);
  assert.ok(!body.includes('east'), 'no small group in the card');
  assert.match(body, /Groups with fewer than 3 annotators are merged into "other"/);
  assert.match(body, new RegExp(`sha256 \`${sha256(consentText(loadProject(dir)))}\``));
});

test('config: attribute options are closed lists; reserved answers and duplicate ids are refused with the field named', () => {
  const yaml = (body: string) => `attributes:\n${body}`;
  assert.throws(
    () => parseConfig(yaml('  - {id: region, question: Where?, options: [north, Other]}\n'), 'annotate.yaml'),
    /annotate config annotate.yaml: attributes.0.options: options: "prefer not to say", "not stated" and "other" are reserved/,
  );
  assert.throws(() => parseConfig(yaml('  - {id: region, question: Where?, options: [north]}\n'), 'a.yaml'), /attributes.0.options/);
  assert.throws(
    () => parseConfig(yaml('  - {id: r, question: A?, options: [x, y]}\n  - {id: r, question: B?, options: [x, y]}\n'), 'a.yaml'),
    /attributes: duplicate id/,
  );
  const c = parseConfig('privacy: {minGroupSize: 10}\n', 'a.yaml');
  assert.equal(c.privacy.minGroupSize, 10);
  assert.equal(c.groups.maxVoteShare, 0.6);
  assert.deepEqual(c.attributes, []);
  // Without attributes the consent text (and so its hash) is exactly consent.md.
  assert.equal(consentText({ consent: 'Hello', config: c }), 'Hello');
});
