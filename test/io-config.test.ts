import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  generationDefaultsFromConfig, llamaConfig, parseGenerationConfig, parseModelConfig, readGenerationConfig, readModelConfig,
  toGenerationConfigJson, toHfConfigJson,
} from '../src/io/config.js';
import { tempDir } from './fixtures/io/helpers.js';

// Shapes of real configs (SmolLM2-135M, Llama 3.2 1B, Qwen2.5-0.5B, Mistral 7B), trimmed to what matters.
const SMOLLM2 = {
  architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 49152, hidden_size: 576, intermediate_size: 1536,
  num_hidden_layers: 30, num_attention_heads: 9, num_key_value_heads: 3, max_position_embeddings: 8192, rms_norm_eps: 1e-5,
  rope_theta: 100000, rope_scaling: null, tie_word_embeddings: true, hidden_act: 'silu', attention_bias: false, mlp_bias: false,
  bos_token_id: 0, eos_token_id: 0, pad_token_id: null, initializer_range: 0.041666666666666664, torch_dtype: 'bfloat16',
  is_llama_config: true, rope_interleaved: false, pretraining_tp: 1, use_cache: true,
};
const LLAMA32 = {
  architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 128256, hidden_size: 2048, intermediate_size: 8192,
  num_hidden_layers: 16, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 64, max_position_embeddings: 131072,
  rms_norm_eps: 1e-5, rope_theta: 500000.0, tie_word_embeddings: true, hidden_act: 'silu', bos_token_id: 128000,
  eos_token_id: [128001, 128008, 128009],
  rope_scaling: { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
};
const QWEN25 = {
  architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', vocab_size: 151936, hidden_size: 896, intermediate_size: 4864,
  num_hidden_layers: 24, num_attention_heads: 14, num_key_value_heads: 2, max_position_embeddings: 32768, rms_norm_eps: 1e-6,
  rope_theta: 1000000.0, sliding_window: 32768, use_sliding_window: false, tie_word_embeddings: true, hidden_act: 'silu',
  bos_token_id: 151643, eos_token_id: 151643,
};
const MISTRAL = {
  architectures: ['MistralForCausalLM'], model_type: 'mistral', vocab_size: 32000, hidden_size: 4096, intermediate_size: 14336,
  num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, max_position_embeddings: 32768, rms_norm_eps: 1e-5,
  rope_theta: 10000.0, sliding_window: 4096, hidden_act: 'silu', bos_token_id: 1, eos_token_id: 2,
};
const GPT2 = {
  architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', vocab_size: 50257, n_embd: 768, n_layer: 12, n_head: 12, n_inner: null,
  n_positions: 1024, n_ctx: 1024, layer_norm_epsilon: 1e-5, activation_function: 'gelu_new', bos_token_id: 50256, eos_token_id: 50256,
  summary_type: 'cls_index',
};

test('Llama (SmolLM2): fields, GQA, tied embeddings', () => {
  const c = parseModelConfig(SMOLLM2);
  assert.equal(c.architecture, 'llama');
  assert.deepEqual(
    [c.vocabSize, c.hiddenSize, c.intermediateSize, c.numLayers, c.numHeads, c.numKvHeads, c.headDim, c.maxPositions],
    [49152, 576, 1536, 30, 9, 3, 64, 8192],
  );
  assert.equal(c.normEps, 1e-5);
  assert.equal(c.ropeTheta, 100000);
  assert.equal(c.ropeScaling, null);
  assert.equal(c.tieWordEmbeddings, true);
  assert.equal(c.attentionBias, false);
  assert.equal(c.attentionOutputBias, false);
  assert.equal(c.mlpBias, false);
  assert.equal(c.activation, 'silu');
  assert.equal(c.bosTokenId, 0);
  assert.deepEqual(c.eosTokenId, [0]);
  assert.equal(c.padTokenId, null);
});

test('Llama 3.2: explicit head_dim, llama3 rope scaling, eos list', () => {
  const c = parseModelConfig(LLAMA32);
  assert.equal(c.headDim, 64);
  assert.deepEqual(c.ropeScaling, { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 });
  assert.deepEqual(c.eosTokenId, [128001, 128008, 128009]);
  const linear = parseModelConfig({ ...LLAMA32, rope_scaling: { type: 'linear', factor: 2 } });
  assert.deepEqual(linear.ropeScaling, { type: 'linear', factor: 2 });
  assert.throws(() => parseModelConfig({ ...LLAMA32, rope_scaling: { rope_type: 'yarn', factor: 4 } }, 'cfg.json'), /config cfg\.json: unsupported rope_scaling type "yarn"/);
  assert.throws(() => parseModelConfig({ ...LLAMA32, rope_scaling: { rope_type: 'llama3', factor: 4 } }), /rope_scaling: missing required field "low_freq_factor"/);
});

test('Qwen2: q/k/v biases, no o_proj/MLP bias; Mistral is a Llama; defaults', () => {
  const q = parseModelConfig(QWEN25);
  assert.equal(q.architecture, 'qwen2');
  assert.equal(q.attentionBias, true);
  assert.equal(q.attentionOutputBias, false);
  assert.equal(q.mlpBias, false);
  assert.equal(q.headDim, 64);
  assert.equal(q.ropeTheta, 1e6);
  const m = parseModelConfig(MISTRAL);
  assert.equal(m.architecture, 'llama');
  assert.equal(m.numKvHeads, 8);
  const biased = parseModelConfig({ ...SMOLLM2, attention_bias: true, mlp_bias: true });
  assert.equal(biased.attentionBias, true);
  assert.equal(biased.attentionOutputBias, true);
  assert.equal(biased.mlpBias, true);
  // Missing optional fields take transformers' defaults.
  const minimal = parseModelConfig({ model_type: 'llama', vocab_size: 10, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2 });
  assert.deepEqual([minimal.numKvHeads, minimal.ropeTheta, minimal.normEps, minimal.tieWordEmbeddings, minimal.bosTokenId], [2, 10000, 1e-6, false, 1]);
  assert.deepEqual(minimal.eosTokenId, [2]);
});

test('GPT-2 field names, n_inner null, gelu_new', () => {
  const g = parseModelConfig(GPT2);
  assert.equal(g.architecture, 'gpt2');
  assert.deepEqual([g.hiddenSize, g.numLayers, g.numHeads, g.numKvHeads, g.headDim, g.intermediateSize, g.maxPositions], [768, 12, 12, 12, 64, 3072, 1024]);
  assert.equal(g.activation, 'gelu_tanh');
  assert.equal(g.tieWordEmbeddings, true);
  assert.equal(g.attentionBias && g.attentionOutputBias && g.mlpBias, true);
  assert.equal(g.ropeTheta, 0);
  assert.deepEqual(g.eosTokenId, [50256]);
  const model = parseModelConfig({ ...GPT2, architectures: ['GPT2Model'], n_inner: 100, activation_function: 'gelu' });
  assert.equal(model.intermediateSize, 100);
  assert.equal(model.activation, 'gelu');
  assert.throws(() => parseModelConfig({ ...GPT2, activation_function: 'relu' }), /unsupported activation_function "relu"/);
});

test('unsupported architectures and bad fields are clear errors', () => {
  assert.throws(() => parseModelConfig({ architectures: ['BertModel'] }, 'x/config.json'),
    /config x\/config\.json: unsupported architecture \["BertModel"\]; supported: LlamaForCausalLM, .*Qwen2ForCausalLM.*GPT2LMHeadModel/);
  assert.throws(() => parseModelConfig({ model_type: 'phi3' }), /unsupported or missing model_type "phi3"/);
  assert.throws(() => parseModelConfig({ ...SMOLLM2, hidden_size: undefined }), /missing required field "hidden_size"/);
  assert.throws(() => parseModelConfig({ ...SMOLLM2, num_hidden_layers: 2.5 }), /field "num_hidden_layers" must be an integer >= 1, got 2\.5/);
  assert.throws(() => parseModelConfig({ ...SMOLLM2, num_key_value_heads: 4 }), /num_attention_heads 9 is not a multiple of num_key_value_heads 4/);
  assert.throws(() => parseModelConfig({ ...SMOLLM2, eos_token_id: 'x' }), /eos_token_id/);
  const { dir, cleanup } = tempDir('cfg');
  try {
    writeFileSync(join(dir, 'config.json'), '{ nope');
    assert.throws(() => readModelConfig(join(dir, 'config.json')), /config .*config\.json: cannot read JSON/);
  } finally {
    cleanup();
  }
});

test('toHfConfigJson round trip keeps unknown fields and re-parses identically', () => {
  for (const raw of [SMOLLM2, LLAMA32, QWEN25, MISTRAL, GPT2]) {
    const c = parseModelConfig(raw);
    const out = toHfConfigJson(c);
    for (const [k, v] of Object.entries(raw)) {
      if (k === 'rope_scaling' && v) continue; // rewritten with rope_type (same meaning)
      assert.deepEqual(out[k], v, `${raw.model_type}.${k}`);
    }
    const again = parseModelConfig(JSON.parse(JSON.stringify(out)));
    const { raw: _r1, ...a } = c;
    const { raw: _r2, ...b } = again;
    assert.deepEqual(b, a, raw.model_type);
  }
  // Changed fields are written in the architecture's own names.
  const g = { ...parseModelConfig(GPT2), numLayers: 2, intermediateSize: 100 };
  const out = toHfConfigJson(g);
  assert.equal(out.n_layer, 2);
  assert.equal(out.n_inner, 100);
  const built = llamaConfig({ vocabSize: 32, hiddenSize: 16, intermediateSize: 24, numLayers: 2, numHeads: 4, numKvHeads: 2, maxPositions: 64, tieWordEmbeddings: false });
  const j = toHfConfigJson(built);
  assert.deepEqual(j.architectures, ['LlamaForCausalLM']);
  assert.equal(j.num_key_value_heads, 2);
  assert.equal(j.tie_word_embeddings, false);
});

test('generation_config.json: ids, sampling defaults, round trip', () => {
  const g = parseGenerationConfig({ bos_token_id: 1, eos_token_id: [2, 32000], temperature: 0.6, top_p: 0.9, do_sample: true, max_new_tokens: 64, transformers_version: '4.45' });
  assert.deepEqual(g.eosTokenIds, [2, 32000]);
  assert.deepEqual([g.temperature, g.topP, g.topK, g.maxNewTokens, g.doSample], [0.6, 0.9, 50, 64, true]);
  const d = parseGenerationConfig({});
  assert.deepEqual([d.temperature, d.topP, d.topK, d.maxNewTokens, d.doSample, d.bosTokenId], [1, 1, 50, null, false, null]);
  const back = parseGenerationConfig(toGenerationConfigJson(g));
  assert.deepEqual({ ...back, raw: null }, { ...g, raw: null });
  assert.equal(toGenerationConfigJson(g).transformers_version, '4.45');
  const fromCfg = generationDefaultsFromConfig(parseModelConfig(LLAMA32));
  assert.deepEqual(fromCfg.eosTokenIds, [128001, 128008, 128009]);
  assert.throws(() => parseGenerationConfig({ top_k: -1 }, 'gen.json'), /config gen\.json: field "top_k" must be an integer >= 0/);
  const { dir, cleanup } = tempDir('gen');
  try {
    writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: 7, temperature: 0 }));
    const r = readGenerationConfig(join(dir, 'generation_config.json'));
    assert.deepEqual(r.eosTokenIds, [7]);
    assert.equal(r.temperature, 0);
  } finally {
    cleanup();
  }
});
