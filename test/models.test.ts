// Models: real pretrained output (stories260K), KV cache vs full recomputation, batched vs
// single generation, native vs reference backend, LoRA identities, Hugging Face GPT-2 loading.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import * as T from '../src/tensor/index.js';
import { parseModelConfig, type ModelConfig } from '../src/io/config.js';
import { randomModel, type CausalLM } from '../src/models/index.js';
import { loadModel } from '../src/io/load-model.js';
import { generateTokens, sampleToken } from '../src/models/generate.js';
import { loadLlama2cTokenizer } from '../src/io/tokenizers/llama2c.js';
import { Rng } from '../src/tensor/random.js';

import { STORIES260K as STORIES, TOK512, TINY_GPT2 } from './helpers/fixtures.js';
import { nativeForTests, wasmRerun } from './helpers/native.js';

// The compiled kernels under test: the native addon, or its WebAssembly build under wasmRerun.
const compiled = nativeForTests();

const tinyLlama: ModelConfig = parseModelConfig({
  architectures: ['LlamaForCausalLM'], vocab_size: 37, hidden_size: 24, intermediate_size: 40,
  num_hidden_layers: 2, num_attention_heads: 6, num_key_value_heads: 2, max_position_embeddings: 64,
  rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false,
}, 'test');
const tinyQwen: ModelConfig = parseModelConfig({
  architectures: ['Qwen2ForCausalLM'], vocab_size: 29, hidden_size: 16, intermediate_size: 24,
  num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64,
  rms_norm_eps: 1e-6, rope_theta: 1e6, tie_word_embeddings: true,
}, 'test');
const tinyGpt2: ModelConfig = parseModelConfig({
  architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', vocab_size: 31, n_embd: 16, n_layer: 2, n_head: 4,
  n_positions: 64, layer_norm_epsilon: 1e-5, activation_function: 'gelu_new',
}, 'test');

function randomIds(n: number, V: number, seed: number): Int32Array {
  const r = new Rng(seed);
  return Int32Array.from({ length: n }, () => r.int(V));
}

/** Full-sequence log-probs of every next token, [seq − 1]. */
function fullLogprobs(model: CausalLM, ids: Int32Array): Float32Array {
  const targets = new Int32Array(ids.length).fill(-1);
  for (let t = 0; t + 1 < ids.length; t++) targets[t] = ids[t + 1]!;
  return T.noGrad(() => model.tokenLogprobs({ ids, batch: 1, seq: ids.length }, targets)).data.slice(0, ids.length - 1) as Float32Array;
}

function logSoftmaxAt(logits: Float32Array, i: number): number {
  let m = -Infinity;
  for (const x of logits) m = Math.max(m, x);
  let s = 0;
  for (const x of logits) s += Math.exp(x - m);
  return logits[i]! - m - Math.log(s);
}

