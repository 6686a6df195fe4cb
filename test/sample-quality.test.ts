// Fluency, diversity and length of samples (src/train/sample-quality.ts): distinct-n, repetition
// and self-similarity of constructed texts with known values; perplexity and top-k share under a
// tiny model against a hand computation; the verdict on the real stories260K (fluent, also with
// other random numbers) and on a deliberately over-trained DPO copy of it (collapsed); the
// sample_checks watchdog.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { llamaConfig } from '../src/io/config.js';
import { createModel, randomModel } from '../src/models/index.js';
import { loadModel, loadModelAndTokenizer } from '../src/io/load-model.js';
import { makeWeight } from '../src/io/weights.js';
import {
  distinctN, FLUENCY_THRESHOLDS, fluencyVerdict, perplexity, repeatsNgram, sampleQuality, scoreTokens, selfSimilarity, words,
  type SampleQuality,
} from '../src/train/sample-quality.js';
import { evaluateAgainstReference, evaluationTable, makeJudge, sampleCompletions } from '../src/eval/index.js';
import { parseDpoConfig } from '../src/train/config.js';
import { runDpo } from '../src/train/dpo.js';
import { writeJsonl } from './fixtures/train/tiny.js';
import { STORIES260K } from './helpers/fixtures.js';
import { memoryStats } from '../src/tensor/memory.js';

test('words, distinct-n, repetition and self-similarity of constructed texts', () => {
  assert.deepEqual(words("The cat's mat, THE end!"), ["the", "cat's", 'mat', 'the', 'end']);
  // 6 words, 4 distinct; 4 bigrams ("the cat" twice), 3 distinct.
  assert.equal(distinctN(['the cat sat', 'the cat ran'], 1), 4 / 6);
  assert.equal(distinctN(['the cat sat', 'the cat ran'], 2), 3 / 4);
  assert.ok(Number.isNaN(distinctN(['one', ''], 2)), 'no bigrams at all');
  assert.equal(distinctN(['a b c d'], 2), 1);

  assert.equal(repeatsNgram('go go go go'), true, '"go go" three times (overlapping)');
  assert.equal(repeatsNgram('a b a b a b'), true);
  assert.equal(repeatsNgram('a b a b'), false, 'twice is not three times');
  assert.equal(repeatsNgram('The cat. the CAT, the cat!'), true, 'case and punctuation ignored');
  assert.equal(repeatsNgram('like like to like fun like'), false, 'a repeated word alone is not a repeated phrase');
  assert.equal(repeatsNgram('a b a b', 2), true);

  assert.equal(selfSimilarity([['a b', 'a b']]), 1);
  assert.equal(selfSimilarity([['a b', 'c d']]), 0);
  // {a, b, "a b"} vs {a, c, "a c"}: 1 shared of 5.
  assert.ok(Math.abs(selfSimilarity([['a b', 'a c']]) - 0.2) < 1e-12);
  // Mean over prompts; single samples ignored; three samples → mean of 3 pairs.
  assert.ok(Math.abs(selfSimilarity([['a b', 'a b', 'c d'], ['x'], ['p q', 'r s']]) - (1 / 3 + 0) / 2) < 1e-12);
  assert.ok(Number.isNaN(selfSimilarity([['x'], ['y']])));

  const q = sampleQuality({
    texts: ['go go go go', 'the cat sat', 'a dog', 'the cat sat'], promptIndex: [0, 0, 1, 1],
    ref: { logp: Float64Array.from([-2, -4, -1, -1]), tokens: Int32Array.from([4, 4, 1, 3]), outsideTopK: Int32Array.from([1, 0, 0, 2]) },
    stopped: [false, true, true, false], topK: 5,
  });
  assert.ok(Math.abs(q.perplexity - Math.exp(8 / 12)) < 1e-12);
  assert.equal(q.offTopK, 3 / 12);
  assert.equal(q.meanTokens, 3);
  assert.equal(q.truncatedShare, 0.5);
  assert.equal(q.repeatShare, 0.25);
  assert.equal(q.distinct1, 6 / 12);
  assert.equal(q.fluencyPerplexity, null);
});

