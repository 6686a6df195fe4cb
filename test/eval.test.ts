// Evaluation: judges, sampling determinism, completion log-probs against a direct computation,
// KL of a model against itself, win rate, implicit-reward accuracy, prompt/pair files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../src/tensor/index.js';
import { llamaConfig } from '../src/io/config.js';
import { tokenizerFromJson, trainByteLevelBpe } from '../src/io/tokenizers/index.js';
import type { Tokenizer } from '../src/io/tokenizer.js';
import { createModel, randomModel, type CausalLM } from '../src/models/index.js';
import { cloneWeights } from '../src/io/weights.js';
import {
  allJudges, completionLogps, evaluateAgainstReference, evaluationTable, makeJudge, pairsFromSamples,
  readIdPairs, readPrompts, sampleCompletions, sampleFromLogits, stat, type Judge,
} from '../src/eval/index.js';

const CORPUS = [
  'The good ship sailed on a happy day, and the crew was glad.',
  'A terrible storm came; the sailors were afraid and the mast broke.',
  'Call me Ishmael. Some years ago I went to sea to see the world.',
  'The whale was great and white, and the captain hated it with all his heart.',
];

function tinyTokenizer(): Tokenizer {
  const json = trainByteLevelBpe(CORPUS, { vocabSize: 300, specialTokens: ['<|endoftext|>'] });
  return tokenizerFromJson(json, { bos_token: '<|endoftext|>', eos_token: '<|endoftext|>', add_bos_token: true });
}

function tinyModel(vocab: number, seed: number): CausalLM {
  const cfg = llamaConfig({ vocabSize: vocab, hiddenSize: 32, intermediateSize: 64, numLayers: 2, numHeads: 2, maxPositions: 64, tieWordEmbeddings: true, bosTokenId: 0, eosTokenId: [0] });
  return randomModel(cfg, seed);
}

test('judges: positive text scores above negative text for every judge', () => {
  for (const j of allJudges()) {
    const pos = j.score('a good, happy and wonderful day; I love it');
    const neg = j.score('a terrible, sad and awful day; I hate it');
    assert.ok(pos > 0 && neg < 0, `${j.name}: ${pos} vs ${neg}`);
  }
  assert.equal(makeJudge('afinn').score('good'), 3);
  assert.throws(() => makeJudge('bert'), /unknown reward "bert"; choose one of afinn, senticon, vader/);
});

test('stat: mean and standard error', () => {
  const s = stat([1, 2, 3, 4]);
  assert.equal(s.mean, 2.5);
  assert.ok(Math.abs(s.stderr - Math.sqrt(5 / 3 / 4)) < 1e-12);
  assert.ok(Number.isNaN(stat([]).mean));
});

test('completionLogps equals the sum of tokenLogprobs over completion tokens, row by row', () => {
  const tok = tinyTokenizer();
  const m = tinyModel(tok.vocabSize, 1);
  const prompts = [tok.encode('The good ship'), tok.encode('A terrible')];
  const comps = [tok.encode(' sailed on', { addBos: false }), [...tok.encode(' storm came', { addBos: false }), 0]];
  const got = completionLogps(m, prompts, comps, tok.padId, 1);
  const batched = completionLogps(m, prompts, comps, tok.padId, 2);
  for (let i = 0; i < 2; i++) {
    const ids = [...prompts[i]!, ...comps[i]!];
    const targets = new Int32Array(ids.length).fill(-1);
    for (let t = prompts[i]!.length - 1; t < ids.length - 1; t++) targets[t] = ids[t + 1]!;
    const lp = T.noGrad(() => m.tokenLogprobs({ ids: Int32Array.from(ids), batch: 1, seq: ids.length }, targets));
    let want = 0;
    for (let t = 0; t < ids.length; t++) if (targets[t]! >= 0) want += lp.data[t]!;
    assert.ok(Math.abs(got[i]! - want) < 1e-4, `row ${i}: ${got[i]} vs ${want}`);
    assert.ok(Math.abs(batched[i]! - want) < 1e-4, `row ${i} padded batch: ${batched[i]} vs ${want}`);
  }
  assert.equal(completionLogps(m, [prompts[0]!], [[]], tok.padId)[0], 0);
  assert.throws(() => completionLogps(m, prompts, [comps[0]!], tok.padId), /2 prompts but 1 completions/);
});

