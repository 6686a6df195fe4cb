// Hugging Face config.json → a typed ModelConfig (and back), and generation_config.json.
//
// Supported: LlamaForCausalLM (also SmolLM, TinyLlama), MistralForCausalLM (a Llama for sequences
// that fit in its sliding window; longer ones are refused, see slidingWindow), Qwen2ForCausalLM,
// GPT2LMHeadModel / GPT2Model. Defaults follow the transformers config classes.

import { readFileSync } from 'node:fs';

export type Architecture = 'llama' | 'qwen2' | 'gpt2';
export type Activation = 'silu' | 'gelu_tanh' | 'gelu';

export type RopeScaling =
  | null
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number }
  | { type: 'linear'; factor: number };

export interface ModelConfig {
  architecture: Architecture;
  vocabSize: number;
  hiddenSize: number;
  /** MLP inner width (GPT-2: n_inner, default 4·n_embd). */
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  /** Key/value heads (grouped-query attention); equals numHeads for GPT-2. */
  numKvHeads: number;
  headDim: number;
  /** Longest sequence: max_position_embeddings (GPT-2: n_positions, the size of wpe). */
  maxPositions: number;
  /**
   * Sliding-window attention span (Mistral's sliding_window, Qwen2's when use_sliding_window),
   * or null. Sliding-window attention is not implemented: within the window it equals full
   * attention, so the models refuse any position ≥ slidingWindow instead of computing something else.
   */
  slidingWindow?: number | null;
  /** RMSNorm eps (Llama, Qwen2) or LayerNorm eps (GPT-2). */
  normEps: number;
  /** RoPE base. 0 for GPT-2 (learned absolute positions, no rotary). */
  ropeTheta: number;
  ropeScaling: RopeScaling;
  /** lm_head shares the token embedding matrix (lm_head.weight may be absent from the files). */
  tieWordEmbeddings: boolean;
  /** q/k/v projections have biases (Qwen2: always; Llama: attention_bias; GPT-2: always). */
  attentionBias: boolean;
  /** The attention output projection (o_proj / c_proj) has a bias (Llama: attention_bias; Qwen2: never; GPT-2: always). */
  attentionOutputBias: boolean;
  /** MLP projections have biases (Llama: mlp_bias; Qwen2: never; GPT-2: always). */
  mlpBias: boolean;
  activation: Activation;
  bosTokenId: number | null;
  /** Every id that ends a sequence (config.json's eos_token_id as a list). */
  eosTokenId: number[];
  padTokenId: number | null;
  /** The parsed config.json as read (unknown fields survive a round trip through toHfConfigJson). */
  raw: Record<string, unknown>;
}

const SUPPORTED_ARCHITECTURES: Record<string, Architecture> = {
  LlamaForCausalLM: 'llama',
  LlamaModel: 'llama',
  MistralForCausalLM: 'llama',
  Qwen2ForCausalLM: 'qwen2',
  Qwen2Model: 'qwen2',
  GPT2LMHeadModel: 'gpt2',
  GPT2Model: 'gpt2',
};
const SUPPORTED_MODEL_TYPES: Record<string, Architecture> = { llama: 'llama', mistral: 'llama', qwen2: 'qwen2', gpt2: 'gpt2' };

function configError(source: string, what: string): Error {
  return new Error(`config ${source}: ${what}`);
}

function readJsonObject(path: string, what: string): Record<string, unknown> {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`${what} ${path}: cannot read JSON: ${(e as Error).message}`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new Error(`${what} ${path}: not a JSON object`);
  return json as Record<string, unknown>;
}

class Fields {
  constructor(readonly raw: Record<string, unknown>, readonly source: string) {}

  has(key: string): boolean {
    return this.raw[key] !== undefined && this.raw[key] !== null;
  }

