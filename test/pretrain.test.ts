// Pretraining: tokenizer + tiny Llama from text, the loss falls, and the Hugging Face directory it
// writes reloads with the project's model loader and gives the same log-probs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModelAndTokenizer } from '../src/io/load-model.js';
import { loadHfDirectory } from '../src/io/hf-dir.js';
import {
  END_OF_TEXT, encodeDocuments, languageModelLoss, pretrain, pretrainModelConfig, readDocuments, splitParagraphs,
} from '../src/train/pretrain.js';
import { loadMobyDick, splitCorpus } from '../src/demo/corpus.js';

test('splitParagraphs folds lines and drops blank paragraphs', () => {
  assert.deepEqual(splitParagraphs('a b\nc\n\n\n  d  \r\n\r\ne\n'), ['a b c', 'd', 'e']);
});

test('readDocuments reads .txt paragraphs and .jsonl "text", naming file and line on errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pretrain-docs-'));
  try {
    writeFileSync(join(dir, 'a.txt'), 'one\n\ntwo');
    writeFileSync(join(dir, 'b.jsonl'), '{"text":"x"}\n\n{"text":"y"}\n');
    writeFileSync(join(dir, 'bad.jsonl'), '{"text":"x"}\n{"body":"y"}\n');
    assert.deepEqual(readDocuments(join(dir, 'a.txt')), ['one', 'two']);
    assert.deepEqual(readDocuments(join(dir, 'b.jsonl')), ['x', 'y']);
    assert.throws(() => readDocuments(join(dir, 'bad.jsonl')), /bad\.jsonl line 2: field "text"/);
    assert.throws(() => readDocuments(join(dir, 'missing.txt')), /cannot read .*missing\.txt/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('pretrainModelConfig rejects shapes RoPE cannot use', () => {
  assert.throws(() => pretrainModelConfig({ vocabSize: 300, hiddenSize: 30, numLayers: 1, numHeads: 4, intermediateSize: 64, contextLength: 16 }), /not divisible by 4 heads/);
  assert.throws(() => pretrainModelConfig({ vocabSize: 300, hiddenSize: 30, numLayers: 1, numHeads: 2, intermediateSize: 64, contextLength: 16 }), /head dimension 15 must be even/);
});

test('pretrain: loss falls, the HF directory reloads with loadModelAndTokenizer and scores the same', async () => {
  const { heldIn, heldOut } = splitCorpus(loadMobyDick());
  const docs = heldIn.slice(0, 6).flatMap((c) => c.paragraphs);
  const evalDocs = heldOut.slice(0, 1).flatMap((c) => c.paragraphs);
  const dir = mkdtempSync(join(tmpdir(), 'pretrain-'));
  try {
    const r = await pretrain({
      docs, evalDocs, outputDir: dir, quiet: true,
      shape: { vocabSize: 320, hiddenSize: 32, numLayers: 1, numHeads: 2, intermediateSize: 64, contextLength: 32 },
      settings: { steps: 40, batchSize: 8, learningRate: 5e-3, warmupSteps: 4, loggingSteps: 5, evalBlocks: 8, seed: 3 },
    });
    assert.equal(r.steps, 40);
    const first = r.history[0]!.loss!, last = r.history.at(-1)!.loss!;
    assert.ok(last < first - 0.5, `training loss should fall clearly: ${first} → ${last}`);
    assert.ok(r.finalEvalLoss < r.initialEvalLoss - 0.3, `held-out loss should fall: ${r.initialEvalLoss} → ${r.finalEvalLoss}`);
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'metrics.jsonl']) {
      assert.ok(existsSync(join(dir, f)), `${f} written`);
    }
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(cfg.model_type, 'llama');
    assert.equal(cfg.vocab_size, 320);
    assert.equal(loadHfDirectory(dir).weights.size > 0, true);

    const loaded = await loadModelAndTokenizer(dir);
    assert.equal(loaded.format, 'hf');
    assert.equal(loaded.tokenizer.vocabSize, 320);
    assert.equal(loaded.tokenizer.bosId, 0);
    assert.equal(loaded.tokenizer.decode([0]), END_OF_TEXT);
    const text = 'Call me Ishmael. Some years ago, never mind how long precisely.';
    assert.equal(loaded.tokenizer.decode(loaded.tokenizer.encode(text, { addBos: false })), text);
    assert.deepEqual(loaded.tokenizer.encode(text), r.tokenizer.encode(text));
    // Same weights, same held-out loss (to float rounding).
    const evalTokens = encodeDocuments(loaded.tokenizer, evalDocs);
    const a = languageModelLoss(r.model, evalTokens, 32, 8);
    const b = languageModelLoss(loaded.model, evalTokens, 32, 8);
    assert.ok(Math.abs(a - b) < 1e-5, `reloaded model loss ${b} vs in-memory ${a}`);
    assert.ok(Math.abs(a - r.finalEvalLoss) < 1e-5);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('pretrain refuses a corpus shorter than one block', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pretrain-short-'));
  try {
    await assert.rejects(pretrain({
      docs: ['tiny text'], outputDir: dir, quiet: true, tokenizerDir: undefined,
      shape: { vocabSize: 260, hiddenSize: 16, numLayers: 1, numHeads: 2, intermediateSize: 32, contextLength: 64 },
      settings: { steps: 1 },
    }), /fewer than one block of 65/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
