// Pretraining a small causal language model from plain text: a byte-level BPE tokenizer trained on
// the corpus (or an existing one), a Llama of the given shape initialized at random, next-token
// prediction on fixed-length blocks of the token stream with the shared training loop, and the
// result saved as a normal Hugging Face directory (config.json, model.safetensors, tokenizer.json).
//
// Documents are joined with the end-of-text token, which is also BOS: every document starts the
// way a prompt encoded with BOS starts, so "<|endoftext|>First words" is in-distribution.

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as T from '../tensor/index.js';
import { kernels } from '../tensor/backend.js';
import { llamaConfig } from '../models/architectures.js';
import type { ModelConfig } from '../models/config.js';
import { saveHfDirectory } from '../io/hf-dir.js';
import type { Tokenizer } from '../io/tokenizer.js';
import { loadTokenizer, saveTokenizerFiles, trainByteLevelBpe } from '../io/tokenizers/index.js';
import { randomModel, type CausalLM } from '../models/index.js';
import { runTrainingLoop, type LoopResult, type TrainingEvents, type TrainTask } from './loop.js';
import type { ScheduleType } from './schedule.js';

/** The end-of-text token of tokenizers trained here (id 0): document separator, BOS and EOS. */
export const END_OF_TEXT = '<|endoftext|>';

export interface ModelShape {
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  intermediateSize: number;
  /** Context length (max positions); training blocks are this long. */
  contextLength: number;
}

export interface PretrainSettings {
  /** Sequences per optimizer step. */
  batchSize: number;
  steps: number;
  learningRate: number;
  warmupSteps: number;
  schedule: ScheduleType;
  weightDecay: number;
  maxGradNorm: number;
  seed: number;
  loggingSteps: number;
  /** Evaluate the held-out loss every this many steps (0: only at the end). */
  evalSteps: number;
  /** Held-out blocks used for the evaluation loss (at most). */
  evalBlocks: number;
}

export const DEFAULT_PRETRAIN: PretrainSettings = {
  batchSize: 16,
  steps: 300,
  learningRate: 2e-3,
  warmupSteps: 20,
  schedule: 'cosine',
  weightDecay: 0.1,
  maxGradNorm: 1,
  seed: 1234,
  loggingSteps: 10,
  evalSteps: 0,
  evalBlocks: 32,
};

/** Llama config of a shape, with the end-of-text token (id 0) as BOS and EOS. */
export function pretrainModelConfig(shape: ModelShape): ModelConfig {
  if (shape.hiddenSize % shape.numHeads !== 0) {
    throw new Error(`pretrain: hidden size ${shape.hiddenSize} is not divisible by ${shape.numHeads} heads`);
  }
  if ((shape.hiddenSize / shape.numHeads) % 2 !== 0) {
    throw new Error(`pretrain: head dimension ${shape.hiddenSize / shape.numHeads} must be even (RoPE)`);
  }
  return llamaConfig({
    vocabSize: shape.vocabSize,
    hiddenSize: shape.hiddenSize,
    intermediateSize: shape.intermediateSize,
    numLayers: shape.numLayers,
    numHeads: shape.numHeads,
    maxPositions: shape.contextLength,
    tieWordEmbeddings: true,
    bosTokenId: 0,
    eosTokenId: [0],
  });
}

/** Trains a byte-level BPE tokenizer on the documents and writes its files into dir. */
export async function trainTokenizerFiles(docs: readonly string[], vocabSize: number, dir: string, contextLength: number): Promise<Tokenizer> {
  const json = trainByteLevelBpe(docs, { vocabSize, specialTokens: [END_OF_TEXT] });
  await saveTokenizerFiles(dir, json, { bos: END_OF_TEXT, eos: END_OF_TEXT, addBos: true, modelMaxLength: contextLength });
  return loadTokenizer(dir);
}

/** The token stream of documents: BOS/separator, then each document's tokens, in order. */
export function encodeDocuments(tok: Tokenizer, docs: readonly string[]): Int32Array {
  const sep = tok.eosId;
  if (sep === null) throw new Error('pretrain: the tokenizer has no end-of-text (EOS) token to separate documents');
  const parts: number[][] = [];
  let n = 0;
  for (const d of docs) {
    const ids = tok.encode(d, { addBos: false });
    parts.push(ids);
    n += ids.length + 1;
  }
  const out = new Int32Array(n);
  let o = 0;
  for (const ids of parts) {
    out[o++] = sep;
    out.set(ids, o);
    o += ids.length;
  }
  return out;
}

/** Block i: tokens [i·S, i·S + S] (inputs the first S, targets the last S); blocks do not overlap. */
function blockCount(tokens: Int32Array, seq: number): number {
  return Math.floor((tokens.length - 1) / seq);
}

function fillBlocks(tokens: Int32Array, seq: number, blocks: readonly number[], ids: Int32Array, targets: Int32Array): void {
  blocks.forEach((blk, r) => {
    const s = blk * seq;
    ids.set(tokens.subarray(s, s + seq), r * seq);
    targets.set(tokens.subarray(s + 1, s + seq + 1), r * seq);
  });
}

