// The pieces every decoder architecture shares: positions, the attention glue (block, packed and
// cached attention), the KV cache, the decoder loop, rotary frequencies, parameter initialization
// and the last-position logits. An architecture file (llama.ts, gpt2.ts) imports these, never
// another architecture.

import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import { kernels } from '../tensor/backend.js';
import { bf16Storage, bf16StorageError, storeTensorAsBf16 } from '../tensor/bf16-ops.js';
import { Rng } from '../tensor/random.js';
import type { ModelConfig } from './config.js';
import type { WeightMap } from '../tensor/weight-map.js';
import type { Linear, ForwardContext } from '../nn/linear.js';
import type { ArchitectureDef } from './architecture.js';
import { transpose2d } from '../tensor/weight-map.js';
import type { CausalLM, TokenBlock } from './model.js';
import { KVCache } from './kv-cache.js';

export { KVCache };


/**
 * Positions of packed sequences: 0, 1, ... within each segment. With packedRows (a tree of
 * sequences sharing rows, see TokenBlock) each row's position within the sequences that read it,
 * which must be the same in all of them.
 */
export function segmentPositions(segments: Int32Array, packedRows?: Int32Array | null): Int32Array {
  let n = 0;
  for (const len of segments) n += len;
  if (!packedRows) {
    const pos = new Int32Array(n);
    let i = 0;
    for (const len of segments) for (let t = 0; t < len; t++) pos[i++] = t;
    return pos;
  }
  if (n !== packedRows.length) throw new RangeError(`packed sequences: lengths add up to ${n}, but packedRows has ${packedRows.length} entries`);
  let rows = 0;
  for (const r of packedRows) rows = Math.max(rows, r + 1);
  const pos = new Int32Array(rows).fill(-1);
  let i = 0;
  segments.forEach((len, s) => {
    for (let t = 0; t < len; t++, i++) {
      const r = packedRows[i]!;
      if (!(Number.isInteger(r) && r >= 0)) throw new RangeError(`packed sequences: packedRows[${i}] = ${r} is not a row index`);
      if (pos[r] === -1) pos[r] = t;
      else if (pos[r] !== t) throw new RangeError(`packed sequences: row ${r} is at position ${pos[r]} in one sequence and ${t} in sequence ${s}`);
    }
  });
  const unread = pos.indexOf(-1);
  if (unread >= 0) throw new RangeError(`packed sequences: row ${unread} is read by no sequence`);
  return pos;
}

/** Checks a TokenBlock's shape: ids count and, for packed blocks, batch 1 and Σ segments = seq (or = packedRows, which covers seq rows). */
export function checkBlock(model: string, block: TokenBlock, cache: KVCache | null): void {
  const { ids, batch: B, seq: Tn, segments, packedRows } = block;
  if (ids.length !== B * Tn) throw new RangeError(`${model}: ${ids.length} ids for batch ${B} × seq ${Tn}`);
  if (packedRows && !segments) throw new RangeError(`${model}: packedRows needs segments`);
  if (!segments) return;
  let total = 0;
  for (const len of segments) total += len;
  if (packedRows) {
    let rows = 0;
    for (const r of packedRows) rows = Math.max(rows, r + 1);
    if (B !== 1 || total !== packedRows.length || rows !== Tn) {
      throw new RangeError(`${model}: tree-packed sequences need batch 1, lengths adding up to packedRows (${total} vs ${packedRows.length}) and rows 0..seq−1 (batch ${B}, seq ${Tn}, rows ${rows})`);
    }
  } else if (B !== 1 || total !== Tn) throw new RangeError(`${model}: packed sequences need batch 1 and lengths adding up to seq (batch ${B}, seq ${Tn}, lengths sum ${total})`);
  if (cache || block.kvStart) throw new RangeError(`${model}: packed sequences take no KV cache and no kvStart`);
}

