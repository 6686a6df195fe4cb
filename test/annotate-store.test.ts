// Annotation store: project creation, migrations, importers, add-prompts, queue and votes.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { test } from 'node:test';
import { loadProject, parseConfig } from '../src/annotate/config.js';
import { MIGRATIONS, migrate, openDatabase } from '../src/annotate/db.js';
import { addPrompts, readPromptsFile, type CandidateGenerator, type SamplingOptions } from '../src/annotate/generate.js';
import { readPairsForAnnotation } from '../src/annotate/import.js';
import { getAssignment, HttpError, nextAssignment, progress, seededRng, submitVote } from '../src/annotate/queue.js';
import { addPairs, createAnnotator, dbPath, hashToken, initProject } from '../src/annotate/store.js';
import { makePairs, makeProject, tmpDir } from './annotate-helpers.js';

test('init creates config, guidelines, consent, a WAL database with foreign keys and an admin token', () => {
  const dir = tmpDir();
  const r = initProject(dir, { overlap: 2, criteria: [{ id: 'helpful', label: 'Helpful', description: '' }] });
  for (const f of ['annotate.yaml', 'guidelines.md', 'consent.md', 'annotate.sqlite', 'admin-token']) assert.ok(existsSync(join(dir, f)), f);
  assert.equal(statSync(join(dir, 'admin-token')).mode & 0o777, 0o600);
  assert.equal(readFileSync(join(dir, 'admin-token'), 'utf8').trim(), r.adminToken);
  assert.equal(Buffer.from(r.adminToken, 'base64url').length, 16, 'admin token is 128-bit');
  const p = loadProject(dir);
  assert.equal(p.config.overlap, 2);
  assert.equal(p.config.criteria[0]!.id, 'helpful');
  const db = openDatabase(dbPath(dir));
  assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
  assert.equal(db.pragma('foreign_keys', { simple: true }), 1);
  assert.equal(db.pragma('user_version', { simple: true }), MIGRATIONS.length);
  // The token is stored hashed only.
  const meta = db.prepare("SELECT value FROM meta WHERE key = 'admin_token_hash'").get() as { value: string };
  assert.equal(meta.value, hashToken(r.adminToken));
  migrate(db); // idempotent
  assert.throws(() => db.prepare('INSERT INTO assignments (item_id, annotator_id, swapped, served_at) VALUES (999, 999, 0, ?)').run('x'), /FOREIGN KEY/);
  db.close();
  assert.throws(() => initProject(dir), /already holds a project/);
});

test('config errors name the field', () => {
  assert.throws(() => parseConfig('overlap: 0\n', 'x.yaml'), /x\.yaml: overlap/);
  assert.throws(() => parseConfig('labels: [a, maybe]\n', 'x.yaml'), /labels\.1/);
  assert.throws(() => parseConfig('rationale: sometimes\n', 'x.yaml'), /rationale/);
  assert.throws(() => parseConfig('overlap: [\n', 'x.yaml'), /invalid YAML/);
  assert.equal(parseConfig('', 'x.yaml').overlap, 3);
});

import { ORCA } from './helpers/fixtures.js';

