// `dpo convert`: llama2.c checkpoint → Hugging Face directory, and Hugging Face directory (or
// llama2.c file) → GGUF for llama.cpp.

import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { generationDefaultsFromConfig } from './config.js';
import { loadHfDirectory } from './hf-dir.js';
import { readLlama2cCheckpoint } from './llama2c.js';
import { saveHfDirectory } from './hf-dir.js';
import { writeModelGguf } from './gguf.js';
import { loadTokenizer, tokenizerGgufMetadata } from './tokenizers/index.js';
import { tokenizerFilesFor } from './tokenizers/save.js';
import type { ModelConfig } from './config.js';
import type { WeightMap } from './weights.js';

export interface ConvertOptions {
  tokenizer?: string;
  /** float32 | bfloat16 for Hugging Face output; f32 | f16 for GGUF. */
  dtype?: string;
}

function llama2cTokenizerPath(model: string, explicit?: string): string {
  if (explicit) return explicit;
  const dir = dirname(model);
  const found = ['tokenizer.bin', ...readdirSync(dir).filter((f) => /^tok.*\.bin$/.test(f)).sort()].find((f) => existsSync(join(dir, f)));
  if (!found) throw new Error(`convert: no tokenizer next to ${model} (tokenizer.bin or tok*.bin); pass --tokenizer`);
  return join(dir, found);
}

export async function convertModel(src: string, out: string, opts: ConvertOptions = {}): Promise<void> {
  if (!existsSync(src)) throw new Error(`convert: ${src} does not exist`);
  const isDir = statSync(src).isDirectory();
  let config: ModelConfig, weights: WeightMap, tokPath: string;
  if (isDir) {
    const hf = loadHfDirectory(src);
    config = hf.config;
    weights = hf.weights;
    tokPath = opts.tokenizer ?? src;
  } else {
    const ck = readLlama2cCheckpoint(src);
    config = ck.config;
    weights = ck.weights;
    tokPath = llama2cTokenizerPath(src, opts.tokenizer);
  }
  if (out.endsWith('.gguf')) {
    const dtype = (opts.dtype ?? 'f32').toLowerCase();
    if (!['f32', 'f16', 'float32', 'float16'].includes(dtype)) throw new Error(`convert: GGUF dtype must be f32 or f16, got ${opts.dtype}`);
    const tok = await loadTokenizer(tokPath);
    const meta = tokenizerGgufMetadata(tok);
    // Tokenizers that never add a BOS (Qwen2's) name none; GGUF still wants the ids: like
    // llama.cpp's converter, take them from config.json.
    const eosId = meta.eosId ?? config.eosTokenId[0] ?? null;
    const bosId = meta.bosId ?? config.bosTokenId ?? (meta.addBos ? null : eosId);
    if (bosId === null || eosId === null) throw new Error(`convert: neither tokenizer ${tokPath} nor config.json names a BOS/EOS token, which GGUF needs`);
    writeModelGguf(out, config, weights, {
      tokenizer: { ...meta, bosId, eosId },
      dtype: dtype.endsWith('16') ? 'F16' : 'F32',
      name: src.split('/').filter(Boolean).at(-1),
    });
    return;
  }
  if (isDir) throw new Error(`convert: ${src} is already a Hugging Face directory; give a .gguf output to export to GGUF`);
  const dtype = (opts.dtype ?? 'float32').toLowerCase();
  if (!['float32', 'bfloat16', 'f32', 'bf16'].includes(dtype)) throw new Error(`convert: Hugging Face dtype must be float32 or bfloat16, got ${opts.dtype}`);
  saveHfDirectory(out, {
    config,
    weights,
    dtype: dtype.startsWith('b') ? 'BF16' : 'F32',
    generation: generationDefaultsFromConfig(config),
    tokenizerFiles: await hfTokenizerFiles(tokPath, config),
  });
}

/**
 * The tokenizer files of the Hugging Face output: a llama2.c tokenizer becomes the equivalent
 * tokenizer.json + tokenizer_config.json + special_tokens_map.json (what transformers and
 * loadTokenizer read; tokenizer.bin is not copied, nothing would read it); a tokenizer directory
 * given with --tokenizer is copied as it is.
 */
async function hfTokenizerFiles(tokPath: string, config: ModelConfig): Promise<string[] | Record<string, string>> {
  const tok = await loadTokenizer(tokPath);
  if (tok.vocabSize > config.vocabSize) {
    throw new Error(`convert: tokenizer ${tokPath} has ${tok.vocabSize} tokens but the model only ${config.vocabSize}`);
  }
  return tokenizerFilesFor(tok, config.maxPositions);
}
