// The sampler (src/models/generate.ts sampleToken) draws the same tokens as the straightforward
// implementation it replaced (top-k / top-p heads sorted with a comparator over closures, kept
// here as the oracle) while allocating nothing per token: on a 2,048-token vocabulary the old one
// allocated ~0.4 MB of boxed numbers per top-p token, most of `dpo annotate add-prompts`' garbage.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GCProfiler, getHeapStatistics } from 'node:v8';
import { sampleToken, type SamplingOptions } from '../src/models/generate.js';
import { Rng } from '../src/tensor/random.js';

/** The former sampler, verbatim in behaviour: the reference the new one must match token for token. */
function oracleSortedHead(key: (i: number) => number, V: number, top: number, need: number, weight?: (i: number) => number, needWeight = 0): number[] {
  let d = 1;
  for (;;) {
    const bound = top - d;
    const sel: number[] = [];
    let w = 0;
    for (let i = 0; i < V; i++) {
      if (key(i) >= bound) {
        sel.push(i);
        if (weight) w += weight(i);
      }
    }
    if ((sel.length >= need && (!weight || w >= needWeight)) || !Number.isFinite(bound) || sel.length === V) {
      return sel.sort((a, b) => key(b) - key(a) || a - b);
    }
    d = d >= 1e6 ? Infinity : d * 4;
  }
}

function oracleSample(logits: Float32Array, opts: SamplingOptions, rng: Rng): number {
  const temperature = opts.temperature ?? 1;
  const V = logits.length;
  let m = -Infinity, best = 0;
  for (let i = 0; i < V; i++) if (logits[i]! > m) (m = logits[i]!), (best = i);
  if (temperature <= 0) return best;
  const topK = opts.topK ?? 0, topP = opts.topP ?? 1;
  const weight = (i: number): number => Math.exp((logits[i]! - m) / temperature);
  let idx: number[] | null = null;
  if (topK > 0 && topK < V) idx = oracleSortedHead((i) => logits[i]!, V, m, topK).slice(0, topK);
  if (topP < 1) {
    let total = 0;
    if (idx) for (const i of idx) total += weight(i);
    else for (let i = 0; i < V; i++) total += weight(i);
    const head = idx ?? oracleSortedHead((i) => logits[i]!, V, m, 1, weight, topP * total);
    let acc = 0, cut = head.length;
    for (let j = 0; j < head.length; j++) {
      acc += weight(head[j]!) / total;
      if (acc >= topP) {
        cut = j + 1;
        break;
      }
    }
    idx = head.slice(0, cut);
  }
  if (idx) {
    let total = 0;
    for (const i of idx) total += weight(i);
    let u = rng.next() * total;
    for (const i of idx) {
      u -= weight(i);
      if (u < 0) return i;
    }
    return idx[idx.length - 1]!;
  }
  let total = 0;
  for (let i = 0; i < V; i++) total += weight(i);
  let u = rng.next() * total;
  for (let i = 0; i < V; i++) {
    u -= weight(i);
    if (u < 0) return i;
  }
  return best;
}

/** Logits of several shapes: flat (a random model's), peaked, quantized (many exact ties), with ±0 and −∞ entries. */
function logitSets(): Float32Array[] {
  const rng = new Rng(42);
  const sets: Float32Array[] = [];
  for (const V of [7, 300, 2048]) {
    sets.push(Float32Array.from({ length: V }, () => rng.next() * 0.2 - 0.1));
    sets.push(Float32Array.from({ length: V }, (_, i) => (i % 97 === 3 ? 8 : 0) + rng.next() * 4 - 2));
    sets.push(Float32Array.from({ length: V }, () => Math.round(rng.next() * 6) / 2));
    sets.push(Float32Array.from({ length: V }, (_, i) => (i % 5 === 0 ? -Infinity : i % 5 === 1 ? -0 : i % 5 === 2 ? 0 : rng.next() * 3)));
  }
  return sets;
}

test('sampleToken draws exactly the tokens of the former comparator-sort sampler (top-k, top-p, both, ties, ±0, −∞)', () => {
  let compared = 0;
  for (const logits of logitSets()) {
    for (const temperature of [0, 0.7, 1, 1.3]) {
      for (const topK of [0, 1, 5, 50]) {
        for (const topP of [1, 0.5, 0.9, 0.95]) {
          const opts = { temperature, topK, topP };
          for (let seed = 0; seed < 4; seed++) {
            const a = new Rng(seed), b = new Rng(seed);
            for (let draw = 0; draw < 3; draw++) {
              assert.equal(sampleToken(logits, opts, a), oracleSample(logits, opts, b), `V ${logits.length} ${JSON.stringify(opts)} seed ${seed} draw ${draw}`);
              compared++;
            }
          }
        }
      }
    }
  }
  assert.ok(compared > 2000);
});