test('sampleCompletions: seeded (same seed, same samples), samples of a prompt grouped', () => {
  const tok = tinyTokenizer();
  const m = tinyModel(tok.vocabSize, 2);
  const prompts = [tok.encode('The whale'), tok.encode('Call me')];
  const a = sampleCompletions(m, tok, prompts, { samplesPerPrompt: 3, maxNewTokens: 6, seed: 5, quiet: true });
  const b = sampleCompletions(m, tok, prompts, { samplesPerPrompt: 3, maxNewTokens: 6, seed: 5, quiet: true });
  const c = sampleCompletions(m, tok, prompts, { samplesPerPrompt: 3, maxNewTokens: 6, seed: 6, quiet: true });
  assert.deepEqual(a, b);
  assert.notDeepEqual(a.tokens, c.tokens);
  assert.deepEqual(a.promptIndex, [0, 0, 0, 1, 1, 1]);
  assert.equal(a.tokens.length, 6);
  for (const t of a.tokens) assert.ok(t.length >= 1 && t.length <= 7);
});

test('sampleFromLogits draws from softmax(logits / T); T = 0 is argmax', () => {
  const logits = Float32Array.from([1, 2, 0.5, -1, 2]);
  const rng = new T.Rng(9);
  const n = 40000;
  for (const temp of [1, 0.5]) {
    const counts = new Array(5).fill(0);
    for (let i = 0; i < n; i++) counts[sampleFromLogits(logits, temp, rng)]++;
    const z = Array.from(logits, (l) => Math.exp(l / temp));
    const total = z.reduce((a, b) => a + b, 0);
    z.forEach((w, i) => {
      const p = w / total;
      const sd = Math.sqrt((p * (1 - p)) / n);
      assert.ok(Math.abs(counts[i] / n - p) < 5 * sd + 1e-9, `T=${temp} token ${i}: ${counts[i] / n} vs ${p}`);
    });
  }
  assert.equal(sampleFromLogits(logits, 0, rng), 1);
});

test('pairsFromSamples: best vs worst per prompt, ties dropped', () => {
  const comp = { promptIndex: [0, 0, 0, 1, 1], tokens: [[1], [2], [3], [4], [5]], texts: ['a', 'b', 'c', 'd', 'e'], stopped: [true, true, true, true, true] };
  const pairs = pairsFromSamples([[9], [8]], comp, [0, 2, -1, 1, 1]);
  assert.deepEqual(pairs, [{ prompt: [9], chosen: [2], rejected: [3] }]);
});

test('evaluateAgainstReference: a copy of the reference has KL 0, win rate ½, equal rewards; a different model does not', () => {
  const tok = tinyTokenizer();
  const ref = tinyModel(tok.vocabSize, 3);
  const copy = createModel(ref.config, cloneWeights(ref.exportWeights()), 'copy');
  const other = tinyModel(tok.vocabSize, 4);
  // A judge with many distinct values, so ties are rare and win rates are informative.
  const lengthJudge: Judge = { name: 'afinn', description: 'text length', score: (t) => t.length };
  const prompts = ['The good ship', 'A terrible storm', 'Call me', 'The whale'];
  const r = evaluateAgainstReference({
    ref, policies: [{ name: 'copy', model: copy, beta: 0.1 }, { name: 'other', model: other, beta: 0.1 }],
    tokenizer: tok, prompts, judges: [lengthJudge, makeJudge('vader')],
    settings: { samplesPerPrompt: 3, maxNewTokens: 8, seed: 11, quiet: true },
  });
  assert.equal(r.models.length, 3);
  const [refEval, copyEval, otherEval] = r.models;
  assert.equal(refEval!.kl.mean, 0);
  assert.ok(Math.abs(copyEval!.kl.mean) < 1e-4, `KL of an identical model: ${copyEval!.kl.mean}`);
  assert.equal(copyEval!.winRate, 0.5);
  assert.equal(copyEval!.rewards.afinn!.mean, refEval!.rewards.afinn!.mean);
  assert.deepEqual(copyEval!.samples.map((s) => s.completion), refEval!.samples.map((s) => s.completion));
  // Identical implicit rewards: every held-out pair ties, which counts as wrong.
  if (r.heldOutPairs > 0) assert.equal(copyEval!.implicitAccuracy, 0);
  assert.ok(otherEval!.kl.mean > 0.02, `a different random model is far from the reference: KL ${otherEval!.kl.mean}`);
  // The copy's samples are the reference's: the same fluency figures, so "fluent".
  assert.deepEqual(copyEval!.quality, refEval!.quality);
  assert.equal(copyEval!.verdict, 'fluent');
  assert.ok(refEval!.quality.perplexity > 1 && refEval!.quality.perplexity < tok.vocabSize * 4, `reference perplexity ${refEval!.quality.perplexity}`);
  assert.equal(r.fluencyModel, null);
  const table = evaluationTable(r);
  assert.match(table, /^model +afinn \(reward\) +vader/);
  const blocks = table.trim().split('\n\n');
  assert.equal(blocks[0]!.split('\n').length, 5, 'reward table: head, rule, 3 models');
  assert.match(blocks[1]!, /^model +ppl \(ref\) +× ref +off top-10 +distinct-1 +distinct-2 +repeat 3\+ +self-sim +tokens +hit max +verdict\n/);
  assert.match(blocks[1]!, /\ncopy .* fluent\n/);
  assert.match(blocks[1]!, /\nreference .* reference\n/);
  assert.match(blocks.at(-1)!, /^(Best trade-off|No model is both fluent)/);
});

