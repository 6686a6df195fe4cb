// Tokenization: BOS and EOS exactly once, chat responses ending with the template's own stop
// token, labels only on responses, truncation modes, special-token runs never split, SFT masks.
// Runs on the byte-level test tokenizer, and the same invariants on real tokenizers: the Llama-3
// and ChatML fixture tokenizers, stories260K's tok512.bin (test/fixtures), and DPO_TEST_TOKENIZER=DIR when set.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import type { ChatMessage, Tokenizer } from '../src/io/tokenizer.js';
import {
  BadDataError,
  keepEnd,
  keepStart,
  loadPreferenceData,
  loadSftData,
  preparePreferenceData,
  tokenizePair,
  tokenizePreferenceData,
  tokenizeSft,
  pairRowLength,
  pairLength,
  type PreferenceExample,
  type TokenizedPair,
} from '../src/data/index.js';
import { BOS, ByteTokenizer, EOS, IM_END, IM_START } from './fixtures/data/byte-tokenizer.js';
import { fx } from './fixtures/data/paths.js';

import { HH_RLHF as HH, TOK512 } from './helpers/fixtures.js';

const bytes = (s: string) => [...Buffer.from(s, 'utf8')];
const count = (ids: readonly number[], id: number) => ids.filter((x) => x === id).length;
const loc = { file: 'mem.jsonl', line: 7 };

function textEx(prompt: string, chosen: string, rejected: string): PreferenceExample {
  return { kind: 'text', index: 0, loc, prompt, chosen, rejected };
}
function chatEx(prompt: ChatMessage[], chosen: string, rejected: string): PreferenceExample {
  return { kind: 'chat', index: 0, loc, prompt, chosen: [{ role: 'assistant', content: chosen }], rejected: [{ role: 'assistant', content: rejected }] };
}
function ok(r: ReturnType<typeof tokenizePair>): TokenizedPair {
  if (!r.ok) assert.fail(`expected a tokenized pair, got ${r.reason}: ${r.message}`);
  return r.pair;
}

test('text pair: BOS once (tokenizer convention), responses end with EOS exactly once, no BOS', () => {
  const tok = new ByteTokenizer();
  const p = ok(tokenizePair(tok, textEx('Q?', ' yes', ' no')));
  assert.deepEqual(p.promptIds, [BOS, ...bytes('Q?')]);
  assert.deepEqual(p.chosenIds, [...bytes(' yes'), EOS]);
  assert.deepEqual(p.rejectedIds, [...bytes(' no'), EOS]);
  // A response whose text already ends with EOS gets no second one.
  const q = ok(tokenizePair(tok, textEx('Q?', ' yes<|eos|>', ' no')));
  assert.deepEqual(q.chosenIds, [...bytes(' yes'), EOS]);
  // A tokenizer that does not add BOS by default: no BOS at all.
  const noBos = ok(tokenizePair(new ByteTokenizer({ addsBosByDefault: false }), textEx('Q?', ' yes', ' no')));
  assert.deepEqual(noBos.promptIds, bytes('Q?'));
});

test('chat pair: ChatML rendering, response ends with <|im_end|> and gets no extra EOS', () => {
  const tok = new ByteTokenizer();
  const p = ok(tokenizePair(tok, chatEx([{ role: 'user', content: 'Hi?' }], 'Hello!', 'Go.')));
  assert.deepEqual(p.promptIds, [BOS, IM_START, ...bytes('user\nHi?'), IM_END, ...bytes('\n'), IM_START, ...bytes('assistant\n')]);
  // The template's "\n" after <|im_end|> is never generated, so the response stops at the stop token.
  assert.deepEqual(p.chosenIds, [...bytes('Hello!'), IM_END]);
  assert.deepEqual(p.rejectedIds, [...bytes('Go.'), IM_END]);
  assert.equal(count(p.chosenIds, EOS), 0);
});

test('chat template rendering BOS + tokenizer adding BOS: BOS still exactly once', () => {
  for (const addsBosByDefault of [true, false]) {
    const tok = new ByteTokenizer({ templateBos: true, addsBosByDefault });
    const p = ok(tokenizePair(tok, chatEx([{ role: 'user', content: 'Hi' }], 'A', 'B')));
    assert.equal(p.promptIds[0], BOS);
    assert.equal(count([...p.promptIds, ...p.chosenIds], BOS), 1, `addsBosByDefault ${addsBosByDefault}`);
  }
});