/** JS heap bytes allocated while fn runs (heap used before each collection − after the previous one). */
function allocatedDuring(fn: () => void): number {
  const prof = new GCProfiler();
  let after = getHeapStatistics().used_heap_size;
  prof.start();
  fn();
  const now = getHeapStatistics().used_heap_size;
  let bytes = 0;
  for (const g of (prof.stop() as { statistics: { beforeGC: { heapStatistics: { usedHeapSize: number } }; afterGC: { heapStatistics: { usedHeapSize: number } } }[] }).statistics) {
    bytes += Math.max(0, g.beforeGC.heapStatistics.usedHeapSize - after);
    after = g.afterGC.heapStatistics.usedHeapSize;
  }
  return bytes + Math.max(0, now - after);
}

test('sampling allocates nothing per token (top-p over a flat 2,048-token vocabulary, as add-prompts samples)', () => {
  const rng = new Rng(1);
  const logits = Float32Array.from({ length: 2048 }, () => rng.next() * 0.2 - 0.1);
  const opts = { temperature: 0.8, topP: 0.95, topK: 0 };
  for (let i = 0; i < 50; i++) sampleToken(logits, opts, rng); // warm up (optimizing compiler)
  const calls = 2000;
  const perCall = allocatedDuring(() => {
    for (let i = 0; i < calls; i++) sampleToken(logits, opts, rng);
  }) / calls;
  // The former sampler: ~400,000 bytes per call here.
  assert.ok(perCall < 1024, `${perCall.toFixed(0)} bytes allocated per sampled token`);
  const oracle = allocatedDuring(() => {
    for (let i = 0; i < 50; i++) oracleSample(logits, opts, rng);
  }) / 50;
  assert.ok(oracle > 50 * Math.max(perCall, 64), `the check cannot tell: oracle ${oracle.toFixed(0)} B/call vs ${perCall.toFixed(0)}`);
});

test('generation returns its KV cache and each token\'s logits to the pool, with the same tokens as without pooling', async () => {
  const { llamaConfig } = await import('../src/io/config.js');
  const { randomModel } = await import('../src/models/index.js');
  const { generateTokens } = await import('../src/models/generate.js');
  const T = await import('../src/tensor/index.js');
  const cfg = llamaConfig({ vocabSize: 64, hiddenSize: 16, intermediateSize: 32, numLayers: 2, numHeads: 2, maxPositions: 32, tieWordEmbeddings: true, bosTokenId: 1, eosTokenId: [0] });
  const model = randomModel(cfg, 3);
  const caches: { write(l: number, k: Float32Array, v: Float32Array, t: number): void }[] = [];
  const logits: Float32Array[] = [];
  const newCache = model.newCache.bind(model), forwardCached = model.forwardCached.bind(model);
  model.newCache = (b, c) => {
    const cache = newCache(b, c);
    caches.push(cache);
    return cache;
  };
  model.forwardCached = (...a) => {
    const l = forwardCached(...a);
    logits.push(l);
    return l;
  };
  const prompts = [[1, 5, 9], [1, 7]];
  const run = () => T.noGrad(() => generateTokens(model, prompts, { maxNewTokens: 6, temperature: 0.9, topP: 0.9, seed: 4, padId: 0, stopIds: [] }));
  const s0 = T.memoryStats().currentBytes;
  T.setPoolPoison(true); // reused blocks hold NaN until overwritten
  let pooled;
  try {
    run(); // warm: the second run reuses the first one's blocks
    pooled = run();
  } finally {
    T.setPoolPoison(false);
  }
  assert.equal(T.memoryStats().currentBytes, s0, 'generation left live tensor buffers behind');
  assert.equal(caches.length, 2);
  assert.throws(() => caches[1]!.write(0, new Float32Array(0), new Float32Array(0), 0), /after dispose/);
  // Every token's logits were released: releasing them again changes nothing.
  assert.equal(logits.length, 2 * 6);
  for (const l of logits) T.release(l);
  assert.equal(T.memoryStats().currentBytes, s0);
  T.setPoolLimit(0);
  try {
    assert.deepEqual(run(), pooled);
  } finally {
    T.setPoolLimit('auto');
  }
});