/**
 * A 1-layer Llama whose attention and MLP add nothing (o_proj, down_proj zero): the logits of a
 * position depend only on its token, logits = W · RMSNorm(E[token]), which is computed here by hand.
 */
function bigramModel() {
  const V = 6, d = 4;
  const cfg = llamaConfig({ vocabSize: V, hiddenSize: d, intermediateSize: 8, numLayers: 1, numHeads: 1, maxPositions: 16, tieWordEmbeddings: false, normEps: 1e-5, bosTokenId: 0, eosTokenId: [5] });
  const w = randomModel(cfg, 3).exportWeights();
  const E = Float32Array.from({ length: V * d }, (_, i) => Math.sin(1.7 * i + 0.3) * 1.5);
  const W = Float32Array.from({ length: V * d }, (_, i) => Math.cos(0.9 * i - 0.2) * 2);
  w.set('model.embed_tokens.weight', makeWeight([V, d], E));
  w.set('lm_head.weight', makeWeight([V, d], W));
  for (const name of ['model.layers.0.self_attn.o_proj.weight', 'model.layers.0.mlp.down_proj.weight']) {
    const s = w.get(name)!;
    w.set(name, makeWeight(s.shape, new Float32Array(s.data.length)));
  }
  const model = createModel(cfg, w, 'bigram');
  /** log p(next | current) and the rank of `next` (logits strictly above it), in float64. */
  const hand = (cur: number, next: number): { logp: number; above: number } => {
    const e = Array.from({ length: d }, (_, k) => E[cur * d + k]!);
    const rms = Math.sqrt(e.reduce((a, x) => a + x * x, 0) / d + 1e-5);
    const logits = Array.from({ length: V }, (_, v) => e.reduce((a, x, k) => a + (x / rms) * W[v * d + k]!, 0));
    const m = Math.max(...logits);
    const lse = m + Math.log(logits.reduce((a, l) => a + Math.exp(l - m), 0));
    return { logp: logits[next]! - lse, above: logits.filter((l) => l > logits[next]!).length };
  };
  return { model, hand, V };
}

test('scoreTokens: log-probs, perplexity and top-k share under a tiny model equal a hand computation', () => {
  const { model, hand } = bigramModel();
  const prompts = [[0, 3], [0], [0, 1, 2]];
  const completions = [[4, 4, 1, 5], [2, 3], []];
  for (const k of [1, 2, 3]) {
    const live = memoryStats().currentBytes;
    const s = scoreTokens(model, prompts, completions, { padId: 5, topK: k, batchSize: 2 });
    // The KV caches and each position's logits go back to the pool (they were left to the GC:
    // counted as live until a full collection, inflating the next run's working set).
    assert.equal(memoryStats().currentBytes, live, 'scoreTokens left tensor buffers live');
    let lpAll = 0, nAll = 0, offAll = 0;
    prompts.forEach((p, r) => {
      let lp = 0, off = 0;
      let cur = p[p.length - 1]!;
      for (const next of completions[r]!) {
        const h = hand(cur, next);
        lp += h.logp;
        if (h.above >= k) off++;
        cur = next;
      }
      assert.ok(Math.abs(s.logp[r]! - lp) < 1e-4, `row ${r}: ${s.logp[r]} vs hand ${lp}`);
      assert.equal(s.tokens[r], completions[r]!.length);
      assert.equal(s.outsideTopK[r], off, `row ${r}, k=${k}: tokens outside the top-k`);
      lpAll += lp;
      nAll += completions[r]!.length;
      offAll += off;
    });
    const ppl = perplexity(s.logp, s.tokens);
    assert.ok(Math.abs(ppl - Math.exp(-lpAll / nAll)) < 1e-4 * ppl, `perplexity ${ppl} vs hand ${Math.exp(-lpAll / nAll)}`);
    if (k === 1) assert.ok(offAll > 0 && offAll < nAll, 'the example exercises both sides of the top-1 cut');
  }
  assert.throws(() => scoreTokens(model, [[0]], [[1]], { padId: 5, topK: 0 }), /topK must be a positive integer/);
  assert.throws(() => scoreTokens(model, [[0]], [[1, 2], [3]], { padId: 5, topK: 1 }), /1 prompts but 2 completions/);
});

