// SentencePiece tokenizer.model support: the fixture sp-mini was trained by the real sentencepiece
// library with Llama-2's settings and its golden encodings were made by that library
// (test/fixtures/tokenizers/make-sp-fixture.py). Ours must reproduce them exactly; around
// user-defined symbols the expected ids are transformers' (legacy) ones, which encode each text
// segment between special tokens on its own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadTokenizer, readSentencePieceModel, tokenizerGgufMetadata } from '../src/io/tokenizers/index.js';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'fixtures', 'tokenizers', 'sp-mini');
interface Golden { vocab_size: number; cases: { text: string; ids: number[]; decoded: string; ids_transformers?: number[] }[] }
const golden = JSON.parse(readFileSync(join(dir, 'golden.json'), 'utf8')) as Golden;

test('tokenizer.model: encodings and decodings equal the sentencepiece library\'s', async () => {
  const tok = await loadTokenizer(dir);
  assert.equal(tok.vocabSize, golden.vocab_size);
  assert.equal(tok.bosId, 1);
  assert.equal(tok.eosId, 2);
  assert.equal(tok.addsBosByDefault, true);
  assert.ok(tok.isSpecial(1) && tok.isSpecial(2) && !tok.isSpecial(300));
  for (const c of golden.cases) {
    assert.deepEqual(tok.encode(c.text, { addBos: false }), c.ids_transformers ?? c.ids, `encode ${JSON.stringify(c.text)}`);
    assert.equal(tok.decode(c.ids, { skipSpecialTokens: true }), c.decoded, `decode ${JSON.stringify(c.text)}`);
  }
  const hi = golden.cases.find((c) => c.text === 'the quick brown fox')!;
  assert.deepEqual(tok.encode(hi.text), [1, ...hi.ids], 'BOS by default (add_bos_token), once');
  assert.deepEqual(tok.encode(`<s>${hi.text}`), [1, ...hi.ids], 'a text starting with <s> gets no second BOS');
});

test('tokenizer.model: pieces, scores and types are read; GGUF metadata is the llama (SentencePiece) kind', () => {
  const m = readSentencePieceModel(readFileSync(join(dir, 'tokenizer.model')));
  assert.equal(m.pieces.length, 400);
  assert.equal(m.modelType, 2);
  assert.equal(m.byteFallback, true);
  assert.deepEqual([m.unkId, m.bosId, m.eosId, m.padId], [0, 1, 2, -1]);
  assert.deepEqual(m.pieces.slice(0, 4).map((p) => [p.piece, p.type]), [['<unk>', 2], ['<s>', 3], ['</s>', 3], ['<|user|>', 4]]);
  assert.equal(m.pieces[4]!.piece, '<0x00>');
  assert.equal(m.pieces[4]!.type, 6);
  assert.equal(m.normalizerName, 'identity');
  assert.equal(m.addDummyPrefix, true);
  assert.equal(m.removeExtraWhitespaces, false);
  // Normal pieces carry decreasing scores (the merge order).
  const normal = m.pieces.filter((p) => p.type === 1);
  assert.ok(normal.length > 100 && normal.every((p, i) => i === 0 || p.score <= normal[i - 1]!.score));
});

test('tokenizer.model: GGUF metadata keeps SentencePiece scores and types', async () => {
  const meta = tokenizerGgufMetadata(await loadTokenizer(dir));
  assert.equal(meta.model, 'llama');
  assert.equal(meta.tokens[259], '<0xFF>');
  assert.deepEqual(meta.tokenTypes!.slice(0, 5), [2, 3, 3, 4, 6]);
});

/** A protobuf ModelProto with the given pieces and model_type, for error cases. */
function modelProto(pieces: string[], modelType: number): Uint8Array {
  const bytes: number[] = [];
  const varint = (v: number) => {
    while (v >= 0x80) {
      bytes.push((v & 0x7f) | 0x80);
      v = Math.floor(v / 128);
    }
    bytes.push(v);
  };
  for (const p of pieces) {
    const s = Buffer.from(p, 'utf8');
    varint((1 << 3) | 2);
    varint(s.length + 2);
    varint((1 << 3) | 2);
    varint(s.length);
    bytes.push(...s);
  }
  varint((2 << 3) | 2);
  varint(2);
  varint((3 << 3) | 0);
  varint(modelType);
  return Uint8Array.from(bytes);
}

test('tokenizer.model: Unigram models, truncated files and junk give errors naming the file', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'dpo-sp-'));
  try {
    writeFileSync(join(tmp, 'tokenizer.model'), modelProto(['<unk>', '<s>', '</s>', 'a'], 1));
    await assert.rejects(loadTokenizer(tmp), /tokenizer\.model: a SentencePiece Unigram model; only BPE models/);
    const full = readFileSync(join(dir, 'tokenizer.model'));
    writeFileSync(join(tmp, 'tokenizer.model'), full.subarray(0, 1000));
    await assert.rejects(loadTokenizer(tmp), /tokenizer\.model: .*(runs past the end|truncated).*is this a SentencePiece tokenizer\.model\?/);
    writeFileSync(join(tmp, 'tokenizer.model'), Buffer.from('{"not": "protobuf"}'));
    await assert.rejects(loadTokenizer(tmp), /tokenizer\.model: .*is this a SentencePiece tokenizer\.model\?/);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
