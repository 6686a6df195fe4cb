// Readers, format detection and validation: each format detected, each bad-data case reported
// with file:line and reason, error/skip policies, gzip and Parquet, slices of the two real data sets (test/fixtures).

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import {
  BadDataError,
  loadPreferenceData,
  loadSftData,
  readRecords,
  splitImplicitText,
  type PreferenceExample,
} from '../src/data/index.js';
import { writeStringParquet } from './fixtures/data/parquet-writer.js';
import { fx } from './fixtures/data/paths.js';

import { HH_RLHF as HH, ORCA } from './helpers/fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'dpo-data-read-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

async function rejects(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  assert.fail('expected a rejection');
}

test('standard JSONL: detected, locations are 1-based lines (blank lines skipped)', async () => {
  const d = await loadPreferenceData(fx('standard.jsonl'));
  assert.equal(d.format, 'standard');
  assert.equal(d.examples.length, 3);
  assert.deepEqual(
    d.examples.map((e) => e.loc.line),
    [1, 2, 4],
  );
  assert.deepEqual(
    d.examples.map((e) => e.index),
    [0, 1, 2],
  );
  const e = d.examples[0]!;
  assert.equal(e.kind, 'text');
  assert.deepEqual([e.prompt, e.chosen, e.rejected], ['What is the capital of France?', ' Paris.', ' London.']);
});

test('conversational: prompt messages, assistant responses', async () => {
  const d = await loadPreferenceData(fx('conversational.jsonl'));
  assert.equal(d.format, 'conversational');
  const e = d.examples[0]!;
  assert.equal(e.kind, 'chat');
  if (e.kind !== 'chat') return;
  assert.deepEqual(
    e.prompt.map((m) => m.role),
    ['system', 'user'],
  );
  assert.deepEqual(e.chosen, [{ role: 'assistant', content: 'Hello!' }]);
});

test('implicit prompt, text: longest common prefix up to the last "\\n\\nAssistant:"', async () => {
  const d = await loadPreferenceData(fx('implicit-text.jsonl'));
  assert.equal(d.format, 'implicit');
  const [a, b] = d.examples as (PreferenceExample & { kind: 'text' })[];
  assert.equal(a!.prompt, '\n\nHuman: Hi\n\nAssistant:');
  assert.equal(a!.chosen, ' Hello, how can I help?');
  assert.equal(a!.rejected, ' Hey.');
  // Multi-turn: the boundary is the LAST common one, not the first.
  assert.equal(b!.prompt, '\n\nHuman: A\n\nAssistant: B\n\nHuman: C\n\nAssistant:');
  assert.equal(b!.chosen, ' Good answer');
  // No common boundary → null (reported as no_common_prompt).
  assert.equal(splitImplicitText('The cat', 'The dog', '\n\nAssistant:'), null);
});

test('implicit prompt, messages: the common leading messages', async () => {
  const d = await loadPreferenceData(fx('implicit-messages.jsonl'));
  assert.equal(d.format, 'implicit');
  const e = d.examples[0]!;
  assert.equal(e.kind, 'chat');
  assert.deepEqual(e.prompt, [{ role: 'user', content: 'Hi' }]);
  assert.deepEqual(e.chosen, [{ role: 'assistant', content: 'Hello!' }]);
  assert.deepEqual(e.rejected, [{ role: 'assistant', content: 'Bye.' }]);
});

test('OpenAI preference format: input.messages, preferred_output, non_preferred_output', async () => {
  const d = await loadPreferenceData(fx('openai.jsonl'));
  assert.equal(d.format, 'openai');
  const e = d.examples[0]!;
  assert.equal(e.kind, 'chat');
  assert.equal((e.prompt as { role: string }[])[0]!.role, 'system');
  assert.deepEqual(e.chosen, [{ role: 'assistant', content: 'Rome.' }]);
  assert.deepEqual(e.rejected, [{ role: 'assistant', content: 'Milan.' }]);
});

test('SFT: prompt/completion and messages detected', async () => {
  const pc = await loadSftData(fx('sft-prompt-completion.jsonl'));
  assert.equal(pc.format, 'prompt_completion');
  assert.deepEqual(pc.examples[0], { kind: 'text', prompt: "Translate 'chat':", completion: ' cat', index: 0, loc: { file: fx('sft-prompt-completion.jsonl'), line: 1 } });
  const m = await loadSftData(fx('sft-messages.jsonl'));
  assert.equal(m.format, 'messages');
  assert.equal(m.examples[0]!.kind, 'chat');
  // A preference file is not SFT data, and the error says what was expected.
  const err = await rejects(loadSftData(fx('standard.jsonl')));
  assert.match(err.message, /cannot detect the data format.*standard\.jsonl:1.*prompt\/completion or messages/s);
});