test('template whose generation prompt is not a prefix of the full rendering: template_mismatch bad row', () => {
  class ThinkTokenizer extends ByteTokenizer {
    override applyChatTemplate(messages: readonly ChatMessage[], opts: { addGenerationPrompt?: boolean } = {}): string {
      const s = super.applyChatTemplate(messages, opts);
      return opts.addGenerationPrompt ? s + '<think>\n' : s;
    }
  }
  const r = tokenizePair(new ThinkTokenizer(), chatEx([{ role: 'user', content: 'Hi' }], 'A', 'B'));
  assert.equal(r.ok, false);
  if (!r.ok) {
    assert.equal(r.reason, 'template_mismatch');
    assert.match(r.message, /does not start with its rendering of the prompt/);
  }
});

test('max_prompt_length: keep_end keeps BOS and the end, keep_start keeps the start', () => {
  const tok = new ByteTokenizer();
  const ex = textEx('abcdefghij', ' yes', ' no');
  const end = ok(tokenizePair(tok, ex, { maxPromptLength: 5, truncationMode: 'keep_end' }));
  assert.deepEqual(end.promptIds, [BOS, ...bytes('ghij')]);
  assert.equal(end.promptTruncated, true);
  const start = ok(tokenizePair(tok, ex, { maxPromptLength: 5 }));
  assert.deepEqual(start.promptIds, [BOS, ...bytes('abcd')]);
  // keep_start is the default, as in TRL v1.9.0.
  assert.deepEqual(ok(tokenizePair(tok, ex, { maxPromptLength: 5, truncationMode: 'keep_start' })).promptIds, start.promptIds);
  assert.throws(() => tokenizePair(tok, ex, { truncationMode: 'middle' as never }), /truncationMode must be 'keep_end' or 'keep_start'/);
});

test('max_length: applied after the prompt cap, cuts responses at the end', () => {
  const tok = new ByteTokenizer();
  const p = ok(tokenizePair(tok, textEx('abcdefghij', ' yes', ' n'), { maxPromptLength: 5, maxLength: 8 }));
  assert.equal(p.promptIds.length, 5);
  assert.deepEqual(p.chosenIds, bytes(' ye'));
  assert.equal(p.chosenTruncated, true);
  // ' n' + EOS is 3 tokens: fits exactly.
  assert.deepEqual(p.rejectedIds, [...bytes(' n'), EOS]);
  assert.equal(p.rejectedTruncated, false);
  assert.ok(p.promptIds.length + p.chosenIds.length <= 8);
});

test('prompt alone reaching max_length is a bad row naming file:line', () => {
  const tok = new ByteTokenizer();
  const ex = textEx('abcdefghij', ' yes', ' no');
  const r = tokenizePair(tok, ex, { maxLength: 11 });
  assert.equal(r.ok, false);
  assert.throws(
    () => tokenizePreferenceData(tok, [ex], { maxLength: 11 }),
    (e: Error) => e instanceof BadDataError && /mem\.jsonl:7: prompt_too_long: prompt is 11 tokens, so truncation_mode keep_start at max_length 11 leaves no response token/.test(e.message),
  );
  const skipped = tokenizePreferenceData(tok, [ex, { ...textEx('ab', ' yes', ' no'), index: 1 }], { maxLength: 11, onBadRow: 'skip' });
  assert.equal(skipped.pairs.length, 1);
  assert.deepEqual(skipped.summary.droppedByReason, { prompt_too_long: 1 });
  assert.equal(skipped.summary.dropped, 1);
  // With a prompt cap the same row fits; keep_end (TRL) keeps it too, dropping the oldest prompt tokens.
  assert.equal(tokenizePair(tok, ex, { maxLength: 11, maxPromptLength: 6 }).ok, true);
  assert.equal(tokenizePair(tok, ex, { maxLength: 11, truncationMode: 'keep_end' }).ok, true);
});

