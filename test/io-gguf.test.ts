import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildLlamaGguf, buildModelGguf, ggufGet, GGUF_TOKEN_TYPE, llama3RopeFactors, readGguf, writeGguf, writeLlamaGguf, writeModelGguf, type GgufTokenizerInput, type GgufValue } from '../src/io/gguf.js';
import { llamaConfig, parseModelConfig } from '../src/io/config.js';
import { readLlama2cCheckpoint } from '../src/io/llama2c.js';
import { bitsToF32, f16BitsToF32Bits, f32BitsToF16Bits, f32ToBits, permuteHalvesToInterleaved } from '../src/io/weights.js';
import { bitsEqual, llama2cTokenizerForGguf, randomModel, tempDir } from './fixtures/io/helpers.js';

const FIXTURE_TOKENIZERS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'fixtures', 'tokenizers');
import { STORIES260K as STORIES, TOK512 } from './helpers/fixtures.js';

function toyTokenizer(n: number): GgufTokenizerInput {
  const tokens = ['<unk>', '<s>', '</s>', '<0x0A>', ...Array.from({ length: n - 4 }, (_, i) => `\u2581t${i}`)];
  return { model: 'llama', tokens, scores: tokens.map((_, i) => -i), bosId: 1, eosId: 2, addBos: true };
}

const cfg = llamaConfig({ vocabSize: 40, hiddenSize: 32, intermediateSize: 48, numLayers: 2, numHeads: 4, numKvHeads: 2, maxPositions: 128, tieWordEmbeddings: false });

test('Llama export: header, metadata, tensor names, GGUF dims order, 32-byte alignment, q/k permuted back', () => {
  const { dir, cleanup } = tempDir('gguf');
  try {
    const w = randomModel(cfg, 11);
    const p = join(dir, 'm.gguf');
    writeLlamaGguf(p, cfg, w, { tokenizer: toyTokenizer(40), name: 'toy' });
    const bytes = readFileSync(p);
    assert.equal(bytes.toString('latin1', 0, 4), 'GGUF');
    assert.equal(bytes.readUInt32LE(4), 3);
    const g = readGguf(p);
    const md = (k: string) => g.metadata.get(k);
    assert.deepEqual(md('general.architecture'), { type: 'string', value: 'llama' });
    assert.deepEqual(md('llama.context_length'), { type: 'u32', value: 128 });
    assert.deepEqual(md('llama.embedding_length'), { type: 'u32', value: 32 });
    assert.deepEqual(md('llama.block_count'), { type: 'u32', value: 2 });
    assert.deepEqual(md('llama.feed_forward_length'), { type: 'u32', value: 48 });
    assert.deepEqual(md('llama.attention.head_count'), { type: 'u32', value: 4 });
    assert.deepEqual(md('llama.attention.head_count_kv'), { type: 'u32', value: 2 });
    assert.deepEqual(md('llama.rope.dimension_count'), { type: 'u32', value: 8 });
    assert.deepEqual(md('llama.rope.freq_base'), { type: 'f32', value: 10000 });
    assert.deepEqual(md('llama.attention.layer_norm_rms_epsilon'), { type: 'f32', value: bitsToF32(f32ToBits(1e-5)) });
    assert.deepEqual(md('llama.vocab_size'), { type: 'u32', value: 40 });
    assert.deepEqual(md('general.file_type'), { type: 'u32', value: 0 });
    assert.deepEqual(md('tokenizer.ggml.model'), { type: 'string', value: 'llama' });
    assert.equal((md('tokenizer.ggml.tokens') as { itemType: string }).itemType, 'string');
    assert.deepEqual(ggufGet(g, 'tokenizer.ggml.tokens'), toyTokenizer(40).tokens);
    assert.equal((md('tokenizer.ggml.scores') as { itemType: string }).itemType, 'f32');
    assert.deepEqual((ggufGet(g, 'tokenizer.ggml.token_type') as number[]).slice(0, 5), [
      GGUF_TOKEN_TYPE.UNKNOWN, GGUF_TOKEN_TYPE.CONTROL, GGUF_TOKEN_TYPE.CONTROL, GGUF_TOKEN_TYPE.BYTE, GGUF_TOKEN_TYPE.NORMAL,
    ]);
    assert.deepEqual(md('tokenizer.ggml.bos_token_id'), { type: 'u32', value: 1 });
    assert.deepEqual(md('tokenizer.ggml.eos_token_id'), { type: 'u32', value: 2 });
    assert.deepEqual(md('tokenizer.ggml.add_bos_token'), { type: 'bool', value: true });
    assert.equal(md('tokenizer.ggml.merges'), undefined);

    const names = g.tensors.map((t) => t.name);
    assert.equal(names[0], 'token_embd.weight');
    assert.deepEqual(names.slice(1, 10), ['attn_norm', 'attn_q', 'attn_k', 'attn_v', 'attn_output', 'ffn_norm', 'ffn_gate', 'ffn_up', 'ffn_down'].map((n) => `blk.0.${n}.weight`));
    assert.deepEqual(names.slice(-2), ['output_norm.weight', 'output.weight']);
    assert.equal(names.length, 3 + 9 * 2);
    const info = (n: string) => g.tensors.find((t) => t.name === n)!;
    assert.deepEqual(info('token_embd.weight').ne, [32, 40], 'ne0 = innermost (embedding) dimension');
    assert.deepEqual(info('blk.1.attn_k.weight').ne, [32, 16]);
    assert.deepEqual(info('blk.1.ffn_down.weight').ne, [48, 32]);
    assert.deepEqual(info('output_norm.weight').ne, [32]);
    for (const t of g.tensors) assert.equal(t.offset % 32, 0, `${t.name} aligned`);
    assert.equal(g.dataStart % 32, 0);

    const q = w.get('model.layers.1.self_attn.q_proj.weight')!;
    const k = w.get('model.layers.1.self_attn.k_proj.weight')!;
    assert.ok(bitsEqual(g.tensorData('blk.1.attn_q.weight'), permuteHalvesToInterleaved(q, 4).data));
    assert.ok(bitsEqual(g.tensorData('blk.1.attn_k.weight'), permuteHalvesToInterleaved(k, 2).data));
    assert.ok(!bitsEqual(g.tensorData('blk.1.attn_q.weight'), q.data), 'q really was permuted');
    assert.ok(bitsEqual(g.tensorData('blk.1.attn_v.weight'), w.get('model.layers.1.self_attn.v_proj.weight')!.data));
    assert.ok(bitsEqual(g.tensorData('blk.0.ffn_gate.weight'), w.get('model.layers.0.mlp.gate_proj.weight')!.data));
    assert.ok(bitsEqual(g.tensorData('output.weight'), w.get('lm_head.weight')!.data));
    // The file ends on an aligned boundary after the last tensor.
    const last = info('output.weight');
    assert.equal(bytes.length, Math.ceil((last.offset + 40 * 32 * 4) / 32) * 32);
  } finally {
    cleanup();
  }
});