test('JSON array, {"data": [...]}, columnar with a column mapping; row locations', async () => {
  const arr = await loadPreferenceData(fx('array.json'));
  assert.equal(arr.examples.length, 2);
  assert.deepEqual(arr.examples[1]!.loc, { file: fx('array.json'), row: 1 });
  const wrapped = await loadPreferenceData(fx('wrapped.json'));
  assert.deepEqual(
    wrapped.examples.map((e) => e.prompt),
    ['P1', 'P2'],
  );
  const col = await loadPreferenceData(fx('columnar.json'), { columns: { prompt: 'question', chosen: 'good', rejected: 'bad' } });
  assert.equal(col.format, 'standard');
  assert.deepEqual(
    col.examples.map((e) => [e.prompt, e.chosen, e.rejected]),
    [
      ['Q1?', ' A1', ' B1'],
      ['Q2?', ' A2', ' B2'],
      ['Q3?', ' A3', ' B3'],
    ],
  );
  // Without the mapping the columns are unknown.
  const err = await rejects(loadPreferenceData(fx('columnar.json')));
  assert.match(err.message, /cannot detect the data format.*columnar\.json\[row 0\]: keys question, good, bad/);
});

test('invalid JSON in a .json file names file:line:column', async () => {
  const err = await rejects(loadPreferenceData(fx('broken.json')));
  assert.match(err.message, /broken\.json:3:\d+: invalid JSON/);
});

test('gzip: .jsonl.gz and .json.gz read the same as the plain files (BOM tolerated)', async () => {
  const jl = join(tmp, 'standard.jsonl.gz');
  writeFileSync(jl, gzipSync(Buffer.concat([Buffer.from('\uFEFF'), readFileSync(fx('standard.jsonl'))])));
  const a = await loadPreferenceData(jl);
  assert.deepEqual(
    a.examples.map((e) => [e.prompt, e.loc.line]),
    [
      ['What is the capital of France?', 1],
      ['Add 2 and 3.', 2],
      ['Name a fruit.', 4],
    ],
  );
  const js = join(tmp, 'array.json.gz');
  writeFileSync(js, gzipSync(readFileSync(fx('array.json'))));
  assert.equal((await loadPreferenceData(js)).examples.length, 2);
});

test('a .json file holding JSON lines (datasets.to_json default) is read as JSON lines', async () => {
  const p = join(tmp, 'lines.json');
  writeFileSync(p, readFileSync(fx('standard.jsonl')));
  const d = await loadPreferenceData(p);
  assert.deepEqual(
    d.examples.map((e) => e.loc.line),
    [1, 2, 4],
  );
});

test('Parquet: row groups streamed in order, row locations; gzip\'d Parquet too', async () => {
  const rows = Array.from({ length: 7 }, (_, i) => ({ question: `Q${i} é`, good: ` good ${i}`, bad: ` bad ${i}` }));
  const p = join(tmp, 'prefs.parquet');
  writeFileSync(p, writeStringParquet(['question', 'good', 'bad'], rows, 3));
  const recs = [];
  for await (const r of readRecords(p)) recs.push(r);
  assert.deepEqual(
    recs.map((r) => r.loc.row),
    [0, 1, 2, 3, 4, 5, 6],
  );
  const d = await loadPreferenceData(p, { columns: { prompt: 'question', chosen: 'good', rejected: 'bad' } });
  assert.equal(d.examples.length, 7);
  assert.equal(d.examples[5]!.prompt, 'Q5 é');
  assert.deepEqual(d.examples[5]!.loc, { file: p, row: 5 });
  const gz = join(tmp, 'prefs.parquet.gz');
  writeFileSync(gz, gzipSync(readFileSync(p)));
  assert.equal((await loadPreferenceData(gz, { columns: { prompt: 'question', chosen: 'good', rejected: 'bad' } })).examples.length, 7);
});

test('bad rows, policy error: one error listing each problem as file:line and reason', async () => {
  const err = await rejects(loadPreferenceData(fx('bad.jsonl')));
  assert.ok(err instanceof BadDataError);
  const f = fx('bad.jsonl');
  const msg = err.message;
  assert.match(msg, /6 bad rows/);
  const expect: [number, string, RegExp][] = [
    [2, 'missing_field', /rejected: missing/],
    [3, 'ill_typed', /chosen: expected a string, got number/],
    [4, 'invalid_json', /invalid JSON/],
    [5, 'empty_response', /chosen: empty response/],
    [6, 'identical_responses', /identical/],
    [8, 'not_an_object', /got array/],
  ];
  for (const [line, reason, detail] of expect) {
    const l = msg.split('\n').find((s) => s.includes(`${f}:${line}: ${reason}:`));
    assert.ok(l, `no line for ${f}:${line} ${reason} in:\n${msg}`);
    assert.match(l, detail);
  }
  assert.deepEqual(
    err.badRows.map((b) => b.loc.line),
    [2, 3, 4, 5, 6, 8],
  );
});

