// Padding-free packing (TRL's padding_free): sequences laid back to back in one row, each with its
// own positions and attending only to itself. The packed forward and backward must equal the
// padded ones (float64 to rounding; float32 to float tolerance) for Llama (GQA, RoPE) and GPT-2
// (learned positions), and DPO / SFT training with padding_free must follow the padded run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../src/tensor/index.js';
import { llamaConfig, parseModelConfig } from '../src/io/config.js';
import { randomModel } from '../src/models/index.js';
import { packRows } from '../src/data/batch.js';
import { parseDpoConfig, parseSftConfig } from '../src/train/config.js';
import { runDpo } from '../src/train/dpo.js';
import { runSft } from '../src/train/sft.js';
import { makeTinyModelDir, syntheticPairs, writeJsonl } from './fixtures/train/tiny.js';
import { mulberry32 } from './helpers/rng.js';
import { assertClose } from './helpers/assert.js';

test('packedAttention equals attention of each sequence alone (float64, GQA)', () => {
  const r = mulberry32(5);
  const lengths = Int32Array.from([5, 1, 7, 3]);
  const N = 16, H = 4, Hkv = 2, D = 8;
  const rnd = (n: number) => Float64Array.from({ length: n }, () => r() * 2 - 1);
  const q = rnd(N * H * D), k = rnd(N * Hkv * D), v = rnd(N * Hkv * D);
  const packed = T.packedAttention(T.tensor(q, [1, N, H, D], { dtype: 'float64' }), T.tensor(k, [1, N, Hkv, D], { dtype: 'float64' }), T.tensor(v, [1, N, Hkv, D], { dtype: 'float64' }), lengths);
  let row = 0;
  for (const n of lengths) {
    const one = T.attention(
      T.tensor(q.slice(row * H * D, (row + n) * H * D), [1, n, H, D], { dtype: 'float64' }),
      T.tensor(k.slice(row * Hkv * D, (row + n) * Hkv * D), [1, n, Hkv, D], { dtype: 'float64' }),
      T.tensor(v.slice(row * Hkv * D, (row + n) * Hkv * D), [1, n, Hkv, D], { dtype: 'float64' }));
    assertClose(packed.data.subarray(row * H * D, (row + n) * H * D), one.data, { rtol: 1e-12, atol: 1e-12, label: `sequence at ${row}` });
    row += n;
  }
  assert.throws(() => T.packedAttention(T.tensor(q, [1, N, H, D], { dtype: 'float64' }), T.tensor(k, [1, N, Hkv, D], { dtype: 'float64' }), T.tensor(v, [1, N, Hkv, D], { dtype: 'float64' }), Int32Array.from([5, 10])),
    /packedAttention: lengths add up to 15, but q has 16 tokens/);
});

/** Padded [rows, S] batch of random sequences with the given lengths (targets: next token, −1 past the end). */
function paddedBatch(lengths: number[], vocab: number, seed: number) {
  const r = mulberry32(seed);
  const S = Math.max(...lengths), rows = lengths.length;
  const ids = new Int32Array(rows * S), targets = new Int32Array(rows * S).fill(-1);
  lengths.forEach((n, b) => {
    for (let t = 0; t < n; t++) ids[b * S + t] = Math.floor(r() * vocab);
    for (let t = 0; t + 1 < n; t++) if (t >= 1) targets[b * S + t] = ids[b * S + t + 1]!;
  });
  return { ids, targets, S, rows, lengths: Int32Array.from(lengths) };
}

