// Model construction: from a config and weights, at random, or from a path on disk
// (a Hugging Face directory or a llama2.c checkpoint).
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Tokenizer } from '../io/tokenizer.js';
import { loadTokenizer } from '../io/tokenizers/index.js';
import type { ModelConfig, GenerationDefaults } from '../io/config.js';
import type { WeightMap } from '../io/weights.js';
import { loadHfDirectory } from '../io/hf-dir.js';
import { readLlama2cCheckpoint } from '../io/llama2c.js';
import { LlamaModel } from './llama.js';
import { Gpt2Model } from './gpt2.js';
import type { CausalLM } from './model.js';

export { LlamaModel } from './llama.js';
export { Gpt2Model } from './gpt2.js';
export * from './model.js';
export * from './decoder.js';

export const SUPPORTED_ARCHITECTURES = ['llama (Llama 2/3, SmolLM, TinyLlama, Mistral)', 'qwen2', 'gpt2'];

export function createModel(config: ModelConfig, weights: WeightMap, source = 'weights'): CausalLM {
  switch (config.architecture) {
    case 'llama':
    case 'qwen2':
      return LlamaModel.fromWeights(config, weights, source);
    case 'gpt2':
      return Gpt2Model.fromWeights(config, weights, source);
  }
}

export function randomModel(config: ModelConfig, seed = 0): CausalLM {
  return config.architecture === 'gpt2' ? Gpt2Model.random(config, seed) : LlamaModel.random(config, seed);
}

export interface LoadedModel {
  model: CausalLM;
  /** Where it came from: the directory, or the llama2.c file (a description for a model built in memory). */
  source: string;
  format: 'hf' | 'llama2c' | 'memory';
  generation: GenerationDefaults | null;
}

/** Loads a Hugging Face model directory or a llama2.c checkpoint file. */
export function loadModel(path: string): LoadedModel {
  if (!existsSync(path)) throw new Error(`model ${path}: no such file or directory`);
  if (statSync(path).isDirectory()) {
    if (!existsSync(join(path, 'config.json'))) {
      throw new Error(`model ${path}: a model directory needs config.json (a Hugging Face directory), or pass a llama2.c .bin file`);
    }
    const hf = loadHfDirectory(path);
    return { model: createModel(hf.config, hf.weights, path), source: path, format: 'hf', generation: hf.generation };
  }
  const ck = readLlama2cCheckpoint(path);
  return { model: createModel(ck.config, ck.weights, path), source: path, format: 'llama2c', generation: null };
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