  int(key: string, fallback?: number, min = 1): number {
    const v = this.raw[key];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      throw configError(this.source, `missing required field "${key}"`);
    }
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
      throw configError(this.source, `field "${key}" must be an integer >= ${min}, got ${JSON.stringify(v)}`);
    }
    return v;
  }

  num(key: string, fallback?: number): number {
    const v = this.raw[key];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      throw configError(this.source, `missing required field "${key}"`);
    }
    if (typeof v !== 'number' || !Number.isFinite(v)) throw configError(this.source, `field "${key}" must be a number, got ${JSON.stringify(v)}`);
    return v;
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.raw[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') throw configError(this.source, `field "${key}" must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }

  optionalId(key: string, fallback: number | null): number | null {
    const v = this.raw[key];
    if (v === undefined) return fallback;
    if (v === null) return null;
    if (Array.isArray(v) && v.length > 0) return this.idList(key)[0]!;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw configError(this.source, `field "${key}" must be a token id, got ${JSON.stringify(v)}`);
    return v;
  }

  /** A token id or a list of them (eos_token_id may be either). */
  idList(key: string, fallback: number[] = []): number[] {
    const v = this.raw[key];
    if (v === undefined || v === null) return [...fallback];
    const list = Array.isArray(v) ? v : [v];
    for (const id of list) {
      if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) throw configError(this.source, `field "${key}" must be a token id or a list of them, got ${JSON.stringify(v)}`);
    }
    return list as number[];
  }
}

function detectArchitecture(f: Fields): Architecture {
  const supported = `supported: ${Object.keys(SUPPORTED_ARCHITECTURES).join(', ')} (model_type ${Object.keys(SUPPORTED_MODEL_TYPES).join(', ')})`;
  const archs = f.raw.architectures;
  if (Array.isArray(archs) && archs.length > 0) {
    for (const a of archs) if (typeof a === 'string' && a in SUPPORTED_ARCHITECTURES) return SUPPORTED_ARCHITECTURES[a]!;
    throw configError(f.source, `unsupported architecture ${JSON.stringify(archs)}; ${supported}`);
  }
  const mt = f.raw.model_type;
  if (typeof mt === 'string' && mt in SUPPORTED_MODEL_TYPES) return SUPPORTED_MODEL_TYPES[mt]!;
  throw configError(f.source, `unsupported or missing model_type ${JSON.stringify(mt)} and no "architectures"; ${supported}`);
}

function parseActivation(f: Fields, key: string, fallback: string): Activation {
  const v = f.raw[key] ?? fallback;
  switch (v) {
    case 'silu':
    case 'swish':
      return 'silu';
    case 'gelu_new':
    case 'gelu_pytorch_tanh':
    case 'gelu_fast':
      return 'gelu_tanh';
    case 'gelu':
      return 'gelu';
    default:
      throw configError(f.source, `unsupported ${key} ${JSON.stringify(v)} (supported: silu, swish, gelu, gelu_new, gelu_pytorch_tanh, gelu_fast)`);
  }
}

function parseRopeScaling(f: Fields): RopeScaling {
  const rs = f.raw.rope_scaling;
  if (rs === undefined || rs === null) return null;
  if (typeof rs !== 'object' || Array.isArray(rs)) throw configError(f.source, `rope_scaling must be an object or null, got ${JSON.stringify(rs)}`);
  const r = new Fields(rs as Record<string, unknown>, `${f.source} rope_scaling`);
  const type = r.raw.rope_type ?? r.raw.type;
  if (type === 'default') return null;
  if (type === 'linear') return { type: 'linear', factor: r.num('factor') };
  if (type === 'llama3') {
    return {
      type: 'llama3',
      factor: r.num('factor'),
      lowFreqFactor: r.num('low_freq_factor'),
      highFreqFactor: r.num('high_freq_factor'),
      originalMaxPositions: r.int('original_max_position_embeddings'),
    };
  }
  throw configError(f.source, `unsupported rope_scaling type ${JSON.stringify(type)} (supported: llama3, linear, default)`);
}

/** Mistral: sliding_window (transformers' default 4096; null disables it); Qwen2: only with use_sliding_window. */
function slidingWindowOf(f: Fields, isQwen: boolean): number | null {
  const mistral = f.raw.model_type === 'mistral' || (Array.isArray(f.raw.architectures) && f.raw.architectures.includes('MistralForCausalLM'));
  if (isQwen ? f.bool('use_sliding_window', false) !== true : !mistral) return null;
  if (f.raw.sliding_window === null) return null;
  return f.int('sliding_window', 4096);
}

