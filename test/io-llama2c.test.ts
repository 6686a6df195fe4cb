import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readLlama2cCheckpoint, readLlama2cHeader, writeLlama2cCheckpoint, LLAMA2C_MAGIC } from '../src/io/llama2c.js';
import { llamaConfig } from '../src/io/config.js';
import { permuteHalvesToInterleaved, type WeightMap } from '../src/io/weights.js';
import { argmax, bitsEqual, decodeLlama2c, randomWeight, readLlama2cTokenizer, rng, tempDir, TinyLlama } from './fixtures/io/helpers.js';

import { STORIES260K as STORIES, TOK512 } from './helpers/fixtures.js';

test('stories260K: header, config and Hugging Face names/shapes', () => {
  const { header, config, weights } = readLlama2cCheckpoint(STORIES);
  assert.equal(header.version, 0);
  assert.deepEqual(
    [header.dim, header.hiddenDim, header.nLayers, header.nHeads, header.nKvHeads, header.vocabSize, header.seqLen],
    [64, 172, 5, 8, 4, 512, 512],
  );
  assert.equal(header.sharedClassifier, true);
  assert.equal(config.architecture, 'llama');
  assert.equal(config.headDim, 8);
  assert.equal(config.numKvHeads, 4);
  assert.equal(config.tieWordEmbeddings, true);
  assert.equal(config.normEps, 1e-5);
  assert.equal(config.ropeTheta, 10000);
  assert.equal(weights.has('lm_head.weight'), false);
  assert.deepEqual(weights.get('model.embed_tokens.weight')!.shape, [512, 64]);
  assert.deepEqual(weights.get('model.layers.4.self_attn.k_proj.weight')!.shape, [32, 64]);
  assert.deepEqual(weights.get('model.layers.0.mlp.down_proj.weight')!.shape, [64, 172]);
  assert.deepEqual(weights.get('model.norm.weight')!.shape, [64]);
  assert.equal(weights.size, 2 + 9 * 5);
  let total = 0;
  for (const w of weights.values()) total += w.data.length;
  assert.equal(total, 260032 - 0); // the README's parameter count (RoPE tables not counted)
});

test('stories260K: HF-convention forward reproduces llama2.c greedy text', () => {
  const { config, weights } = readLlama2cCheckpoint(STORIES);
  const { pieces } = readLlama2cTokenizer(TOK512, config.vocabSize);
  const model = new TinyLlama(config, weights);
  const ids: number[] = [];
  let tok = 1; // BOS
  for (let i = 0; i < 16; i++) {
    tok = argmax(model.step(tok));
    ids.push(tok);
  }
  const text = decodeLlama2c(pieces, ids);
  assert.ok(text.startsWith('Once upon a time, there was a little girl named Lily'), `greedy text: ${JSON.stringify(text)}`);
});

test('stories260K: q/k rows are the HF permutation of the file rows', () => {
  const { weights } = readLlama2cCheckpoint(STORIES);
  const buf = readFileSync(STORIES);
  const f = new Float32Array(buf.buffer.slice(buf.byteOffset + 28, buf.byteOffset + buf.length));
  // Legacy order: token_embedding [512*64], rms_att [5*64], wq [5*64*64], wk [5*32*64] ...
  const wqOff = 512 * 64 + 5 * 64;
  const wkOff = wqOff + 5 * 64 * 64;
  for (const [l, off, rows, heads, name] of [[2, wqOff + 2 * 4096, 64, 8, 'q'], [3, wkOff + 3 * 2048, 32, 4, 'k']] as const) {
    const fileRows = f.subarray(off, off + rows * 64);
    const hf = weights.get(`model.layers.${l}.self_attn.${name}_proj.weight`)!;
    // HF row h*d + j*d/2 + i == file row h*d + 2i + j (d = 8).
    for (let h = 0; h < heads; h++) {
      for (let j = 0; j < 2; j++) {
        for (let i = 0; i < 4; i++) {
          const hfRow = hf.data.subarray((h * 8 + j * 4 + i) * 64, (h * 8 + j * 4 + i + 1) * 64);
          const fRow = fileRows.subarray((h * 8 + 2 * i + j) * 64, (h * 8 + 2 * i + j + 1) * 64);
          assert.ok(bitsEqual(hfRow, fRow), `${name} layer ${l} head ${h} j ${j} i ${i}`);
        }
      }
    }
    assert.ok(bitsEqual(permuteHalvesToInterleaved(hf, heads).data, fileRows));
  }
});

