// What every causal language model in the project provides, and the pieces they share:
// the KV cache and parameter initialization.

import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import { Rng } from '../tensor/random.js';
import type { ModelConfig } from '../io/config.js';
import type { WeightMap } from '../io/weights.js';
import { Linear, type ForwardContext } from '../nn/linear.js';

/** Inputs of a training-style forward: a [batch, seq] block of token ids. */
export interface TokenBlock {
  ids: Int32Array;
  batch: number;
  seq: number;
  /**
   * First real position of each row (left padding, generation); null = 0 for all rows.
   * Positions count from there: position of token t in row b is max(0, t − kvStart[b]).
   */
  kvStart?: Int32Array | null;
  /**
   * Padding-free packing: the lengths of sequences laid back to back in the single row (batch 1,
   * Σ = seq). Each sequence gets positions from 0 and attends only to itself.
   */
  segments?: Int32Array | null;
}

/** Positions of packed sequences: 0, 1, ... within each segment. */
export function segmentPositions(segments: Int32Array): Int32Array {
  let n = 0;
  for (const len of segments) n += len;
  const pos = new Int32Array(n);
  let i = 0;
  for (const len of segments) for (let t = 0; t < len; t++) pos[i++] = t;
  return pos;
}

/** Checks a TokenBlock's shape: ids count and, for packed blocks, batch 1 and Σ segments = seq. */
export function checkBlock(model: string, block: TokenBlock, cache: KVCache | null): void {
  const { ids, batch: B, seq: Tn, segments } = block;
  if (ids.length !== B * Tn) throw new RangeError(`${model}: ${ids.length} ids for batch ${B} × seq ${Tn}`);
  if (!segments) return;
  let total = 0;
  for (const len of segments) total += len;
  if (B !== 1 || total !== Tn) throw new RangeError(`${model}: packed sequences need batch 1 and lengths adding up to seq (batch ${B}, seq ${Tn}, lengths sum ${total})`);
  if (cache || block.kvStart) throw new RangeError(`${model}: packed sequences take no KV cache and no kvStart`);
}

/** Causal attention of a block: per packed sequence, or per row with optional left padding. */
export function blockAttention(q: Tensor, k: Tensor, v: Tensor, kvStart: Int32Array | null, segments: Int32Array | null | undefined): Tensor {
  return segments ? T.packedAttention(q, k, v, segments) : T.attention(q, k, v, { kvStart });
}

/** Keys and values of past tokens, per layer: [batch, capacity, kvHeads, headDim]. */
export class KVCache {
  readonly k: Float32Array[];
  readonly v: Float32Array[];
  /** Tokens stored so far (the same for every row). */
  length = 0;

  constructor(
    readonly layers: number,
    readonly batch: number,
    readonly capacity: number,
    readonly kvHeads: number,
    readonly headDim: number,
  ) {
    const n = batch * capacity * kvHeads * headDim;
    this.k = Array.from({ length: layers }, () => new Float32Array(n));
    this.v = Array.from({ length: layers }, () => new Float32Array(n));
  }

  get batchStride(): number {
    return this.capacity * this.kvHeads * this.headDim;
  }

  /** Copies new keys/values [batch, tNew, kvHeads, headDim] of one layer at the current length. */
  write(layer: number, k: Float32Array, v: Float32Array, tNew: number): void {
    if (this.length + tNew > this.capacity) {
      throw new RangeError(`KV cache full: ${this.length} + ${tNew} tokens exceed its capacity ${this.capacity}`);
    }
    const row = this.kvHeads * this.headDim;
    for (let b = 0; b < this.batch; b++) {
      const src = b * tNew * row;
      const dst = b * this.batchStride + this.length * row;
      this.k[layer]!.set(k.subarray(src, src + tNew * row), dst);
      this.v[layer]!.set(v.subarray(src, src + tNew * row), dst);
    }
  }
}

export interface CausalLM {
  readonly config: ModelConfig;
  /** Every parameter by its Hugging Face name (LoRA adapters included when attached). */
  parameters(): Map<string, Tensor>;
  /** Parameters that train (requiresGrad). */
  trainableParameters(): Tensor[];
  /** The linear layers by module path (for LoRA targeting). */
  linears(): Linear[];
  /** Forward context (adapters on/off, dropout RNG). */
  ctx: ForwardContext;
  /**
   * log p(targets[b, t] | ids[b, ≤t]) for every position: shape [batch·seq]; targets −1 → 0.
   * Records the tape when grad is enabled. Never materializes the full logits. opts.meanLogits
   * ([batch·seq]) receives each position's mean logit over the vocabulary (TRL's logits/* metrics).
   * opts.temperature divides the logits first (log-probs of the distribution sampled at that
   * temperature, as the RL trainers need).
   */
  tokenLogprobs(block: TokenBlock, targets: Int32Array, opts?: { meanLogits?: Float32Array; logSumSqProbs?: Float32Array; temperature?: number }): Tensor;
  /** Logits of the last position of each row after feeding ids through the cache: [batch, vocab]. */
  forwardCached(ids: Int32Array, tNew: number, cache: KVCache, kvStart: Int32Array | null): Float32Array;
  newCache(batch: number, capacity: number): KVCache;
  /** Weights in Hugging Face names and layouts (for saving). */
  exportWeights(): WeightMap;
}