/** Parses an already-loaded config.json object. `source` names it in errors. */
export function parseModelConfig(raw: Record<string, unknown>, source = 'config.json'): ModelConfig {
  const f = new Fields(raw, source);
  const architecture = detectArchitecture(f);
  let cfg: ModelConfig;
  if (architecture === 'gpt2') {
    const hiddenSize = f.int('n_embd');
    const numHeads = f.int('n_head');
    if (hiddenSize % numHeads !== 0) throw configError(source, `n_embd ${hiddenSize} is not divisible by n_head ${numHeads}`);
    cfg = {
      architecture,
      vocabSize: f.int('vocab_size'),
      hiddenSize,
      intermediateSize: f.int('n_inner', 4 * hiddenSize),
      numLayers: f.int('n_layer'),
      numHeads,
      numKvHeads: numHeads,
      headDim: hiddenSize / numHeads,
      maxPositions: f.int('n_positions', f.int('n_ctx', 1024)),
      normEps: f.num('layer_norm_epsilon', 1e-5),
      ropeTheta: 0,
      ropeScaling: null,
      tieWordEmbeddings: f.bool('tie_word_embeddings', true),
      attentionBias: true,
      attentionOutputBias: true,
      mlpBias: true,
      activation: parseActivation(f, 'activation_function', 'gelu_new'),
      bosTokenId: f.optionalId('bos_token_id', 50256),
      eosTokenId: f.idList('eos_token_id', [50256]),
      padTokenId: f.optionalId('pad_token_id', null),
      raw,
    };
  } else {
    const hiddenSize = f.int('hidden_size');
    const numHeads = f.int('num_attention_heads');
    const numKvHeads = f.int('num_key_value_heads', numHeads);
    if (numHeads % numKvHeads !== 0) throw configError(source, `num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKvHeads}`);
    if (!f.has('head_dim') && hiddenSize % numHeads !== 0) throw configError(source, `hidden_size ${hiddenSize} is not divisible by num_attention_heads ${numHeads}`);
    const headDim = f.int('head_dim', hiddenSize / numHeads);
    if (headDim % 2 !== 0) throw configError(source, `head_dim ${headDim} must be even for rotary embeddings`);
    const isQwen = architecture === 'qwen2';
    const attnBias = isQwen ? true : f.bool('attention_bias', false);
    cfg = {
      architecture,
      vocabSize: f.int('vocab_size'),
      hiddenSize,
      intermediateSize: f.int('intermediate_size'),
      numLayers: f.int('num_hidden_layers'),
      numHeads,
      numKvHeads,
      headDim,
      maxPositions: f.int('max_position_embeddings', isQwen ? 32768 : 2048),
      slidingWindow: slidingWindowOf(f, isQwen),
      normEps: f.num('rms_norm_eps', 1e-6),
      ropeTheta: f.num('rope_theta', 10000),
      ropeScaling: parseRopeScaling(f),
      tieWordEmbeddings: f.bool('tie_word_embeddings', false),
      attentionBias: attnBias,
      attentionOutputBias: isQwen ? false : attnBias,
      mlpBias: isQwen ? false : f.bool('mlp_bias', false),
      activation: parseActivation(f, 'hidden_act', 'silu'),
      bosTokenId: f.optionalId('bos_token_id', isQwen ? null : 1),
      eosTokenId: f.idList('eos_token_id', isQwen ? [] : [2]),
      padTokenId: f.optionalId('pad_token_id', null),
      raw,
    };
  }
  if (cfg.ropeTheta < 0) throw configError(source, `rope_theta must be positive, got ${cfg.ropeTheta}`);
  if (!(cfg.normEps > 0)) throw configError(source, `norm epsilon must be positive, got ${cfg.normEps}`);
  return cfg;
}

/** Reads and parses a config.json file. */
export function readModelConfig(path: string): ModelConfig {
  return parseModelConfig(readJsonObject(path, 'config'), path);
}

function idOrList(ids: number[]): number | number[] | null {
  if (ids.length === 0) return null;
  return ids.length === 1 ? ids[0]! : ids;
}

/**
 * The config.json object for `cfg`: the raw fields it was parsed from (unknown ones kept), with
 * every field ModelConfig covers overwritten in the architecture's own naming.
 */