test('F16 export: matrices half precision (round to nearest even), norms stay F32; tied models omit output.weight', () => {
  const { dir, cleanup } = tempDir('gguf16');
  try {
    const tied = { ...cfg, tieWordEmbeddings: true };
    const w = randomModel(tied, 12);
    const p = join(dir, 'h.gguf');
    writeLlamaGguf(p, tied, w, { tokenizer: toyTokenizer(40), dtype: 'F16' });
    const g = readGguf(p);
    assert.deepEqual(g.metadata.get('general.file_type'), { type: 'u32', value: 1 });
    assert.ok(!g.tensors.some((t) => t.name === 'output.weight'));
    for (const t of g.tensors) assert.equal(t.type, t.ne.length === 1 ? 0 : 1, t.name);
    const src = w.get('model.layers.0.mlp.up_proj.weight')!.data;
    const got = g.tensorData('blk.0.ffn_up.weight');
    for (let i = 0; i < src.length; i++) {
      const want = bitsToF32(f16BitsToF32Bits(f32BitsToF16Bits(f32ToBits(src[i]!))));
      if (got[i] !== want) assert.fail(`element ${i}: ${got[i]} != ${want}`);
    }
    assert.ok(bitsEqual(g.tensorData('output_norm.weight'), w.get('model.norm.weight')!.data));
  } finally {
    cleanup();
  }
});