/** Causal attention of a block: per packed sequence (a tree with packedRows), or per row with optional left padding. */
export function blockAttention(q: Tensor, k: Tensor, v: Tensor, kvStart: Int32Array | null, segments: Int32Array | null | undefined, packedRows?: Int32Array | null): Tensor {
  return segments ? T.packedAttention(q, k, v, segments, { rows: packedRows ?? null }) : T.attention(q, k, v, { kvStart });
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
  bf16StorageError(t, 'export it as float32');
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

/**
 * Logits [batch, vocab] of the last position of each row of final hidden states [batch·tNew, d],
 * in a buffer of the tensor pool: a caller done with them may T.release() it (the generation
 * loops do, once per token), else the garbage collector reclaims it.
 */
export function lastLogits(h: Tensor, batch: number, tNew: number, head: Tensor): Float32Array {
  const d = h.shape[1]!;
  const last = T.alloc('float32', batch * d, false) as Float32Array;
  for (let b = 0; b < batch; b++) last.set(h.data.subarray((b * tNew + tNew - 1) * d, (b * tNew + tNew) * d), b * d);
  const V = head.shape[0]!;
  const logits = T.alloc('float32', batch * V, false) as Float32Array;  // beta 0: overwritten
  const bits = bf16Storage(head);  // a frozen head stored as bf16 (frozen_dtype)
  if (bits) kernels().gemmBf16(false, true, batch, V, d, last, 0, bits, 0, logits, 0, 1, 1, 0);
  else kernels().gemm(false, true, batch, V, d, last, 0, head.data, 0, logits, 0, 1, 1, 0);
  T.release(last);
  return logits;
}

/**
 * A fresh model's weight declaration (GPT-2 / Llama style): normal(0, 0.02), output projections
 * ('out') scaled by 1/sqrt(2·layers), norms ones, biases zeros; `std(name)` overrides the 0.02.
 */
export function randomInit(config: ModelConfig, seed: number, std: (name: string) => number = () => 0.02):
  (name: string, shape: number[], init: 'normal' | 'ones' | 'zeros' | 'out') => Tensor {
  const rng = new Rng(seed);
  return (name, shape, init) =>
    init === 'ones' ? initConst(shape, 1, name)
      : init === 'zeros' ? initConst(shape, 0, name)
        : initNormal(shape, init === 'out' ? 0.02 / Math.sqrt(2 * config.numLayers) : std(name), rng, name);
}

/**
 * Every parameter by name, in a fixed order: `before`, then each linear's weight, bias and LoRA
 * adapter, then `after` (null entries skipped).
 */
export function parameterMap(before: readonly (Tensor | null)[], linears: readonly Linear[], after: readonly (Tensor | null)[]): Map<string, Tensor> {
  const m = new Map<string, Tensor>();
  const add = (t: Tensor | null): void => {
    if (t) m.set(t.name!, t);
  };
  before.forEach(add);
  for (const lin of linears) {
    add(lin.weight);
    add(lin.bias);
    if (lin.lora) {
      add(lin.lora.A);
      add(lin.lora.B);
    }
  }
  after.forEach(add);
  return m;
}

/**
 * frozen_dtype bfloat16 for the embeddings: the token embedding and the LM head (one tensor when
 * tied), when frozen (a LoRA base), kept only as bf16; lookups convert rows back to float32 and
 * the LM head's products run on the bf16 GEMM. Returns the bf16 bytes kept.
 */
export function storeFrozenEmbeddingsAsBf16(model: Pick<CausalLM, 'parameters'>): number {
  let bytes = 0;
  for (const [name, t] of model.parameters()) {
    const isEmbedding = /(^|\.)(embed_tokens|wte|lm_head)\.weight$/.test(name);
    if (isEmbedding && !t.requiresGrad && t.data.length > 0) bytes += storeTensorAsBf16(t);
  }
  return bytes;
}

/**
 * What every decoder-only architecture shares beyond its blocks: the log-probs through the fused
 * LM head, cached inference, the KV cache's shape, trainable parameters and the export in the
 * Hugging Face names and layouts its ArchitectureDef declares. A subclass supplies its weights,
 * parameters(), linears() and hidden().
 */
export abstract class DecoderLM implements CausalLM {
  abstract readonly config: ModelConfig;
  /** The output embedding (the token embedding when tied). */
  abstract readonly lmHead: Tensor;
  ctx: ForwardContext = { adaptersEnabled: true, rng: null };
  /** The architecture's file names and layouts (for exportWeights). */
  protected abstract readonly def: Pick<ArchitectureDef, 'hfName' | 'hfTransposed'>;

  abstract parameters(): Map<string, Tensor>;
  abstract linears(): Linear[];
  /** Final hidden states [batch·seq, d] (after the last norm); with a cache, inference only. */
  abstract hidden(block: TokenBlock, cache?: KVCache | null): Tensor;

  trainableParameters(): Tensor[] {
    return [...this.parameters().values()].filter((t) => t.requiresGrad);
  }

  tokenLogprobs(block: TokenBlock, targets: Int32Array, opts: { meanLogits?: Float32Array; logSumSqProbs?: Float32Array; temperature?: number } = {}): Tensor {
    // Gradient checkpointing trades compute for memory in the LM head too: logits recomputed in
    // backward chunk by chunk, never held for the whole batch.
    return T.tidy(() => T.lmHeadLogprobs(temperatureScaled(this.hidden(block), opts.temperature), this.lmHead, targets, {
      meanLogits: opts.meanLogits, logSumSqProbs: opts.logSumSqProbs, keepLogits: !this.ctx.gradientCheckpointing,
    }));
  }

  forwardCached(ids: Int32Array, tNew: number, cache: KVCache, kvStart: Int32Array | null): Float32Array {
    return T.noGrad(() => {
      // tidy: the embedding/final-norm intermediates go back to the pool at once, and so does the
      // hidden state after the head (a long generation otherwise leaves them all to the GC).
      const h = T.tidy(() => this.hidden({ ids, batch: cache.batch, seq: tNew, kvStart }, cache));
      try {
        return lastLogits(h, cache.batch, tNew, this.lmHead);
      } finally {
        h.dispose();
      }
    });
  }

  newCache(batch: number, capacity: number): KVCache {
    return new KVCache(this.config.numLayers, batch, capacity, this.config.numKvHeads, this.config.headDim);
  }

  /** Weights in Hugging Face names and layouts (shared with the parameters unless transposed). */
  exportWeights(): WeightMap {
    const m: WeightMap = new Map();
    for (const [name, t] of this.parameters()) {
      if (name.includes('lora_')) continue;
      const w = weightOf(t);
      m.set(this.def.hfName(name), this.def.hfTransposed(name) ? { shape: [w.shape[1]!, w.shape[0]!], data: transpose2d(w) } : w);
    }
    return m;
  }
}
