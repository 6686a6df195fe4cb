// Hugging Face tokenizers (fixtures built by test/fixtures/tokenizers/make-fixtures.mjs, and the
// tiny GPT-2 directory in test/fixtures), BOS/EOS/pad/stop ids, chat templates, GGUF metadata.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  HfTokenizer,
  gpt2TokenizerJson,
  parseMergesTxt,
  loadTokenizer,
  renderChatTemplate,
  selectChatTemplate,
  tokenizerFromJson,
  tokenizerGgufMetadata,
  type TokenizerJson,
} from '../src/io/tokenizers/index.js';
import { preTokenizerName } from '../src/io/tokenizers/gguf.js';

// dist/test/x.js → repository root is two levels up.
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const fixtures = join(root, 'test', 'fixtures', 'tokenizers');
import { TINY_GPT2 as tinyGpt2 } from './helpers/fixtures.js';

const conversation = [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: '  Hello, is the sea wet?\n' },
  { role: 'assistant', content: 'Yes.' },
  { role: 'user', content: 'Why?' },
];

test('llama3-style tokenizer.json: ids, BOS from TemplateProcessing, stop ids from generation_config', async () => {
  const tok = (await loadTokenizer(join(fixtures, 'llama3-mini'))) as HfTokenizer;
  assert.ok(tok instanceof HfTokenizer);
  // 256 bytes + 25 merged tokens + 5 special tokens.
  assert.equal(tok.vocabSize, 288);
  assert.equal(tok.bosId, 283); // <|begin_of_text|>
  assert.equal(tok.eosId, 287); // tokenizer_config eos_token <|eot_id|>
  assert.deepEqual(tok.stopIds, [287, 284]); // + generation_config's <|end_of_text|>
  assert.equal(tok.padId, 287); // no pad token: falls back to EOS
  assert.equal(tok.padIsExplicit, false);
  assert.equal(tok.addsBosByDefault, true); // no add_bos_token: the post-processor decides
  // "Hello" is H+ello, "Ġyou" is Ġy+ou: the merges apply.
  assert.deepEqual(tok.encode('Hello you'), [283, 271, 274]);
  assert.deepEqual(tok.encode('Hello you', { addBos: false }), [271, 274]);
  assert.equal(tok.decode([283, 271, 274]), '<|begin_of_text|>Hello you');
  assert.equal(tok.decode([283, 271, 274], { skipSpecialTokens: true }), 'Hello you');
  assert.ok(tok.isSpecial(283) && tok.isSpecial(287) && tok.isSpecial(285) && !tok.isSpecial(271));
});

test('BOS is added once: not again when the text already starts with it', async () => {
  const tok = await loadTokenizer(join(fixtures, 'llama3-mini'));
  const prompt = tok.applyChatTemplate(conversation.slice(0, 2), { addGenerationPrompt: true });
  assert.ok(prompt.startsWith('<|begin_of_text|>'));
  for (const addBos of [undefined, true]) {
    const ids = tok.encode(prompt, addBos === undefined ? {} : { addBos });
    assert.equal(ids[0], tok.bosId);
    assert.equal(ids.filter((id) => id === tok.bosId).length, 1, `addBos=${addBos}`);
  }
  // addBos:false keeps the text's own BOS, adds none.
  const plain = tok.encode(prompt, { addBos: false });
  assert.equal(plain.filter((id) => id === tok.bosId).length, 1);
  // Empty text: BOS only, or nothing.
  assert.deepEqual(tok.encode(''), [tok.bosId]);
  assert.deepEqual(tok.encode('', { addBos: false }), []);
  // No EOS is ever appended.
  assert.notEqual(tok.encode('Hello').at(-1), tok.eosId);
});