test('evaluateAgainstReference with a second fluency model: its perplexity of the same texts, in the table and the verdict', () => {
  const tok = tinyTokenizer();
  const ref = tinyModel(tok.vocabSize, 3);
  const other = tinyModel(tok.vocabSize, 4);
  const judge: Judge = { name: 'afinn', description: 'text length', score: (t) => t.length };
  const r = evaluateAgainstReference({
    ref, policies: [{ name: 'other', model: other, beta: 0.1 }], tokenizer: tok, prompts: ['The good ship', 'Call me'], judges: [judge],
    fluencyModel: { name: 'judge-lm', model: tinyModel(tok.vocabSize, 9), tokenizer: tok },
    settings: { samplesPerPrompt: 2, maxNewTokens: 6, seed: 1, quiet: true, topK: 3 },
  });
  assert.equal(r.fluencyModel, 'judge-lm');
  for (const m of r.models) {
    assert.ok(Number.isFinite(m.quality.fluencyPerplexity!) && m.quality.fluencyPerplexity! > 1, `${m.name}: ${m.quality.fluencyPerplexity}`);
    assert.equal(m.quality.topK, 3);
  }
  assert.match(evaluationTable(r), /ppl \(judge-lm\) +off top-3/);
});

test('implicit-reward accuracy follows the sign of β(log π − log π_ref) on given pairs', () => {
  const tok = tinyTokenizer();
  const ref = tinyModel(tok.vocabSize, 7);
  const pol = tinyModel(tok.vocabSize, 8);
  const prompt = tok.encode('The whale');
  const c1 = tok.encode(' was great', { addBos: false }), c2 = tok.encode(' hated it', { addBos: false });
  const lpP = completionLogps(pol, [prompt, prompt], [c1, c2], tok.padId);
  const lpR = completionLogps(ref, [prompt, prompt], [c1, c2], tok.padId);
  const firstWins = lpP[0]! - lpR[0]! > lpP[1]! - lpR[1]!;
  const r = evaluateAgainstReference({
    ref, policies: [{ name: 'p', model: pol, beta: 0.5 }], tokenizer: tok, prompts: ['The whale'],
    judges: [makeJudge('afinn')], pairs: [{ prompt, chosen: c1, rejected: c2 }, { prompt, chosen: c2, rejected: c1 }],
    settings: { samplesPerPrompt: 1, maxNewTokens: 4, seed: 0, quiet: true },
  });
  const m = r.models[1]!;
  assert.equal(m.implicitAccuracy, 0.5);
  const margin = 0.5 * ((lpP[0]! - lpR[0]!) - (lpP[1]! - lpR[1]!));
  assert.ok(Math.abs(m.implicitMargin) < 1e-9, 'the two mirrored pairs cancel');
  assert.ok(firstWins === margin > 0);
});

test('readPrompts and readIdPairs: text lines, JSONL, and errors naming the row', () => {
  const tok = tinyTokenizer();
  const dir = mkdtempSync(join(tmpdir(), 'eval-files-'));
  try {
    writeFileSync(join(dir, 'p.txt'), 'The whale\n\n  Call me  \n');
    writeFileSync(join(dir, 'p.jsonl'), '{"prompt":"a"}\n{"prompt":"b"}\n');
    writeFileSync(join(dir, 'bad.jsonl'), '{"prompt":"a"}\n{"text":"b"}\n');
    writeFileSync(join(dir, 'pairs.jsonl'), '{"prompt":"The whale","chosen":" was great","rejected":" hated it"}\n');
    writeFileSync(join(dir, 'badpairs.jsonl'), '{"prompt":"x","chosen":"y"}\n');
    assert.deepEqual(readPrompts(join(dir, 'p.txt')), ['The whale', '  Call me']);
    assert.deepEqual(readPrompts(join(dir, 'p.jsonl')), ['a', 'b']);
    assert.throws(() => readPrompts(join(dir, 'bad.jsonl')), /bad\.jsonl row 2: "prompt" is missing/);
    const pairs = readIdPairs(join(dir, 'pairs.jsonl'), tok);
    assert.equal(pairs.length, 1);
    assert.equal(pairs[0]!.prompt[0], tok.bosId);
    assert.equal(tok.decode(pairs[0]!.chosen), ' was great');
    assert.throws(() => readIdPairs(join(dir, 'badpairs.jsonl'), tok), /badpairs\.jsonl row 1: "rejected" is missing/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
