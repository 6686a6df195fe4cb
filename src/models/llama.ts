// The Llama architecture (Llama 2/3, SmolLM/SmolLM2, TinyLlama, Mistral without sliding window)
// and Qwen2 (Llama with q/k/v biases), in Hugging Face's layout and naming:
//
//   x = embed_tokens[ids]
//   for each layer:
//     h = RMSNorm(x)·w_in
//     q, k, v = h·Wqᵀ (+bq), h·Wkᵀ (+bk), h·Wvᵀ (+bv)       (grouped-query: fewer k/v heads)
//     q, k = RoPE(q), RoPE(k)                                 (rotate_half convention)
//     x = x + Attention_causal(q, k, v)·Woᵀ
//     h = RMSNorm(x)·w_post
//     x = x + (silu(h·Wgateᵀ) ∘ h·Wupᵀ)·Wdownᵀ                 (SwiGLU)
//   logp(target) = log_softmax(RMSNorm(x)·lm_headᵀ)[target]  (fused, chunked: no full logits)

import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import { ConfigFields, activationName, configError, idOrList, parseActivation, type Architecture, type ModelConfig, type RopeScaling } from './config.js';
import { ggufNameFrom, type ArchitectureDef, type DeclareWeight, type GgufLayout } from './architecture.js';
import { permuteHalvesToInterleaved, type Weight } from '../tensor/weight-map.js';
import type { WeightMap } from '../tensor/weight-map.js';
import { Linear } from '../nn/linear.js';
import {
  DecoderLM, KVCache, blockAttention, blockPositions, cachedAttention, checkBlock, segmentPositions, paramFrom, parameterMap, randomInit, ropeInvFreq,
  runDecoder, 
} from './decoder.js';
import type { TokenBlock } from './model.js';

export interface LlamaLayer {
  inputNorm: Tensor;
  q: Linear;
  k: Linear;
  v: Linear;
  o: Linear;
  postNorm: Tensor;
  gate: Linear;
  up: Linear;
  down: Linear;
}

export class LlamaModel extends DecoderLM {
  protected get def(): ArchitectureDef {
    return LLAMA;
  }

  readonly embed: Tensor;
  readonly layers: LlamaLayer[];
  readonly norm: Tensor;
  /** The output embedding: its own tensor, or the token embedding when tied. */
  readonly lmHead: Tensor;
  private cos: Float32Array = new Float32Array(0);
  private sin: Float32Array = new Float32Array(0);
  private tablePositions = 0;
  private readonly invFreq: Float64Array;

  private constructor(readonly config: ModelConfig, get: DeclareWeight) {
    super();
    const c = config;
    if (c.architecture !== 'llama' && c.architecture !== 'qwen2') throw new Error(`LlamaModel: architecture ${c.architecture} is not Llama-family`);
    if (c.headDim % 2 !== 0) throw new Error(`LlamaModel: head dim ${c.headDim} must be even for RoPE`);
    const d = c.hiddenSize, H = c.numHeads, Hkv = c.numKvHeads, D = c.headDim, F = c.intermediateSize;
    const lin = (path: string, out: number, inF: number, bias: boolean, init: 'normal' | 'out' = 'normal'): Linear =>
      new Linear(path, get(`${path}.weight`, [out, inF], init), bias ? get(`${path}.bias`, [out], 'zeros') : null);
    this.embed = get('model.embed_tokens.weight', [c.vocabSize, d], 'normal');
    this.layers = [];
    for (let l = 0; l < c.numLayers; l++) {
      const p = `model.layers.${l}`;
      this.layers.push({
        inputNorm: get(`${p}.input_layernorm.weight`, [d], 'ones'),
        q: lin(`${p}.self_attn.q_proj`, H * D, d, c.attentionBias),
        k: lin(`${p}.self_attn.k_proj`, Hkv * D, d, c.attentionBias),
        v: lin(`${p}.self_attn.v_proj`, Hkv * D, d, c.attentionBias),
        o: lin(`${p}.self_attn.o_proj`, d, H * D, c.attentionOutputBias, 'out'),
        postNorm: get(`${p}.post_attention_layernorm.weight`, [d], 'ones'),
        gate: lin(`${p}.mlp.gate_proj`, F, d, c.mlpBias),
        up: lin(`${p}.mlp.up_proj`, F, d, c.mlpBias),
        down: lin(`${p}.mlp.down_proj`, d, F, c.mlpBias, 'out'),
      });
    }
    this.norm = get('model.norm.weight', [d], 'ones');
    this.lmHead = c.tieWordEmbeddings ? this.embed : get('lm_head.weight', [c.vocabSize, d], 'normal');
    this.invFreq = ropeInvFreq(c);
  }

