// llama2.c tokenizer .bin: the real stories260K tok512.bin (test/fixtures) and a
// synthetic file built here, both checked against a line-by-line transcription of run.c's encode.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Llama2cTokenizer, loadLlama2cTokenizer, loadTokenizer, tokenizerGgufMetadata } from '../src/io/tokenizers/index.js';
import { buildLlama2cBin } from './helpers/llama2c-bin.js';
import { mulberry32 as rng } from './helpers/rng.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
import { TOK512 as tok512 } from './helpers/fixtures.js';

/** run.c's encode(), transcribed: a linear rescan for the best pair after every merge. */
function referenceEncode(pieces: Uint8Array[], scores: Float32Array, text: string, bos: boolean): number[] {
  const key = (b: Uint8Array) => Buffer.from(b).toString('latin1');
  const lookup = new Map<string, number>();
  pieces.forEach((p, i) => {
    if (!lookup.has(key(p))) lookup.set(key(p), i);
  });
  const tokens: number[] = [];
  if (bos) tokens.push(1);
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length > 0) tokens.push(lookup.get(' ')!);
  let buf: number[] = [];
  for (let i = 0; i < bytes.length; i++) {
    if ((bytes[i]! & 0xc0) !== 0x80) buf = [];
    buf.push(bytes[i]!);
    if (i + 1 < bytes.length && (bytes[i + 1]! & 0xc0) === 0x80 && buf.length < 4) continue;
    const id = lookup.get(Buffer.from(buf).toString('latin1'));
    if (id !== undefined) tokens.push(id);
    else for (const b of buf) tokens.push(b + 3);
    buf = [];
  }
  for (;;) {
    let bestScore = -1e10;
    let bestId = -1;
    let bestIdx = -1;
    for (let i = 0; i < tokens.length - 1; i++) {
      const id = lookup.get(key(pieces[tokens[i]!]!) + key(pieces[tokens[i + 1]!]!));
      if (id !== undefined && scores[id]! > bestScore) {
        bestScore = scores[id]!;
        bestId = id;
        bestIdx = i;
      }
    }
    if (bestIdx === -1) break;
    tokens.splice(bestIdx, 2, bestId);
  }
  return tokens;
}

function randomText(next: () => number, alphabet: string[], length: number): string {
  let s = '';
  for (let i = 0; i < length; i++) s += alphabet[Math.floor(next() * alphabet.length)];
  return s;
}

test('tok512.bin: "Once upon a time" encodes to the ids read off the file, and back', async () => {
  const tok = await loadLlama2cTokenizer(tok512);
  assert.equal(tok.vocabSize, 512);
  assert.equal(tok.maxTokenLength, 7);
  // From the file: 403 " Once" (-144), 407 " upon" (-148), 261 " a" (-2), 378 " time" (-119).
  // " Once" is reachable: " O"(319, -60) → " On"(321, -62), "ce"(331, -72), then " On"+"ce";
  // " upon": "on"(289, -30), " u"(318, -59), " up"(350, -91), then " up"+"on";
  // " time": " t"(259, 0), "im"(288, -29), "ime"(369, -110), then " t"+"ime".
  assert.deepEqual(tok.encode('Once upon a time'), [1, 403, 407, 261, 378]);
  assert.deepEqual(tok.encode('Once upon a time', { addBos: false }), [403, 407, 261, 378]);
  // decode drops the dummy-prefix space only right after BOS, as run.c's decode does.
  assert.equal(tok.decode([1, 403, 407, 261, 378]), '<s>Once upon a time');
  assert.equal(tok.decode([1, 403, 407, 261, 378], { skipSpecialTokens: true }), 'Once upon a time');
  assert.equal(tok.decode([403, 407]), ' Once upon');
  assert.equal(tok.decode([1, 403, 2], { skipSpecialTokens: true }), 'Once');
  // BOS never twice: a text that starts with "<s>" starts with BOS.
  assert.deepEqual(tok.encode('<s>Once upon a time'), [1, 403, 407, 261, 378]);
  assert.deepEqual(tok.encode(''), [1]);
  assert.deepEqual(tok.stopIds, [2]);
  assert.equal(tok.padId, 2);
  assert.equal(tok.addsBosByDefault, true);
});

test('tok512.bin: byte fallback (+3) for codepoints outside the vocabulary, lossless decode', async () => {
  const tok = await loadTokenizer(tok512);
  // "☃" (E2 98 83) is not a piece: three byte tokens 0xE2+3, 0x98+3, 0x83+3. "é" is piece 485.
  const ids = tok.encode('☃é', { addBos: false });
  assert.deepEqual(ids, [410, 0xe2 + 3, 0x98 + 3, 0x83 + 3, 485]);
  const text = 'Lily saw a ☃ and said: "Olé — 𝄞 café!"\nThe end.';
  assert.equal(tok.decode(tok.encode(text), { skipSpecialTokens: true }), text);
});