for (const [name, cfg] of [['llama (GQA)', tinyLlama], ['qwen2 (biases, tied)', tinyQwen], ['gpt2', tinyGpt2]] as const) {
  test(`${name}: KV-cache decoding equals full recomputation token by token`, () => {
    const model = randomModel(cfg, 3);
    // Random weights are too small to be interesting: scale up so the logits vary.
    for (const p of model.parameters().values()) if (p.ndim === 2) for (let i = 0; i < p.size; i++) p.data[i]! *= 20;
    const ids = randomIds(12, cfg.vocabSize, 5);
    const full = fullLogprobs(model, ids);
    const cache = model.newCache(1, 16);
    // Prefill 4 tokens, then one at a time.
    let logits = model.forwardCached(ids.subarray(0, 4), 4, cache, null);
    for (let t = 3; t + 1 < ids.length; t++) {
      const lp = logSoftmaxAt(logits, ids[t + 1]!);
      assert.ok(Math.abs(lp - full[t]!) < 2e-4 * Math.max(1, Math.abs(lp)), `position ${t}: cached ${lp} vs full ${full[t]}`);
      logits = model.forwardCached(ids.subarray(t + 1, t + 2), 1, cache, null);
    }
  });

  test(`${name}: batched generation (left padding) equals one prompt at a time`, () => {
    const model = randomModel(cfg, 4);
    for (const p of model.parameters().values()) if (p.ndim === 2) for (let i = 0; i < p.size; i++) p.data[i]! *= 20;
    const prompts = [[1, 5, 7], [2, 9, 3, 4, 11, 6], [8]];
    const one = prompts.map((p) => generateTokens(model, [p], { maxNewTokens: 8, temperature: 0, padId: 0 }).tokens[0]);
    const batched = generateTokens(model, prompts, { maxNewTokens: 8, temperature: 0, padId: 0 }).tokens;
    assert.deepEqual(batched, one);
  });

  test(`${name}: native backend forward equals the reference backend`, { skip: compiled.skip }, () => {
    const model = randomModel(cfg, 6);
    const ids = randomIds(2 * 9, cfg.vocabSize, 8);
    const targets = randomIds(2 * 9, cfg.vocabSize, 9);
    targets[0] = -1;
    const prev = T.kernels();
    try {
      T.setKernels(T.referenceKernels);
      const ref = T.noGrad(() => model.tokenLogprobs({ ids, batch: 2, seq: 9 }, targets)).toArray();
      T.setKernels(compiled.native!);
      const nat = T.noGrad(() => model.tokenLogprobs({ ids, batch: 2, seq: 9 }, targets)).toArray();
      for (let i = 0; i < ref.length; i++) assert.ok(Math.abs(ref[i]! - nat[i]!) < 1e-4 * Math.max(1, Math.abs(ref[i]!)), `${i}: ${ref[i]} vs ${nat[i]}`);
    } finally {
      T.setKernels(prev);
    }
  });

  test(`${name}: LoRA with B = 0 equals the base model; merged equals unmerged; disabled equals base`, () => {
    const model = randomModel(cfg, 7);
    const ids = randomIds(10, cfg.vocabSize, 10);
    const base = fullLogprobs(model, ids);
    const rng = new Rng(1);
    for (const lin of model.linears()) lin.attachLora(4, 8, 0, rng);
    assert.deepEqual(fullLogprobs(model, ids), base);
    for (const lin of model.linears()) for (let i = 0; i < lin.lora!.B.size; i++) lin.lora!.B.data[i] = (rng.next() - 0.5) * 0.2;
    const adapted = fullLogprobs(model, ids);
    assert.ok(adapted.some((x, i) => Math.abs(x - base[i]!) > 1e-4), 'adapter had no effect');
    model.ctx.adaptersEnabled = false;
    assert.deepEqual(fullLogprobs(model, ids), base);
    model.ctx.adaptersEnabled = true;
    for (const lin of model.linears()) lin.mergeLora();
    const merged = fullLogprobs(model, ids);
    for (let i = 0; i < merged.length; i++) assert.ok(Math.abs(merged[i]! - adapted[i]!) < 1e-4, `${i}: ${merged[i]} vs ${adapted[i]}`);
  });

  test(`${name}: training gradients reach every trainable parameter`, () => {
    const model = randomModel(cfg, 8);
    const ids = randomIds(2 * 7, cfg.vocabSize, 11);
    const targets = randomIds(2 * 7, cfg.vocabSize, 12);
    const lp = model.tokenLogprobs({ ids, batch: 2, seq: 7 }, targets);
    T.backward(T.sumAll(lp));
    for (const p of model.trainableParameters()) {
      assert.ok(p.grad, `${p.name} got no gradient`);
      assert.ok(p.grad.every(Number.isFinite), `${p.name} has a non-finite gradient`);
    }
  });
}

test('sampling: greedy, top-k 1 and seeded sampling', () => {
  const logits = Float32Array.from([0.1, 2, 0.5, 1.9]);
  assert.equal(sampleToken(logits, { temperature: 0 }, new Rng(0)), 1);
  assert.equal(sampleToken(logits, { temperature: 1, topK: 1 }, new Rng(0)), 1);
  const a = Array.from({ length: 20 }, (_, i) => sampleToken(logits, { temperature: 1 }, new Rng(i)));
  const b = Array.from({ length: 20 }, (_, i) => sampleToken(logits, { temperature: 1 }, new Rng(i)));
  assert.deepEqual(a, b);
  assert.ok(new Set(a).size > 1, 'sampling never varied');
  // top-p 0.5 keeps only the two close leaders.
  for (let i = 0; i < 20; i++) assert.ok([1, 3].includes(sampleToken(logits, { temperature: 1, topP: 0.5 }, new Rng(i))));
});