  /** Declares every weight through `get` (the one declaration the registry also runs for shapes). */
  static build(config: ModelConfig, get: DeclareWeight): LlamaModel {
    return new LlamaModel(config, get);
  }

  /** A model over checkpoint weights (shared, not copied). */
  static fromWeights(config: ModelConfig, weights: WeightMap, source = 'weights'): LlamaModel {
    return new LlamaModel(config, (name, shape) => paramFrom(weights, name, shape, source));
  }

  /** A randomly initialized model (normal(0, 0.02); output projections scaled by 1/sqrt(2·layers)). */
  static random(config: ModelConfig, seed = 0): LlamaModel {
    return new LlamaModel(config, randomInit(config, seed));
  }

  linears(): Linear[] {
    return this.layers.flatMap((L) => [L.q, L.k, L.v, L.o, L.gate, L.up, L.down]);
  }

  parameters(): Map<string, Tensor> {
    return parameterMap([this.embed, ...this.layers.flatMap((L) => [L.inputNorm, L.postNorm])], this.linears(),
      [this.norm, this.lmHead !== this.embed ? this.lmHead : null]);
  }

  private ensureRope(positions: Int32Array): void {
    let max = 0;
    for (let i = 0; i < positions.length; i++) if (positions[i]! > max) max = positions[i]!;
    if (max < this.tablePositions) return;
    const n = Math.max(max + 1, Math.min(2 * this.tablePositions, this.config.maxPositions), 256);
    const t = T.makeRopeTables(n, this.invFreq);
    this.cos = t.cos;
    this.sin = t.sin;
    this.tablePositions = n;
  }

  /** One transformer block; with a cache, attention reads past keys/values (inference only). */
  private block(l: number, x: Tensor, B: number, Tn: number, pos: Int32Array, kvStart: Int32Array | null, cache: KVCache | null, segments: Int32Array | null, packedRows: Int32Array | null): Tensor {
    const c = this.config, L = this.layers[l]!, ctx = this.ctx;
    const N = B * Tn, H = c.numHeads, Hkv = c.numKvHeads, D = c.headDim;
    const h = T.rmsnorm(x, L.inputNorm, c.normEps);
    const q = T.rope(T.reshape(L.q.forward(h, ctx), [B, Tn, H, D]), this.cos, this.sin, pos);
    const k = T.rope(T.reshape(L.k.forward(h, ctx), [B, Tn, Hkv, D]), this.cos, this.sin, pos);
    const v = T.reshape(L.v.forward(h, ctx), [B, Tn, Hkv, D]);
    const a = cache ? cachedAttention(q, k, v, l, cache, kvStart) : blockAttention(q, k, v, kvStart, segments, packedRows);
    const x1 = T.add(x, L.o.forward(T.reshape(a, [N, H * D]), ctx));
    const h2 = T.rmsnorm(x1, L.postNorm, c.normEps);
    const m = T.swiglu(L.gate.forward(h2, ctx), L.up.forward(h2, ctx));
    return T.add(x1, L.down.forward(m, ctx));
  }

