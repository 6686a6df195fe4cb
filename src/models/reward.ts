// Sequence-classification models (reward and value models): a causal LM body with a scalar head
// `score.weight` [1, hidden] on the final hidden states, as transformers'
// LlamaForSequenceClassification / Qwen2ForSequenceClassification / GPT2ForSequenceClassification
// with num_labels 1. A sequence's reward is the head read at its last non-padding token, found as
// transformers does: the rightmost position whose id is not pad_token_id. A value model reads the
// head at every position.
//
// Saved as a normal Hugging Face directory (config.json with the ForSequenceClassification
// architecture, num_labels 1, pad_token_id; model.safetensors with the body and score.weight, no
// LM head), so transformers' AutoModelForSequenceClassification loads it.

import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import { Rng } from '../tensor/random.js';
import { parseModelConfig, type ModelConfig } from '../io/config.js';
import { normalizeWeightNames, saveHfDirectory, validateWeights } from '../io/hf-dir.js';
import { readSafetensors, readShardedSafetensors, SAFETENSORS_INDEX } from '../io/safetensors.js';
import type { WeightMap } from '../io/weights.js';
import { createModel, loadModel, type LoadedModel } from './index.js';
import { weightOf } from './decoder.js';
import type { CausalLM, TokenBlock } from './model.js';

const CAUSAL_TO_CLS: Record<string, string> = { llama: 'LlamaForSequenceClassification', qwen2: 'Qwen2ForSequenceClassification', gpt2: 'GPT2ForSequenceClassification' };
const CLS_TO_CAUSAL: Record<string, string> = {
  LlamaForSequenceClassification: 'LlamaForCausalLM', MistralForSequenceClassification: 'MistralForCausalLM',
  Qwen2ForSequenceClassification: 'Qwen2ForCausalLM', GPT2ForSequenceClassification: 'GPT2LMHeadModel',
};

/** A causal LM body whose final hidden states can be read ([batch·seq, hidden]). */
export type HiddenLM = CausalLM & { hidden(block: TokenBlock): Tensor };

function asHidden(model: CausalLM): HiddenLM {
  if (typeof (model as Partial<HiddenLM>).hidden !== 'function') throw new Error(`sequence classification: the ${model.config.architecture} model does not expose hidden states`);
  return model as HiddenLM;
}

/** The index of each row's last non-padding token (transformers' rule; 0 for an all-padding row). */
export function lastNonPadIndex(ids: Int32Array, batch: number, seq: number, padId: number): Int32Array {
  const out = new Int32Array(batch);
  for (let b = 0; b < batch; b++) {
    for (let t = seq - 1; t >= 0; t--) {
      if (ids[b * seq + t] !== padId) {
        out[b] = t;
        break;
      }
    }
  }
  return out;
}

export class SequenceClassifier {
  readonly body: HiddenLM;

  constructor(body: CausalLM, readonly score: Tensor, public padTokenId: number, readonly rawConfig: Record<string, unknown> = {}) {
    this.body = asHidden(body);
    const d = body.config.hiddenSize;
    if (score.shape.length !== 2 || score.shape[0] !== 1 || score.shape[1] !== d) {
      throw new Error(`sequence classification: score.weight has shape [${score.shape.join(', ')}], expected [1, ${d}] (num_labels 1)`);
    }
  }

  /** A fresh head N(0, 0.02) on a causal LM (transformers' initializer_range), seeded. */
  static fromCausalLM(body: CausalLM, padTokenId: number, seed = 0): SequenceClassifier {
    const rng = new Rng(seed ^ 0x5c0e);
    const d = body.config.hiddenSize;
    const w = new Float32Array(d);
    for (let i = 0; i < d; i++) w[i] = rng.normal() * 0.02;
    return new SequenceClassifier(body, T.fromBuffer(w, [1, d], { requiresGrad: true, name: 'score.weight' }), padTokenId);
  }

  get config(): ModelConfig {
    return this.body.config;
  }

  /** Head output at every position: [batch·seq] (on the tape when grad is enabled). */
  values(block: TokenBlock): Tensor {
    const N = block.batch * block.seq;
    return T.reshape(T.matmul(this.body.hidden(block), this.score, { transB: true }), [N]);
  }

  /** Per-row rewards [batch]: the head at each row's last non-padding token. */
  rewards(ids: Int32Array, batch: number, seq: number): Tensor {
    const idx = lastNonPadIndex(ids, batch, seq, this.padTokenId);
    return selectPositions(this.values({ ids, batch, seq }), idx, batch, seq);
  }

  parameters(): Map<string, Tensor> {
    const m = new Map(this.body.parameters());
    m.set('score.weight', this.score);
    return m;
  }

  trainableParameters(): Tensor[] {
    return [...this.parameters().values()].filter((t) => t.requiresGrad);
  }

  /** Hugging Face weights: the body's (no LM head) and score.weight. */
  exportWeights(): WeightMap {
    const w = this.body.exportWeights();
    w.delete('lm_head.weight');
    w.set('score.weight', weightOf(this.score));
    return w;
  }

