import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expectedWeightShapes, loadHfDirectory, loadCheckpoint, saveHfDirectory, validateWeights } from '../src/io/hf-dir.js';
import { writeLlama2cCheckpoint } from '../src/io/llama2c.js';
import { llamaConfig, parseGenerationConfig, parseModelConfig } from '../src/io/config.js';
import { readSafetensorsHeader, writeSafetensors } from '../src/io/safetensors.js';
import { bitsToF32, f32BitsToBf16Bits, f32ToBits } from '../src/io/weights.js';
import { bitsEqual, randomModel, randomWeight, rng, tempDir } from './fixtures/io/helpers.js';

import { TINY_GPT2 } from './helpers/fixtures.js';

const smallLlama = (tied: boolean) => llamaConfig({
  vocabSize: 40, hiddenSize: 16, intermediateSize: 24, numLayers: 2, numHeads: 4, numKvHeads: 2, maxPositions: 64, tieWordEmbeddings: tied,
});

test('tiny-gpt2-random: config, normalised names and shapes, tokenizer files', () => {
  const d = loadHfDirectory(TINY_GPT2);
  assert.equal(d.config.architecture, 'gpt2');
  assert.deepEqual([d.config.vocabSize, d.config.hiddenSize, d.config.numLayers, d.config.numHeads, d.config.intermediateSize, d.config.maxPositions], [21, 2, 1, 1, 8, 1024]);
  assert.equal(d.config.activation, 'gelu_tanh');
  assert.deepEqual(d.config.eosTokenId, [20]);
  assert.equal(d.weights.size, 16);
  assert.deepEqual(d.weights.get('transformer.wte.weight')!.shape, [21, 2]);
  assert.deepEqual(d.weights.get('transformer.wpe.weight')!.shape, [1024, 2]);
  assert.deepEqual(d.weights.get('transformer.h.0.attn.c_attn.weight')!.shape, [2, 6]);
  assert.deepEqual(d.weights.get('transformer.h.0.mlp.c_proj.weight')!.shape, [8, 2]);
  assert.equal(d.weights.has('lm_head.weight'), false);
  let total = 0;
  for (const w of d.weights.values()) total += w.data.length;
  assert.equal(total, 2168, "the README's parameter count");
  assert.equal(d.generation, null);
  assert.deepEqual(d.tokenizerFiles, ['tokenizer_config.json', 'special_tokens_map.json', 'vocab.json', 'merges.txt']);
  // The values are the file's bytes.
  const header = readSafetensorsHeader(join(TINY_GPT2, 'model.safetensors'));
  const ln = header.tensors.find((t) => t.name === 'ln_f.weight')!;
  const raw = readFileSync(join(TINY_GPT2, 'model.safetensors')).subarray(ln.begin, ln.end);
  assert.ok(bitsEqual(d.weights.get('transformer.ln_f.weight')!.data, new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + 8))));
});

test('tiny-gpt2-random: save and reload is bit-exact', () => {
  const { dir, cleanup } = tempDir('hf-gpt2');
  try {
    const d = loadHfDirectory(TINY_GPT2);
    saveHfDirectory(dir, { config: d.config, weights: d.weights, tokenizerFiles: d.tokenizerFiles.map((f) => join(TINY_GPT2, f)) });
    const e = loadHfDirectory(dir);
    assert.deepEqual(e.tokenizerFiles, d.tokenizerFiles);
    assert.ok(readFileSync(join(dir, 'vocab.json')).equals(readFileSync(join(TINY_GPT2, 'vocab.json'))));
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    const orig = JSON.parse(readFileSync(join(TINY_GPT2, 'config.json'), 'utf8'));
    assert.deepEqual(cfg, orig, 'config.json unchanged (unknown fields kept)');
    for (const [name, w] of d.weights) assert.ok(bitsEqual(e.weights.get(name)!.data, w.data), name);
  } finally {
    cleanup();
  }
});