test('truncation never splits a run of special tokens', () => {
  const tok = new ByteTokenizer();
  const a = 97;
  // keep_end: the cut would fall between <|im_end|> and <|im_start|>; it moves past the run.
  assert.deepEqual(keepEnd(tok, [BOS, a, a + 1, IM_END, IM_START, a + 2, a + 3], 4), [BOS, a + 2, a + 3]);
  // keep_start: the cut moves back to before the run.
  assert.deepEqual(keepStart(tok, [BOS, a, IM_END, IM_START, a + 1], 3), [BOS, a]);
  // Cuts between ordinary tokens are exact.
  assert.deepEqual(keepEnd(tok, [BOS, 1, 2, 3, 4, 5], 3), [BOS, 4, 5]);
  assert.deepEqual(keepStart(tok, [BOS, 1, 2, 3, 4, 5], 3), [BOS, 1, 2]);
});

test('truncation summary counts prompt and response cuts', async () => {
  const tok = new ByteTokenizer();
  const d = await preparePreferenceData(fx('standard.jsonl'), tok, { maxPromptLength: 10, maxLength: 14 });
  // Prompts: 30, 12, 13 bytes + BOS → all cut to 10; responses " Paris."/" London."... + EOS cut to 4.
  assert.equal(d.tokenize.rows, 3);
  assert.equal(d.tokenize.kept, 3);
  assert.equal(d.tokenize.promptTruncated, 3);
  assert.equal(d.tokenize.responseTruncated, 2);
  assert.equal(d.tokenize.truncatedRows, 3);
  for (const p of d.pairs) assert.ok(pairLength(p) <= 14);
});

test('prepare: load and tokenize problems are reported together under policy error', async () => {
  const tok = new ByteTokenizer();
  await assert.rejects(preparePreferenceData(fx('bad.jsonl'), tok, { maxLength: 4 }), (e: Error) => {
    assert.ok(e instanceof BadDataError);
    assert.match(e.message, /bad\.jsonl:2: missing_field/);
    assert.match(e.message, /bad\.jsonl:9: prompt_too_long: prompt is 8 tokens/);
    return true;
  });
});

test('SFT prompt/completion: BOS once, EOS once, labels only on the completion', async () => {
  const tok = new ByteTokenizer();
  const d = await loadSftData(fx('sft-prompt-completion.jsonl'));
  const r = tokenizeSft(tok, d.examples[0]!);
  if (!r.ok) return assert.fail(r.message);
  const prompt = [BOS, ...bytes("Translate 'chat':")];
  assert.deepEqual(r.row.ids, [...prompt, ...bytes(' cat'), EOS]);
  assert.deepEqual([...r.row.trained], [...prompt.map(() => 0), 1, 1, 1, 1, 1]);
  // completion_only_loss false: the prompt is trained too (TRL).
  const both = tokenizeSft(tok, d.examples[0]!, { completionOnlyLoss: false });
  if (!both.ok) return assert.fail(both.message);
  assert.ok(both.row.trained.every((x) => x === 1));
});

test('SFT messages: assistant_only_loss trains only assistant turns, up to and including <|im_end|>', async () => {
  const tok = new ByteTokenizer();
  const d = await loadSftData(fx('sft-messages.jsonl'));
  // TRL's default (assistant_only_loss false): every token is trained.
  const all = tokenizeSft(tok, d.examples[0]!);
  if (!all.ok) return assert.fail(all.message);
  assert.ok(all.row.trained.every((x) => x === 1));
  const r = tokenizeSft(tok, d.examples[0]!, { assistantOnlyLoss: true });
  if (!r.ok) return assert.fail(r.message);
  const { ids, trained } = r.row;
  assert.equal(tok.decode(ids), '<|bos|>' + tok.applyChatTemplate((d.examples[0] as { messages: ChatMessage[] }).messages));
  assert.equal(count(ids, BOS), 1);
  assert.equal(count(ids, EOS), 0);
  const trainedIds = ids.filter((_, i) => trained[i] === 1);
  assert.equal(tok.decode(trainedIds), 'Hello!<|im_end|>Goodbye!<|im_end|>');
  // Truncating into the first assistant turn keeps only its start trained; nothing left → bad row.
  const cut = tokenizeSft(tok, d.examples[0]!, { maxLength: 45, assistantOnlyLoss: true });
  if (!cut.ok) return assert.fail(cut.message);
  assert.equal(cut.row.truncated, true);
  assert.ok(tok.decode(cut.row.ids.filter((_, i) => cut.row.trained[i] === 1)).startsWith('Hel'));
  const none = tokenizeSft(tok, d.examples[0]!, { maxLength: 20, assistantOnlyLoss: true });
  assert.equal(none.ok, false);
  if (!none.ok) assert.equal(none.reason, 'no_trained_tokens');
});