  /** config.json fields of the sequence-classification directory. */
  configJson(): { config: ModelConfig; extra: Record<string, unknown> } {
    const arch = CAUSAL_TO_CLS[this.config.architecture]!;
    return {
      config: this.config,
      extra: {
        architectures: [arch], num_labels: 1, id2label: { 0: 'LABEL_0' }, label2id: { LABEL_0: 0 },
        pad_token_id: this.padTokenId, problem_type: 'regression',
      },
    };
  }
}

/** Rows of a [batch·seq] tensor at one position per row → [batch] (a 0/1 selection product). */
export function selectPositions(v: Tensor, idx: Int32Array, batch: number, seq: number): Tensor {
  const sel = new Float32Array(batch * batch * seq);
  for (let b = 0; b < batch; b++) sel[b * batch * seq + b * seq + idx[b]!] = 1;
  return T.reshape(T.matmul(T.tensor(sel, [batch, batch * seq]), T.reshape(v, [batch * seq, 1])), [batch]);
}

function readRawConfig(dir: string): Record<string, unknown> {
  const path = join(dir, 'config.json');
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new Error(`${path}: not a JSON object`);
  return raw as Record<string, unknown>;
}

/** Whether a path is a sequence-classification directory (architectures names one). */
export function isSequenceClassificationDir(path: string): boolean {
  if (!existsSync(join(path, 'config.json')) || !statSync(path).isDirectory()) return false;
  const archs = readRawConfig(path).architectures;
  return Array.isArray(archs) && archs.some((a) => typeof a === 'string' && a in CLS_TO_CAUSAL);
}

export interface LoadedClassifier {
  model: SequenceClassifier;
  /** Whether the head came from the directory (false: a fresh head on a causal LM). */
  trainedHead: boolean;
  loaded: LoadedModel;
}

/**
 * A reward/value model from a sequence-classification directory, or (initialisation) a causal LM
 * directory or llama2.c file with a fresh head. padTokenId defaults to the directory's
 * pad_token_id (then the given fallback).
 */
export function loadSequenceClassifier(path: string, opts: { padTokenId?: number; seed?: number } = {}): LoadedClassifier {
  if (!isSequenceClassificationDir(path)) {
    const loaded = loadModel(path);
    if (opts.padTokenId === undefined) throw new Error(`${path}: a fresh reward head needs the tokenizer's pad id`);
    return { model: SequenceClassifier.fromCausalLM(loaded.model, opts.padTokenId, opts.seed ?? 0), trainedHead: false, loaded };
  }
  const raw = readRawConfig(path);
  const archs = raw.architectures as string[];
  const cls = archs.find((a) => a in CLS_TO_CAUSAL)!;
  const numLabels = raw.num_labels ?? (raw.id2label && typeof raw.id2label === 'object' ? Object.keys(raw.id2label).length : 1);
  if (numLabels !== 1) throw new Error(`${join(path, 'config.json')}: num_labels is ${numLabels}; a reward model has exactly one (a scalar score)`);
  // The body is read as its causal LM with tied embeddings: a classification directory has no LM head.
  const config = parseModelConfig({ ...raw, architectures: [CLS_TO_CAUSAL[cls]], tie_word_embeddings: true }, join(path, 'config.json'));
  const index = join(path, SAFETENSORS_INDEX), single = join(path, 'model.safetensors');
  let weights: WeightMap;
  if (existsSync(index)) weights = readShardedSafetensors(index);
  else if (existsSync(single)) weights = readSafetensors(single);
  else throw new Error(`reward model ${path}: neither model.safetensors nor ${SAFETENSORS_INDEX}`);
  const score = weights.get('score.weight');
  if (!score) throw new Error(`reward model ${path}: no score.weight tensor (the ${cls} head)`);
  weights.delete('score.weight');
  weights.delete('lm_head.weight');
  weights = normalizeWeightNames(config, weights);
  validateWeights(config, weights, path);
  const body = createModel(config, weights, path);
  const pad = typeof raw.pad_token_id === 'number' ? raw.pad_token_id : opts.padTokenId;
  if (pad === undefined) throw new Error(`${join(path, 'config.json')}: pad_token_id is not set (needed to find each sequence's last token)`);
  const head = T.fromBuffer(score.data, score.shape, { requiresGrad: true, name: 'score.weight' });
  const model = new SequenceClassifier(body, head, pad, raw);
  return { model, trainedHead: true, loaded: { model: body, source: path, format: 'hf', generation: null } };
}

/** Writes a transformers-loadable sequence-classification directory. */
export function saveSequenceClassifier(dir: string, model: SequenceClassifier, opts: { dtype?: 'F32' | 'BF16'; tokenizerFiles?: string[] } = {}): void {
  const { config, extra } = model.configJson();
  // The config's raw fields plus the classification ones; toHfConfigJson keeps unknown raw fields.
  const raw: Record<string, unknown> = { ...config.raw, ...extra };
  delete raw.tie_word_embeddings;
  const cfg: ModelConfig = { ...config, raw, padTokenId: model.padTokenId };
  saveHfDirectory(dir, {
    config: cfg, weights: model.exportWeights(), dtype: opts.dtype ?? 'F32', generation: null,
    tokenizerFiles: opts.tokenizerFiles, validate: false,
  });
}