test('rope scaling, byte-level BPE tokenizer metadata, low-level value types', () => {
  const l3 = parseModelConfig({
    model_type: 'llama', vocab_size: 40, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 1, num_attention_heads: 2,
    rope_theta: 500000, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
  });
  const f = llama3RopeFactors(l3);
  assert.equal(f.length, 8);
  assert.equal(f[0], 1); // highest frequency: wavelength 2π < 8192/4
  assert.equal(f[7], 8); // lowest frequency: wavelength > 8192
  const tok: GgufTokenizerInput = { model: 'gpt2', tokens: Array.from({ length: 40 }, (_, i) => `t${i}`), merges: ['t 1', 'Ġ t'], pre: 'smollm', bosId: 0, eosId: 0, addBos: false };
  const built = buildLlamaGguf(l3, randomModel(l3, 1), { tokenizer: tok });
  assert.deepEqual(built.tensors[1]!.name, 'rope_freqs.weight');
  assert.deepEqual(built.metadata.get('tokenizer.ggml.merges'), { type: 'array', itemType: 'string', value: ['t 1', 'Ġ t'] });
  assert.deepEqual(built.metadata.get('tokenizer.ggml.pre'), { type: 'string', value: 'smollm' });
  assert.equal(built.metadata.get('tokenizer.ggml.scores'), undefined);
  const lin = buildLlamaGguf({ ...l3, ropeScaling: { type: 'linear', factor: 2 } }, randomModel(l3, 1), { tokenizer: tok });
  assert.deepEqual(lin.metadata.get('llama.rope.scaling.type'), { type: 'string', value: 'linear' });

  const { dir, cleanup } = tempDir('gguf-kv');
  try {
    const md = new Map<string, GgufValue>([
      ['a.u8', { type: 'u8', value: 255 }], ['a.i8', { type: 'i8', value: -3 }], ['a.u16', { type: 'u16', value: 65535 }],
      ['a.i16', { type: 'i16', value: -300 }], ['a.i32', { type: 'i32', value: -70000 }], ['a.u64', { type: 'u64', value: 2n ** 40n }],
      ['a.i64', { type: 'i64', value: -5n }], ['a.f64', { type: 'f64', value: 0.1 }], ['a.bool', { type: 'bool', value: false }],
      ['a.str', { type: 'string', value: 'héllo ▁' }], ['a.arr', { type: 'array', itemType: 'i32', value: [1, -2, 3] }],
      ['a.empty', { type: 'array', itemType: 'string', value: [] }],
    ]);
    const p = join(dir, 'kv.gguf');
    writeGguf(p, md, [{ name: 'x', shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]), type: 'F32' }]);
    const g = readGguf(p);
    assert.deepEqual([...g.metadata], [...md]);
    assert.deepEqual(g.tensors[0]!.ne, [3, 2]);
    assert.deepEqual(g.tensors[0]!.shape, [2, 3]);
    assert.deepEqual([...g.tensorData('x')], [1, 2, 3, 4, 5, 6]);
    assert.throws(() => writeGguf(p, new Map([['bad', { type: 'u8', value: 256 }]]), []), /metadata bad: 256 does not fit u8/);
    assert.throws(() => writeGguf(p, new Map(), [{ name: 'x', shape: [2], data: new Float32Array(3), type: 'F32' }]), /tensor x has shape \[2\] but 3 elements/);
    assert.throws(() => readGguf(join(dir, 'nope.gguf')), /ENOENT/);
    const bytes = readFileSync(p);
    const cut = join(dir, 'cut.gguf');
    writeFileSync(cut, bytes.subarray(0, 100));
    assert.throws(() => readGguf(cut), /gguf .*cut\.gguf: truncated: need \d+ more bytes/);
    writeFileSync(cut, bytes.subarray(0, bytes.length - 12)); // 8 bytes of end padding + 4 of data
    assert.throws(() => readGguf(cut), /tensor x data runs past the end of the file/);
    writeFileSync(cut, Buffer.concat([Buffer.from('GGML'), bytes.subarray(4)]));
    assert.throws(() => readGguf(cut), /not a GGUF file \(bad magic\)/);
  } finally {
    cleanup();
  }
});