/** Mean next-token NLL of a token stream's blocks (at most maxBlocks, evenly spread), no tape. */
export function languageModelLoss(model: CausalLM, tokens: Int32Array, seq: number, maxBlocks: number, batchSize = 8): number {
  const n = blockCount(tokens, seq);
  if (n < 1) throw new Error(`languageModelLoss: ${tokens.length} tokens do not fill one block of ${seq + 1}`);
  const take = Math.min(n, maxBlocks);
  const blocks = Array.from({ length: take }, (_, i) => Math.floor((i * n) / take));
  let total = 0;
  T.noGrad(() => {
    for (let i = 0; i < blocks.length; i += batchSize) {
      const b = blocks.slice(i, i + batchSize);
      const ids = new Int32Array(b.length * seq), tg = new Int32Array(b.length * seq);
      fillBlocks(tokens, seq, b, ids, tg);
      const lp = model.tokenLogprobs({ ids, batch: b.length, seq }, tg);
      for (let j = 0; j < lp.data.length; j++) total -= lp.data[j]!;
      lp.dispose();
    }
  });
  return total / (take * seq);
}

/** The training task: micro-batches of token blocks, loss = mean NLL of the next tokens. */
export function pretrainTask(
  model: CausalLM, tokens: Int32Array, seq: number,
  opts: { evalTokens?: Int32Array; evalBlocks?: number; saveFinal: (dir: string) => void },
): TrainTask {
  const n = blockCount(tokens, seq);
  if (n < 1) throw new Error(`pretrain: the corpus has ${tokens.length} tokens, fewer than one block of ${seq + 1}; use a shorter context or more text`);
  if (seq > model.config.maxPositions) throw new Error(`pretrain: blocks of ${seq} tokens exceed the model's ${model.config.maxPositions} positions`);
  const evalTokens = opts.evalTokens && blockCount(opts.evalTokens, seq) >= 1 ? opts.evalTokens : null;
  return {
    numExamples: n,
    params: model.trainableParameters(),
    trainMicroBatch(indices, gradScale, rng) {
      model.ctx.rng = rng;
      const B = indices.length;
      const ids = new Int32Array(B * seq), tg = new Int32Array(B * seq);
      fillBlocks(tokens, seq, indices, ids, tg);
      const lp = model.tokenLogprobs({ ids, batch: B, seq }, tg);
      // loss = −mean log p; the loop wants gradients already scaled by 1/accumulation.
      const loss = T.scale(T.meanAll(lp), -1);
      const value = loss.data[0]!;
      T.backward(T.scale(loss, gradScale), undefined, { releaseRoot: true });
      return { sums: { loss: value * B }, count: B, tokens: B * seq };
    },
    evaluate: evalTokens
      ? () => {
          const loss = languageModelLoss(model, evalTokens, seq, opts.evalBlocks ?? 32);
          return { loss, perplexity: Math.exp(loss) };
        }
      : undefined,
    saveFinal: opts.saveFinal,
  };
}

export interface PretrainOptions {
  /** Training documents (paragraphs, chapters, ...). */
  docs: readonly string[];
  /** Held-out documents for the evaluation loss. */
  evalDocs?: readonly string[];
  shape: ModelShape;
  settings?: Partial<PretrainSettings>;
  /** Use this tokenizer directory instead of training one (its vocabulary size wins). */
  tokenizerDir?: string;
  /** The Hugging Face directory written (also holds metrics.jsonl). */
  outputDir: string;
  quiet?: boolean;
  onLog?: (rec: Record<string, number>) => void;
  /** Handlers for step, log, eval and warning events (awaited). */
  on?: TrainingEvents | undefined;
  /** Aborting stops training between two steps; the promise rejects with the signal's reason. */
  signal?: AbortSignal | undefined;
  /** Called between the phases (tokenizer, encoding, training), for progress messages. */
  onPhase?: (msg: string) => void;
}

export interface PretrainResult extends LoopResult {
  tokenizer: Tokenizer;
  model: CausalLM;
  trainTokens: number;
  evalTokens: number;
  parameters: number;
  /** Held-out loss before and after training (NaN without held-out documents). */
  initialEvalLoss: number;
  finalEvalLoss: number;
}

