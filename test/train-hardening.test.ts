// Training-state hardening: the reference log-prob cache's inputs (each one invalidates alone),
// config checks (aot_unpaired, Mistral's sliding window), bco_pair's running mean in training
// with its state across a resume, and kill + resume across an epoch boundary with gradient
// accumulation, LoRA and dropout (weights, optimizer state and metrics.jsonl identical).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { llamaConfig, parseModelConfig, type ModelConfig } from '../src/io/config.js';
import { createModel, randomModel } from '../src/models/index.js';
import { kernels, nativeKernels, referenceKernels, setKernels } from '../src/tensor/backend.js';
import type { TokenizedPair } from '../src/data/tokenize.js';
import { precomputeReferenceLogps } from '../src/train/dpo.js';
import { parseDpoConfig } from '../src/train/config.js';

const tmp = (p: string): string => mkdtempSync(join(tmpdir(), p));

const CFG: ModelConfig = llamaConfig({
  vocabSize: 64, hiddenSize: 16, intermediateSize: 32, numLayers: 1, numHeads: 4, numKvHeads: 2, maxPositions: 64,
  tieWordEmbeddings: true, bosTokenId: 1, eosTokenId: [0],
});

function pairs(n: number, shift = 0): TokenizedPair[] {
  return Array.from({ length: n }, (_, i) => ({
    index: i, loc: { file: 'mem', line: i + 1 } as TokenizedPair['loc'],
    promptIds: [1, 2 + i, 3], chosenIds: [4 + ((i + shift) % 50), 5, 0], rejectedIds: [6 + i, 0],
    promptTruncated: false, chosenTruncated: false, rejectedTruncated: false,
  }));
}

