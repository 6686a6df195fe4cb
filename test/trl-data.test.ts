// `dpo export-job --data-format parquet`: the job's data as Parquet with the column types `datasets`
// infers from the same rows as JSON Lines (strings; float64 / int64; conversations as
// list<struct<role, content>>), read back through our reader (hyparquet) as the same pairs, and
// cross-checked with a second, independent reader: arrow-rs's Parquet reader (parquet-wasm) into
// Apache Arrow, the format `datasets` holds its tables in.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readParquet } from 'parquet-wasm';
import { tableFromIPC } from 'apache-arrow';
import { parseDpoConfig, parseSftConfig } from '../src/train/config.js';
import { exportTrlJob, exportTrlSftJob } from '../src/train/trl-export.js';
import { parquetBytes, checkJobDataFormat } from '../src/train/trl-data.js';
import { loadPreferenceData } from '../src/data/load.js';
import { readRecords } from '../src/data/readers.js';
import { buildProgram } from '../src/cli/index.js';
import { makeTinyModelDir, syntheticPairs, writeJsonl } from './fixtures/train/tiny.js';
import { fx } from './fixtures/data/paths.js';

const tmp = (p: string): string => mkdtempSync(join(tmpdir(), p));
const modelDir = await makeTinyModelDir({ seed: 2 });
const pairs = syntheticPairs(24, 8);
const trainFile = writeJsonl(join(tmp('dpo-pq-data-'), 'train.jsonl'), pairs);

/** The second reader: Parquet → Arrow (arrow-rs via parquet-wasm, decoded by apache-arrow). */
function readWithArrow(path: string): { schema: Record<string, string>; rows: Record<string, unknown>[] } {
  const table = tableFromIPC(readParquet(new Uint8Array(readFileSync(path))).intoIPCStream());
  const schema = Object.fromEntries(table.schema.fields.map((f) => [f.name, String(f.type)]));
  const plain = (v: unknown): unknown => JSON.parse(JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? Number(x) : x)));
  return { schema, rows: table.toArray().map((r) => plain((r as { toJSON(): unknown }).toJSON()) as Record<string, unknown>) };
}

const MESSAGES = 'List<Struct<{role:Utf8, content:Utf8}>>';