test('Llama-3 chat template renders exactly (system message, trimmed content, generation prompt)', async () => {
  const tok = await loadTokenizer(join(fixtures, 'llama3-mini'));
  const expected =
    '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>' +
    '<|start_header_id|>user<|end_header_id|>\n\nHello, is the sea wet?<|eot_id|>' +
    '<|start_header_id|>assistant<|end_header_id|>\n\nYes.<|eot_id|>' +
    '<|start_header_id|>user<|end_header_id|>\n\nWhy?<|eot_id|>';
  assert.equal(tok.applyChatTemplate(conversation), expected);
  assert.equal(
    tok.applyChatTemplate(conversation, { addGenerationPrompt: true }),
    expected + '<|start_header_id|>assistant<|end_header_id|>\n\n',
  );
  // Round trip through ids: the markers are single special tokens, the text is lossless.
  const ids = tok.encode(expected);
  assert.equal(tok.decode(ids), expected);
  assert.equal(ids.filter((id) => id === 287).length, 4); // four <|eot_id|>
});

test('ChatML (SmolLM2) chat template renders exactly, with and without a system message', async () => {
  const tok = await loadTokenizer(join(fixtures, 'chatml-mini'));
  assert.equal(
    tok.applyChatTemplate(conversation, { addGenerationPrompt: true }),
    '<|im_start|>system\nYou are terse.<|im_end|>\n' +
      '<|im_start|>user\n  Hello, is the sea wet?\n<|im_end|>\n' +
      '<|im_start|>assistant\nYes.<|im_end|>\n' +
      '<|im_start|>user\nWhy?<|im_end|>\n' +
      '<|im_start|>assistant\n',
  );
  // No system message: the template inserts its default one. No generation prompt.
  assert.equal(
    tok.applyChatTemplate([{ role: 'user', content: 'Hi' }]),
    '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' +
      '<|im_start|>user\nHi<|im_end|>\n',
  );
});

test('ChatML tokenizer: no BOS by default, explicit pad, <|im_end|> stops, lossless round trip', async () => {
  const tok = await loadTokenizer(join(fixtures, 'chatml-mini'));
  assert.equal(tok.addsBosByDefault, false); // GPT-2 ByteLevel post-processor adds nothing
  assert.equal(tok.bosId, 1);
  assert.equal(tok.eosId, 2);
  assert.equal(tok.padId, 2);
  assert.deepEqual(tok.stopIds, [2]);
  const text = tok.applyChatTemplate(conversation, { addGenerationPrompt: true });
  const ids = tok.encode(text);
  assert.equal(ids[0], 1); // the template's own <|im_start|>, not an added BOS
  assert.equal(ids.filter((id) => id === 1).length, 5);
  assert.equal(tok.decode(ids), text);
  // Asked for BOS on text that does not start with it: added once.
  assert.deepEqual(tok.encode('Hello', { addBos: true }).slice(0, 1), [1]);
  const odd = 'tabs\tand\r\nnewlines  , é ☃ 𝄞 \u0000 end . ?';
  assert.equal(tok.decode(tok.encode(odd)), odd);
});

test('chat templates: named-template list, raise_exception, missing template', async () => {
  assert.equal(selectChatTemplate([{ name: 'tool_use', template: 'T' }, { name: 'default', template: 'D' }], 'cfg'), 'D');
  assert.throws(() => selectChatTemplate([{ name: 'tool_use', template: 'T' }], 'cfg'), /without "default".*tool_use/);
  assert.equal(selectChatTemplate(undefined, 'cfg'), null);
  const strict = "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{{ m['content'] }}{% endfor %}";
  assert.equal(renderChatTemplate(strict, [{ role: 'user', content: 'ok' }], { bosToken: null, eosToken: null, addGenerationPrompt: false }), 'ok');
  assert.throws(
    () => renderChatTemplate(strict, conversation, { bosToken: null, eosToken: null, addGenerationPrompt: false }),
    /System role not supported/,
  );
  // The list form inside a tokenizer_config.json.
  const dir = join(fixtures, 'chatml-mini');
  const { readFile } = await import('node:fs/promises');
  const json = JSON.parse(await readFile(join(dir, 'tokenizer.json'), 'utf8')) as TokenizerJson;
  const tok = tokenizerFromJson(json, {
    eos_token: '<|im_end|>',
    chat_template: [{ name: 'default', template: "{{ eos_token }}{% for m in messages %}[{{ m.role }}]{% endfor %}" }],
  });
  assert.equal(tok.applyChatTemplate([{ role: 'user', content: 'x' }]), '<|im_end|>[user]');
  const bare = tokenizerFromJson(json, { eos_token: '<|im_end|>' });
  assert.equal(bare.chatTemplate, null);
  assert.throws(() => bare.applyChatTemplate(conversation), /no chat template/);
});