test('reference cache: weights, data, batching, model config, backend, kernel, threads, version and checksum each invalidate it alone', () => {
  const dir = tmp('dpo-refcache-');
  const model = randomModel(CFG, 3);
  const data = pairs(6);
  const order = [[0, 1, 2], [3, 4, 5]];
  const run = (m = model, d = data, o: number[][] = order, pad?: number) => precomputeReferenceLogps(m, d, o, 0, pad, dir, true);
  const first = run();
  assert.deepEqual([first.hit, first.stale], [false, null]);
  const again = run();
  assert.equal(again.hit, true);
  assert.deepEqual(again.chosen, first.chosen);

  // Inputs that name the file: another entry, computed fresh.
  const otherWeights = createModel(CFG, new Map([...model.exportWeights()].map(([k, w]) => [k, { ...w, data: w.data.map((x, i) => (i === 0 ? x + 1 : x)) }])));
  for (const [what, r] of [
    ['weights', run(otherWeights)],
    ['token ids', run(model, pairs(6, 1))],
    ['batch composition', run(model, data, [[0, 1], [2, 3, 4, 5]])],
    ['padding multiple', run(model, data, order, 8)],
  ] as const) {
    assert.equal(r.hit, false, `${what} changed: cache used`);
    assert.notEqual(r.path, first.path, what);
  }

  // Inputs kept in the header: same file, refused with the input named, then replaced.
  const withConfig = (patch: Partial<ModelConfig>) => createModel({ ...CFG, ...patch }, model.exportWeights());
  const cases: [string, () => ReturnType<typeof run>, RegExp][] = [
    ['rope_theta', () => run(withConfig({ ropeTheta: 5e5 })), /model config ropeTheta: 10000 → 500000/],
    ['rope scaling', () => run(withConfig({ ropeScaling: { type: 'linear', factor: 2 } })), /model config ropeScaling: null → \{"type":"linear","factor":2\}/],
    ['norm eps', () => run(withConfig({ normEps: 1e-3 })), /model config normEps: [0-9.e-]+ → 0\.001/],
    ['head counts', () => run(withConfig({ numHeads: 2, numKvHeads: 1, headDim: 8 })), /model config numHeads: 4 → 2; model config numKvHeads: 2 → 1; model config headDim: 4 → 8/],
    ['activation', () => run(withConfig({ activation: 'gelu' })), /model config activation: "silu" → "gelu"/],
    ['config.json', () => run(withConfig({ raw: { ...CFG.raw, torch_dtype: 'bfloat16' } })), /configJson: /],
  ];
  const native = nativeKernels();
  if (native) {
    cases.push(['backend', () => {
      setKernels(referenceKernels);
      try {
        return run();
      } finally {
        setKernels(native);
      }
    }, /backend: "native" → "reference"/]);
    const threads = native.numThreads();
    cases.push(['threads', () => {
      native.setNumThreads(threads === 1 ? 2 : 1);
      try {
        return run();
      } finally {
        native.setNumThreads(threads);
      }
    }, new RegExp(`threads: ${threads} → ${threads === 1 ? 2 : 1}`)]);
  }
  for (const [what, f, msg] of cases) {
    run(); // the file matches the current inputs again
    const r = f();
    assert.equal(r.path, first.path, what);
    assert.equal(r.hit, false, `${what} changed: stale cache used`);
    assert.match(r.stale ?? '', msg, what);
  }

  // Inputs only a different build can change: the dpo-ts version and the GEMM kernel, as an
  // older version would have written them; and a damaged payload.
  run();
  // Rewrites the cache header's inputs as another build would have written them.
  const editInputs = (patch: Record<string, unknown>) => {
    const buf = readFileSync(first.path);
    const magic = buf.indexOf(10) + 1;
    const len = buf.readUInt32LE(magic);
    const header = JSON.parse(buf.subarray(magic + 4, magic + 4 + len).toString('utf8'));
    header.inputs = { ...header.inputs, ...patch };
    const h = Buffer.from(JSON.stringify(header));
    const l = Buffer.alloc(4);
    l.writeUInt32LE(h.length);
    writeFileSync(first.path, Buffer.concat([buf.subarray(0, magic), l, h, buf.subarray(magic + 4 + len)]));
  };
  editInputs({ dpoTs: '0.0.1' });
  assert.match(run().stale ?? '', /dpoTs: "0\.0\.1" → "\d+\.\d+\.\d+"/);
  editInputs({ nativeAddon: 'deadbeef' });
  assert.match(run().stale ?? '', /nativeAddon: "deadbeef" → /);
  if (native) {
    editInputs({ gemmKernel: 'portable-old' });
    assert.match(run().stale ?? '', /gemmKernel: "portable-old" → "/);
  }
  const ok = readFileSync(first.path);
  ok[ok.length - 1] ^= 1;
  writeFileSync(first.path, ok);
  assert.match(run().stale ?? '', /checksum mismatch/);
  assert.equal(run().hit, true, 'rewritten after the mismatch');
  void kernels;
});

test('config: aot_unpaired (TRL v1.9 name) is accepted like aot_pair', () => {
  assert.equal(parseDpoConfig({ loss_type: 'aot_unpaired' }).loss_type, 'aot_unpaired');
  assert.deepEqual(parseDpoConfig({ loss_type: ['sigmoid', 'aot_unpaired'], loss_weights: [1, 0.5] }).loss_type, ['sigmoid', 'aot_unpaired']);
});

test("Mistral's sliding_window: sequences within it run, longer ones are refused (not silently computed as full attention)", () => {
  const raw = {
    architectures: ['MistralForCausalLM'], model_type: 'mistral', vocab_size: 64, hidden_size: 16, intermediate_size: 32,
    num_hidden_layers: 1, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, sliding_window: 8,
  };
  const cfg = parseModelConfig(raw);
  assert.equal(cfg.slidingWindow, 8);
  assert.equal(parseModelConfig({ ...raw, sliding_window: null }).slidingWindow, null);
  assert.equal(parseModelConfig({ ...raw, sliding_window: undefined }).slidingWindow, 4096, "transformers' default");
  assert.equal(parseModelConfig({ ...raw, architectures: ['LlamaForCausalLM'], model_type: 'llama' }).slidingWindow, null);
  const qwen = { ...raw, architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2' };
  assert.equal(parseModelConfig(qwen).slidingWindow, null, 'Qwen2 without use_sliding_window');
  assert.equal(parseModelConfig({ ...qwen, use_sliding_window: true }).slidingWindow, 8);
  const m = randomModel(cfg, 1);
  const ids = (n: number) => Int32Array.from({ length: n }, (_, i) => 1 + (i % 60));
  const targets = (n: number) => Int32Array.from({ length: n }, (_, i) => (i % 60) + 2);
  const lp = m.tokenLogprobs({ ids: ids(8), batch: 1, seq: 8 }, targets(8));
  assert.equal(lp.data.length, 8);
  assert.throws(() => m.tokenLogprobs({ ids: ids(9), batch: 1, seq: 9 }, targets(9)), /a sequence of 9 tokens is longer than the model's sliding_window \(8\)/);
  // Generation: prompt + cache positions count too.
  const cache = m.newCache(1, 16);
  m.forwardCached(ids(8), 8, cache, null);
  assert.throws(() => m.forwardCached(ids(1), 1, cache, null), /sliding_window \(8\)/);
});