test('bad rows, policy skip: valid rows kept, every bad row counted by reason', async () => {
  const d = await loadPreferenceData(fx('bad.jsonl'), { onBadRow: 'skip' });
  assert.deepEqual(
    d.examples.map((e) => e.loc.line),
    [1, 9],
  );
  assert.equal(d.summary.rowsRead, 8);
  assert.equal(d.summary.valid + d.summary.bad, d.summary.rowsRead);
  assert.deepEqual(d.summary.badByReason, {
    missing_field: 1,
    ill_typed: 1,
    invalid_json: 1,
    empty_response: 1,
    identical_responses: 1,
    not_an_object: 1,
  });
});

test('more than 20 problems: the first 20 listed, the total counted', async () => {
  const p = join(tmp, 'many-bad.jsonl');
  const lines = ['{"prompt": "p", "chosen": "a", "rejected": "b"}'];
  for (let i = 0; i < 25; i++) lines.push(`{"prompt": "p${i}", "chosen": "x"}`);
  writeFileSync(p, lines.join('\n') + '\n');
  const err = await rejects(loadPreferenceData(p));
  assert.match(err.message, /25 bad rows \(missing_field 25\)/);
  assert.match(err.message, /many-bad\.jsonl:21: missing_field/);
  assert.doesNotMatch(err.message, /many-bad\.jsonl:22:/);
  assert.match(err.message, /\.\.\. and 5 more/);
});

test('message lists: ill-typed messages and non-assistant responses name the field', async () => {
  const p = join(tmp, 'bad-chat.jsonl');
  writeFileSync(
    p,
    [
      '{"prompt": [{"role": "user", "content": "hi"}], "chosen": [{"role": "assistant", "content": "a"}], "rejected": [{"role": "assistant", "content": "b"}]}',
      '{"prompt": [{"role": "user", "content": 3}], "chosen": [{"role": "assistant", "content": "a"}], "rejected": [{"role": "assistant", "content": "b"}]}',
      '{"prompt": [{"role": "user", "content": "hi"}], "chosen": [{"role": "user", "content": "a"}], "rejected": [{"role": "assistant", "content": "b"}]}',
      '{"prompt": [{"role": "user", "content": "hi"}], "chosen": [], "rejected": [{"role": "assistant", "content": "b"}]}',
      '{"prompt": [{"role": "user", "content": "hi"}], "chosen": "text", "rejected": [{"role": "assistant", "content": "b"}]}',
    ].join('\n'),
  );
  const d = await loadPreferenceData(p, { onBadRow: 'skip' });
  assert.equal(d.format, 'conversational');
  const msgs = d.summary.badRows.map((b) => `${b.loc.line} ${b.reason} ${b.message}`);
  assert.deepEqual(msgs, [
    '2 ill_typed prompt[0].content: expected a string, got number',
    '3 ill_typed chosen[0].role: expected "assistant", got "user"',
    '4 empty_response chosen: empty message list',
    '5 ill_typed chosen: expected a list of messages, got string',
  ]);
});

test('format override: a forced format reports rows that do not fit it', async () => {
  const d = await loadPreferenceData(fx('standard.jsonl'), { format: 'openai', onBadRow: 'skip' });
  assert.equal(d.format, 'openai');
  assert.equal(d.examples.length, 0);
  assert.deepEqual(d.summary.badByReason, { missing_field: 3 });
  const err = await rejects(loadPreferenceData(fx('standard.jsonl'), { format: 'messages' }));
  assert.match(err.message, /format "messages" is not a preference format/);
});

test('hh-rlhf helpful-base test (401-row slice): implicit prompt, prompts end with "\\n\\nAssistant:"', async () => {
  const d = await loadPreferenceData(HH, { onBadRow: 'skip' });
  assert.equal(d.format, 'implicit');
  assert.equal(d.summary.rowsRead, 401);
  assert.equal(d.summary.valid + d.summary.bad, 401);
  // The real data has a few rows with an empty rejected turn and identical pairs: reported, not lost.
  assert.deepEqual(d.summary.badByReason, { empty_response: 1, identical_responses: 1 });
  for (const e of d.examples) {
    assert.equal(e.kind, 'text');
    assert.ok((e.prompt as string).endsWith('\n\nAssistant:'), `${e.loc.line}: prompt does not end with the boundary`);
    assert.ok((e.prompt as string).startsWith('\n\nHuman:'));
  }
  // Policy error: the same problems throw, naming the lines.
  const err = await rejects(loadPreferenceData(HH));
  assert.match(err.message, /2 bad rows/);
  assert.match(err.message, /helpful-base-test-401\.jsonl\.gz:121: empty_response/);
  assert.match(err.message, /helpful-base-test-401\.jsonl\.gz:401: identical_responses/);
});

test('orca DPO pairs: OpenAI format with system prompts', async () => {
  const d = await loadPreferenceData(ORCA);
  assert.equal(d.format, 'openai');
  assert.equal(d.examples.length, 60);
  for (const e of d.examples) {
    assert.equal(e.kind, 'chat');
    if (e.kind !== 'chat') continue;
    assert.equal(e.prompt[0]!.role, 'system');
    assert.equal(e.prompt[e.prompt.length - 1]!.role, 'user');
    assert.equal(e.chosen[0]!.role, 'assistant');
  }
});