test('decode rejects ids outside the vocabulary, with the id and size in the message', async () => {
  const tok = await loadTokenizer(join(fixtures, 'llama3-mini'));
  assert.throws(() => tok.decode([1, 288]), /ids\[1\] = 288.*288/);
  assert.throws(() => tok.decode([-1]), RangeError);
  assert.equal(tok.decode([]), '');
});

test('GGUF metadata of a Llama-3-style tokenizer: gpt2 model, control types for special tokens', async () => {
  const tok = await loadTokenizer(join(fixtures, 'llama3-mini'));
  const meta = tokenizerGgufMetadata(tok);
  assert.equal(meta.model, 'gpt2');
  assert.equal(meta.pre, 'llama-bpe'); // Llama 3's split regex, by llama.cpp's name
  // SmolLM's (digits one by one, then GPT-2's regex); anything unrecognized is left to llama.cpp's default.
  assert.equal(preTokenizerName({ type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: true }, { type: 'ByteLevel', use_regex: true }] }), 'smollm');
  assert.equal(preTokenizerName({ type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: '\\s+' } }, { type: 'ByteLevel', use_regex: false }] }), undefined);
  assert.equal(preTokenizerName({ type: 'ByteLevel', use_regex: false }), undefined);
  assert.equal(preTokenizerName(null), undefined);
  assert.equal(meta.tokens.length, 288);
  assert.equal(meta.tokens[283], '<|begin_of_text|>');
  assert.equal(meta.tokens[271], 'Hello');
  assert.deepEqual(meta.tokenTypes!.slice(283), [3, 3, 3, 3, 3]);
  assert.equal(meta.tokenTypes![271], 1);
  assert.equal(meta.merges!.length, 27);
  assert.equal(meta.merges![0], 'Ġ t');
  assert.equal(meta.bosId, 283);
  assert.equal(meta.eosId, 287);
  assert.equal(meta.padId, undefined);
  assert.equal(meta.addBos, true);
});