export function toHfConfigJson(cfg: ModelConfig): Record<string, unknown> {
  const out: Record<string, unknown> = { ...cfg.raw };
  const act = { silu: 'silu', gelu_tanh: 'gelu_new', gelu: 'gelu' }[cfg.activation];
  if (cfg.architecture === 'gpt2') {
    if (!Array.isArray(out.architectures)) out.architectures = ['GPT2LMHeadModel'];
    out.model_type = 'gpt2';
    out.vocab_size = cfg.vocabSize;
    out.n_embd = cfg.hiddenSize;
    out.n_layer = cfg.numLayers;
    out.n_head = cfg.numHeads;
    // null means the default 4·n_embd; keep null when that is what it is and the source said null.
    out.n_inner = cfg.intermediateSize === 4 * cfg.hiddenSize && (out.n_inner === null || out.n_inner === undefined) ? null : cfg.intermediateSize;
    out.n_positions = cfg.maxPositions;
    if (out.n_ctx !== undefined) out.n_ctx = cfg.maxPositions;
    out.layer_norm_epsilon = cfg.normEps;
    out.activation_function = cfg.activation === 'gelu_tanh' && typeof cfg.raw.activation_function === 'string' && parseActivationName(cfg.raw.activation_function) === 'gelu_tanh' ? cfg.raw.activation_function : act;
  } else {
    if (!Array.isArray(out.architectures)) out.architectures = [cfg.architecture === 'qwen2' ? 'Qwen2ForCausalLM' : 'LlamaForCausalLM'];
    if (typeof out.model_type !== 'string' || !(out.model_type in SUPPORTED_MODEL_TYPES)) out.model_type = cfg.architecture;
    out.vocab_size = cfg.vocabSize;
    out.hidden_size = cfg.hiddenSize;
    out.intermediate_size = cfg.intermediateSize;
    out.num_hidden_layers = cfg.numLayers;
    out.num_attention_heads = cfg.numHeads;
    out.num_key_value_heads = cfg.numKvHeads;
    if (out.head_dim !== undefined || cfg.headDim * cfg.numHeads !== cfg.hiddenSize) out.head_dim = cfg.headDim;
    out.max_position_embeddings = cfg.maxPositions;
    out.rms_norm_eps = cfg.normEps;
    out.rope_theta = cfg.ropeTheta;
    out.rope_scaling = cfg.ropeScaling === null ? null
      : cfg.ropeScaling.type === 'linear' ? { rope_type: 'linear', factor: cfg.ropeScaling.factor }
      : {
          rope_type: 'llama3',
          factor: cfg.ropeScaling.factor,
          low_freq_factor: cfg.ropeScaling.lowFreqFactor,
          high_freq_factor: cfg.ropeScaling.highFreqFactor,
          original_max_position_embeddings: cfg.ropeScaling.originalMaxPositions,
        };
    out.hidden_act = cfg.activation === 'silu' && typeof cfg.raw.hidden_act === 'string' && parseActivationName(cfg.raw.hidden_act) === 'silu' ? cfg.raw.hidden_act : act;
    if (cfg.architecture === 'llama') {
      out.attention_bias = cfg.attentionBias;
      out.mlp_bias = cfg.mlpBias;
    }
  }
  // transformers' default is tied for GPT-2, untied for Llama/Qwen2: only write what differs or was given.
  const tieDefault = cfg.architecture === 'gpt2';
  if (out.tie_word_embeddings !== undefined || cfg.tieWordEmbeddings !== tieDefault) out.tie_word_embeddings = cfg.tieWordEmbeddings;
  out.bos_token_id = cfg.bosTokenId;
  out.eos_token_id = idOrList(cfg.eosTokenId);
  if (cfg.padTokenId !== null || out.pad_token_id !== undefined) out.pad_token_id = cfg.padTokenId;
  return out;
}

function parseActivationName(name: string): Activation | null {
  try {
    return parseActivation(new Fields({ a: name }, ''), 'a', name);
  } catch {
    return null;
  }
}

/** A Llama ModelConfig from its dimensions (for checkpoints without config.json, e.g. llama2.c). */
export function llamaConfig(p: {
  vocabSize: number; hiddenSize: number; intermediateSize: number; numLayers: number; numHeads: number;
  numKvHeads?: number; maxPositions: number; normEps?: number; ropeTheta?: number; tieWordEmbeddings: boolean;
  bosTokenId?: number | null; eosTokenId?: number[];
}): ModelConfig {
  const raw: Record<string, unknown> = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    vocab_size: p.vocabSize,
    hidden_size: p.hiddenSize,
    intermediate_size: p.intermediateSize,
    num_hidden_layers: p.numLayers,
    num_attention_heads: p.numHeads,
    num_key_value_heads: p.numKvHeads ?? p.numHeads,
    max_position_embeddings: p.maxPositions,
    rms_norm_eps: p.normEps ?? 1e-5,
    rope_theta: p.ropeTheta ?? 10000,
    rope_scaling: null,
    hidden_act: 'silu',
    attention_bias: false,
    mlp_bias: false,
    tie_word_embeddings: p.tieWordEmbeddings,
    bos_token_id: p.bosTokenId === undefined ? 1 : p.bosTokenId,
    eos_token_id: idOrList(p.eosTokenId ?? [2]),
    torch_dtype: 'float32',
  };
  return parseModelConfig(raw, 'llamaConfig');
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
