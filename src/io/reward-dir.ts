// Sequence-classification (reward / value model) directories: loading and saving the
// models/reward.ts SequenceClassifier as transformers' *ForSequenceClassification layout.

import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import * as T from '../tensor/index.js';
import { createModel, parseModelConfig } from '../models/architectures.js';
import type { ModelConfig } from '../models/config.js';
import { CLS_TO_CAUSAL, SequenceClassifier } from '../models/reward.js';
import { readJsonObject } from './config.js';
import { normalizeWeightNames, saveHfDirectory, validateWeights } from './hf-dir.js';
import { loadModel, type LoadedModel } from './load-model.js';
import { readSafetensors, readShardedSafetensors, SAFETENSORS_INDEX } from './safetensors.js';
import type { WeightMap } from './weights.js';

function readRawConfig(dir: string): Record<string, unknown> {
  return readJsonObject(join(dir, 'config.json'), 'config');
}

/** Whether a path is a sequence-classification directory (architectures names one). */
export function isSequenceClassificationDir(path: string): boolean {
  if (!existsSync(join(path, 'config.json')) || !statSync(path).isDirectory()) return false;
  const archs = readRawConfig(path).architectures;
  return Array.isArray(archs) && archs.some((a) => typeof a === 'string' && a in CLS_TO_CAUSAL);
}

/**
 * The body's config of a sequence-classification directory: its causal LM with tied embeddings (a
 * classification directory has no LM head). For a causal-LM directory, its own config.
 */
export function classifierBodyConfig(path: string): ModelConfig {
  if (!isSequenceClassificationDir(path)) return parseModelConfig(readRawConfig(path), join(path, 'config.json'));
  const raw = readRawConfig(path);
  const cls = (raw.architectures as string[]).find((a) => a in CLS_TO_CAUSAL)!;
  return parseModelConfig({ ...raw, architectures: [CLS_TO_CAUSAL[cls]], tie_word_embeddings: true }, join(path, 'config.json'));
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
  const cls = (raw.architectures as string[]).find((a) => a in CLS_TO_CAUSAL)!;
  const numLabels = raw.num_labels ?? (raw.id2label && typeof raw.id2label === 'object' ? Object.keys(raw.id2label).length : 1);
  if (numLabels !== 1) throw new Error(`${join(path, 'config.json')}: num_labels is ${numLabels}; a reward model has exactly one (a scalar score)`);
  const config = classifierBodyConfig(path);
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