test('Parquet columns carry datasets\' types: strings, float64, int64 lists, conversations as list<struct<role, content>>', () => {
  const rows = [
    { prompt: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Größe? 🙂' }], chosen: [{ role: 'assistant', content: 'Klein.' }], rejected: [{ role: 'assistant', content: '' }], ref_chosen_logps: -12.25, input_ids: [1, 40, 41] },
    { prompt: [{ role: 'user', content: 'q2' }], chosen: [{ role: 'assistant', content: 'a' }], rejected: [{ role: 'assistant', content: 'b' }], ref_chosen_logps: -3, input_ids: [] },
  ];
  const path = join(tmp('dpo-pq-unit-'), 'rows.parquet');
  const bytes = parquetBytes(rows);
  writeFileSync(path, bytes);
  const arrow = readWithArrow(path);
  assert.deepEqual(arrow.schema, { prompt: MESSAGES, chosen: MESSAGES, rejected: MESSAGES, ref_chosen_logps: 'Float64', input_ids: 'List<Int64>' });
  assert.deepEqual(arrow.rows, rows);
  // Mixed or non-string values are refused naming the column and row, never written differently.
  assert.throws(() => parquetBytes([{ prompt: 'a' }, { prompt: 3 }]), /column "prompt", row 2: a int64 in a column of string values/);
  assert.throws(() => parquetBytes([{ prompt: [{ role: 'user', content: 'x', tool_calls: [{ id: 1 }] }] }]), /column "prompt", row 1: message field "tool_calls" is .* not a string/);
  assert.throws(() => parquetBytes([{ prompt: 'a', chosen: 'b' }, { prompt: 'a' }]), /row 2 has columns prompt, the first row prompt, chosen/);
  assert.throws(() => checkJobDataFormat('csv'), /--data-format csv is not supported \(jsonl, parquet\)/);
});


test('export-job --data-format parquet: the same pairs as the JSONL job through our reader and Arrow; train.py loads "parquet"', async () => {
  const cfg = parseDpoConfig({ eval_split: 0.25 });
  const jl = join(tmp('dpo-job-jsonl-'), 'job'), pq = join(tmp('dpo-job-pq-'), 'job');
  await exportTrlJob({ model: modelDir, data: [trainFile], config: cfg, out: jl });
  const res = await exportTrlJob({ model: modelDir, data: [trainFile], config: cfg, out: pq, dataFormat: 'parquet' });
  assert.ok(res.files.includes('data/train.parquet') && res.files.includes('data/eval.parquet') && !res.files.includes('data/train.jsonl'));
  const job = JSON.parse(readFileSync(join(pq, 'job.json'), 'utf8'));
  assert.deepEqual([job.data.train, job.data.eval, job.data.file_format, job.data.loader], ['data/train.parquet', 'data/eval.parquet', 'parquet', 'parquet']);
  assert.equal(JSON.parse(readFileSync(join(jl, 'job.json'), 'utf8')).data.loader, 'json');
  assert.match(readFileSync(join(pq, 'train.py'), 'utf8'), /load_dataset\(job\["data"\]\.get\("loader", "json"\), data_files=data_files\)/);
  for (const split of ['train', 'eval']) {
    const fromJsonl = (await loadPreferenceData(join(jl, 'data', `${split}.jsonl`))).examples.map((e) => ({ prompt: e.prompt, chosen: e.chosen, rejected: e.rejected }));
    const fromParquet = (await loadPreferenceData(join(pq, 'data', `${split}.parquet`))).examples.map((e) => ({ prompt: e.prompt, chosen: e.chosen, rejected: e.rejected }));
    assert.deepEqual(fromParquet, fromJsonl, split);
    const arrow = readWithArrow(join(pq, 'data', `${split}.parquet`));
    assert.deepEqual(arrow.schema, { prompt: 'Utf8', chosen: 'Utf8', rejected: 'Utf8' });
    assert.deepEqual(arrow.rows, readFileSync(join(jl, 'data', `${split}.jsonl`), 'utf8').trim().split('\n').map((l) => JSON.parse(l)));
  }
  const back = [...(await loadPreferenceData(join(pq, 'data', 'train.parquet'))).examples, ...(await loadPreferenceData(join(pq, 'data', 'eval.parquet'))).examples];
  assert.equal(back.length, pairs.length);
  const key = (p: object): string => JSON.stringify(p);
  assert.deepEqual(back.map((e) => key({ prompt: e.prompt, chosen: e.chosen, rejected: e.rejected })).sort(), pairs.map(key).sort());
});

test('conversational pairs and SFT messages as Parquet: list<struct<role, content>>, read back as the source', async () => {
  const out = join(tmp('dpo-job-pq-chat-'), 'job');
  const tokenizer = join(process.cwd(), 'test', 'fixtures', 'tokenizers', 'chatml-mini');
  await exportTrlJob({ model: modelDir, tokenizer, data: [fx('conversational.jsonl')], config: parseDpoConfig({}), out, dataFormat: 'parquet' });
  const src = (await loadPreferenceData(fx('conversational.jsonl'))).examples.map((e) => ({ prompt: e.prompt, chosen: e.chosen, rejected: e.rejected }));
  const ours = (await loadPreferenceData(join(out, 'data', 'train.parquet'))).examples.map((e) => ({ prompt: e.prompt, chosen: e.chosen, rejected: e.rejected }));
  assert.deepEqual(ours, src);
  const arrow = readWithArrow(join(out, 'data', 'train.parquet'));
  assert.deepEqual(arrow.schema, { prompt: MESSAGES, chosen: MESSAGES, rejected: MESSAGES });
  assert.deepEqual(arrow.rows, src);

  const sftOut = join(tmp('dpo-job-pq-sft-'), 'job');
  const chats = writeJsonl(join(tmp('dpo-pq-sft-'), 'chats.jsonl'), [
    { messages: [{ role: 'user', content: 'ab?' }, { role: 'assistant', content: 'cd.' }] },
    { messages: [{ role: 'system', content: 's' }, { role: 'user', content: 'ef?' }, { role: 'assistant', content: 'gh.' }] },
  ]);
  await exportTrlSftJob({ model: modelDir, tokenizer, data: [chats], config: parseSftConfig({}), out: sftOut, dataFormat: 'parquet' });
  const sft = readWithArrow(join(sftOut, 'data', 'train.parquet'));
  assert.deepEqual(sft.schema, { messages: MESSAGES });
  assert.deepEqual(sft.rows.map((r) => r.messages), readFileSync(chats, 'utf8').trim().split('\n').map((l) => JSON.parse(l).messages));
  const ours2: unknown[] = [];
  for await (const r of readRecords(join(sftOut, 'data', 'train.parquet'))) ours2.push(r.value);
  assert.deepEqual(ours2, sft.rows);
});

test('dpo export-job --data-format parquet on the command line', async () => {
  const out = join(tmp('dpo-job-pq-cli-'), 'job');
  await buildProgram().parseAsync(['node', 'dpo', 'export-job', '--engine', 'trl', '--model', modelDir, '--data', trainFile, '--out', out, '--data-format', 'parquet', '--quiet'], { from: 'node' });
  assert.equal(readWithArrow(join(out, 'data', 'train.parquet')).rows.length, pairs.length);
  await assert.rejects(buildProgram().parseAsync(['node', 'dpo', 'export-job', '--engine', 'trl', '--model', modelDir, '--data', trainFile, '--out', join(out, 'x'), '--data-format', 'csv', '--quiet'], { from: 'node' }), /--data-format csv is not supported/);
});
