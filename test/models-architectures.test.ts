// The architecture registry: the weight table loaders validate against is derived from each
// architecture's one weight declaration (checked here against what a built model holds and what it
// exports), config.json round-trips through the architecture files, and the models layer reads no
// files (no import from io or any layer above).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ARCHITECTURES, declaredWeights, expectedWeightShapes, parseModelConfig, randomModel, toHfConfigJson, defaultLoraTargets, peftModulePath } from '../src/models/architectures.js';
import type { ModelConfig } from '../src/models/config.js';

const configs: Record<string, ModelConfig> = {
  llama: parseModelConfig({
    architectures: ['LlamaForCausalLM'], vocab_size: 37, hidden_size: 24, intermediate_size: 40, num_hidden_layers: 2,
    num_attention_heads: 6, num_key_value_heads: 2, max_position_embeddings: 64, tie_word_embeddings: false, mlp_bias: true,
  }, 'llama'),
  qwen2: parseModelConfig({
    architectures: ['Qwen2ForCausalLM'], vocab_size: 29, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2,
    num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, tie_word_embeddings: true,
  }, 'qwen2'),
  gpt2: parseModelConfig({ architectures: ['GPT2LMHeadModel'], vocab_size: 31, n_embd: 16, n_layer: 2, n_head: 4, n_positions: 64 }, 'gpt2'),
  gpt2Untied: parseModelConfig({ architectures: ['GPT2LMHeadModel'], vocab_size: 31, n_embd: 16, n_layer: 1, n_head: 4, n_positions: 32, tie_word_embeddings: false }, 'gpt2 untied'),
};

test('the weight table is the declaration: same names and shapes as the built model, in file names and layouts as exported', () => {
  for (const [label, cfg] of Object.entries(configs)) {
    const model = randomModel(cfg, 1);
    const params = model.parameters();
    const declared = declaredWeights(cfg);
    assert.deepEqual(declared.map((w) => w.name).sort(), [...params.keys()].sort(), label);
    for (const w of declared) assert.deepEqual(w.shape, [...params.get(w.name)!.shape], `${label} ${w.name}`);
    // What the model exports (Hugging Face names and layouts) is exactly the derived table.
    const exported = model.exportWeights();
    const table = expectedWeightShapes(cfg);
    assert.deepEqual([...exported.keys()].sort(), [...table.keys()].sort(), label);
    for (const [name, w] of exported) assert.deepEqual(w.shape, table.get(name), `${label} ${name}`);
  }
  // Spot checks against the Hugging Face layouts, written out by hand.
  assert.deepEqual(expectedWeightShapes(configs.gpt2!).get('transformer.h.1.attn.c_attn.weight'), [16, 48]);
  assert.deepEqual(expectedWeightShapes(configs.gpt2!).get('transformer.h.0.mlp.c_proj.weight'), [64, 16]);
  assert.ok(!expectedWeightShapes(configs.gpt2!).has('lm_head.weight'));
  assert.deepEqual(expectedWeightShapes(configs.gpt2Untied!).get('lm_head.weight'), [31, 16]);
  assert.deepEqual(expectedWeightShapes(configs.llama!).get('model.layers.1.self_attn.k_proj.weight'), [8, 24]);
  assert.deepEqual(expectedWeightShapes(configs.llama!).get('model.layers.0.mlp.down_proj.bias'), [24]);
  assert.deepEqual(expectedWeightShapes(configs.qwen2!).get('model.layers.0.self_attn.v_proj.bias'), [8]);
  assert.ok(!expectedWeightShapes(configs.qwen2!).has('model.layers.0.self_attn.o_proj.bias'));
});

test('config.json round-trips through each architecture file; PEFT names come from the declaration', () => {
  for (const [label, cfg] of Object.entries(configs)) {
    const again = parseModelConfig(toHfConfigJson(cfg), label);
    const { raw: _a, ...x } = again;
    const { raw: _b, ...y } = cfg;
    assert.deepEqual(x, y, label);
  }
  assert.deepEqual(ARCHITECTURES.flatMap((a) => a.names).sort(), ['gpt2', 'llama', 'qwen2']);
  assert.deepEqual(defaultLoraTargets('gpt2'), ['c_attn']);
  assert.deepEqual(defaultLoraTargets('qwen2'), ['q_proj', 'v_proj']);
  assert.equal(peftModulePath('gpt2', 'h.0.attn.c_attn'), 'transformer.h.0.attn.c_attn');
  assert.equal(peftModulePath('llama', 'model.layers.0.self_attn.q_proj'), 'model.layers.0.self_attn.q_proj');
  assert.throws(() => defaultLoraTargets('mamba'), /unknown architecture "mamba"/);
});

test('the models layer imports nothing above it (no io, data, losses, train, eval, annotate, demo, cli)', () => {
  const dir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'models');
  const bad: string[] = [];
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.ts'))) {
    for (const m of readFileSync(join(dir, f), 'utf8').matchAll(/from '(\.\.\/[^']+)'/g)) {
      if (!/^\.\.\/(tensor|nn)\//.test(m[1]!)) bad.push(`${f}: ${m[1]}`);
    }
  }
  assert.deepEqual(bad, []);
});