/** Builds a version-1 file by hand in llama2.c's own order (independent of the writer). */
function buildV1(dims: { dim: number; hidden: number; layers: number; heads: number; kvHeads: number; vocab: number; seq: number }, shared: boolean, seed: number) {
  const r = rng(seed);
  const { dim, hidden, layers, heads, kvHeads, vocab, seq } = dims;
  const kv = (dim / heads) * kvHeads;
  const per = (shape: number[]) => Array.from({ length: layers }, () => randomWeight(shape, r));
  const t = {
    rmsAtt: per([dim]), rmsFfn: per([dim]), rmsFinal: randomWeight([dim], r), emb: randomWeight([vocab, dim], r),
    wq: per([dim, dim]), wk: per([kv, dim]), wv: per([kv, dim]), wo: per([dim, dim]),
    w1: per([hidden, dim]), w2: per([dim, hidden]), w3: per([hidden, dim]), wcls: randomWeight([vocab, dim], r),
  };
  const header = Buffer.alloc(256);
  header.writeUInt32LE(LLAMA2C_MAGIC, 0);
  header.writeInt32LE(1, 4);
  [dim, hidden, layers, heads, kvHeads, vocab, seq].forEach((v, i) => header.writeInt32LE(v, 8 + 4 * i));
  header.writeUInt8(shared ? 1 : 0, 36);
  const order = [...t.rmsAtt, ...t.rmsFfn, t.rmsFinal, t.emb, ...t.wq, ...t.wk, ...t.wv, ...t.wo, ...t.w1, ...t.w2, ...t.w3, ...(shared ? [] : [t.wcls])];
  const bytes = Buffer.concat([header, ...order.map((w) => Buffer.from(w.data.buffer))]);
  return { t, bytes };
}

test('version 1 file: header, order, unshared classifier, q/k permutation', () => {
  const { dir, cleanup } = tempDir('l2c');
  try {
    const dims = { dim: 16, hidden: 24, layers: 2, heads: 4, kvHeads: 2, vocab: 11, seq: 32 };
    const { t, bytes } = buildV1(dims, false, 7);
    const path = join(dir, 'v1.bin');
    writeFileSync(path, bytes);
    const { header, config, weights } = readLlama2cCheckpoint(path);
    assert.equal(header.version, 1);
    assert.equal(header.sharedClassifier, false);
    assert.equal(config.tieWordEmbeddings, false);
    assert.equal(config.maxPositions, 32);
    assert.ok(bitsEqual(weights.get('lm_head.weight')!.data, t.wcls.data));
    assert.ok(bitsEqual(weights.get('model.embed_tokens.weight')!.data, t.emb.data));
    assert.ok(bitsEqual(weights.get('model.norm.weight')!.data, t.rmsFinal.data));
    for (let l = 0; l < 2; l++) {
      const p = `model.layers.${l}.`;
      assert.ok(bitsEqual(weights.get(`${p}input_layernorm.weight`)!.data, t.rmsAtt[l]!.data));
      assert.ok(bitsEqual(weights.get(`${p}post_attention_layernorm.weight`)!.data, t.rmsFfn[l]!.data));
      assert.ok(bitsEqual(weights.get(`${p}mlp.gate_proj.weight`)!.data, t.w1[l]!.data));
      assert.ok(bitsEqual(weights.get(`${p}mlp.down_proj.weight`)!.data, t.w2[l]!.data));
      assert.ok(bitsEqual(weights.get(`${p}mlp.up_proj.weight`)!.data, t.w3[l]!.data));
      assert.ok(bitsEqual(weights.get(`${p}self_attn.v_proj.weight`)!.data, t.wv[l]!.data));
      assert.ok(bitsEqual(weights.get(`${p}self_attn.o_proj.weight`)!.data, t.wo[l]!.data));
      // Head size 4: HF row h*4 + j*2 + i is file row h*4 + 2i + j.
      const q = weights.get(`${p}self_attn.q_proj.weight`)!;
      const k = weights.get(`${p}self_attn.k_proj.weight`)!;
      const row = (w: Float32Array, r: number) => w.subarray(r * 16, (r + 1) * 16);
      for (let h = 0; h < 4; h++) {
        assert.ok(bitsEqual(row(q.data, h * 4 + 1), row(t.wq[l]!.data, h * 4 + 2))); // j=0,i=1 ← 2
        assert.ok(bitsEqual(row(q.data, h * 4 + 2), row(t.wq[l]!.data, h * 4 + 1))); // j=1,i=0 ← 1
        assert.ok(bitsEqual(row(q.data, h * 4 + 0), row(t.wq[l]!.data, h * 4 + 0)));
        assert.ok(bitsEqual(row(q.data, h * 4 + 3), row(t.wq[l]!.data, h * 4 + 3)));
      }
      assert.ok(bitsEqual(row(k.data, 5), row(t.wk[l]!.data, 6)));
    }
    // Writer round trip in both versions: same file bytes for v1, same weights for legacy.
    const again = join(dir, 'again.bin');
    writeLlama2cCheckpoint(again, config, weights, { version: 1 });
    assert.ok(readFileSync(again).equals(bytes));
    const legacy = join(dir, 'legacy.bin');
    writeLlama2cCheckpoint(legacy, config, weights, { version: 0 });
    const back = readLlama2cCheckpoint(legacy);
    assert.equal(back.header.version, 0);
    assert.equal(back.header.sharedClassifier, false);
    assert.equal(readFileSync(legacy).readInt32LE(20), -11); // negative vocab = unshared
    for (const [name, w] of weights) assert.ok(bitsEqual(back.weights.get(name)!.data, w.data), name);
  } finally {
    cleanup();
  }
});