test('packed forward and backward equal the padded ones: Llama (GQA, RoPE) and GPT-2 (learned positions)', () => {
  const configs = [
    llamaConfig({ vocabSize: 50, hiddenSize: 32, intermediateSize: 48, numLayers: 2, numHeads: 4, numKvHeads: 2, maxPositions: 64, tieWordEmbeddings: false }),
    parseModelConfig({ architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', vocab_size: 50, n_embd: 32, n_layer: 2, n_head: 4, n_positions: 64 }, 'gpt2'),
  ];
  for (const cfg of configs) {
    const b = paddedBatch([9, 3, 14, 6], cfg.vocabSize, 11);
    const run = (packed: boolean) => {
      const model = randomModel(cfg, 3);
      let lp: T.Tensor, perRow: number[];
      if (packed) {
        const p = packRows(b.ids, b.targets, b.lengths, b.S);
        lp = model.tokenLogprobs({ ids: p.ids, batch: 1, seq: p.ids.length, segments: p.lengths }, p.targets);
        perRow = [];
        let i = 0;
        for (const n of b.lengths) {
          let s = 0;
          for (let t = 0; t < n; t++) s += lp.data[i++]!;
          perRow.push(s);
        }
      } else {
        lp = model.tokenLogprobs({ ids: b.ids, batch: b.rows, seq: b.S }, b.targets);
        perRow = Array.from(b.lengths, (_, r) => {
          let s = 0;
          for (let t = 0; t < b.S; t++) s += lp.data[r * b.S + t]!;
          return s;
        });
      }
      T.backward(T.sumAll(lp));
      const grads = new Map([...model.parameters()].map(([n, t]) => [n, Float32Array.from(t.grad!)]));
      return { perRow, grads };
    };
    const padded = run(false), packed = run(true);
    assertClose(Float64Array.from(packed.perRow), Float64Array.from(padded.perRow), { rtol: 1e-5, atol: 1e-5, label: `${cfg.architecture} per-sequence log-probs` });
    for (const [name, g] of padded.grads) {
      let mag = 1e-3;
      for (const x of g) mag = Math.max(mag, Math.abs(x));
      assertClose(packed.grads.get(name)!, g, { rtol: 1e-4, atol: 1e-4 * mag, label: `${cfg.architecture} d${name}` });
    }
  }
});

test('packed blocks are checked: batch 1, lengths adding up to seq, no cache', () => {
  const cfg = llamaConfig({ vocabSize: 20, hiddenSize: 16, intermediateSize: 16, numLayers: 1, numHeads: 2, maxPositions: 32, tieWordEmbeddings: true });
  const model = randomModel(cfg, 1);
  const ids = new Int32Array(6), targets = new Int32Array(6).fill(-1);
  assert.throws(() => model.tokenLogprobs({ ids, batch: 2, seq: 3, segments: Int32Array.from([3, 3]) }, targets), /packed sequences need batch 1 and lengths adding up to seq/);
  assert.throws(() => model.tokenLogprobs({ ids, batch: 1, seq: 6, segments: Int32Array.from([3, 2]) }, targets), /lengths sum 5/);
});

const tmp = (p: string): string => mkdtempSync(join(tmpdir(), p));

test('DPO and SFT with padding_free follow the padded runs (losses, precomputed reference)', async () => {
  const modelDir = await makeTinyModelDir();
  const dataDir = tmp('dpo-pack-data-');
  const trainFile = writeJsonl(join(dataDir, 'train.jsonl'), syntheticPairs(48, 3));
  const base = {
    learning_rate: 3e-3, beta: 0.1, per_device_train_batch_size: 8, max_length: 64, max_prompt_length: 32, logging_steps: 1,
    save_steps: 0, seed: 7, lr_scheduler_type: 'constant', max_steps: 4, share_prompt: false,  // padded vs packed (share_prompt packs either way)
  };
  const padded = await runDpo({ model: modelDir, data: [trainFile], outputDir: tmp('dpo-pad-'), quiet: true, config: parseDpoConfig(base) });
  const packed = await runDpo({ model: modelDir, data: [trainFile], outputDir: tmp('dpo-packed-'), quiet: true, config: parseDpoConfig({ ...base, padding_free: true }) });
  assert.equal(packed.history.length, padded.history.length);
  packed.history.forEach((h, i) => {
    for (const k of ['loss', 'rewards/margins', 'logps/chosen', 'logits/chosen', 'grad_norm']) {
      const a = h[k]!, b = padded.history[i]![k]!;
      assert.ok(Math.abs(a - b) <= 1e-4 * Math.max(1, Math.abs(b)), `step ${i} ${k}: packed ${a} vs padded ${b}`);
    }
  });
  // The precomputed reference of a packed run has its own cache entry and gives the live losses.
  const cacheDir = tmp('dpo-pack-cache-');
  const pre = await runDpo({ model: modelDir, data: [trainFile], outputDir: tmp('dpo-packed-pre-'), quiet: true, cacheDir, config: parseDpoConfig({ ...base, padding_free: true, precompute_ref_log_probs: true }) });
  assert.equal(pre.refCacheHit, false);
  assert.deepEqual(pre.history.map((h) => h.loss), packed.history.map((h) => h.loss));
  const prePadded = await runDpo({ model: modelDir, data: [trainFile], outputDir: tmp('dpo-pad-pre-'), quiet: true, cacheDir, config: parseDpoConfig({ ...base, precompute_ref_log_probs: true }) });
  assert.equal(prePadded.refCacheHit, false, 'padded and packed runs must not share cached reference log-probs');

  const sftFile = writeJsonl(join(dataDir, 'sft.jsonl'), syntheticPairs(24, 4).map((p) => ({ prompt: p.prompt, completion: p.chosen })));
  const sftBase = { learning_rate: 3e-3, per_device_train_batch_size: 6, max_length: 64, logging_steps: 1, save_steps: 0, seed: 7, lr_scheduler_type: 'constant', max_steps: 3 };
  const sftPadded = await runSft({ model: modelDir, data: [sftFile], outputDir: tmp('sft-pad-'), quiet: true, config: parseSftConfig(sftBase) });
  const sftPacked = await runSft({ model: modelDir, data: [sftFile], outputDir: tmp('sft-packed-'), quiet: true, config: parseSftConfig({ ...sftBase, padding_free: true }) });
  sftPacked.history.forEach((h, i) => {
    const a = h.loss!, b = sftPadded.history[i]!.loss!;
    assert.ok(Math.abs(a - b) <= 1e-4 * Math.max(1, Math.abs(b)), `SFT step ${i}: packed ${a} vs padded ${b}`);
  });
});