/** Positions for a block: t − kvStart[b] (clamped at 0), offset by past tokens. */
export function blockPositions(batch: number, seq: number, past: number, kvStart: Int32Array | null): Int32Array {
  const pos = new Int32Array(batch * seq);
  for (let b = 0; b < batch; b++) {
    const s = kvStart ? kvStart[b]! : 0;
    for (let t = 0; t < seq; t++) pos[b * seq + t] = Math.max(0, past + t - s);
  }
  return pos;
}

/** A parameter tensor from a checkpoint weight (copied only when asked). */
export function paramFrom(weights: WeightMap, name: string, shape: readonly number[], source: string): Tensor {
  const w = weights.get(name);
  if (!w) throw new Error(`${source}: missing tensor ${name}`);
  if (w.shape.length !== shape.length || w.shape.some((d, i) => d !== shape[i])) {
    throw new Error(`${source}: tensor ${name} has shape [${w.shape.join(', ')}], expected [${shape.join(', ')}]`);
  }
  return T.fromBuffer(w.data, shape, { requiresGrad: true, name });
}

/** Normal(0, std) initialization (GPT-2 / Llama style), seeded. */
export function initNormal(shape: readonly number[], std: number, rng: Rng, name: string): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const d = new Float32Array(n);
  for (let i = 0; i < n; i++) d[i] = rng.normal() * std;
  return T.fromBuffer(d, shape, { requiresGrad: true, name });
}

export function initConst(shape: readonly number[], value: number, name: string): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return T.fromBuffer(new Float32Array(n).fill(value), shape, { requiresGrad: true, name });
}

/** Builds the inverse RoPE frequencies, with Llama 3 / linear scaling when configured. */
export function ropeInvFreq(cfg: ModelConfig): Float64Array {
  const half = cfg.headDim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / Math.pow(cfg.ropeTheta, (2 * i) / cfg.headDim);
  const sc = cfg.ropeScaling;
  if (sc?.type === 'linear') {
    for (let i = 0; i < half; i++) inv[i]! /= sc.factor;
  } else if (sc?.type === 'llama3') {
    // transformers' _compute_llama3_parameters
    const lowWavelen = sc.originalMaxPositions / sc.lowFreqFactor;
    const highWavelen = sc.originalMaxPositions / sc.highFreqFactor;
    for (let i = 0; i < half; i++) {
      const f = inv[i]!;
      const wavelen = (2 * Math.PI) / f;
      if (wavelen > lowWavelen) inv[i] = f / sc.factor;
      else if (wavelen >= highWavelen) {
        const smooth = (sc.originalMaxPositions / wavelen - sc.lowFreqFactor) / (sc.highFreqFactor - sc.lowFreqFactor);
        inv[i] = (1 - smooth) * (f / sc.factor) + smooth * f;
      }
    }
  }
  return inv;
}

/** Weight map entry from a parameter (shares memory). */
export function weightOf(t: Tensor): { shape: number[]; data: Float32Array } {
  if (!(t.data instanceof Float32Array)) throw new Error(`weightOf: ${t} is not float32`);
  return { shape: [...t.shape], data: t.data };
}

/**
 * Runs the decoder blocks over the embedded input and applies the final norm. In inference each
 * block's intermediates are freed as soon as it returns (tidy), and the previous block's output
 * right after the next one consumed it; with a cache, its length advances by the new tokens.
 */
export function runDecoder(
  x: Tensor, layers: number, block: (layer: number, x: Tensor) => Tensor, finalNorm: (x: Tensor) => Tensor,
  cache: KVCache | null, newTokens: number, model?: { ctx: ForwardContext; trainableParameters(): Tensor[] },
): Tensor {
  // Gradient checkpointing: each block keeps only its input; backward reruns it with the dropout
  // RNG state, adapter switch and matmul precision it had in the forward (same values, same grads).
  const ckpt = model?.ctx.gradientCheckpointing && T.isGradEnabled() && !cache ? model : undefined;
  const params = ckpt ? ckpt.trainableParameters() : [];
  for (let l = 0; l < layers; l++) {
    const prev = x;
    if (ckpt) {
      const ctx = ckpt.ctx;
      const rngState = ctx.rng ? ctx.rng.state() : null, adapters = ctx.adaptersEnabled, precision = T.matmulPrecision();
      x = T.checkpoint(prev, params, (h) => block(l, h), (run) => {
        const rng0 = ctx.rng, adapters0 = ctx.adaptersEnabled;
        ctx.rng = rngState ? new Rng(rngState) : null;
        ctx.adaptersEnabled = adapters;
        try {
          T.withMatmulPrecision(precision, run);
        } finally {
          ctx.rng = rng0;
          ctx.adaptersEnabled = adapters0;
        }
      });
      continue;
    }
    x = T.tidy(() => block(l, prev));
    if (!T.isGradEnabled()) prev.dispose();
  }
  if (cache) cache.length += newTokens;
  const out = finalNorm(x);
  if (!T.isGradEnabled()) x.dispose();
  return out;
}

/** Final hidden states scaled by 1/temperature: logits (h/τ)·Wᵀ = (h·Wᵀ)/τ without materializing them. */
export function temperatureScaled(h: Tensor, temperature: number | undefined): Tensor {
  if (temperature === undefined || temperature === 1) return h;
  if (!(temperature > 0)) throw new RangeError(`temperature must be positive, got ${temperature}`);
  return T.scale(h, 1 / temperature);
}
