// Byte-level BPE training: lossless round trips, determinism, the incremental pair counts against
// a recount-everything reference, saving a loadable tokenizer directory, GGUF metadata.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  HfTokenizer,
  loadTokenizer,
  saveTokenizerFiles,
  tokenizerFromJson,
  tokenizerGgufMetadata,
  trainByteLevelBpe,
} from '../src/io/tokenizers/index.js';
import { BYTE_TO_UNICODE, GPT2_SPLIT_PATTERN, toByteLevel } from '../src/io/tokenizers/bytelevel.js';
import { mulberry32 as rng } from './helpers/rng.js';

const WORDS = ['the', 'cat', 'sat', 'on', 'a', 'mat', 'and', 'dog', 'ran', 'to', 'park', 'Lily', 'happy', "didn't", 'café',
  'naïve', '東京', '42', '3.14', 'hello', 'world', 'it\'s', 'ok', '!', '?', ',', '—', '🙂', 'then', 'there', 'theme'];

function corpus(seed: number, n: number): string[] {
  const next = rng(seed);
  const texts: string[] = [];
  for (let i = 0; i < n; i++) {
    const len = 3 + Math.floor(next() * 25);
    const words: string[] = [];
    for (let j = 0; j < len; j++) words.push(WORDS[Math.floor(next() * next() * WORDS.length)]!);
    const sep = next() < 0.1 ? '\n\n' : next() < 0.05 ? '<|endoftext|>' : ' ';
    texts.push(words.join(' ') + (next() < 0.5 ? '.' : '') + sep + (next() < 0.3 ? '  indented\ttab\r\n' : ''));
  }
  return texts;
}

/** Reference BPE trainer: recounts every pair of every word before each merge. */
function referenceMerges(texts: string[], vocabSize: number, specials: string[], minFrequency: number): string[] {
  const counts = new Map<string, number>();
  for (const text of texts) {
    let parts = [text];
    for (const s of specials) parts = parts.flatMap((p) => p.split(s));
    for (const part of parts) for (const m of part.matchAll(GPT2_SPLIT_PATTERN)) counts.set(m[0], (counts.get(m[0]) ?? 0) + 1);
  }
  const idOf = new Map<string, number>();
  const names: string[] = [...specials];
  specials.forEach((s, i) => idOf.set(s, i));
  for (const ch of [...BYTE_TO_UNICODE].sort((x, y) => x.codePointAt(0)! - y.codePointAt(0)!)) {
    idOf.set(ch, names.length);
    names.push(ch);
  }
  const words = [...counts].map(([w, c]) => ({ syms: Array.from(toByteLevel(w), (ch) => idOf.get(ch)!), c }));
  const merges: string[] = [];
  while (names.length < vocabSize) {
    const pairs = new Map<string, number>();
    for (const { syms, c } of words) for (let i = 0; i + 1 < syms.length; i++) pairs.set(`${syms[i]},${syms[i + 1]}`, (pairs.get(`${syms[i]},${syms[i + 1]}`) ?? 0) + c);
    let best: [number, number, number] | null = null;
    for (const [k, c] of pairs) {
      const [a, b] = k.split(',').map(Number) as [number, number];
      if (!best || c > best[2] || (c === best[2] && (a < best[0] || (a === best[0] && b < best[1])))) best = [a, b, c];
    }
    if (!best || best[2] < minFrequency) break;
    const [a, b] = best;
    const merged = names[a]! + names[b]!;
    let id = idOf.get(merged);
    if (id === undefined) {
      id = names.length;
      names.push(merged);
      idOf.set(merged, id);
    }
    merges.push(`${names[a]} ${names[b]}`);
    for (const w of words) {
      const out: number[] = [];
      for (let i = 0; i < w.syms.length; i++) {
        if (i + 1 < w.syms.length && w.syms[i] === a && w.syms[i + 1] === b) {
          out.push(id);
          i++;
        } else out.push(w.syms[i]!);
      }
      w.syms = out;
    }
  }
  return merges;
}

const SPECIALS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'];

test('trained tokenizer: loads in @huggingface/tokenizers, lossless on training and unseen text', () => {
  const texts = corpus(1, 3000);
  const json = trainByteLevelBpe(texts, { vocabSize: 360, specialTokens: SPECIALS, minFrequency: 2 });
  const vocab = json.model.vocab as Record<string, number>;
  assert.equal(Object.keys(vocab).length, 360);
  assert.equal(json.model.merges!.length, 360 - 256 - SPECIALS.length);
  assert.deepEqual(json.added_tokens!.map((t) => [t.id, t.content]), SPECIALS.map((s, i) => [i, s]));
  const tok = tokenizerFromJson(json, { eos_token: '<|endoftext|>' });
  assert.equal(tok.vocabSize, 360);
  let bytes = 0;
  let ids = 0;
  for (const t of texts) {
    const e = tok.encode(t);
    assert.equal(tok.decode(e), t);
    bytes += Buffer.byteLength(t);
    ids += e.length;
  }
  // Learnt merges compress: well under one token per byte.
  assert.ok(bytes / ids > 2.5, `bytes per token ${bytes / ids}`);
  const unseen = 'Zebra ×÷ 𝄞 \u0000\u0007 ÿ \r\n\t  mixed 東京タワー <|im_start|>user\nhi<|im_end|>';
  assert.equal(tok.decode(tok.encode(unseen)), unseen);
  // Special tokens are single ids and never learnt from.
  assert.deepEqual(tok.encode('<|im_start|>'), [1]);
  assert.ok(!json.model.merges!.some((m) => (m as string).includes('<|')));
  assert.equal(tok.eosId, 0);
  assert.deepEqual(tok.stopIds, [0, 2]); // <|im_end|> is an end-of-turn marker
});

