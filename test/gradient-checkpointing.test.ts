// Gradient checkpointing (T.checkpoint, runDecoder with ctx.gradientCheckpointing): the loss and
// every gradient are bit-identical to the ordinary forward/backward — Llama and GPT-2, full
// fine-tune and LoRA with dropout (the RNG state is replayed), float32 and bf16 autocast — and the
// tape keeps less: the peak of live tensor bytes falls. DPO training with gradient_checkpointing
// gives the same losses as without.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../src/tensor/index.js';
import { Rng } from '../src/tensor/random.js';
import { parseModelConfig, type ModelConfig } from '../src/io/config.js';
import { randomModel, type CausalLM } from '../src/models/index.js';
import { attachLora } from '../src/nn/lora.js';
import { parseDpoConfig } from '../src/train/config.js';
import { runDpo } from '../src/train/dpo.js';
import { makeTinyModelDir, syntheticPairs, writeJsonl } from './fixtures/train/tiny.js';

const llama: ModelConfig = parseModelConfig({
  architectures: ['LlamaForCausalLM'], vocab_size: 37, hidden_size: 24, intermediate_size: 40,
  num_hidden_layers: 4, num_attention_heads: 6, num_key_value_heads: 2, max_position_embeddings: 64,
  rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false,
}, 'test');
const gpt2: ModelConfig = parseModelConfig({
  architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', vocab_size: 31, n_embd: 16, n_layer: 3, n_head: 4,
  n_positions: 64, layer_norm_epsilon: 1e-5, activation_function: 'gelu_new',
}, 'test');

interface Outcome { loss: number; grads: Map<string, Float32Array>; peak: number }

function step(model: CausalLM, checkpointing: boolean, dropoutSeed: number | null): Outcome {
  const B = 3, S = 17, V = model.config.vocabSize;
  const r = new Rng(5);
  const ids = Int32Array.from({ length: B * S }, () => r.int(V));
  const targets = Int32Array.from({ length: B * S }, (_, i) => (i % S === S - 1 ? -1 : ids[i + 1]!));
  model.ctx.gradientCheckpointing = checkpointing;
  model.ctx.rng = dropoutSeed === null ? null : new Rng(dropoutSeed);
  const params = model.trainableParameters();
  T.zeroGrad(params);
  T.resetPeak();
  const lp = model.tokenLogprobs({ ids, batch: B, seq: S }, targets);
  const loss = T.scale(T.sumAll(lp), -1 / (B * S));
  const value = loss.data[0]!;
  T.backward(loss);
  const peak = T.memoryStats().peakBytes;
  model.ctx.gradientCheckpointing = false;
  model.ctx.rng = null;
  const grads = new Map<string, Float32Array>();
  for (const p of params) grads.set(p.name!, Float32Array.from(p.grad!));
  return { loss: value, grads, peak };
}

function assertSame(a: Outcome, b: Outcome, label: string): void {
  assert.equal(a.loss, b.loss, `${label}: loss`);
  assert.equal(a.grads.size, b.grads.size);
  for (const [name, g] of a.grads) assert.deepEqual(b.grads.get(name), g, `${label}: gradient of ${name}`);
}

for (const [name, cfg] of [['llama', llama], ['gpt2', gpt2]] as const) {
  test(`${name}: checkpointed gradients are bit-identical (full fine-tune, float32 and bf16 autocast); the tape keeps less`, () => {
    const model = randomModel(cfg, 11);
    for (const precision of ['float32', 'bf16'] as const) {
      T.withMatmulPrecision(precision, () => {
        const plain = step(model, false, null), ckpt = step(model, true, null);
        assertSame(plain, ckpt, `${name} ${precision}`);
        assert.ok(ckpt.peak < plain.peak, `${name} ${precision}: peak tensor bytes ${ckpt.peak} with checkpointing, ${plain.peak} without`);
      });
    }
  });

  test(`${name}: LoRA with dropout, checkpointed: same dropout masks in the recompute, same gradients`, () => {
    const model = randomModel(cfg, 12);
    const targets = name === 'gpt2' ? ['c_attn', 'c_fc'] : ['q_proj', 'v_proj', 'down_proj'];
    attachLora(model.linears(), { r: 4, alpha: 8, dropout: 0.3, targetModules: targets }, 3);
    // Adapters start with B = 0 (no gradient reaches A): give B values so every path is exercised.
    const r = new Rng(9);
    for (const p of model.trainableParameters()) for (let i = 0; i < p.size; i++) p.data[i] = (r.next() - 0.5) * 0.2;
    const plain = step(model, false, 77), ckpt = step(model, true, 77);
    assertSame(plain, ckpt, `${name} LoRA`);
    // The dropout is live: another seed changes the loss.
    assert.notEqual(step(model, true, 78).loss, plain.loss);
  });
}

test('DPO with gradient_checkpointing: the same losses and gradient norms as without (TRL name, default true)', async () => {
  const modelDir = await makeTinyModelDir();
  const dir = mkdtempSync(join(tmpdir(), 'ckpt-'));
  const data = writeJsonl(join(dir, 'train.jsonl'), syntheticPairs(32, 1));
  const base = { learning_rate: 3e-3, per_device_train_batch_size: 8, max_length: 64, logging_steps: 1, save_steps: 0, max_steps: 3, seed: 7 };
  assert.equal(parseDpoConfig({}).gradient_checkpointing, true);
  const on = await runDpo({ model: modelDir, data: [data], outputDir: join(dir, 'on'), quiet: true, config: parseDpoConfig({ ...base, gradient_checkpointing: true }) });
  const off = await runDpo({ model: modelDir, data: [data], outputDir: join(dir, 'off'), quiet: true, config: parseDpoConfig({ ...base, gradient_checkpointing: false }) });
  assert.deepEqual(on.history.map((h) => [h.loss, h.grad_norm]), off.history.map((h) => [h.loss, h.grad_norm]));
});
