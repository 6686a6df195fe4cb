// The pieces every decoder architecture shares: positions, the attention glue (block, packed and
// cached attention), the KV cache, the decoder loop, rotary frequencies, parameter initialization
// and the last-position logits. An architecture file (llama.ts, gpt2.ts) imports these, never
// another architecture.

import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import { kernels } from '../tensor/backend.js';
import { Rng } from '../tensor/random.js';
import type { ModelConfig } from './config.js';
import type { WeightMap } from '../tensor/weight-map.js';
import type { TokenBlock } from './model.js';


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
  cache: KVCache | null, newTokens: number,
): Tensor {
  for (let l = 0; l < layers; l++) {
    const prev = x;
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

/**
 * Attention of new queries over the cache (no tape): writes this block's keys/values at the
 * cache's current length and attends to everything stored so far.
 */
export function cachedAttention(q: Tensor, k: Tensor, v: Tensor, layer: number, cache: KVCache, kvStart: Int32Array | null): Tensor {
  const [B, Tn, H, D] = q.shape as [number, number, number, number];
  cache.write(layer, k.data as Float32Array, v.data as Float32Array, Tn);
  const out = T.empty([B, Tn, H, D]);
  const lse = new Float32Array(B * H * Tn);
  kernels().attentionForward(q.data, cache.k[layer]!, cache.v[layer]!, out.data, lse, B, Tn, cache.length + Tn,
    H, cache.kvHeads, D, 1 / Math.sqrt(D), cache.batchStride, kvStart);
  return out;
}

/** Logits [batch, vocab] of the last position of each row of final hidden states [batch·tNew, d]. */
export function lastLogits(h: Tensor, batch: number, tNew: number, head: Tensor): Float32Array {
  const d = h.shape[1]!;
  const last = new Float32Array(batch * d);
  for (let b = 0; b < batch; b++) last.set(h.data.subarray((b * tNew + tNew - 1) * d, (b * tNew + tNew) * d), b * d);
  const V = head.shape[0]!;
  const logits = new Float32Array(batch * V);
  kernels().gemm(false, true, batch, V, d, last, 0, head.data, 0, logits, 0, 1, 1, 0);
  return logits;
}