test('Llama directory: F32 round trip bit-exact, generation config, tokenizer files by content', () => {
  const { dir, cleanup } = tempDir('hf-llama');
  try {
    for (const tied of [true, false]) {
      const cfg = smallLlama(tied);
      const w = randomModel(cfg, tied ? 1 : 2);
      // Values a lossy path would change: NaN payload, subnormal, -0.
      new Uint32Array(w.get('model.norm.weight')!.data.buffer).set([0x7fc00abc, 0x00000003, 0x80000000], 0);
      const generation = parseGenerationConfig({ eos_token_id: [2, 5], temperature: 0.7, do_sample: true });
      saveHfDirectory(dir, { config: cfg, weights: w, generation, tokenizerFiles: { 'tokenizer.json': '{"model":{}}' } });
      const d = loadHfDirectory(dir);
      assert.equal(d.weights.size, w.size);
      for (const [name, t] of w) assert.ok(bitsEqual(d.weights.get(name)!.data, t.data), name);
      const { raw: _a, ...got } = d.config;
      const { raw: _b, ...want } = cfg;
      assert.deepEqual(got, want);
      assert.deepEqual(d.generation!.eosTokenIds, [2, 5]);
      assert.equal(d.generation!.temperature, 0.7);
      assert.equal(readFileSync(join(dir, 'tokenizer.json'), 'utf8'), '{"model":{}}');
      assert.equal(d.weights.has('lm_head.weight'), !tied);
    }
    assert.deepEqual(readdirSync(dir).sort(), ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json']);
  } finally {
    cleanup();
  }
});

test('BF16 save rounds to nearest even and records torch_dtype', () => {
  const { dir, cleanup } = tempDir('hf-bf16');
  try {
    const cfg = smallLlama(true);
    const w = randomModel(cfg, 3);
    saveHfDirectory(dir, { config: cfg, weights: w, dtype: 'BF16' });
    assert.equal(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).torch_dtype, 'bfloat16');
    assert.ok(readSafetensorsHeader(join(dir, 'model.safetensors')).tensors.every((t) => t.dtype === 'BF16'));
    const d = loadHfDirectory(dir);
    for (const [name, t] of w) {
      const got = d.weights.get(name)!.data;
      for (let i = 0; i < t.data.length; i++) {
        const want = bitsToF32(f32BitsToBf16Bits(f32ToBits(t.data[i]!)) << 16);
        if (got[i] !== want) assert.fail(`${name}[${i}]: ${got[i]} != ${want}`);
      }
    }
  } finally {
    cleanup();
  }
});

test('sharded directory: save with a shard limit, load it back, layouts do not mix', () => {
  const { dir, cleanup } = tempDir('hf-shard');
  try {
    const cfg = smallLlama(false);
    const w = randomModel(cfg, 4);
    saveHfDirectory(dir, { config: cfg, weights: w }); // single file first
    saveHfDirectory(dir, { config: cfg, weights: w, maxShardBytes: 4096 });
    const files = readdirSync(dir).sort();
    assert.ok(!files.includes('model.safetensors'), 'stale single file removed');
    const shards = files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f));
    assert.ok(shards.length >= 3, `shards: ${files.join(', ')}`);
    const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8'));
    assert.equal(Object.keys(index.weight_map).length, w.size);
    let total = 0;
    for (const t of w.values()) total += 4 * t.data.length;
    assert.equal(index.metadata.total_size, total);
    for (const s of shards) {
      const h = readSafetensorsHeader(join(dir, s));
      const bytes = h.tensors.reduce((a, t) => a + t.end - t.begin, 0);
      assert.ok(bytes <= 4096 || h.tensors.length === 1, `${s} holds ${bytes} bytes`);
    }
    const d = loadHfDirectory(dir);
    for (const [name, t] of w) assert.ok(bitsEqual(d.weights.get(name)!.data, t.data), name);
    saveHfDirectory(dir, { config: cfg, weights: w });
    assert.ok(!existsSync(join(dir, 'model.safetensors.index.json')), 'stale index removed');
  } finally {
    cleanup();
  }
});