test('trainer: incremental pair counts give the same merges as recounting every pair', () => {
  const texts = corpus(2, 400);
  for (const [vocabSize, minFrequency] of [[420, 2], [340, 1], [700, 5]] as const) {
    const json = trainByteLevelBpe(texts, { vocabSize, specialTokens: SPECIALS, minFrequency });
    assert.deepEqual(json.model.merges, referenceMerges(texts, vocabSize, SPECIALS, minFrequency), `vocabSize ${vocabSize} minFrequency ${minFrequency}`);
  }
});

test('trainer: deterministic, minFrequency stops early, input validated', () => {
  const texts = corpus(3, 500);
  const a = JSON.stringify(trainByteLevelBpe(texts, { vocabSize: 400, specialTokens: SPECIALS, minFrequency: 2 }));
  const b = JSON.stringify(trainByteLevelBpe(corpus(3, 500), { vocabSize: 400, specialTokens: SPECIALS, minFrequency: 2 }));
  assert.equal(a, b);
  // Any iterable works (a generator here) and gives the same result.
  const gen = function* () {
    yield* texts;
  };
  assert.equal(JSON.stringify(trainByteLevelBpe(gen(), { vocabSize: 400, specialTokens: SPECIALS, minFrequency: 2 })), a);
  const rare = trainByteLevelBpe(['abab abab', 'xyz'], { vocabSize: 1000, specialTokens: [], minFrequency: 2 });
  // Only pairs seen at least twice: "a b" (×4, in two words), then "ab ab", "Ġ ab"... stops before 1000.
  assert.ok(rare.model.merges!.length < 10);
  assert.ok(!rare.model.merges!.includes('x y'));
  assert.throws(() => trainByteLevelBpe(texts, { vocabSize: 200, specialTokens: SPECIALS }), /vocabSize 200 must be.*259/);
  assert.throws(() => trainByteLevelBpe(texts, { vocabSize: 300, specialTokens: ['<a>', '<a>'] }), /duplicate special tokens/);
  assert.throws(() => trainByteLevelBpe([1 as unknown as string], { vocabSize: 300 }), /texts\[0\] is number/);
});

test('saveTokenizerFiles → loadTokenizer: same ids, special tokens, chat template', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dpo-tok-'));
  try {
    const texts = corpus(4, 800);
    const json = trainByteLevelBpe(texts, { vocabSize: 500, specialTokens: SPECIALS });
    const template = "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
    await saveTokenizerFiles(dir, json, { bos: null, eos: '<|endoftext|>', pad: '<|endoftext|>', chatTemplate: template });
    const tok = (await loadTokenizer(dir)) as HfTokenizer;
    assert.ok(tok instanceof HfTokenizer);
    const mem = tokenizerFromJson(json, { eos_token: '<|endoftext|>' });
    for (const t of texts.slice(0, 100)) assert.deepEqual(tok.encode(t), mem.encode(t));
    assert.equal(tok.bosId, null);
    assert.equal(tok.eosId, 0);
    assert.equal(tok.padId, 0);
    assert.equal(tok.padIsExplicit, true);
    assert.equal(tok.addsBosByDefault, false);
    assert.deepEqual(tok.stopIds, [0, 2]);
    assert.throws(() => tok.encode('x', { addBos: true }), /no BOS token/);
    const chat = tok.applyChatTemplate([{ role: 'user', content: 'the cat' }], { addGenerationPrompt: true });
    assert.equal(chat, '<|im_start|>user\nthe cat<|im_end|>\n<|im_start|>assistant\n');
    assert.equal(tok.decode(tok.encode(chat)), chat);
    const config = JSON.parse(await readFile(join(dir, 'tokenizer_config.json'), 'utf8'));
    assert.equal(config.eos_token, '<|endoftext|>');
    assert.equal(config.clean_up_tokenization_spaces, false);
    assert.equal(config.added_tokens_decoder['2'].content, '<|im_end|>');
    const map = JSON.parse(await readFile(join(dir, 'special_tokens_map.json'), 'utf8'));
    assert.deepEqual(map, { eos_token: '<|endoftext|>', pad_token: '<|endoftext|>' });
    await assert.rejects(saveTokenizerFiles(dir, json, { bos: null, eos: '<eos>' }), /eos token "<eos>" is not in the tokenizer's vocabulary/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('GGUF metadata of a trained tokenizer: gpt2 model and pre-tokenizer, merges, control tokens', () => {
  const json = trainByteLevelBpe(corpus(5, 300), { vocabSize: 320, specialTokens: SPECIALS });
  const tok = tokenizerFromJson(json, { bos_token: '<|endoftext|>', eos_token: '<|endoftext|>' });
  const meta = tokenizerGgufMetadata(tok);
  assert.equal(meta.model, 'gpt2');
  assert.equal(meta.pre, 'gpt-2');
  assert.equal(meta.tokens.length, 320);
  assert.deepEqual(meta.tokens.slice(0, 3), SPECIALS);
  assert.deepEqual(meta.tokenTypes!.slice(0, 4), [3, 3, 3, 1]);
  assert.deepEqual(meta.merges, json.model.merges);
  assert.equal(meta.bosId, 0);
  assert.equal(meta.eosId, 0);
  assert.equal(meta.addBos, false);
  assert.equal(meta.scores, undefined);
});
