// A model (and its tokenizer) from a path on disk: a Hugging Face directory or a llama2.c
// checkpoint. io imports models to build them; models never reads files.

import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createModel } from '../models/architectures.js';
import type { CausalLM } from '../models/model.js';
import type { Tokenizer } from './tokenizer.js';
import { loadTokenizer } from './tokenizers/index.js';
import type { GenerationDefaults } from './config.js';
import { loadCheckpoint } from './hf-dir.js';

export interface LoadedModel {
  model: CausalLM;
  /** Where it came from: the directory, or the llama2.c file (a description for a model built in memory). */
  source: string;
  format: 'hf' | 'llama2c' | 'memory';
  generation: GenerationDefaults | null;
}

/** Loads a Hugging Face model directory or a llama2.c checkpoint file. */
export function loadModel(path: string): LoadedModel {
  const ck = loadCheckpoint(path);
  return { model: createModel(ck.config, ck.weights, path), source: path, format: ck.format, generation: ck.generation };
}

/** The tokenizer for a model path: its directory, or for a llama2.c file a sibling .bin tokenizer. */
export async function loadTokenizerFor(modelPath: string, tokenizerPath?: string): Promise<Tokenizer> {
  if (tokenizerPath) return loadTokenizer(tokenizerPath);
  if (statSync(modelPath).isDirectory()) return loadTokenizer(modelPath);
  const dir = dirname(modelPath);
  const candidates = ['tokenizer.bin', ...readdirSync(dir).filter((f) => /^tok.*\.bin$/.test(f)).sort()];
  for (const c of candidates) if (existsSync(join(dir, c))) return loadTokenizer(join(dir, c));
  throw new Error(`model ${modelPath}: no tokenizer found next to it (tokenizer.bin or tok*.bin); pass --tokenizer`);
}

/** A model and its tokenizer. */
export async function loadModelAndTokenizer(modelPath: string, tokenizerPath?: string): Promise<LoadedModel & { tokenizer: Tokenizer }> {
  const loaded = loadModel(modelPath);
  const tokenizer = await loadTokenizerFor(modelPath, tokenizerPath);
  if (tokenizer.vocabSize > loaded.model.config.vocabSize) {
    throw new Error(`model ${modelPath}: tokenizer has ${tokenizer.vocabSize} tokens but the model only ${loaded.model.config.vocabSize}`);
  }
  return { ...loaded, tokenizer };
}