test('legacy writer reproduces stories260K: weights byte for byte, RoPE tables to float32 rounding', () => {
  const { dir, cleanup } = tempDir('l2c-legacy');
  try {
    const { config, weights } = readLlama2cCheckpoint(STORIES);
    const out = join(dir, 's.bin');
    writeLlama2cCheckpoint(out, config, weights, { version: 0 });
    const a = readFileSync(STORIES);
    const b = readFileSync(out);
    assert.equal(b.length, a.length);
    // Everything but the RoPE tables is bit-identical (those are recomputed: float32 rounding may differ).
    const freqStart = 28 + 4 * 260032;
    assert.ok(a.subarray(0, freqStart).equals(b.subarray(0, freqStart)));
    const fa = new Float32Array(a.buffer.slice(a.byteOffset + freqStart, a.byteOffset + a.length));
    const fb = new Float32Array(b.buffer.slice(b.byteOffset + freqStart, b.byteOffset + b.length));
    let maxDiff = 0;
    for (let i = 0; i < fa.length; i++) maxDiff = Math.max(maxDiff, Math.abs(fa[i]! - fb[i]!));
    assert.ok(maxDiff < 1e-5, `RoPE table max diff ${maxDiff}`); // llama2.c computed them in float32
  } finally {
    cleanup();
  }
});

test('malformed llama2.c files give clear errors', () => {
  const { dir, cleanup } = tempDir('l2c-bad');
  try {
    const dims = { dim: 8, hidden: 12, layers: 1, heads: 2, kvHeads: 1, vocab: 5, seq: 4 };
    const { bytes } = buildV1(dims, true, 3);
    const p = join(dir, 'x.bin');
    writeFileSync(p, bytes.subarray(0, bytes.length - 4));
    assert.throws(() => readLlama2cCheckpoint(p), /x\.bin.*needs \d+ \(truncated\?\)/);
    const v2 = Buffer.from(bytes);
    v2.writeInt32LE(2, 4);
    writeFileSync(p, v2);
    assert.throws(() => readLlama2cCheckpoint(p), /version 2 .*Q8_0.*not supported/);
    const odd = Buffer.from(bytes);
    odd.writeInt32LE(3, 8 + 12); // n_heads = 3 does not divide dim 8
    writeFileSync(p, odd);
    assert.throws(() => readLlama2cHeader(p), /dim 8 is not divisible by n_heads 3/);
    writeFileSync(p, Buffer.alloc(10));
    assert.throws(() => readLlama2cCheckpoint(p), /shorter than the 28-byte header/);
    const garbage = Buffer.alloc(64);
    garbage.writeInt32LE(-5, 0);
    writeFileSync(p, garbage);
    assert.throws(() => readLlama2cCheckpoint(p), /dim = -5 is out of range/);
  } finally {
    cleanup();
  }
});

test('writeLlama2cCheckpoint rejects what the format cannot hold', () => {
  const cfg = llamaConfig({ vocabSize: 4, hiddenSize: 8, intermediateSize: 8, numLayers: 1, numHeads: 2, maxPositions: 4, tieWordEmbeddings: true });
  const withBias = { ...cfg, attentionBias: true };
  assert.throws(() => writeLlama2cCheckpoint('/tmp/never.bin', withBias, new Map() as WeightMap), /cannot hold a model with linear biases/);
  assert.throws(() => writeLlama2cCheckpoint('/tmp/never.bin', cfg, new Map() as WeightMap), /missing tensor model\.layers\.0\.input_layernorm\.weight/);
});