  /** Final hidden states [batch·seq, d] (after the last norm). */
  hidden(block: TokenBlock, cache: KVCache | null = null): Tensor {
    const { ids, batch: B, seq: Tn } = block;
    const kvStart = block.kvStart ?? null, segments = block.segments ?? null, packedRows = block.packedRows ?? null;
    checkBlock('LlamaModel', block, cache);
    const pos = segments ? segmentPositions(segments, packedRows) : blockPositions(B, Tn, cache ? cache.length : 0, kvStart);
    checkSlidingWindow(this.config, pos);
    this.ensureRope(pos);
    return runDecoder(T.embedding(this.embed, ids, [B * Tn]), this.layers.length,
      (l, x) => this.block(l, x, B, Tn, pos, kvStart, cache, segments, packedRows), (x) => T.rmsnorm(x, this.norm, this.config.normEps), cache, Tn, this);
  }

}

/**
 * Sliding-window attention (Mistral; Qwen2 with use_sliding_window) is not implemented. While
 * every position is < the window, each query sees all earlier keys either way, so the model is
 * exact; beyond it the result would differ, so such a sequence is refused.
 */
function checkSlidingWindow(c: ModelConfig, pos: Int32Array): void {
  const w = c.slidingWindow;
  if (!w) return;
  let max = -1;
  for (let i = 0; i < pos.length; i++) if (pos[i]! > max) max = pos[i]!;
  if (max >= w) {
    throw new RangeError(
      `LlamaModel: a sequence of ${max + 1} tokens is longer than the model's sliding_window (${w}); sliding-window attention ` +
      `is not implemented, so sequences are limited to ${w} tokens (set max_length ≤ ${w}, or for generation keep prompt + new tokens ≤ ${w})`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// config.json (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM); defaults follow the
// transformers config classes.

function parseRopeScaling(f: ConfigFields): RopeScaling {
  const rs = f.raw.rope_scaling;
  if (rs === undefined || rs === null) return null;
  if (typeof rs !== 'object' || Array.isArray(rs)) throw configError(f.source, `rope_scaling must be an object or null, got ${JSON.stringify(rs)}`);
  const r = new ConfigFields(rs as Record<string, unknown>, `${f.source} rope_scaling`);
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
function slidingWindowOf(f: ConfigFields, isQwen: boolean): number | null {
  const mistral = f.raw.model_type === 'mistral' || (Array.isArray(f.raw.architectures) && f.raw.architectures.includes('MistralForCausalLM'));
  if (isQwen ? f.bool('use_sliding_window', false) !== true : !mistral) return null;
  if (f.raw.sliding_window === null) return null;
  return f.int('sliding_window', 4096);
}

function parseLlamaConfig(f: ConfigFields, architecture: Architecture): ModelConfig {
  const source = f.source;
  const hiddenSize = f.int('hidden_size');
  const numHeads = f.int('num_attention_heads');
  const numKvHeads = f.int('num_key_value_heads', numHeads);
  if (numHeads % numKvHeads !== 0) throw configError(source, `num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKvHeads}`);
  if (!f.has('head_dim') && hiddenSize % numHeads !== 0) throw configError(source, `hidden_size ${hiddenSize} is not divisible by num_attention_heads ${numHeads}`);
  const headDim = f.int('head_dim', hiddenSize / numHeads);
  if (headDim % 2 !== 0) throw configError(source, `head_dim ${headDim} must be even for rotary embeddings`);
  const isQwen = architecture === 'qwen2';
  const attnBias = isQwen ? true : f.bool('attention_bias', false);
  return {
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
    raw: f.raw,
  };
}

function writeLlamaConfig(cfg: ModelConfig, out: Record<string, unknown>): void {
  if (!Array.isArray(out.architectures)) out.architectures = [cfg.architecture === 'qwen2' ? 'Qwen2ForCausalLM' : 'LlamaForCausalLM'];
  if (typeof out.model_type !== 'string' || !(out.model_type in LLAMA_MODEL_TYPES)) out.model_type = cfg.architecture;
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
  out.hidden_act = activationName(cfg, 'hidden_act');
  if (cfg.architecture === 'llama') {
    out.attention_bias = cfg.attentionBias;
    out.mlp_bias = cfg.mlpBias;
  }
}

const LLAMA_MODEL_TYPES: Record<string, Architecture> = { llama: 'llama', mistral: 'llama', qwen2: 'qwen2' };

/** Llama, Mistral (within its sliding window) and Qwen2: the registry's entry. */
export const LLAMA: ArchitectureDef = {
  names: ['llama', 'qwen2'],
  hfClasses: { LlamaForCausalLM: 'llama', LlamaModel: 'llama', MistralForCausalLM: 'llama', Qwen2ForCausalLM: 'qwen2', Qwen2Model: 'qwen2' },
  modelTypes: LLAMA_MODEL_TYPES,
  tiedByDefault: false,
  parseConfig: parseLlamaConfig,
  writeConfig: writeLlamaConfig,
  build: (config, get) => LlamaModel.build(config, get),
  fromWeights: (config, weights, source) => LlamaModel.fromWeights(config, weights, source),
  random: (config, seed) => LlamaModel.random(config, seed),
  hfName: (name) => name,
  hfTransposed: () => false,
  loraTargets: ['q_proj', 'v_proj'],
  peftPath: (path) => path,
  gguf: llamaGguf(),
};

/** A Llama config.json object from its dimensions (for checkpoints without one, e.g. llama2.c). */
export function llamaConfigJson(p: {
  vocabSize: number; hiddenSize: number; intermediateSize: number; numLayers: number; numHeads: number;
  numKvHeads?: number; maxPositions: number; normEps?: number; ropeTheta?: number; tieWordEmbeddings: boolean;
  bosTokenId?: number | null; eosTokenId?: number[];
}): Record<string, unknown> {
  return {
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
}

// ---------------------------------------------------------------------------------------------
// llama.cpp's layout (convert_hf_to_gguf.py): LlamaModel (architecture "llama") with q/k rows
// permuted back to interleaved RoPE pairs, Qwen2Model ("qwen2", rotate_half RoPE, no permutation).

/** llama.cpp's per-frequency RoPE factors for Llama 3 scaling (convert_hf_to_gguf.py). */
export function llama3RopeFactors(cfg: ModelConfig): Float32Array {
  if (cfg.ropeScaling?.type !== 'llama3') throw new Error('llama3RopeFactors: config has no llama3 rope_scaling');
  const { factor, lowFreqFactor, highFreqFactor, originalMaxPositions } = cfg.ropeScaling;
  const d = cfg.headDim;
  const out = new Float32Array(d / 2);
  const lowWavelen = originalMaxPositions / lowFreqFactor;
  const highWavelen = originalMaxPositions / highFreqFactor;
  for (let i = 0; i < d / 2; i++) {
    const freq = 1 / Math.pow(cfg.ropeTheta, (2 * i) / d);
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highWavelen) out[i] = 1;
    else if (wavelen > lowWavelen) out[i] = factor;
    else {
      const smooth = (originalMaxPositions / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
      out[i] = 1 / ((1 - smooth) / factor + smooth);
    }
  }
  return out;
}

const GGUF_NAMES: [RegExp, string][] = [
  [/^model\.embed_tokens\.weight$/, 'token_embd.weight'],
  [/^model\.layers\.(\d+)\.input_layernorm\.weight$/, 'blk.$1.attn_norm.weight'],
  [/^model\.layers\.(\d+)\.self_attn\.q_proj\.(weight|bias)$/, 'blk.$1.attn_q.$2'],
  [/^model\.layers\.(\d+)\.self_attn\.k_proj\.(weight|bias)$/, 'blk.$1.attn_k.$2'],
  [/^model\.layers\.(\d+)\.self_attn\.v_proj\.(weight|bias)$/, 'blk.$1.attn_v.$2'],
  [/^model\.layers\.(\d+)\.self_attn\.o_proj\.(weight|bias)$/, 'blk.$1.attn_output.$2'],
  [/^model\.layers\.(\d+)\.post_attention_layernorm\.weight$/, 'blk.$1.ffn_norm.weight'],
  [/^model\.layers\.(\d+)\.mlp\.gate_proj\.weight$/, 'blk.$1.ffn_gate.weight'],
  [/^model\.layers\.(\d+)\.mlp\.up_proj\.weight$/, 'blk.$1.ffn_up.weight'],
  [/^model\.layers\.(\d+)\.mlp\.down_proj\.weight$/, 'blk.$1.ffn_down.weight'],
  [/^model\.norm\.weight$/, 'output_norm.weight'],
  // Tied models declare no lm_head: llama.cpp then reuses token_embd.
  [/^lm_head\.weight$/, 'output.weight'],
];

function llamaGguf(): GgufLayout {
  return {
    arch: (cfg) => cfg.architecture,
    check(cfg, src) {
      const arch = cfg.architecture;
      // llama.cpp reads no MLP biases for either architecture, and no output-projection bias for Qwen2.
      if (cfg.mlpBias) throw new Error(`${src}: MLP biases have no place in llama.cpp's ${arch} layout`);
      if (arch === 'qwen2' && cfg.attentionOutputBias) throw new Error(`${src}: an o_proj bias has no place in llama.cpp's qwen2 layout`);
      if (cfg.activation !== 'silu') throw new Error(`${src}: ${arch} GGUF needs SiLU activation, got ${cfg.activation}`);
    },
    params(cfg) {
      const p: [string, 'u32' | 'f32' | 'string', number | string][] = [
        ['vocab_size', 'u32', cfg.vocabSize],
        ['context_length', 'u32', cfg.maxPositions],
        ['embedding_length', 'u32', cfg.hiddenSize],
        ['block_count', 'u32', cfg.numLayers],
        ['feed_forward_length', 'u32', cfg.intermediateSize],
        ['rope.dimension_count', 'u32', cfg.headDim],
        ['attention.head_count', 'u32', cfg.numHeads],
        ['attention.head_count_kv', 'u32', cfg.numKvHeads],
      ];
      if (cfg.headDim * cfg.numHeads !== cfg.hiddenSize) p.push(['attention.key_length', 'u32', cfg.headDim], ['attention.value_length', 'u32', cfg.headDim]);
      p.push(['rope.freq_base', 'f32', cfg.ropeTheta], ['attention.layer_norm_rms_epsilon', 'f32', cfg.normEps]);
      if (cfg.ropeScaling?.type === 'linear') p.push(['rope.scaling.type', 'string', 'linear'], ['rope.scaling.factor', 'f32', cfg.ropeScaling.factor]);
      return p;
    },
    name: (name) => ggufNameFrom(GGUF_NAMES, name),
    layout(name, w, cfg) {
      // Llama's q/k rows go back to interleaved RoPE pairs (a bias is a one-column matrix here).
      if (cfg.architecture !== 'llama') return w;
      const heads = /q_proj/.test(name) ? cfg.numHeads : /k_proj/.test(name) ? cfg.numKvHeads : 0;
      if (!heads) return w;
      if (w.shape.length === 2) return permuteHalvesToInterleaved(w, heads);
      const p = permuteHalvesToInterleaved({ shape: [w.shape[0]!, 1], data: w.data }, heads);
      return { shape: [...w.shape], data: p.data };
    },
    extra(cfg) {
      if (cfg.ropeScaling?.type !== 'llama3') return [];
      const factors = llama3RopeFactors(cfg);
      return [{ after: 'token_embd.weight', name: 'rope_freqs.weight', weight: { shape: [factors.length], data: factors } as Weight }];
    },
  };
}
