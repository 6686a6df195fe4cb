// Hugging Face model directories: config.json + model.safetensors (or shards with
// model.safetensors.index.json) + generation_config.json. Tokenizer files are loaded elsewhere
// (src/io/tokenizers/); here we only report which exist and copy them when saving.

import { copyFileSync, existsSync, mkdirSync, readdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import {
  generationDefaultsFromConfig, readGenerationConfig, readModelConfig, toGenerationConfigJson, toHfConfigJson,
  type GenerationDefaults, type ModelConfig,
} from './config.js';
import {
  readSafetensors, readShardedSafetensors, SAFETENSORS_INDEX, safetensorsDataBytes, writeSafetensors,
  type SafetensorsWriteDtype,
} from './safetensors.js';
import { readLlama2cCheckpoint } from './llama2c.js';
import { sameShape, shapeString, sortedNames, type WeightMap } from './weights.js';
import { expectedWeightShapes } from '../models/architectures.js';
import { writeFileAtomic } from '../util/fs.js';

/** The weight table every loader validates against, derived from the architecture's declaration. */
export { expectedWeightShapes };

/** Tokenizer-related files a Hugging Face (or llama2.c) directory may hold, in reporting order. */
export const TOKENIZER_FILE_NAMES = [
  'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'added_tokens.json',
  'vocab.json', 'merges.txt', 'tokenizer.model', 'chat_template.jinja', 'chat_template.json', 'tokenizer.bin',
] as const;

export interface HfDirectory {
  dir: string;
  config: ModelConfig;
  /** Float32 weights under Hugging Face names (GPT-2: with the "transformer." prefix). */
  weights: WeightMap;
  /** generation_config.json, or null when the directory has none. */
  generation: GenerationDefaults | null;
  /** Which of TOKENIZER_FILE_NAMES exist in the directory. */
  tokenizerFiles: string[];
}

export interface LoadHfOptions {
  /** Check tensor names and shapes against the architecture (default true). */
  validate?: boolean;
}

/**
 * Loads a Hugging Face model directory. GPT-2 names are normalised to GPT2LMHeadModel's
 * ("transformer.h.0.attn.c_attn.weight"); buffers that are not parameters (rotary inv_freq, GPT-2
 * attn.bias / attn.masked_bias) are dropped. Missing, unexpected or mis-shaped tensors are an
 * error naming them (with validate, the default).
 */
export function loadHfDirectory(dir: string, opts: LoadHfOptions = {}): HfDirectory {
  const configPath = join(dir, 'config.json');
  if (!existsSync(configPath)) throw new Error(`model directory ${dir}: no config.json`);
  const config = readModelConfig(configPath);
  const indexPath = join(dir, SAFETENSORS_INDEX);
  const single = join(dir, 'model.safetensors');
  let weights: WeightMap;
  if (existsSync(indexPath)) weights = readShardedSafetensors(indexPath);
  else if (existsSync(single)) weights = readSafetensors(single);
  else {
    const other = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.bin') || f.endsWith('.pt') || f.endsWith('.pth')) : [];
    const hint = other.length ? ` (found ${other.join(', ')}: PyTorch pickles are not supported; convert them to safetensors)` : '';
    throw new Error(`model directory ${dir}: neither model.safetensors nor ${SAFETENSORS_INDEX}${hint}`);
  }
  weights = normalizeWeightNames(config, weights);
  if (opts.validate ?? true) validateWeights(config, weights, dir);
  const genPath = join(dir, 'generation_config.json');
  const generation = existsSync(genPath) ? readGenerationConfig(genPath) : null;
  const tokenizerFiles = TOKENIZER_FILE_NAMES.filter((f) => existsSync(join(dir, f)));
  return { dir, config, weights, generation, tokenizerFiles };
}

const IGNORED_BUFFER = /(^|\.)(rotary_emb\.inv_freq|attn\.bias|attn\.masked_bias)$/;

/**
 * Canonical names: drops non-parameter buffers; for GPT-2 adds the "transformer." prefix that
 * GPT2Model checkpoints lack (lm_head.weight stays unprefixed).
 */
export function normalizeWeightNames(config: ModelConfig, weights: WeightMap): WeightMap {
  const out: WeightMap = new Map();
  for (const [name, w] of weights) {
    // GPT-2's attn.bias is its causal-mask buffer; its real q/k/v bias is attn.c_attn.bias.
    if (IGNORED_BUFFER.test(name)) continue;
    let key = name;
    if (config.architecture === 'gpt2' && !name.startsWith('transformer.') && name !== 'lm_head.weight') key = `transformer.${name}`;
    if (out.has(key)) throw new Error(`weights: both ${key} and ${name} present`);
    out.set(key, w);
  }
  return out;
}

function listNames(names: string[], max = 8): string {
  return names.length <= max ? names.join(', ') : `${names.slice(0, max).join(', ')} … (${names.length} in all)`;
}

/** Throws naming every missing, unexpected or mis-shaped tensor. */
export function validateWeights(cfg: ModelConfig, weights: WeightMap, source = 'weights'): void {
  const expected = expectedWeightShapes(cfg);
  const missing = [...expected.keys()].filter((n) => !weights.has(n));
  const unexpected: string[] = [];
  const badShape: string[] = [];
  for (const [name, w] of weights) {
    const shape = expected.get(name) ?? (cfg.tieWordEmbeddings && name === 'lm_head.weight' ? [cfg.vocabSize, cfg.hiddenSize] : null);
    if (!shape) unexpected.push(name);
    else if (!sameShape(w.shape, shape)) badShape.push(`${name} ${shapeString(w.shape)} (expected ${shapeString(shape)})`);
  }
  const problems: string[] = [];
  if (missing.length) problems.push(`missing tensors: ${listNames(missing)}`);
  if (unexpected.length) problems.push(`unexpected tensors: ${listNames(unexpected.sort())}`);
  if (badShape.length) problems.push(`wrong shapes: ${listNames(badShape)}`);
  if (problems.length) throw new Error(`${source}: weights do not match the ${cfg.architecture} config (${cfg.numLayers} layers, hidden ${cfg.hiddenSize}): ${problems.join('; ')}`);
}

export interface SaveHfOptions {
  config: ModelConfig;
  weights: WeightMap;
  /** File dtype (default F32). BF16 rounds to nearest even and sets torch_dtype "bfloat16". */
  dtype?: SafetensorsWriteDtype;
  generation?: GenerationDefaults | null;
  /** Paths of files to copy in (kept under their base name), or name → content to write. */
  tokenizerFiles?: string[] | Record<string, string | Uint8Array>;
  /** Split model.safetensors into shards of at most this many data bytes (plus an index). */
  maxShardBytes?: number;
  /** Check names/shapes against the config before writing (default true). */
  validate?: boolean;
}

function writeJson(path: string, obj: unknown): void {
  writeFileAtomic(path, `${JSON.stringify(obj, null, 2)}\n`);
}

/**
 * Writes a Hugging Face directory: config.json, model.safetensors (or shards and
 * model.safetensors.index.json), generation_config.json, and tokenizer files. Stale weight files
 * of the other layout (single vs sharded) are removed so the directory stays consistent.
 */
export function saveHfDirectory(dir: string, opts: SaveHfOptions): void {
  const { config, weights } = opts;
  const dtype = opts.dtype ?? 'F32';
  if (opts.validate ?? true) validateWeights(config, weights, `saveHfDirectory ${dir}`);
  mkdirSync(dir, { recursive: true });

  const cfgJson = toHfConfigJson(config);
  cfgJson.torch_dtype = dtype === 'F32' ? 'float32' : dtype === 'BF16' ? 'bfloat16' : 'float16';
  writeJson(join(dir, 'config.json'), cfgJson);

  const total = safetensorsDataBytes(weights, dtype);
  const indexPath = join(dir, SAFETENSORS_INDEX);
  const bytesPer = dtype === 'F32' ? 4 : 2;
  if (opts.maxShardBytes !== undefined && total > opts.maxShardBytes) {
    // Greedy split in name order; a single tensor larger than the limit gets a shard of its own.
    const shards: WeightMap[] = [];
    let cur: WeightMap = new Map();
    let curBytes = 0;
    for (const name of sortedNames(weights)) {
      const w = weights.get(name)!;
      const b = w.data.length * bytesPer;
      if (cur.size > 0 && curBytes + b > opts.maxShardBytes) {
        shards.push(cur);
        cur = new Map();
        curBytes = 0;
      }
      cur.set(name, w);
      curBytes += b;
    }
    if (cur.size > 0) shards.push(cur);
    const weightMap: Record<string, string> = {};
    const n = String(shards.length).padStart(5, '0');
    shards.forEach((shard, i) => {
      const file = `model-${String(i + 1).padStart(5, '0')}-of-${n}.safetensors`;
      writeSafetensors(join(dir, file), shard, { dtype });
      for (const name of shard.keys()) weightMap[name] = file;
    });
    writeJson(indexPath, { metadata: { total_size: total }, weight_map: weightMap });
    if (existsSync(join(dir, 'model.safetensors'))) unlinkSync(join(dir, 'model.safetensors'));
  } else {
    writeSafetensors(join(dir, 'model.safetensors'), weights, { dtype });
    if (existsSync(indexPath)) unlinkSync(indexPath);
  }

  const generation = opts.generation === undefined ? generationDefaultsFromConfig(config) : opts.generation;
  if (generation) writeJson(join(dir, 'generation_config.json'), toGenerationConfigJson(generation));

  const tf = opts.tokenizerFiles;
  if (Array.isArray(tf)) {
    for (const src of tf) copyFileSync(src, join(dir, basename(src)));
  } else if (tf) {
    for (const [name, content] of Object.entries(tf)) {
      if (name !== basename(name) || name.startsWith('.')) throw new Error(`saveHfDirectory ${dir}: tokenizer file name ${JSON.stringify(name)} must be a plain file name`);
      writeFileSync(join(dir, name), content);
    }
  }
}

export interface LoadedCheckpoint {
  /** 'hf': a Hugging Face directory; 'llama2c': a llama2.c .bin checkpoint. */
  format: 'hf' | 'llama2c';
  config: ModelConfig;
  weights: WeightMap;
  generation: GenerationDefaults | null;
  /** Tokenizer files next to the model (TOKENIZER_FILE_NAMES for a directory; none for a .bin). */
  tokenizerFiles: string[];
}

/**
 * Loads a model from a Hugging Face directory (config.json + safetensors) or a llama2.c
 * checkpoint file, whichever `path` is. Weights come back in Hugging Face names either way.
 */
export function loadCheckpoint(path: string, opts: LoadHfOptions = {}): LoadedCheckpoint {
  if (!existsSync(path)) throw new Error(`model ${path}: does not exist`);
  if (statSync(path).isDirectory()) {
    if (!existsSync(join(path, 'config.json'))) {
      throw new Error(`model ${path}: a model directory needs config.json (a Hugging Face directory), or pass a llama2.c .bin file`);
    }
    const d = loadHfDirectory(path, opts);
    return { format: 'hf', config: d.config, weights: d.weights, generation: d.generation, tokenizerFiles: d.tokenizerFiles.map((f) => join(path, f)) };
  }
  if (path.endsWith('.safetensors')) {
    throw new Error(`model ${path}: a bare safetensors file; pass its directory (config.json is needed for the architecture)`);
  }
  const ck = readLlama2cCheckpoint(path);
  return { format: 'llama2c', config: ck.config, weights: ck.weights, generation: null, tokenizerFiles: [] };
}
