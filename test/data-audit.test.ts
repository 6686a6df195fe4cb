// The audit and `dpo data check`: figures on fixtures with known duplicates, leakage, length
// bias and truncation; text and JSON output; the commander command.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { Command } from 'commander';
import { auditPreferenceData, percentiles, renderAuditText, type AuditReport } from '../src/data/index.js';
import { registerDataCommands } from '../src/cli/data.js';
import { ByteTokenizer } from './fixtures/data/byte-tokenizer.js';
import { fx } from './fixtures/data/paths.js';

const TRAIN = fx('audit-train.jsonl');
const EVAL = fx('audit-eval.jsonl');
import { ORCA } from './helpers/fixtures.js';

test('percentiles: nearest rank', () => {
  assert.deepEqual(percentiles([7, 12, 12, 13, 13, 18]), { p50: 12, p90: 18, p99: 18, max: 18, mean: 12.5 });
  const hundred = Array.from({ length: 100 }, (_, i) => 100 - i);
  assert.deepEqual(percentiles(hundred), { p50: 50, p90: 90, p99: 99, max: 100, mean: 50.5 });
  assert.deepEqual(percentiles([]), { p50: 0, p90: 0, p99: 0, max: 0, mean: 0 });
});

test('audit without tokenizer: counts, bad rows, duplicates, length bias, leakage', async () => {
  const r = await auditPreferenceData({ train: TRAIN, eval: EVAL });
  const t = r.train;
  assert.equal(t.format, 'standard');
  assert.equal(t.rowsRead, 8);
  assert.equal(t.valid, 6);
  assert.equal(t.bad, 2);
  assert.deepEqual(t.badByReason, { identical_responses: 1, empty_response: 1 });
  assert.equal(t.identicalResponses, 1);
  assert.equal(t.emptyResponses, 1);
  assert.deepEqual(t.badExamples, [
    `${TRAIN}:7: identical_responses: chosen and rejected are identical`,
    `${TRAIN}:8: empty_response: chosen: empty response`,
  ]);
  assert.equal(t.duplicatePairs.count, 1);
  assert.deepEqual(t.duplicatePairs.examples, [[`${TRAIN}:1`, `${TRAIN}:4`]]);
  assert.equal(t.duplicatePrompts.count, 2);
  assert.equal(t.duplicatePrompts.distinctPrompts, 2);
  assert.deepEqual(t.duplicatePrompts.examples, [
    [`${TRAIN}:1`, `${TRAIN}:4`],
    [`${TRAIN}:2`, `${TRAIN}:3`],
  ]);
  // chosen − rejected in characters: 31, 18, 14, 31, −18, 17.
  assert.deepEqual(t.lengthBiasChars, { pairs: 6, chosenLonger: 5, rejectedLonger: 1, equal: 0, chosenLongerShare: 5 / 6, meanDiff: 15.5, medianDiff: 17.5 });
  assert.deepEqual(t.lengthsChars.prompt, { p50: 12, p90: 18, p99: 18, max: 18, mean: 12.5 });
  assert.equal(t.lengthsChars.total.max, 12 + 32); // "What is 2+2?" + "4, because two plus two is four."
  assert.equal(t.lengthsTokens, undefined);
  assert.equal(t.truncation, undefined);
  assert.equal(t.conversation, undefined);
  // Eval: "What is 2+2?" verbatim, "  name A   COLOR. " only after normalization.
  assert.deepEqual(r.leakage, {
    evalRows: 3,
    exact: 1,
    normalized: 2,
    examples: [
      [`${EVAL}:1`, `${TRAIN}:1`],
      [`${EVAL}:2`, `${TRAIN}:2`],
    ],
  });
  assert.equal(r.eval!.valid, 3);
});