const base: SampleQuality = {
  perplexity: 5, fluencyPerplexity: 20, offTopK: 0.1, topK: 10, distinct1: 0.4, distinct2: 0.7, repeatShare: 0.02, selfSimilarity: 0.05, meanTokens: 24, truncatedShare: 0.9,
};

test('fluencyVerdict: each signal moves the verdict at its documented bound, relative to the reference', () => {
  const th = FLUENCY_THRESHOLDS;
  assert.deepEqual(fluencyVerdict(base, base), { verdict: 'fluent', reasons: [] });
  const v = (o: Partial<SampleQuality>) => fluencyVerdict({ ...base, ...o }, base).verdict;
  assert.equal(v({ perplexity: 5 * (th.perplexityRatio.degrading - 0.01) }), 'fluent');
  assert.equal(v({ perplexity: 5 * th.perplexityRatio.degrading }), 'degrading');
  assert.equal(v({ perplexity: 5 * th.perplexityRatio.collapsed }), 'collapsed');
  assert.equal(v({ perplexity: 2 }), 'fluent', 'more predictable text is not less fluent by perplexity');
  assert.equal(v({ fluencyPerplexity: 20 * th.perplexityRatio.collapsed }), 'collapsed', 'the independent model counts too');
  assert.equal(v({ offTopK: 0.1 * th.offTopKRatio.degrading }), 'degrading');
  assert.equal(v({ offTopK: 0.1 * th.offTopKRatio.collapsed }), 'collapsed');
  assert.equal(v({ distinct2: 0.7 * th.distinct2Ratio.degrading }), 'degrading');
  assert.equal(v({ distinct2: 0.7 * th.distinct2Ratio.collapsed }), 'collapsed');
  assert.equal(v({ repeatShare: 0.02 + th.repeatShareExcess.degrading }), 'degrading');
  assert.equal(v({ repeatShare: 0.02 + th.repeatShareExcess.collapsed }), 'collapsed');
  assert.equal(v({ selfSimilarity: 0.05 + th.selfSimilarityExcess.collapsed }), 'collapsed');
  // Relative: the same absolute figures are fluent next to a reference that has them too.
  const worse = { ...base, perplexity: 50, distinct2: 0.2 };
  assert.equal(fluencyVerdict(worse, base).verdict, 'collapsed');
  assert.equal(fluencyVerdict(worse, worse).verdict, 'fluent');
  const r = fluencyVerdict({ ...base, perplexity: 40, repeatShare: 0.5 }, base);
  assert.equal(r.reasons.length, 2);
  assert.match(r.reasons[0]!, /perplexity under the reference 8\.0× its own samples'/);
  assert.match(r.reasons[1]!, /50% of samples repeat a phrase 3\+ times \(reference 2%\)/);
});

const STORY_PROMPTS = [
  'Once upon a time, there was a', 'One day, a little girl named', 'Tom and his mom went to the', 'The sun was shining and',
  'Lily saw a big', 'The little dog wanted to', 'Sam had a red ball. He', 'In the park, there was a',
  'Mia liked to play with her', 'The cat sat on the', 'Ben was sad because', 'At night, the moon',
];

test('verdict on stories260K: fluent against itself with other random numbers; collapsed after deliberate over-training', async () => {
  const ref = await loadModelAndTokenizer(STORIES260K);
  const tok = ref.tokenizer;
  const ids = STORY_PROMPTS.map((p) => tok.encode(p, { addBos: true }));
  const quality = (model: typeof ref.model, seed: number): SampleQuality => {
    const c = sampleCompletions(model, tok, ids, { samplesPerPrompt: 4, maxNewTokens: 24, seed, quiet: true });
    const s = scoreTokens(ref.model, c.promptIndex.map((p) => ids[p]!), c.tokens, { padId: tok.padId, topK: 10 });
    return sampleQuality({ texts: c.texts, promptIndex: c.promptIndex, ref: s, stopped: c.stopped, topK: 10 });
  };
  const q1 = quality(ref.model, 1);
  for (const seed of [2, 3]) {
    const v = fluencyVerdict(quality(ref.model, seed), q1);
    assert.equal(v.verdict, 'fluent', `the reference with seed ${seed}: ${v.reasons.join('; ')}`);
  }

  // Over-training: DPO with a tiny β and a large learning rate toward "chosen" completions that are
  // praise words, against story continuations.
  const dir = mkdtempSync(join(tmpdir(), 'overtrained-'));
  try {
    const rows = STORY_PROMPTS.flatMap((p, i) => [0, 1, 2].map((j) => ({
      prompt: p, chosen: ' happy happy good love fun happy good', rejected: [' girl named Lily. She', ' big tree. He was', ' park to play.'][(i + j) % 3]!,
    })));
    const data = writeJsonl(join(dir, 'pairs.jsonl'), rows);
    const config = parseDpoConfig({
      beta: 0.01, learning_rate: 1e-2, num_train_epochs: 3, per_device_train_batch_size: 12, logging_steps: 1, save_steps: 0,
      seed: 0, max_length: 64, max_prompt_length: 32, lr_scheduler_type: 'constant',
    }, {}, 'test');
    const r = await runDpo({ model: STORIES260K, data: [data], config, outputDir: join(dir, 'out'), quiet: true, cacheDir: join(dir, 'cache') });
    assert.equal(r.stoppedBecause, null);
    const over = loadModel(join(dir, 'out')).model;
    const ev = evaluateAgainstReference({
      ref: ref.model, policies: [{ name: 'over-trained', model: over, beta: 0.01 }], tokenizer: tok, prompts: STORY_PROMPTS,
      judges: [makeJudge('afinn')], settings: { samplesPerPrompt: 4, maxNewTokens: 24, seed: 1, quiet: true },
    });
    const m = ev.models[1]!;
    assert.equal(m.verdict, 'collapsed', `over-trained: ${m.verdictReasons.join('; ')}; e.g. ${JSON.stringify(m.samples[0]!.completion)}`);
    assert.ok(m.rewards.afinn!.mean > ev.models[0]!.rewards.afinn!.mean, 'the reward still rose: exactly what the verdict must catch');
    assert.equal(ev.bestTradeOff, null, 'a collapsed model is never the best trade-off');
    const table = evaluationTable(ev);
    assert.match(table, /verdict/);
    assert.match(table, /over-trained .* collapsed\n/);
    assert.match(table, /No model is both fluent and better than the reference on every judge/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('sample_checks: eval/samples/* metrics, eval_generations.jsonl, and a watchdog warning when samples collapse', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gen-eval-'));
  try {
    const rows = STORY_PROMPTS.flatMap((p) => [{ prompt: p, chosen: ' happy happy good love fun happy good', rejected: ' girl named Lily. She' }]);
    const data = writeJsonl(join(dir, 'pairs.jsonl'), rows);
    const config = parseDpoConfig({
      beta: 0.01, learning_rate: 1e-2, num_train_epochs: 12, per_device_train_batch_size: 12, logging_steps: 1, eval_steps: 4, save_steps: 0,
      seed: 0, max_length: 64, max_prompt_length: 32, max_completion_length: 16, lr_scheduler_type: 'constant', sample_checks: true,
    }, {}, 'test');
    const r = await runDpo({ model: STORIES260K, data: [data], evalData: [data], config, outputDir: join(dir, 'out'), quiet: true, cacheDir: join(dir, 'cache') });
    assert.ok(r.evalHistory.length >= 3);
    for (const e of r.evalHistory) {
      for (const k of ['perplexity', 'perplexity_ratio', 'off_top_k', 'distinct_2', 'repeat_share', 'self_similarity', 'verdict']) {
        assert.ok(Number.isFinite(e[`eval/samples/${k}`]), `step ${e.step}: eval/samples/${k}`);
      }
    }
    assert.equal(r.evalHistory.at(-1)!['eval/samples/verdict'], 2, 'the over-trained run ends collapsed');
    assert.ok(r.warnings.some((w) => /^samples are collapsed at step \d+: .*eval_generations\.jsonl/.test(w)), r.warnings.join('\n'));
    const gens = readFileSync(join(dir, 'out', 'eval_generations.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(gens.length, r.evalHistory.length * STORY_PROMPTS.length * 2);
    assert.deepEqual(Object.keys(gens[0]!), ['step', 'prompt', 'policy', 'reference', 'verdict']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
