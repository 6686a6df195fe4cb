// The model definition shared by every architecture: ModelConfig (what a Hugging Face config.json
// says about the network, in one naming), and the field readers the architecture files parse
// config.json with. Each architecture parses and writes its own fields (llama.ts, gpt2.ts); the
// registry (architectures.ts) picks the architecture. Reading the file lives in io/config.ts.

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

export function configError(source: string, what: string): Error {
  return new Error(`config ${source}: ${what}`);
}

/** Typed, checked reads of a config object's fields; errors name the source and the field. */
export class ConfigFields {
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

/** A config.json activation name → Activation. */
export function parseActivation(f: ConfigFields, key: string, fallback: string): Activation {
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

/**
 * The activation name to write: the one the config was read with when it means the same
 * activation (e.g. "gelu_pytorch_tanh"), else the canonical name.
 */
export function activationName(cfg: ModelConfig, key: string): string {
  const given = cfg.raw[key];
  if (typeof given === 'string') {
    try {
      if (parseActivation(new ConfigFields({ a: given }, ''), 'a', given) === cfg.activation) return given;
    } catch {
      // an unknown name in raw: write the canonical one
    }
  }
  return { silu: 'silu', gelu_tanh: 'gelu_new', gelu: 'gelu' }[cfg.activation];
}

/** A token-id list as config.json writes it: null, one id, or a list. */
export function idOrList(ids: number[]): number | number[] | null {
  if (ids.length === 0) return null;
  return ids.length === 1 ? ids[0]! : ids;
}