test('audit with tokenizer: token lengths and the truncation forecast', async () => {
  const tokenizer = new ByteTokenizer();
  const r = await auditPreferenceData({ train: TRAIN, tokenizer, maxLength: 14 });
  const t = r.train;
  // Byte tokenizer: prompt = chars + BOS, response = chars + EOS, so the differences match the characters'.
  assert.deepEqual(t.lengthsTokens!.prompt, { p50: 13, p90: 19, p99: 19, max: 19, mean: 13.5 });
  assert.equal(t.lengthBiasTokens!.meanDiff, 15.5);
  assert.equal(t.lengthBiasTokens!.chosenLonger, 5);
  // TRL v1.9.0's default keep_start: prompts of 14, 14 and 19 tokens leave no response token under
  // max_length 14 (TRL drops those rows too); the two 13-token prompts keep 1 token of each
  // response, and "Say hi." (8) keeps 6 of "Hello there, friend!" + EOS (21).
  const drop = (line: number, n: number) =>
    `${TRAIN}:${line}: prompt_too_long: prompt is ${n} tokens, so truncation_mode keep_start at max_length 14 leaves no response token ` +
    '(TRL drops such rows too); truncation_mode keep_end keeps the end of the conversation instead';
  assert.deepEqual(t.truncation, {
    maxLength: 14,
    maxPromptLength: null,
    maxCompletionLength: null,
    truncationMode: 'keep_start',
    promptTruncated: 0,
    responseTruncated: 3,
    truncatedRows: 3,
    tokensCut: { prompt: 0, chosen: 64, rejected: 17 },
    maxTokensCutPerPair: 33,
    truncatedExamples: [
      `${TRAIN}:1: prompt −0, chosen −32, rejected −1 tokens (of 13 + 33 + 2 = 48)`,
      `${TRAIN}:4: prompt −0, chosen −32, rejected −1 tokens (of 13 + 33 + 2 = 48)`,
      `${TRAIN}:5: prompt −0, chosen −0, rejected −15 tokens (of 8 + 3 + 21 = 32)`,
    ],
    dropped: 3,
    droppedByReason: { prompt_too_long: 3 },
    droppedExamples: [drop(2, 14), drop(3, 14), drop(6, 19)],
  });
  // keep_end keeps every pair: each row keeps its last 14 tokens. Row 1's chosen row (13 + 33) loses
  // its whole prompt and 19 chosen tokens, its rejected row (13 + 2) one prompt token, and so on
  // (prompt losses are per pair, the larger of its two rows').
  const end = await auditPreferenceData({ train: TRAIN, tokenizer, maxLength: 14, truncationMode: 'keep_end' });
  const e = end.train.truncation!;
  assert.equal(e.dropped, 0);
  assert.equal(e.truncatedRows, 6);
  assert.equal(e.promptTruncated, 6);
  assert.equal(e.responseTruncated, 6);
  assert.deepEqual(e.tokensCut, { prompt: 13 + 14 + 14 + 13 + 8 + 19, chosen: 19 + 8 + 5 + 19 + 0 + 8, rejected: 7 });
  assert.equal(e.maxTokensCutPerPair, 32);
  assert.deepEqual(e.truncatedExamples.slice(0, 3), [
    `${TRAIN}:1: prompt −13, chosen −19, rejected −0 tokens (of 13 + 33 + 2 = 48)`,
    `${TRAIN}:4: prompt −13, chosen −19, rejected −0 tokens (of 13 + 33 + 2 = 48)`,
    `${TRAIN}:6: prompt −19, chosen −8, rejected −0 tokens (of 19 + 22 + 5 = 46)`,
  ]);
  const capped = await auditPreferenceData({ train: TRAIN, tokenizer, maxLength: 16, maxPromptLength: 10, truncationMode: 'keep_start' });
  assert.equal(capped.train.truncation!.promptTruncated, 5);
  assert.equal(capped.train.truncation!.responseTruncated, 6);
  assert.equal(capped.train.truncation!.dropped, 0);
});

test('audit of conversational data: turn and role balance', async () => {
  const r = await auditPreferenceData({ train: fx('openai.jsonl') });
  assert.deepEqual(r.train.conversation, {
    pairs: 2,
    promptTurns: { 1: 1, 2: 1 },
    promptRoles: { system: 1, user: 2 },
    withSystemPrompt: 1,
    lastPromptRole: { user: 2 },
    chosenTurns: { 1: 2 },
    rejectedTurns: { 1: 2 },
    turnCountMismatch: 0,
  });
});