test('readPairsForAnnotation reads every preference format through the data layer (standard, conversational, OpenAI, implicit, gzip, JSON)', async () => {
  const dir = tmpDir();
  const write = (name: string, rows: unknown[]) => {
    const f = join(dir, name);
    writeFileSync(f, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    return f;
  };
  const read = async (f: string, opts = {}) => (await readPairsForAnnotation(f, opts)).pairs.map((p) => [p.format, p.prompt, p.chosen, p.rejected, p.line]);
  const user = (content: string) => [{ role: 'user', content }];
  const asst = (content: string) => [{ role: 'assistant', content }];

  // Standard (blank lines skipped, line numbers kept).
  const std = join(dir, 'std.jsonl');
  writeFileSync(std, [JSON.stringify({ prompt: 'P1', chosen: 'C1', rejected: 'R1' }), '', JSON.stringify({ prompt: 'P2', chosen: 'C2', rejected: 'R2' })].join('\n'));
  assert.deepEqual(await read(std), [
    ['text', 'P1', 'C1', 'R1', 1],
    ['text', 'P2', 'C2', 'R2', 3],
  ]);
  // Conversational (TRL): prompt turns kept, responses become the assistant text.
  const conv = write('conv.jsonl', [{ prompt: [{ role: 'system', content: 'S' }, ...user('P2')], chosen: asst('C2'), rejected: asst('R2') }]);
  assert.deepEqual(await read(conv), [['chat', [{ role: 'system', content: 'S' }, ...user('P2')], 'C2', 'R2', 1]]);
  // OpenAI preference fine-tuning.
  const oai = write('oai.jsonl', [{ input: { messages: user('P3') }, preferred_output: asst('C3'), non_preferred_output: asst('R3') }]);
  assert.deepEqual(await read(oai), [['chat', user('P3'), 'C3', 'R3', 1]]);
  // Implicit prompt, text (Anthropic HH-RLHF) and messages.
  const hh = write('hh.jsonl', [
    { chosen: '\n\nHuman: Hi\n\nAssistant: Hello!', rejected: '\n\nHuman: Hi\n\nAssistant: Go away.' },
    { chosen: '\n\nHuman: 2+2?\n\nAssistant: 4\n\nHuman: And 3+3?\n\nAssistant: 6', rejected: '\n\nHuman: 2+2?\n\nAssistant: 4\n\nHuman: And 3+3?\n\nAssistant: 7' },
  ]);
  assert.deepEqual(await read(hh), [
    ['text', '\n\nHuman: Hi\n\nAssistant:', ' Hello!', ' Go away.', 1],
    ['text', '\n\nHuman: 2+2?\n\nAssistant: 4\n\nHuman: And 3+3?\n\nAssistant:', ' 6', ' 7', 2],
  ]);
  const implicitChat = write('implicit-chat.jsonl', [{ chosen: [...user('Q'), ...asst('yes')], rejected: [...user('Q'), ...asst('no')] }]);
  assert.deepEqual(await read(implicitChat), [['chat', user('Q'), 'yes', 'no', 1]]);
  // Gzipped JSONL, and a JSON array (line = row + 1).
  const gz = join(dir, 'pairs.jsonl.gz');
  writeFileSync(gz, gzipSync(Buffer.from([{ prompt: 'G1', chosen: 'a', rejected: 'b' }, { prompt: 'G2', chosen: 'c', rejected: 'd' }].map((r) => JSON.stringify(r)).join('\n'))));
  assert.deepEqual(await read(gz), [
    ['text', 'G1', 'a', 'b', 1],
    ['text', 'G2', 'c', 'd', 2],
  ]);
  const arr = join(dir, 'pairs.json');
  writeFileSync(arr, JSON.stringify([{ prompt: 'J1', chosen: 'a', rejected: 'b' }, { prompt: 'J2', chosen: 'c', rejected: 'd' }]));
  assert.deepEqual((await read(arr)).map((r) => r[4]), [1, 2]);
  // Column mapping and a forced format.
  const cols = write('cols.jsonl', [{ q: 'Q1', good: 'G', bad: 'B' }]);
  assert.deepEqual(await read(cols, { columns: { prompt: 'q', chosen: 'good', rejected: 'bad' }, format: 'standard' }), [['text', 'Q1', 'G', 'B', 1]]);
});

test('readPairsForAnnotation reports bad rows with file:line and the reason; --on-bad-row skip drops and counts them', async () => {
  const dir = tmpDir();
  const f = join(dir, 'pairs.jsonl');
  const good = JSON.stringify({ prompt: 'x', chosen: 'y', rejected: 'z' });
  writeFileSync(f, `${good}\n{"prompt": "x", "chosen": "y"}\n`);
  await assert.rejects(readPairsForAnnotation(f), /pairs\.jsonl:2: missing_field: rejected: missing/);
  writeFileSync(f, `${good}\n{oops\n${good.replace('"z"', '"y"')}\n`);
  await assert.rejects(readPairsForAnnotation(f), (e: Error) => {
    assert.match(e.message, /2 bad rows/);
    assert.match(e.message, /pairs\.jsonl:2: invalid_json/);
    assert.match(e.message, /pairs\.jsonl:3: identical_responses: chosen and rejected are identical/);
    return true;
  });
  const skipped = await readPairsForAnnotation(f, { onBadRow: 'skip' });
  assert.equal(skipped.pairs.length, 1);
  assert.equal(skipped.summary.bad, 2);
  assert.deepEqual(skipped.summary.badByReason, { invalid_json: 1, identical_responses: 1 });
  writeFileSync(f, '{"input": {"messages": []}, "preferred_output": [{"role": "assistant", "content": "a"}], "non_preferred_output": [{"role": "assistant", "content": "b"}]}\n');
  await assert.rejects(readPairsForAnnotation(f), /pairs\.jsonl:1: missing_field: prompt: empty message list/);
  writeFileSync(f, '{"question": "x", "answer": "y"}\n');
  await assert.rejects(readPairsForAnnotation(f), /cannot detect the data format .*pairs\.jsonl:1: keys question, answer/);
});

test('the orca_dpo_pairs validation sample (OpenAI preference format) imports', async () => {
  const { pairs, summary } = await readPairsForAnnotation(ORCA);
  assert.equal(summary.format, 'openai');
  assert.equal(summary.bad, 0);
  assert.equal(pairs.length, summary.rowsRead);
  assert.equal(pairs.length, 60);
  const p = pairs[0]!;
  assert.equal(p.format, 'chat');
  assert.deepEqual((p.prompt as { role: string }[]).map((t) => t.role), ['system', 'user']);
  assert.match(p.chosen, /^Step 1: Identify the names/);
  assert.equal(p.line, 1);
  const { dir } = makeProject({}, 0);
  const db = openDatabase(dbPath(dir));
  assert.deepEqual(addPairs(db, pairs, ORCA, false), { added: pairs.length, skipped: 0 });
  db.close();
});

test('addPairs dedupes and marks gold items', () => {
  const { dir } = makeProject({}, 0);
  const db = openDatabase(dbPath(dir));
  assert.deepEqual(addPairs(db, makePairs(3), 'f', false), { added: 3, skipped: 0 });
  assert.deepEqual(addPairs(db, makePairs(3), 'f', false), { added: 0, skipped: 3 });
  assert.deepEqual(addPairs(db, makePairs(2, 'g'), 'g', true), { added: 2, skipped: 0 });
  const rows = db.prepare('SELECT is_gold, gold_label, response_a FROM items ORDER BY id').all() as { is_gold: number; gold_label: string | null; response_a: string }[];
  assert.deepEqual(rows.map((r) => r.is_gold), [0, 0, 0, 1, 1]);
  assert.equal(rows[3]!.gold_label, 'a');
  assert.equal(rows[3]!.response_a, 'g good answer 0');
  db.close();
});

test('add-prompts: two candidates per prompt from an injected generator, resumable', async () => {
  const { dir } = makeProject({}, 0);
  const f = join(dir, 'prompts.jsonl');
  writeFileSync(f, '{"prompt": "Say hi"}\n"Say bye"\n{"prompt": "Same"}\n');
  const prompts = readPromptsFile(f);
  assert.deepEqual(prompts.map((p) => p.prompt), ['Say hi', 'Say bye', 'Same']);
  const calls: string[] = [];
  // Deterministic fake: candidate i depends on prompt, seed and i; "Same" gives identical ones.
  const gen: CandidateGenerator = async (prompt, n, opts) => {
    calls.push(prompt);
    return Array.from({ length: n }, (_, i) => (prompt === 'Same' ? 'same' : `${prompt} #${i} t=${opts.temperature} s=${opts.seed}`));
  };
  const sampling: SamplingOptions = { temperature: 0.7, topP: 0.9, topK: 0, maxNewTokens: 32, seed: 5 };
  const db = openDatabase(dbPath(dir));
  assert.deepEqual(await addPrompts(db, prompts, gen, sampling, 'p'), { added: 2, skipped: 0, identical: 1 });
  const items = db.prepare('SELECT prompt, response_a, response_b, meta FROM items ORDER BY id').all() as { prompt: string; response_a: string; response_b: string; meta: string }[];
  assert.deepEqual(items.map((i) => [JSON.parse(i.prompt), i.response_a, i.response_b]), [
    ['Say hi', 'Say hi #0 t=0.7 s=5', 'Say hi #1 t=0.7 s=5'],
    ['Say bye', 'Say bye #0 t=0.7 s=5', 'Say bye #1 t=0.7 s=5'],
  ]);
  assert.deepEqual(JSON.parse(items[0]!.meta).sampling, sampling);
  calls.length = 0;
  assert.deepEqual(await addPrompts(db, prompts, gen, sampling, 'p'), { added: 0, skipped: 2, identical: 1 });
  assert.deepEqual(calls, ['Same'], 'already generated prompts are not generated again');
  await assert.rejects(addPrompts(db, [{ prompt: 'new', line: 9 }], async () => ['only one'], sampling, 'p'), /returned 1 candidates for prompt at line 9, expected 2/);
  db.close();
});

test('queue: overlap k, own queue only, A/B order randomized and recorded, gold mixed in', () => {
  const { dir } = makeProject({ overlap: 2, goldRate: 0.3 }, 10, 3);
  const { config } = loadProject(dir);
  const db = openDatabase(dbPath(dir));
  const ids = ['x', 'y', 'z'].map((n) => createAnnotator(db, n).id);
  const rng = seededRng(42);
  const seen = new Map<number, number>();
  let swaps = 0;
  let served = 0;
  for (let round = 0; round < 20; round++) {
    for (const me of ids) {
      const a = nextAssignment(db, me, config, rng);
      if (!a) continue;
      // Asking again before voting returns the same open assignment.
      assert.equal(nextAssignment(db, me, config, rng)!.id, a.id);
      seen.set(a.itemId, (seen.get(a.itemId) ?? 0) + 1);
      const row = db.prepare('SELECT swapped FROM assignments WHERE id = ?').get(a.id) as { swapped: number };
      const item = db.prepare('SELECT response_a, response_b FROM items WHERE id = ?').get(a.itemId) as { response_a: string; response_b: string };
      assert.equal(a.shownA, row.swapped ? item.response_b : item.response_a);
      swaps += row.swapped;
      served++;
      submitVote(db, me, { assignmentId: a.id, choice: 'A', idempotencyKey: `k-${a.id}-xxxx` }, config);
    }
  }
  const gold = db.prepare('SELECT id FROM items WHERE is_gold = 1').all() as { id: number }[];
  const goldIds = new Set(gold.map((g) => g.id));
  for (const [item, n] of seen) assert.equal(n, goldIds.has(item) ? 3 : 2, `item ${item} served ${n} times`);
  assert.equal(served, 10 * 2 + 3 * 3);
  assert.ok(swaps > served * 0.25 && swaps < served * 0.75, `swaps ${swaps} of ${served}`);
  for (const me of ids) assert.deepEqual(progress(db, me, config).remaining, 0);
  db.close();
});

test('votes: canonical label through the swap, idempotent, validated, only on own assignments', () => {
  const { dir } = makeProject({ overlap: 2, rationale: 'required', criteria: [{ id: 'helpful', label: 'Helpful', description: '' }] }, 2);
  const { config } = loadProject(dir);
  const db = openDatabase(dbPath(dir));
  const alice = createAnnotator(db, 'alice').id;
  const bob = createAnnotator(db, 'bob').id;
  const rng = seededRng(1);
  const a = nextAssignment(db, alice, config, rng)!;
  const ok = { assignmentId: a.id, choice: 'A', ratings: { helpful: { A: 5, B: 2 } }, rationale: 'clearer', idempotencyKey: 'key-aaaa-1' };
  const err = (f: () => unknown, status: number, re: RegExp) =>
    assert.throws(f, (e: unknown) => e instanceof HttpError && e.status === status && re.test(e.message));
  err(() => submitVote(db, bob, ok, config), 404, /no such assignment/);
  err(() => getAssignment(db, bob, a.id), 404, /no such assignment/);
  err(() => submitVote(db, alice, { ...ok, rationale: '' }, config), 400, /rationale is required/);
  err(() => submitVote(db, alice, { ...ok, ratings: {} }, config), 400, /missing rating for criterion "helpful"/);
  err(() => submitVote(db, alice, { ...ok, ratings: { helpful: { A: 9, B: 1 } } }, config), 400, /helpful\.A must be 1\.\.5/);
  err(() => submitVote(db, alice, { ...ok, choice: 'C' }, config), 400, /choice/);
  err(() => submitVote(db, alice, { ...ok, extra: 1 }, config), 400, /body/);
  const r1 = submitVote(db, alice, ok, config);
  assert.equal(r1.duplicate, false);
  const r2 = submitVote(db, alice, ok, config);
  assert.deepEqual(r2, { voteId: r1.voteId, duplicate: true });
  err(() => submitVote(db, alice, { ...ok, idempotencyKey: 'key-aaaa-2' }, config), 409, /already has your vote/);
  // Bob reusing Alice's key cannot hijack or observe her vote.
  const b = nextAssignment(db, bob, config, rng)!;
  err(() => submitVote(db, bob, { ...ok, assignmentId: b.id }, config), 409, /idempotency key already used/);
  const v = db.prepare('SELECT v.label, v.shown_choice, v.ratings, s.swapped FROM votes v JOIN assignments s ON s.id = v.assignment_id').get() as {
    label: string;
    shown_choice: string;
    ratings: string;
    swapped: number;
  };
  assert.equal(v.shown_choice, 'A');
  assert.equal(v.label, v.swapped ? 'b' : 'a');
  assert.deepEqual(JSON.parse(v.ratings), { helpful: v.swapped ? { a: 2, b: 5 } : { a: 5, b: 2 } });
  assert.equal((db.prepare('SELECT COUNT(*) AS n FROM votes').get() as { n: number }).n, 1);
  db.close();
});