test('weight validation names missing, unexpected and mis-shaped tensors', () => {
  const cfg = smallLlama(false);
  const w = randomModel(cfg, 5);
  validateWeights(cfg, w);
  const missing = new Map(w);
  missing.delete('model.layers.1.mlp.up_proj.weight');
  missing.delete('lm_head.weight');
  assert.throws(() => validateWeights(cfg, missing, 'dir/x'), /dir\/x: weights do not match the llama config \(2 layers, hidden 16\): missing tensors: model\.layers\.1\.mlp\.up_proj\.weight, lm_head\.weight/);
  const extra = new Map(w);
  extra.set('model.layers.2.mlp.up_proj.weight', randomWeight([24, 16], rng(1)));
  assert.throws(() => validateWeights(cfg, extra), /unexpected tensors: model\.layers\.2\.mlp\.up_proj\.weight/);
  const bad = new Map(w);
  bad.set('model.layers.0.self_attn.k_proj.weight', randomWeight([16, 16], rng(1)));
  assert.throws(() => validateWeights(cfg, bad), /wrong shapes: model\.layers\.0\.self_attn\.k_proj\.weight \[16, 16\] \(expected \[8, 16\]\)/);
  // Tied: lm_head.weight may be present or absent.
  const tied = smallLlama(true);
  const tw = randomModel(tied, 6);
  validateWeights(tied, tw);
  tw.set('lm_head.weight', tw.get('model.embed_tokens.weight')!);
  validateWeights(tied, tw);
  // Qwen2 expects q/k/v biases (not o_proj).
  const qwen = parseModelConfig({ model_type: 'qwen2', vocab_size: 10, hidden_size: 8, intermediate_size: 12, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, tie_word_embeddings: true });
  const names = [...expectedWeightShapes(qwen).keys()];
  assert.ok(names.includes('model.layers.0.self_attn.k_proj.bias'));
  assert.ok(!names.includes('model.layers.0.self_attn.o_proj.bias'));
  assert.deepEqual(expectedWeightShapes(qwen).get('model.layers.0.self_attn.k_proj.bias'), [4]);
});

test('loading problems are clear errors; rotary buffers are dropped', () => {
  const { dir, cleanup } = tempDir('hf-bad');
  try {
    assert.throws(() => loadHfDirectory(dir), /model directory .*: no config\.json/);
    const cfg = smallLlama(true);
    saveHfDirectory(dir, { config: cfg, weights: randomModel(cfg, 7), generation: null });
    assert.ok(!existsSync(join(dir, 'generation_config.json')));
    const w = randomModel(cfg, 7);
    w.set('model.layers.0.self_attn.rotary_emb.inv_freq', randomWeight([2], rng(2)));
    writeSafetensors(join(dir, 'model.safetensors'), w);
    assert.equal(loadHfDirectory(dir).weights.has('model.layers.0.self_attn.rotary_emb.inv_freq'), false);
    w.delete('model.norm.weight');
    writeSafetensors(join(dir, 'model.safetensors'), w);
    assert.throws(() => loadHfDirectory(dir), /missing tensors: model\.norm\.weight/);
    assert.doesNotThrow(() => loadHfDirectory(dir, { validate: false }));
    writeFileSync(join(dir, 'pytorch_model.bin'), 'x');
    writeFileSync(join(dir, 'model.safetensors'), '');
    assert.throws(() => loadHfDirectory(dir), /model\.safetensors: file is 0 bytes/);
  } finally {
    cleanup();
  }
});

test('loadCheckpoint: a directory or a llama2.c file, by what the path is', () => {
  const { dir, cleanup } = tempDir('hf-any');
  try {
    const cfg = smallLlama(true);
    const w = randomModel(cfg, 8);
    saveHfDirectory(join(dir, 'hf'), { config: cfg, weights: w, tokenizerFiles: { 'tokenizer.json': '{}' } });
    const a = loadCheckpoint(join(dir, 'hf'));
    assert.equal(a.format, 'hf');
    assert.deepEqual(a.tokenizerFiles, [join(dir, 'hf', 'tokenizer.json')]);
    writeLlama2cCheckpoint(join(dir, 'm.bin'), cfg, w);
    const b = loadCheckpoint(join(dir, 'm.bin'));
    assert.equal(b.format, 'llama2c');
    for (const [name, t] of w) assert.ok(bitsEqual(b.weights.get(name)!.data, t.data), name);
    assert.throws(() => loadCheckpoint(join(dir, 'hf', 'model.safetensors')), /bare safetensors file; pass its directory/);
    assert.throws(() => loadCheckpoint(join(dir, 'nothing')), /model .*nothing: does not exist/);
  } finally {
    cleanup();
  }
});