test('SentencePiece-style BPE (byte_fallback): BOS via TemplateProcessing, byte tokens, llama GGUF scores', () => {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b;
  for (const piece of ['▁', 'a', 'b', 'ab', '▁ab', '▁a']) vocab[piece] = Object.keys(vocab).length;
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const json: TokenizerJson = {
    version: '1.0',
    added_tokens: [special(0, '<unk>'), special(1, '<s>'), special(2, '</s>')],
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>' } }, { Sequence: { id: 'A' } }],
      pair: [],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: { type: 'BPE', unk_token: '<unk>', byte_fallback: true, fuse_unk: true, vocab, merges: ['a b', '▁ ab', '▁ a'] },
  };
  const tok = tokenizerFromJson(json, { bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>' });
  assert.equal(tok.addsBosByDefault, true);
  // "ab é": ▁ab, then ▁ and é as two byte tokens (0xC3, 0xA9).
  const ids = tok.encode('ab é');
  assert.deepEqual(ids, [1, vocab['▁ab'], vocab['▁'], 3 + 0xc3, 3 + 0xa9]);
  assert.equal(tok.decode(ids, { skipSpecialTokens: true }), 'ab é');
  // Text after a special token is a new section: prepend_scheme "first" adds no ▁ there (as in
  // the Rust library). BOS is still there once.
  assert.deepEqual(tok.encode('<s>ab'), [1, vocab['ab']]);

  const meta = tokenizerGgufMetadata(tok);
  assert.equal(meta.model, 'llama');
  assert.deepEqual(meta.tokenTypes!.slice(0, 4), [2, 3, 3, 6]);
  assert.equal(meta.tokenTypes![258], 6);
  const s = meta.scores!;
  // Merge results rank by merge order; tokens no merge makes sit below all of them.
  assert.equal(s[vocab['ab']!], -0);
  assert.equal(s[vocab['▁ab']!], -1);
  assert.equal(s[vocab['▁a']!], -2);
  assert.ok(s[vocab['a']!]! < -2 && s[vocab['▁']!]! < -2);
  assert.equal(s[1], 0);
});

test('GPT-2 vocab.json + merges.txt (tiny-gpt2-random): load, ids, round trip', async () => {
  const tok = (await loadTokenizer(tinyGpt2)) as HfTokenizer;
  assert.equal(tok.vocabSize, 21);
  assert.equal(tok.bosId, 20);
  assert.equal(tok.eosId, 20);
  assert.equal(tok.padId, 20);
  assert.deepEqual(tok.stopIds, [20]);
  assert.equal(tok.addsBosByDefault, false);
  // The four merges: Ġ l → Ġl → Ġlo → Ġlow, and e r → er. "Ġlowest" exists in the vocabulary but
  // no merge builds it, so BPE stops at Ġlow + e s t.
  assert.deepEqual(tok.encode(' lowest'), [14, 3, 5, 6]);
  assert.deepEqual(tok.encode('newer'), [9, 3, 2, 15]);
  // Text made only of the vocabulary's characters (l o w e r s t i d n and spaces) round-trips.
  const text = 'lowest newer wider  lower\nslow tide';
  assert.equal(tok.decode(tok.encode(text)), text.replace('\n', '<unk>'));
  const clean = 'lowest newer wider lower slow tide  ';
  assert.equal(tok.decode(tok.encode(clean)), clean);
  // The special token is matched whole; BOS asked for is added once.
  assert.deepEqual(tok.encode('<|endoftext|> low'), [20, 14]);
  assert.deepEqual(tok.encode('<|endoftext|> low', { addBos: true }), [20, 14]);
  assert.deepEqual(tok.encode(' low', { addBos: true }), [20, 14]);
  const meta = tokenizerGgufMetadata(tok);
  assert.equal(meta.model, 'gpt2');
  assert.equal(meta.pre, 'gpt-2');
  assert.deepEqual(meta.merges, ['Ġ l', 'Ġl o', 'Ġlo w', 'e r']);
  assert.equal(meta.tokenTypes![19], 2); // <unk>
  assert.equal(meta.tokenTypes![20], 3); // <|endoftext|>
});

test('add_bos_token in tokenizer_config.json overrides the post-processor; bad files name the field', async () => {
  const { readFile } = await import('node:fs/promises');
  const json = JSON.parse(await readFile(join(fixtures, 'llama3-mini', 'tokenizer.json'), 'utf8')) as TokenizerJson;
  const base = { bos_token: '<|begin_of_text|>', eos_token: '<|end_of_text|>' };
  assert.equal(tokenizerFromJson(json, base).addsBosByDefault, true);
  const off = tokenizerFromJson(json, { ...base, add_bos_token: false });
  assert.equal(off.addsBosByDefault, false);
  assert.deepEqual(off.encode('Hello'), [271]);
  assert.deepEqual(off.encode('Hello', { addBos: true }), [283, 271]);
  // Special tokens may be AddedToken-like objects in old configs.
  assert.equal(tokenizerFromJson(json, { bos_token: { content: '<|begin_of_text|>' }, eos_token: '<|eot_id|>' }).bosId, 283);
  assert.throws(() => tokenizerFromJson(json, { ...base, pad_token: '<pad>' }), /pad_token "<pad>" is not in the vocabulary/);
  assert.throws(() => tokenizerFromJson(json, {}), /neither pad_token nor eos_token/);
  assert.throws(() => tokenizerFromJson({} as TokenizerJson), /no "model" object/);
});

test('merges.txt parsing: version line, blank lines, malformed lines with their line number', () => {
  assert.deepEqual(parseMergesTxt('#version: 0.2\nĠ t\r\nh e\n\n'), ['Ġ t', 'h e']);
  assert.throws(() => parseMergesTxt('#version: 0.2\nĠ t\nabc\n', 'm.txt'), /m\.txt:3: expected "left right"/);
  assert.throws(() => gpt2TokenizerJson({ a: 0, b: 1 }, ['a b'], {}, {}, 'v.json'), /v\.json: merge "a b" produces "ab", which is not in the vocabulary/);
});