test('text report names every finding; JSON form round-trips', async () => {
  const r = await auditPreferenceData({ train: TRAIN, eval: EVAL, tokenizer: new ByteTokenizer(), maxLength: 14 });
  const text = renderAuditText(r);
  for (const needle of [
    'format: standard',
    'rows: 8 read, 6 valid, 2 bad',
    `${TRAIN}:7: identical_responses`,
    'duplicate pairs: 1 rows repeat an earlier pair',
    'duplicate prompts: 2 rows repeat an earlier prompt (2 prompts occur more than once)',
    'length bias (characters): chosen longer in 5/6 pairs (83.3%)',
    'length bias (tokens): chosen longer in 5/6 pairs (83.3%)',
    'truncation as TRL v1.9.0 (max_length 14, keep_start): 3 rows cut (prompt 0, response 3), 3 dropped',
    'tokens cut: prompt 0, chosen 64, rejected 17; at most 33 from one pair',
    'leakage: 1/3 eval prompts occur verbatim in train (33.3%); 2 match after whitespace/case normalization (66.7%)',
  ]) {
    assert.ok(text.includes(needle), `missing "${needle}" in:\n${text}`);
  }
  assert.match(text, /prompt\s+13\s+19\s+19\s+19\s+13\.5/);
  const back = JSON.parse(JSON.stringify(r)) as AuditReport;
  assert.deepEqual(back, r);
});

let exitCode = 0;
function cli(write: (s: string) => void): Command {
  const program = new Command('dpo').exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
  exitCode = 0;
  registerDataCommands(program, { write, loadTokenizer: () => new ByteTokenizer(), setExitCode: (c) => (exitCode = c) });
  return program;
}

test('dpo data check: text and --json output, options parsed', async () => {
  let out = '';
  await cli((s) => (out += s)).parseAsync(['data', 'check', TRAIN, '--eval', EVAL], { from: 'user' });
  assert.match(out, /rows: 8 read, 6 valid, 2 bad/);
  assert.match(out, /no tokenizer given/);
  assert.equal(exitCode, 1, 'bad rows must fail the check');
  out = '';
  await cli((s) => (out += s)).parseAsync(
    ['data', 'check', TRAIN, '--eval', EVAL, '--tokenizer', 'byte', '--max-length', '16', '--max-prompt-length', '10', '--truncation-mode', 'keep_start', '--json'],
    { from: 'user' },
  );
  const report = JSON.parse(out) as AuditReport;
  assert.equal(report.train.truncation!.maxLength, 16);
  assert.equal(report.train.truncation!.truncationMode, 'keep_start');
  assert.equal(report.train.truncation!.promptTruncated, 5);
  assert.equal(report.leakage!.normalized, 2);
  out = '';
  await cli((s) => (out += s)).parseAsync(['data', 'check', fx('columnar.json'), '--columns', 'prompt=question,chosen=good,rejected=bad', '--json'], { from: 'user' });
  assert.equal((JSON.parse(out) as AuditReport).train.valid, 3);
  assert.equal(exitCode, 0, 'clean data must pass the check');
});

test('dpo data check: bad options give clear errors', async () => {
  await assert.rejects(cli(() => {}).parseAsync(['data', 'check', TRAIN, '--max-length', 'ten'], { from: 'user' }), /--max-length must be a positive integer, got "ten"/);
  await assert.rejects(cli(() => {}).parseAsync(['data', 'check', TRAIN, '--truncation-mode', 'middle'], { from: 'user' }), /Allowed choices are keep_start, keep_end/);
  await assert.rejects(cli(() => {}).parseAsync(['data', 'check', TRAIN, '--max-length', '10'], { from: 'user' }), /need --tokenizer/);
  await assert.rejects(cli(() => {}).parseAsync(['data', 'check', TRAIN, '--columns', 'foo=bar'], { from: 'user' }), /--columns: expected NAME=COLUMN/);
});

test('orca audit: every prompt has a system prompt; the rejected answers are longer', async () => {
  const r = await auditPreferenceData({ train: ORCA });
  assert.equal(r.train.format, 'openai');
  assert.equal(r.train.valid, 60);
  assert.equal(r.train.conversation!.withSystemPrompt, 60);
  assert.ok(r.train.lengthBiasChars.chosenLongerShare < 0.5);
});