// ---------------------------------------------------------------------------------------------
// The same invariants on real tokenizers.

function checkPairInvariants(tok: Tokenizer, p: TokenizedPair, maxLength: number | undefined, where: string): void {
  if (tok.bosId !== null && tok.addsBosByDefault) {
    assert.equal(p.promptIds[0], tok.bosId, `${where}: prompt starts with BOS`);
    assert.notEqual(p.promptIds[1], tok.bosId, `${where}: BOS twice`);
  }
  for (const [name, ids, cut] of [
    ['chosen', p.chosenIds, p.chosenTruncated],
    ['rejected', p.rejectedIds, p.rejectedTruncated],
  ] as const) {
    assert.ok(ids.length > 0, `${where}: ${name} empty`);
    if (tok.bosId !== null && tok.bosId !== tok.eosId) assert.equal(count(ids, tok.bosId), 0, `${where}: BOS in ${name}`);
    if (!cut) {
      assert.ok(tok.stopIds.includes(ids[ids.length - 1]!), `${where}: ${name} does not end with a stop token`);
      assert.equal(ids.filter((x) => tok.stopIds.includes(x)).length, 1, `${where}: ${name} has more than one stop token`);
    }
    if (maxLength !== undefined) assert.ok(pairRowLength(p, name) <= maxLength, `${where}: ${name} over max_length`);
  }
}

async function realTokenizers(): Promise<{ name: string; tok: Tokenizer }[]> {
  const out: { name: string; tok: Tokenizer }[] = [];
  const { loadTokenizer } = await import('../src/io/tokenizers/index.js');
  if (existsSync(TOK512)) out.push({ name: 'tok512', tok: await loadTokenizer(TOK512) });
  // Real Hugging Face tokenizer.json files with chat templates (Llama-3 style and ChatML), built
  // by test/fixtures/tokenizers/make-fixtures.mjs.
  for (const name of ['llama3-mini', 'chatml-mini']) {
    out.push({ name, tok: await loadTokenizer(new URL(`../../test/fixtures/tokenizers/${name}`, import.meta.url).pathname) });
  }
  const env = process.env.DPO_TEST_TOKENIZER;
  if (env) out.push({ name: env, tok: await loadTokenizer(env) });
  return out;
}

test('real tokenizers on hh-rlhf: BOS/EOS exactly once, within max_length', async (t) => {
  const toks = await realTokenizers();
  if (toks.length === 0) return t.skip(`no real tokenizer (${TOK512} absent, DPO_TEST_TOKENIZER unset)`);
  const d = await loadPreferenceData(HH, { onBadRow: 'skip', limit: 300 });
  for (const { name, tok } of toks) {
    for (const mode of ['keep_end', 'keep_start'] as const) {
      const opts = { maxLength: 192, maxPromptLength: 128, truncationMode: mode, onBadRow: 'skip' as const };
      const { pairs, summary } = tokenizePreferenceData(tok, d.examples, opts);
      assert.equal(summary.kept + summary.dropped, 300);
      assert.ok(summary.promptTruncated > 0, `${name}: some hh-rlhf prompts exceed 128 tokens`);
      for (const p of pairs) checkPairInvariants(tok, p, 192, `${name} ${mode} ${p.loc.line}`);
    }
  }
});

test('real tokenizers with chat templates (fixtures, and DPO_TEST_TOKENIZER when set): conversational fixtures', async (t) => {
  const toks = (await realTokenizers()).filter((x) => x.tok.chatTemplate !== null);
  if (toks.length === 0) return t.skip('the tokenizer has no chat template');
  for (const file of ['conversational.jsonl', 'openai.jsonl', 'implicit-messages.jsonl']) {
    const d = await loadPreferenceData(fx(file));
    for (const { name, tok } of toks) {
      const { pairs } = tokenizePreferenceData(tok, d.examples);
      for (const p of pairs) checkPairInvariants(tok, p, undefined, `${name} ${file}:${p.loc.line}`);
    }
  }
});