test('tok512.bin: heap encode equals run.c\'s rescan encode on random texts', async () => {
  const tok = await loadLlama2cTokenizer(tok512);
  const next = rng(512);
  const alphabet = [...'abcdefghilmnoprstuwy        .,!"\'ThOLS', 'é', '☃', '\n', 'ñ', '—'];
  for (let trial = 0; trial < 150; trial++) {
    const text = randomText(next, alphabet, 1 + Math.floor(next() * 60));
    assert.deepEqual(tok.encode(text), referenceEncode([...tok.pieces], tok.scores, text, true), JSON.stringify(text));
  }
  const story = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball.';
  assert.deepEqual(tok.encode(story), referenceEncode([...tok.pieces], tok.scores, story, true));
  assert.equal(tok.decode(tok.encode(story)), '<s>' + story);
});

test('tok512.bin GGUF metadata: SentencePiece pieces, scores, llama.cpp token types', async () => {
  const meta = tokenizerGgufMetadata(await loadLlama2cTokenizer(tok512));
  assert.equal(meta.model, 'llama');
  assert.equal(meta.tokens.length, 512);
  assert.deepEqual(meta.tokens.slice(0, 4), ['<unk>', '<s>', '</s>', '<0x00>']);
  assert.equal(meta.tokens[259], '▁t');
  assert.equal(meta.tokens[403], '▁Once');
  assert.deepEqual(meta.tokenTypes!.slice(0, 4), [2, 3, 3, 6]);
  assert.equal(meta.tokenTypes![258], 6);
  assert.equal(meta.tokenTypes![259], 1);
  assert.equal(meta.scores![260], -1);
  assert.equal(meta.scores![403], -144);
  assert.equal(meta.bosId, 1);
  assert.equal(meta.eosId, 2);
  assert.equal(meta.padId, undefined);
  assert.equal(meta.addBos, true);
  assert.equal(meta.merges, undefined);
});

test('synthetic llama2.c vocabulary: ties go to the leftmost pair, equal to run.c', () => {
  // Equal scores for "ab" and "bc": in "abc" run.c merges the leftmost pair first → "ab" + "c".
  const pieces: [string, number][] = [
    [' ', -1], ['a', -2], ['b', -3], ['c', -4], ['é', -5],
    ['ab', 5], ['bc', 5], ['abc', 1], [' a', 2], [' ab', 7], ['ca', 3], ['cab', 4], ['é ', 6], [' é', 6],
  ];
  const tok = new Llama2cTokenizer(buildLlama2cBin(pieces), 'synthetic.bin');
  const id = (p: string) => 259 + pieces.findIndex(([s]) => s === p);
  assert.deepEqual(tok.encode('bc', { addBos: false }), [id(' '), id('bc')]);
  // " abc": " a"(2) loses to "ab"(5) and "bc"(5); "ab" is left of "bc" → " ","ab","c" → " ab"(7) + "c".
  assert.deepEqual(tok.encode('abc', { addBos: false }), [id(' ab'), id('c')]);
  const next = rng(7);
  const alphabet = ['a', 'b', 'c', ' ', 'é', 'x', '☃'];
  for (let trial = 0; trial < 300; trial++) {
    const text = randomText(next, alphabet, 1 + Math.floor(next() * 40));
    const ids = tok.encode(text);
    assert.deepEqual(ids, referenceEncode([...tok.pieces], tok.scores, text, true), JSON.stringify(text));
    assert.equal(tok.decode(ids, { skipSpecialTokens: true }), text);
  }
});

test('llama2.c .bin: clear errors for truncated or malformed files', async () => {
  const good = buildLlama2cBin([[' ', -1]]);
  assert.throws(() => new Llama2cTokenizer(good.subarray(0, good.length - 1), 'cut.bin'), /cut\.bin: token 259 has length 1, past the end/);
  assert.throws(() => new Llama2cTokenizer(buildLlama2cBin([]), 'nospace.bin'), /no " " token/);
  const small = Buffer.from(good);
  small.writeInt32LE(4, 0); // max_token_length below the 6-byte "<0x00>"
  assert.throws(() => new Llama2cTokenizer(small, 'max.bin'), /above max_token_length 4/);
  assert.throws(() => new Llama2cTokenizer(good, 'ok.bin').decode([999]), /ids\[0\] = 999/);
  await assert.rejects(loadLlama2cTokenizer('/nonexistent/tok.bin'), /cannot read \/nonexistent\/tok\.bin/);
  // loadTokenizer on a real file path reads the same bytes.
  if (existsSync(tok512)) {
    const a = await loadTokenizer(tok512);
    const b = new Llama2cTokenizer(await readFile(tok512));
    assert.deepEqual(a.encode('Lily'), b.encode('Lily'));
  }
});
