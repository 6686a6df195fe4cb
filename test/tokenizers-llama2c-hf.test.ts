// llama2.c tokenizer → Hugging Face tokenizer.json: the generated files, run by
// @huggingface/tokenizers (through loadTokenizer / HfTokenizer), must encode exactly like the
// llama2.c tokenizer, and `dpo convert` must give a directory that generates the same story.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { convertModel } from '../src/io/convert.js';
import { HfTokenizer, Llama2cTokenizer, loadLlama2cTokenizer, loadTokenizer, tokenizerGgufMetadata } from '../src/io/tokenizers/index.js';
import { llama2cToTokenizerJson, saveLlama2cTokenizerAsHf } from '../src/io/tokenizers/llama2c-hf.js';
import { generate } from '../src/models/generate.js';
import { loadModelAndTokenizer } from '../src/io/load-model.js';
import { buildLlama2cBin } from './helpers/llama2c-bin.js';
import { Rng } from './helpers/rng.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
import { TOK512 as tok512, STORIES260K as stories260K } from './helpers/fixtures.js';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'dpo-llama2c-hf-'));
}

/** Random text over an alphabet, without the added-token strings (see llama2c-hf.ts). */
function randomText(rng: Rng, alphabet: readonly string[], length: number): string {
  let s = '';
  for (let i = 0; i < length; i++) s += rng.pick(alphabet);
  return s.replaceAll('<s>', '<t>').replaceAll('</s>', '</t>').replaceAll('<unk>', '<unc>');
}

/** Encodes and decodes texts with both tokenizers and insists on identical results. */
function assertSameTokenizer(ref: Llama2cTokenizer, hf: HfTokenizer, texts: readonly string[]): void {
  for (const text of texts) {
    const want = ref.encode(text);
    const got = hf.encode(text);
    assert.deepEqual(got, want, `encode ${JSON.stringify(text)}`);
    assert.deepEqual(hf.encode(text, { addBos: false }), ref.encode(text, { addBos: false }), `encode without BOS ${JSON.stringify(text)}`);
    const decoded = hf.decode(got, { skipSpecialTokens: true });
    assert.equal(decoded, ref.decode(want, { skipSpecialTokens: true }), `decode ${JSON.stringify(text)}`);
    // A leading "<s>" is the BOS token in both, so it does not come back as text.
    const body = text.startsWith('<s>') ? text.slice(3) : text;
    assert.equal(decoded, body);
    // With the BOS text kept, Hugging Face's Llama decoder (like transformers') keeps the dummy-prefix
    // space after "<s>", which run.c's decode drops.
    if (body.length > 0) assert.equal(hf.decode(got), `<s> ${body}`);
  }
}

