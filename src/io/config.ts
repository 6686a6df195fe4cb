// Hugging Face config.json and generation_config.json files. The model definition (ModelConfig,
// each architecture's fields) lives in src/models (config.ts, architectures.ts and the
// architecture files); this module reads the files and handles generation_config.json.

import { readFileSync } from 'node:fs';
import { ConfigFields as Fields, idOrList, type ModelConfig } from '../models/config.js';
import { parseModelConfig } from '../models/architectures.js';

export type { Architecture, Activation, RopeScaling, ModelConfig } from '../models/config.js';
export { parseModelConfig, toHfConfigJson, llamaConfig } from '../models/architectures.js';

/** A JSON file that must hold an object; errors name `what` and the path. */
export function readJsonObject(path: string, what: string): Record<string, unknown> {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`${what} ${path}: cannot read JSON: ${(e as Error).message}`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new Error(`${what} ${path}: not a JSON object`);
  return json as Record<string, unknown>;
}

/** Reads and parses a config.json file. */
export function readModelConfig(path: string): ModelConfig {
  return parseModelConfig(readJsonObject(path, 'config'), path);
}

// ---------------------------------------------------------------------------------------------
// generation_config.json

export interface GenerationDefaults {
  bosTokenId: number | null;
  /** Ids that end generation (may hold several, e.g. end-of-turn ids). */
  eosTokenIds: number[];
  padTokenId: number | null;
  /** transformers defaults when the file omits a field: 1.0, 1.0, 50, false. */
  temperature: number;
  topP: number;
  topK: number;
  /** null when the file sets none (transformers then uses max_length). */
  maxNewTokens: number | null;
  doSample: boolean;
  raw: Record<string, unknown>;
}

/** Parses a generation_config.json object. */
export function parseGenerationConfig(raw: Record<string, unknown>, source = 'generation_config.json'): GenerationDefaults {
  const f = new Fields(raw, source);
  const topK = f.int('top_k', 50, 0);
  return {
    bosTokenId: f.optionalId('bos_token_id', null),
    eosTokenIds: f.idList('eos_token_id'),
    padTokenId: f.optionalId('pad_token_id', null),
    temperature: f.num('temperature', 1.0),
    topP: f.num('top_p', 1.0),
    topK,
    maxNewTokens: f.has('max_new_tokens') ? f.int('max_new_tokens') : null,
    doSample: f.bool('do_sample', false),
    raw,
  };
}

export function readGenerationConfig(path: string): GenerationDefaults {
  return parseGenerationConfig(readJsonObject(path, 'generation config'), path);
}

/** The generation_config.json object (raw fields kept, covered ones overwritten). */
export function toGenerationConfigJson(g: GenerationDefaults): Record<string, unknown> {
  const out: Record<string, unknown> = { ...g.raw };
  if (g.bosTokenId !== null) out.bos_token_id = g.bosTokenId;
  out.eos_token_id = idOrList(g.eosTokenIds);
  if (g.padTokenId !== null) out.pad_token_id = g.padTokenId;
  out.temperature = g.temperature;
  out.top_p = g.topP;
  out.top_k = g.topK;
  if (g.maxNewTokens !== null) out.max_new_tokens = g.maxNewTokens;
  out.do_sample = g.doSample;
  return out;
}

/** Generation defaults taken from a model config (when a directory has no generation_config.json). */
export function generationDefaultsFromConfig(cfg: ModelConfig): GenerationDefaults {
  return parseGenerationConfig({
    bos_token_id: cfg.bosTokenId,
    eos_token_id: idOrList(cfg.eosTokenId),
    pad_token_id: cfg.padTokenId,
  }, 'model config');
}