test('export errors name the problem', () => {
  const w = randomModel(cfg, 2);
  assert.throws(() => buildLlamaGguf(cfg, w, { tokenizer: toyTokenizer(41) }), /tokenizer has 41 tokens but the model vocab_size is 40/);
  assert.throws(() => buildLlamaGguf(cfg, w, { tokenizer: { ...toyTokenizer(40), scores: [1] } }), /tokenizer scores has 1 entries for 40 tokens/);
  assert.throws(() => buildLlamaGguf(cfg, w, { tokenizer: { ...toyTokenizer(40), eosId: 40 } }), /eosId 40 is outside the vocabulary of 40/);
  assert.throws(() => buildLlamaGguf(cfg, w, { tokenizer: { ...toyTokenizer(40), model: 'gpt2' } }), /needs merges/);
  assert.throws(() => buildLlamaGguf({ ...cfg, mlpBias: true }, w, { tokenizer: toyTokenizer(40) }), /MLP biases have no place in llama\.cpp's llama layout/);
  assert.throws(() => buildLlamaGguf({ ...cfg, attentionBias: true }, w, { tokenizer: toyTokenizer(40) }), /GGUF export: missing tensor model\.layers\.0\.self_attn\.q_proj\.bias/);
  assert.throws(() => buildLlamaGguf({ ...cfg, architecture: 'gpt2' }, w, { tokenizer: toyTokenizer(40) }), /only Llama-family models \(Llama, Qwen2\) export to GGUF here, got gpt2/);
  const g2 = parseModelConfig({ architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', vocab_size: 40, n_embd: 16, n_layer: 1, n_head: 2, n_positions: 32, activation_function: 'gelu' }, 'gpt2');
  assert.throws(() => buildModelGguf(g2, randomModel(g2, 1), { tokenizer: toyTokenizer(40) }), /llama\.cpp's gpt2 uses the tanh GELU \(gelu_new\), the model has gelu/);
  const missing = new Map(w);
  missing.delete('model.layers.1.mlp.down_proj.weight');
  assert.throws(() => buildLlamaGguf(cfg, missing, { tokenizer: toyTokenizer(40) }), /GGUF export: missing tensor model\.layers\.1\.mlp\.down_proj\.weight/);
});

test('stories260K: llama2.c → HF → GGUF gives back llama2.c\'s own q/k rows', () => {
  const { dir, cleanup } = tempDir('gguf-stories');
  try {
    const { config, weights } = readLlama2cCheckpoint(STORIES);
    const p = join(dir, 's.gguf');
    writeLlamaGguf(p, config, weights, { tokenizer: llama2cTokenizerForGguf(TOK512, 512) });
    const g = readGguf(p);
    const file = readFileSync(STORIES);
    const f = new Float32Array(file.buffer.slice(file.byteOffset + 28, file.byteOffset + file.length));
    const wq = 512 * 64 + 5 * 64;
    const wk = wq + 5 * 64 * 64;
    assert.ok(bitsEqual(g.tensorData('blk.3.attn_q.weight'), f.subarray(wq + 3 * 4096, wq + 4 * 4096)));
    assert.ok(bitsEqual(g.tensorData('blk.3.attn_k.weight'), f.subarray(wk + 3 * 2048, wk + 4 * 2048)));
    assert.equal((ggufGet(g, 'tokenizer.ggml.tokens') as string[])[259], '\u2581t');
    assert.equal((ggufGet(g, 'tokenizer.ggml.token_type') as number[])[3], GGUF_TOKEN_TYPE.BYTE);
  } finally {
    cleanup();
  }
});

// llama.cpp itself (through node-llama-cpp's prebuilt CPU binary) loads the export and reproduces
// the reference greedy text. Skipped when the optional dev dependency is not installed.
const require = createRequire(import.meta.url);
let hasLlamaCpp = false;
try {
  require.resolve('node-llama-cpp');
  hasLlamaCpp = true;
} catch {
  hasLlamaCpp = false;
}

// Typed loosely on purpose: the module name is a variable so this file compiles without the
// optional package; only the few calls used here are described.
interface LlamaCppModule {
  getLlama(opts: object): Promise<{
    loadModel(opts: { modelPath: string }): Promise<{
      tokens: { bos: number | null };
      createContext(opts: object): Promise<{ getSequence(): { evaluate(tokens: number[], opts: object): AsyncIterable<number> }; dispose(): Promise<void> }>;
      detokenize(tokens: number[]): string;
      tokenize(text: string): number[];
      dispose(): Promise<void>;
    }>;
    dispose(): Promise<void>;
  }>;
}

test('llama.cpp loads the stories260K GGUF (F32 and F16) and greedy text matches', { skip: !hasLlamaCpp && 'node-llama-cpp not installed' }, async () => {
  const moduleName = 'node-llama-cpp';
  const { getLlama } = (await import(moduleName)) as LlamaCppModule;
  const { dir, cleanup } = tempDir('gguf-llamacpp');
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' });
  try {
    const { config, weights } = readLlama2cCheckpoint(STORIES);
    for (const dtype of ['F32', 'F16'] as const) {
      const p = join(dir, `s-${dtype}.gguf`);
      writeLlamaGguf(p, config, weights, { tokenizer: llama2cTokenizerForGguf(TOK512, 512), dtype });
      const model = await llama.loadModel({ modelPath: p });
      // One thread: the machine is shared and spinning worker threads stall each other.
      const context = await model.createContext({ contextSize: 128, threads: 1, batchSize: 32 });
      const out: number[] = [];
      for await (const tok of context.getSequence().evaluate([model.tokens.bos!], { temperature: 0 })) {
        out.push(tok);
        if (out.length >= 16) break;
      }
      const text = model.detokenize(out);
      assert.ok(text.startsWith('Once upon a time, there was a little girl named Lily.'), `${dtype}: ${JSON.stringify(text)}`);
      await context.dispose();
      await model.dispose();
    }
  } finally {
    await llama.dispose();
    cleanup();
  }
});

// Qwen2 (q/k/v biases, tied embeddings, no RoPE permutation), Llama with attention biases (q/k
// biases permuted like their rows) and GPT-2 (Conv1D weights transposed, learned positions):
// llama.cpp's greedy continuation equals ours, token for token, and the biases are large enough
// that dropping them changes our own continuation.
test('llama.cpp runs Qwen2, biased-Llama and GPT-2 exports (byte-level BPE vocabulary) like ours', { skip: !hasLlamaCpp && 'node-llama-cpp not installed' }, async () => {
  const moduleName = 'node-llama-cpp';
  const { getLlama } = (await import(moduleName)) as LlamaCppModule;
  const { loadTokenizer, tokenizerGgufMetadata } = await import('../src/io/tokenizers/index.js');
  const { createModel } = await import('../src/models/index.js');
  const { generateTokens } = await import('../src/models/generate.js');
  const tok = await loadTokenizer(join(FIXTURE_TOKENIZERS, 'chatml-mini'));
  const meta = tokenizerGgufMetadata(tok);
  assert.equal(meta.pre, 'gpt-2');
  const { dir, cleanup } = tempDir('gguf-qwen2');
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' });
  try {
    const shape = { vocab_size: tok.vocabSize, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 128, rope_theta: 10000, rms_norm_eps: 1e-6 };
    const configs = [
      { architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', tie_word_embeddings: true, ...shape },
      { architectures: ['LlamaForCausalLM'], model_type: 'llama', tie_word_embeddings: false, attention_bias: true, ...shape },
      { architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', vocab_size: tok.vocabSize, n_embd: 64, n_layer: 2, n_head: 4, n_positions: 128 },
    ];
    const prompt = tok.encode('hello world');
    for (const raw of configs) {
      const c = parseModelConfig(raw, raw.model_type);
      const w = randomModel(c, 7);
      // Larger embeddings (peaked logits, so float rounding cannot flip a greedy choice) and biases
      // (so they matter).
      for (const [name, t] of w) {
        const s = /embed_tokens|lm_head|wte/.test(name) ? 10 : name.endsWith('.bias') && !/ln_/.test(name) ? 20 : 1;
        for (let i = 0; i < t.data.length; i++) t.data[i] = t.data[i]! * s;
      }
      const greedy = (weights: typeof w): number[] =>
        generateTokens(createModel(c, weights, 'test'), [prompt], { maxNewTokens: 16, temperature: 0, padId: 0, stopIds: [] }).tokens[0]!;
      const ours = greedy(w);
      const noBias = new Map([...w].map(([name, t]) => [name, name.endsWith('.bias') ? { shape: t.shape, data: new Float32Array(t.data.length) } : t]));
      assert.notDeepEqual(greedy(noBias), ours, `${c.architecture}: the biases must matter for this check`);
      const p = join(dir, `${c.architecture}.gguf`);
      writeModelGguf(p, c, w, { tokenizer: { ...meta, bosId: meta.bosId!, eosId: meta.eosId! } });
      const g = readGguf(p);
      assert.equal(ggufGet(g, 'general.architecture'), c.architecture);
      assert.ok(g.tensors.some((t) => t.name === (c.architecture === 'gpt2' ? 'blk.1.attn_qkv.bias' : 'blk.1.attn_k.bias')));
      // The converter writes GPT-2's tied output.weight out; Llama/Qwen2 omit it when tied.
      assert.equal(g.tensors.some((t) => t.name === 'output.weight'), c.architecture === 'gpt2' || !c.tieWordEmbeddings);
      const model = await llama.loadModel({ modelPath: p });
      const context = await model.createContext({ contextSize: 128, threads: 1, batchSize: 32 });
      const theirs: number[] = [];
      for await (const t of context.getSequence().evaluate(prompt, { temperature: 0 })) {
        theirs.push(t);
        if (theirs.length >= ours.length) break;
      }
      assert.deepEqual(theirs, ours, `${c.architecture}: llama.cpp's greedy tokens differ from ours`);
      await context.dispose();
      await model.dispose();
    }
  } finally {
    await llama.dispose();
    cleanup();
  }
});

// tokenizer.ggml.pre names the pre-tokenizer llama.cpp applies before BPE: with Llama 3's split
// ("llama-bpe") digits go in groups of up to three, with Qwen2's ("qwen2") one by one. Both
// variants are the Llama 3 fixture plus a merge "1 2" (so "12345" tokenizes differently under the
// two splits), the second with Qwen2's regex. llama.cpp must tokenize like tokenizer.json.
test('llama.cpp tokenizes like tokenizer.json under the exported pre-tokenizer name (llama-bpe, qwen2)', { skip: !hasLlamaCpp && 'node-llama-cpp not installed' }, async () => {
  const moduleName = 'node-llama-cpp';
  const { getLlama } = (await import(moduleName)) as LlamaCppModule;
  const { loadTokenizer, tokenizerGgufMetadata } = await import('../src/io/tokenizers/index.js');
  const { dir, cleanup } = tempDir('gguf-pre');
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' });
  try {
    const src = join(FIXTURE_TOKENIZERS, 'llama3-mini');
    const variant = (name: string, qwenSplit: boolean): string => {
      const out = join(dir, name);
      mkdirSync(out);
      for (const f of readdirSync(src)) writeFileSync(join(out, f), readFileSync(join(src, f)));
      const json = JSON.parse(readFileSync(join(src, 'tokenizer.json'), 'utf8')) as {
        model: { vocab: Record<string, number>; merges: string[] };
        pre_tokenizer: { pretokenizers: { pattern: { Regex: string } }[] };
      };
      json.model.vocab['12'] = Object.keys(json.model.vocab).length;
      json.model.merges.push('1 2');
      const split = json.pre_tokenizer.pretokenizers[0]!.pattern;
      assert.ok(split.Regex.includes('\\p{N}{1,3}'));
      if (qwenSplit) split.Regex = split.Regex.replace('\\p{N}{1,3}', '\\p{N}');
      writeFileSync(join(out, 'tokenizer.json'), JSON.stringify(json));
      return out;
    };
    const text = 'In 2024, 12345 owls\n\nflew   over 7 hills!';
    const seen: number[][] = [];
    for (const [tokDir, pre] of [[variant('llama3', false), 'llama-bpe'], [variant('qwen2', true), 'qwen2']] as const) {
      const tok = await loadTokenizer(tokDir);
      const meta = tokenizerGgufMetadata(tok);
      assert.equal(meta.pre, pre);
      const c = parseModelConfig({ architectures: ['LlamaForCausalLM'], vocab_size: tok.vocabSize, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 1, num_attention_heads: 4, max_position_embeddings: 64 }, 'tiny');
      const p = join(dir, `${pre}.gguf`);
      writeLlamaGguf(p, c, randomModel(c, 3), { tokenizer: { ...meta, bosId: meta.bosId!, eosId: meta.eosId! } });
      const model = await llama.loadModel({ modelPath: p });
      const ours = tok.encode(text, { addBos: false });
      seen.push(ours);
      assert.deepEqual(model.tokenize(text), ours, `${pre}: llama.cpp's tokens differ from tokenizer.json's`);
      await model.dispose();
    }
    assert.notDeepEqual(seen[0], seen[1], 'the two splits must tokenize the digits differently');
  } finally {
    await llama.dispose();
    cleanup();
  }
});

test('convert: a Qwen2 directory whose tokenizer names no BOS takes the ids from config.json', async () => {
  const { saveHfDirectory } = await import('../src/io/hf-dir.js');
  const { convertModel } = await import('../src/io/convert.js');
  const { dir, cleanup } = tempDir('gguf-convert-qwen2');
  try {
    const src = join(FIXTURE_TOKENIZERS, 'chatml-mini');
    const vocab = Object.keys((JSON.parse(readFileSync(join(src, 'tokenizer.json'), 'utf8')) as { model: { vocab: object } }).model.vocab).length;
    const c = parseModelConfig({
      architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', vocab_size: vocab, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 1,
      num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, tie_word_embeddings: true, bos_token_id: 0, eos_token_id: 2,
    }, 'qwen2');
    const model = join(dir, 'model');
    saveHfDirectory(model, { config: c, weights: randomModel(c, 5) });
    for (const f of readdirSync(src)) writeFileSync(join(model, f), readFileSync(join(src, f)));
    // No BOS anywhere on the tokenizer side (as Qwen2's files): only config.json's bos_token_id.
    for (const [f, key] of [['tokenizer_config.json', 'bos_token'], ['special_tokens_map.json', 'bos_token'], ['generation_config.json', 'bos_token_id']]) {
      const j = JSON.parse(readFileSync(join(model, f!), 'utf8')) as Record<string, unknown>;
      delete j[key!];
      writeFileSync(join(model, f!), JSON.stringify(j));
    }
    await convertModel(model, join(dir, 'q.gguf'));
    const g = readGguf(join(dir, 'q.gguf'));
    assert.equal(ggufGet(g, 'general.architecture'), 'qwen2');
    assert.equal(ggufGet(g, 'tokenizer.ggml.bos_token_id'), 0);
    assert.equal(ggufGet(g, 'tokenizer.ggml.add_bos_token'), false);
    assert.equal(ggufGet(g, 'tokenizer.ggml.pre'), 'gpt-2');
    assert.equal(ggufGet(g, 'qwen2.attention.head_count_kv'), 2);
    assert.ok(bitsEqual(g.tensorData('blk.0.attn_q.bias'), randomModel(c, 5).get('model.layers.0.self_attn.q_proj.bias')!.data), 'Qwen2 q bias unpermuted');
  } finally {
    cleanup();
  }
});

// A SentencePiece tokenizer.model (the sp-mini fixture, trained by the sentencepiece library)
// exported to GGUF: llama.cpp's own SentencePiece tokenizer gives the library's golden ids.
test('llama.cpp tokenizes a tokenizer.model export like the sentencepiece library', { skip: !hasLlamaCpp && 'node-llama-cpp not installed' }, async () => {
  const moduleName = 'node-llama-cpp';
  const { getLlama } = (await import(moduleName)) as LlamaCppModule;
  const { loadTokenizer, tokenizerGgufMetadata } = await import('../src/io/tokenizers/index.js');
  const spDir = join(FIXTURE_TOKENIZERS, 'sp-mini');
  const golden = JSON.parse(readFileSync(join(spDir, 'golden.json'), 'utf8')) as { cases: { text: string; ids: number[] }[] };
  const tok = await loadTokenizer(spDir);
  const meta = tokenizerGgufMetadata(tok);
  const { dir, cleanup } = tempDir('gguf-sp');
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' });
  try {
    const c = parseModelConfig({ architectures: ['LlamaForCausalLM'], vocab_size: tok.vocabSize, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 1, num_attention_heads: 4, max_position_embeddings: 64 }, 'tiny');
    const p = join(dir, 'sp.gguf');
    writeLlamaGguf(p, c, randomModel(c, 3), { tokenizer: { ...meta, bosId: meta.bosId!, eosId: meta.eosId! } });
    const model = await llama.loadModel({ modelPath: p });
    let checked = 0;
    for (const k of golden.cases) {
      if (k.text.includes('<|user|>') || k.text === '') continue;
      const theirs = model.tokenize(k.text).filter((id, i) => !(i === 0 && id === tok.bosId));
      assert.deepEqual(theirs, k.ids, `llama.cpp ${JSON.stringify(k.text)}`);
      checked++;
    }
    assert.ok(checked >= 10);
    await model.dispose();
  } finally {
    await llama.dispose();
    cleanup();
  }
});