test('tok512.bin → tokenizer.json: 500 random texts encode and decode exactly like llama2.c', async () => {
  const ref = await loadLlama2cTokenizer(tok512);
  const dir = tempDir();
  try {
    await saveLlama2cTokenizerAsHf(dir, ref, { modelMaxLength: 512 });
    const hf = await loadTokenizer(dir);
    assert.ok(hf instanceof HfTokenizer, 'loadTokenizer(dir) reads tokenizer.json');
    assert.equal(hf.vocabSize, 512);
    assert.equal(hf.bosId, 1);
    assert.equal(hf.eosId, 2);
    assert.deepEqual(hf.stopIds, [2]);
    assert.equal(hf.padId, 2);
    assert.equal(hf.padIsExplicit, false);
    assert.equal(hf.addsBosByDefault, true);
    assert.equal(hf.unkToken, '<unk>');
    assert.equal(hf.idToToken(403), '▁Once');
    assert.equal(hf.idToToken(3 + 0xe2), '<0xE2>');

    // Letters (most of them in merged pieces), runs of spaces, punctuation, digits, newlines and tabs,
    // accented letters that are pieces, and characters that need byte fallback (2-, 3- and 4-byte).
    const alphabet = [
      ...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ',
      ...'      ', ...'.,!?;:\'"()-<>/[]|~\\%', ...'0123456789', '\n', '\n', '\t',
      'é', 'â', '€', '™', 'ñ', 'ü', 'ß', '☃', '中', '文', 'Ω', '𝄞', '😀', '—', '\u200a',
      ' the', ' was', ' Lily', 'Once upon a time', ' said', 'ing', ' and',
    ];
    const rng = new Rng(20240501);
    const texts = ['', ' ', '  ', '\n', 'a', 'Once upon a time, there was a little girl named Lily.', '<s>Lily', '  leading and trailing  '];
    while (texts.length < 500) texts.push(randomText(rng, alphabet, 1 + rng.int(0, 80)));
    assertSameTokenizer(ref, hf as HfTokenizer, texts);

    // transformers reads these side files; the values here are what a Llama-2 directory holds.
    const config = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8'));
    assert.equal(config.bos_token, '<s>');
    assert.equal(config.eos_token, '</s>');
    assert.equal(config.unk_token, '<unk>');
    assert.equal(config.add_bos_token, true);
    assert.equal(config.model_max_length, 512);
    assert.equal(config.added_tokens_decoder['1'].content, '<s>');
    const map = JSON.parse(readFileSync(join(dir, 'special_tokens_map.json'), 'utf8'));
    assert.equal(map.eos_token.content, '</s>');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tok512.bin → tokenizer.json: Llama-2 layout, merges ranked by the merged piece\'s score', async () => {
  const ref = await loadLlama2cTokenizer(tok512);
  const json = llama2cToTokenizerJson(ref);
  const model = json.model;
  assert.equal(model.type, 'BPE');
  assert.equal(model.byte_fallback, true);
  assert.equal(model.fuse_unk, true);
  assert.equal(model.unk_token, '<unk>');
  assert.equal(json.pre_tokenizer, null);
  assert.deepEqual(json.added_tokens!.map((t) => [t.id, t.content, t.special, t.normalized]), [
    [0, '<unk>', true, false],
    [1, '<s>', true, false],
    [2, '</s>', true, false],
  ]);
  const vocab = model.vocab as Record<string, number>;
  assert.equal(Object.keys(vocab).length, 512);
  assert.equal(vocab['<0x00>'], 3);
  assert.equal(vocab['▁'], 410);
  assert.equal(vocab['\u200a'], 511); // a hair space: a plain piece, not a space
  // " t" (259, score 0) is the best merge; " the" (265, -6) has two splits, " t"+"he" and " th"+"e".
  const merges = model.merges as string[];
  assert.equal(merges[0], '▁ t');
  assert.equal(merges[1], 'h e');
  assert.deepEqual(merges.filter((m) => m.replace(' ', '') === '▁the'), ['▁t he', '▁th e']);
  // Ranks follow scores: a merge never outranks one whose piece scores higher.
  const score = (m: string) => ref.scores[vocab[m.replace(' ', '')]!]!;
  for (let r = 1; r < merges.length; r++) assert.ok(score(merges[r - 1]!) >= score(merges[r]!), `merge ${r}`);
  // Every multi-character piece (not special, not a byte) is reachable by some merge.
  const made = new Set(merges.map((m) => m.replace(' ', '')));
  for (const [piece, id] of Object.entries(vocab)) {
    if (id >= 259 && Array.from(piece).length > 1) assert.ok(made.has(piece), `piece ${id} ${JSON.stringify(piece)} has a merge`);
  }
});

test('synthetic llama2.c vocabulary: non-ASCII pieces, merges across spaces, byte fallback', async () => {
  // Distinct scores (ties are the one thing a rank order cannot mirror, see llama2c-hf.ts).
  const pieces: [string, number][] = [
    [' ', -20], ['a', -21], ['b', -22], ['c', -23], ['é', -24], ['日', -25], ['本', -26], ['.', -27],
    ['ab', 5], ['bc', 4.5], ['abc', 1], [' a', 2], [' ab', 7], ['ca', 3], ['cab', 4], ['é ', 6], [' é', 6.5],
    ['日本', 8], [' 日本', 0.5], ['  ', -1], ['   ', -2], ['. ', -3], ['.é', -4],
  ];
  const ref = new Llama2cTokenizer(buildLlama2cBin(pieces), 'synthetic.bin');
  const dir = tempDir();
  try {
    await saveLlama2cTokenizerAsHf(dir, ref);
    const hf = await loadTokenizer(dir);
    assert.ok(hf instanceof HfTokenizer);
    const rng = new Rng(99);
    const alphabet = ['a', 'b', 'c', ' ', ' ', 'é', '日', '本', '.', 'x', '☃', '\n', '😀'];
    const texts = ['abc', 'ca b', ' 日本. é', 'x☃x'];
    while (texts.length < 300) texts.push(randomText(rng, alphabet, 1 + rng.int(0, 40)));
    assertSameTokenizer(ref, hf, texts);
    // The GGUF export of the Hugging Face directory keeps llama2.c's token strings and types.
    const fromBin = tokenizerGgufMetadata(ref);
    const fromDir = tokenizerGgufMetadata(hf);
    assert.equal(fromDir.model, 'llama');
    assert.deepEqual(fromDir.tokens, fromBin.tokens);
    assert.deepEqual(fromDir.tokenTypes, fromBin.tokenTypes);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('llama2cToTokenizerJson: clear errors for what tokenizer.json cannot hold', () => {
  assert.throws(() => llama2cToTokenizerJson(new Llama2cTokenizer(buildLlama2cBin([[' ', -1], ['ab', -2], ['ab', -3]]), 'dup.bin')), /dup\.bin: tokens 260 and 261 are both "ab"/);
  assert.throws(() => llama2cToTokenizerJson(new Llama2cTokenizer(buildLlama2cBin([[' ', -1], ['x\u2581', -2]]), 'bar.bin')), /bar\.bin: token 260 "x▁" contains "▁"/);
  const bad = buildLlama2cBin([[' ', -1], ['zz', -2]]);
  bad[bad.length - 1] = 0xc3; // "z" + a lone UTF-8 lead byte
  assert.throws(() => llama2cToTokenizerJson(new Llama2cTokenizer(bad, 'utf8.bin')), /utf8\.bin: token 260 is not valid UTF-8/);
});

test('dpo convert stories260K.bin: Hugging Face directory with tokenizer.json generates the same story', async () => {
  const out = join(tempDir(), 'stories260K-hf');
  try {
    await convertModel(stories260K, out);
    for (const f of ['config.json', 'model.safetensors', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) {
      assert.ok(existsSync(join(out, f)), `${f} written`);
    }
    assert.ok(!existsSync(join(out, 'tokenizer.bin')), 'no llama2.c tokenizer.bin: the standard files replace it');

    const hfDir = await loadModelAndTokenizer(out);
    assert.equal(hfDir.format, 'hf');
    assert.ok(hfDir.tokenizer instanceof HfTokenizer);
    const res = generate(hfDir.model, hfDir.tokenizer, [''], { temperature: 0, maxNewTokens: 48 });
    assert.ok(res.texts[0]!.startsWith('Once upon a time, there was a little girl named Lily.'), JSON.stringify(res.texts[0]));

    // The original checkpoint with its llama2.c tokenizer gives the same tokens and text.
    const bin = await loadModelAndTokenizer(stories260K);
    assert.ok(bin.tokenizer instanceof Llama2cTokenizer);
    const want = generate(bin.model, bin.tokenizer, [''], { temperature: 0, maxNewTokens: 48 });
    assert.deepEqual(res.tokens, want.tokens);
    assert.deepEqual(res.texts, want.texts);
  } finally {
    rmSync(dirname(out), { recursive: true, force: true });
  }
});