/** Tokenizer + random Llama + next-token training; writes a Hugging Face directory to outputDir. */
export async function pretrain(opts: PretrainOptions): Promise<PretrainResult> {
  const s: PretrainSettings = { ...DEFAULT_PRETRAIN, ...opts.settings };
  if (opts.docs.length === 0) throw new Error('pretrain: no training documents');
  mkdirSync(opts.outputDir, { recursive: true });
  const phase = opts.onPhase ?? ((m: string) => { if (!opts.quiet) process.stderr.write(`${m}\n`); });

  let tokenizer: Tokenizer;
  if (opts.tokenizerDir) {
    tokenizer = await loadTokenizer(opts.tokenizerDir);
  } else {
    phase(`pretrain: training a byte-level BPE tokenizer (${opts.shape.vocabSize} tokens) on ${opts.docs.length} documents`);
    tokenizer = await trainTokenizerFiles(opts.docs, opts.shape.vocabSize, opts.outputDir, opts.shape.contextLength);
  }
  const shape = { ...opts.shape, vocabSize: tokenizer.vocabSize };
  phase('pretrain: encoding the corpus');
  const tokens = encodeDocuments(tokenizer, opts.docs);
  const evalTokens = opts.evalDocs && opts.evalDocs.length ? encodeDocuments(tokenizer, opts.evalDocs) : undefined;

  const config = pretrainModelConfig(shape);
  const model = randomModel(config, s.seed);
  let parameters = 0;
  for (const p of model.trainableParameters()) parameters += p.size;
  const seq = shape.contextLength;
  const evalOk = evalTokens !== undefined && blockCount(evalTokens, seq) >= 1;
  const initialEvalLoss = evalOk ? languageModelLoss(model, evalTokens!, seq, s.evalBlocks) : NaN;
  phase(
    `pretrain: Llama with ${(parameters / 1e6).toFixed(2)}M parameters (hidden ${shape.hiddenSize}, ${shape.numLayers} layers, ` +
    `${shape.numHeads} heads, vocabulary ${shape.vocabSize}, context ${seq}); ${tokens.length} training tokens` +
    `${evalOk ? `, ${evalTokens!.length} held-out` : ''}; ${s.steps} steps of ${s.batchSize}×${seq} tokens`,
  );

  const tokenizerFiles = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']
    .map((f) => join(opts.tokenizerDir ?? opts.outputDir, f))
    .filter((f) => existsSync(f));
  const saveFinal = (dir: string): void => {
    saveHfDirectory(dir, {
      config,
      weights: model.exportWeights(),
      // Copying a file onto itself is skipped: the tokenizer was written into dir already.
      tokenizerFiles: opts.tokenizerDir ? tokenizerFiles : undefined,
    });
  };
  const task = pretrainTask(model, tokens, seq, { evalTokens, evalBlocks: s.evalBlocks, saveFinal });
  const fp = createHash('sha256').update(JSON.stringify({ shape, s, n: tokens.length })).digest('hex');
  const result = await runTrainingLoop(task, {
    outputDir: opts.outputDir,
    learningRate: s.learningRate,
    lrSchedulerType: s.schedule,
    warmupRatio: 0,
    warmupSteps: s.warmupSteps,
    weightDecay: s.weightDecay,
    adamBeta1: 0.9,
    adamBeta2: 0.95,
    adamEpsilon: 1e-8,
    maxGradNorm: s.maxGradNorm,
    batchSize: s.batchSize,
    gradientAccumulationSteps: 1,
    numTrainEpochs: 1,
    maxSteps: s.steps,
    loggingSteps: s.loggingSteps,
    evalSteps: evalOk ? s.evalSteps : 0,
    saveSteps: 0,
    saveTotalLimit: 0,
    seed: s.seed,
    groupByLength: false,
    resume: false,
    fingerprint: fp,
    quiet: opts.quiet,
    onLog: opts.onLog,
    events: opts.on,
    signal: opts.signal,
  });
  model.ctx.rng = null;
  const last = result.evalHistory.at(-1);
  const finalEvalLoss = last?.['eval/loss'] ?? NaN;
  return {
    ...result, tokenizer, model, trainTokens: tokens.length, evalTokens: evalTokens?.length ?? 0,
    parameters, initialEvalLoss, finalEvalLoss,
  };
}

// ---- command line -------------------------------------------------------------------------------

/** Documents of a file: .txt → paragraphs (blank-line separated); .jsonl → each line's "text". */
export function readDocuments(path: string, field = 'text'): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`pretrain: cannot read ${path}: ${(e as Error).message}`);
  }
  if (path.endsWith('.jsonl')) {
    const out: string[] = [];
    text.split('\n').forEach((line, i) => {
      if (!line.trim()) return;
      let row: unknown;
      try {
        row = JSON.parse(line);
      } catch (e) {
        throw new Error(`pretrain: ${path} line ${i + 1}: invalid JSON: ${(e as Error).message}`);
      }
      const v = (row as Record<string, unknown>)[field];
      if (typeof v !== 'string') throw new Error(`pretrain: ${path} line ${i + 1}: field "${field}" is missing or not a string`);
      out.push(v);
    });
    return out;
  }
  return splitParagraphs(text);
}

/** Paragraphs of a text: blank-line separated, inner newlines folded into spaces. */
export function splitParagraphs(text: string): string[] {
  return text
    .replace(/\r\n?/g, '\n')
    .split(/\n\s*\n/)
    .map((p) => p.replace(/\s*\n\s*/g, ' ').trim())
    .filter((p) => p.length > 0);
}