test('stories260K reproduces llama2.c greedy output', async () => {
  const { model } = loadModel(STORIES);
  const tok = await loadLlama2cTokenizer(TOK512);
  const { tokens } = generateTokens(model, [[1]], { maxNewTokens: 60, temperature: 0, padId: 0, stopIds: [] });
  const text = tok.decode(tokens[0]!).trimStart(); // llama2.c drops the space after BOS
  const expected = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park.';
  assert.ok(text.startsWith(expected), `got: ${JSON.stringify(text)}`);
});

test('tiny-gpt2-random loads from its Hugging Face directory and runs', () => {
  const { model, format } = loadModel(TINY_GPT2);
  assert.equal(format, 'hf');
  assert.equal(model.config.architecture, 'gpt2');
  const lp = fullLogprobs(model, Int32Array.from([1, 2, 3, 4]));
  assert.ok(lp.every((x) => Number.isFinite(x) && x <= 0));
});

test('generate(): streaming pieces add up to the text; stop strings cut; same seed, same text', async () => {
  const { generate } = await import('../src/models/generate.js');
  const { model } = loadModel(STORIES);
  const tok = await loadLlama2cTokenizer(TOK512);
  let streamed = '';
  const r = generate(model, tok, ['Once upon a time'], { temperature: 0, maxNewTokens: 40, stopStrings: ['Lily'], onText: (_row, d) => (streamed += d) });
  assert.equal(r.texts[0], ', there was a little girl named ');
  assert.equal(streamed, r.texts[0]);
  assert.equal(r.finish[0], 'stop');
  const a = generate(model, tok, ['Once upon a time', 'The dog'], { temperature: 0.9, topP: 0.9, seed: 11, maxNewTokens: 25 });
  const b = generate(model, tok, ['Once upon a time', 'The dog'], { temperature: 0.9, topP: 0.9, seed: 11, maxNewTokens: 25 });
  assert.deepEqual(a.texts, b.texts);
  const c = generate(model, tok, ['Once upon a time', 'The dog'], { temperature: 0.9, topP: 0.9, seed: 12, maxNewTokens: 25 });
  assert.notDeepEqual(a.texts, c.texts);
});

test('sampleToken equals a full-sort reference for top-k and top-p on random logits', () => {
  // The straightforward definition: sort everything, cut top-k, softmax, cut the nucleus, walk.
  function reference(logits: Float32Array, topK: number, topP: number, temperature: number, u: number): number {
    let idx = Array.from({ length: logits.length }, (_, i) => i).sort((a, b) => logits[b]! - logits[a]! || a - b);
    if (topK > 0 && topK < idx.length) idx = idx.slice(0, topK);
    const m = logits[idx[0]!]!;
    let p = idx.map((i) => Math.exp((logits[i]! - m) / temperature));
    let total = p.reduce((a, b) => a + b, 0);
    if (topP < 1) {
      let acc = 0, cut = p.length;
      for (let j = 0; j < p.length; j++) {
        acc += p[j]! / total;
        if (acc >= topP) {
          cut = j + 1;
          break;
        }
      }
      idx = idx.slice(0, cut);
      p = p.slice(0, cut);
      total = p.reduce((a, b) => a + b, 0);
    }
    let x = u * total;
    for (let j = 0; j < p.length; j++) {
      x -= p[j]!;
      if (x < 0) return idx[j]!;
    }
    return idx[idx.length - 1]!;
  }
  const r = new Rng(5);
  for (let c = 0; c < 300; c++) {
    const V = 1 + r.int(2000);
    const logits = Float32Array.from({ length: V }, () => (r.next() - 0.5) * (c % 3 === 0 ? 40 : 6));
    const topK = c % 4 === 0 ? 0 : 1 + r.int(50);
    const topP = c % 5 === 0 ? 1 : 0.3 + 0.69 * r.next();
    if (topK === 0 && topP === 1) continue;
    const temperature = 0.3 + r.next() * 1.5;
    const seed = c * 7 + 1;
    const got = sampleToken(logits, { temperature, topK, topP }, new Rng(seed));
    const want = reference(logits, topK, topP, temperature, new Rng(seed).next());
    assert.equal(got, want, `case ${c}: V ${V}, topK ${topK}, topP ${topP}`);
  }
});

// Forward parity and training gradients with the WebAssembly build of the kernels.
wasmRerun(import.meta.url, 'native backend forward equals|training gradients', { minPassed: 4 });
