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
import { kernels } from '../tensor/backend.js';
import { Rng } from '../tensor/random.js';
import type { ModelConfig } from '../io/config.js';
import type { WeightMap } from '../io/weights.js';
import { Linear, type ForwardContext } from '../nn/linear.js';
import {
  KVCache, blockAttention, blockPositions, checkBlock, segmentPositions, initConst, initNormal, paramFrom, ropeInvFreq, runDecoder, weightOf,
  type CausalLM, type TokenBlock, temperatureScaled,
} from './model.js';

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

export class LlamaModel implements CausalLM {
  readonly embed: Tensor;
  readonly layers: LlamaLayer[];
  readonly norm: Tensor;
  /** The output embedding: its own tensor, or the token embedding when tied. */
  readonly lmHead: Tensor;
  ctx: ForwardContext = { adaptersEnabled: true, rng: null };
  private cos: Float32Array = new Float32Array(0);
  private sin: Float32Array = new Float32Array(0);
  private tablePositions = 0;
  private readonly invFreq: Float64Array;

  private constructor(readonly config: ModelConfig, get: (name: string, shape: number[], init: 'normal' | 'ones' | 'zeros' | 'out') => Tensor) {
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

  /** A model over checkpoint weights (shared, not copied). */
  static fromWeights(config: ModelConfig, weights: WeightMap, source = 'weights'): LlamaModel {
    return new LlamaModel(config, (name, shape) => paramFrom(weights, name, shape, source));
  }

  /** A randomly initialized model (normal(0, 0.02); output projections scaled by 1/sqrt(2·layers)). */
  static random(config: ModelConfig, seed = 0): LlamaModel {
    const rng = new Rng(seed);
    const std = 0.02;
    return new LlamaModel(config, (name, shape, init) =>
      init === 'ones' ? initConst(shape, 1, name)
        : init === 'zeros' ? initConst(shape, 0, name)
          : initNormal(shape, init === 'out' ? std / Math.sqrt(2 * config.numLayers) : std, rng, name));
  }

  linears(): Linear[] {
    return this.layers.flatMap((L) => [L.q, L.k, L.v, L.o, L.gate, L.up, L.down]);
  }

  parameters(): Map<string, Tensor> {
    const m = new Map<string, Tensor>();
    const add = (t: Tensor | null): void => {
      if (t) m.set(t.name!, t);
    };
    add(this.embed);
    for (const L of this.layers) {
      add(L.inputNorm);
      add(L.postNorm);
    }
    for (const lin of this.linears()) {
      add(lin.weight);
      add(lin.bias);
      if (lin.lora) {
        add(lin.lora.A);
        add(lin.lora.B);
      }
    }
    add(this.norm);
    if (this.lmHead !== this.embed) add(this.lmHead);
    return m;
  }

  trainableParameters(): Tensor[] {
    return [...this.parameters().values()].filter((t) => t.requiresGrad);
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
  private block(l: number, x: Tensor, B: number, Tn: number, pos: Int32Array, kvStart: Int32Array | null, cache: KVCache | null, segments: Int32Array | null): Tensor {
    const c = this.config, L = this.layers[l]!, ctx = this.ctx;
    const N = B * Tn, H = c.numHeads, Hkv = c.numKvHeads, D = c.headDim;
    const h = T.rmsnorm(x, L.inputNorm, c.normEps);
    const q = T.rope(T.reshape(L.q.forward(h, ctx), [B, Tn, H, D]), this.cos, this.sin, pos);
    const k = T.rope(T.reshape(L.k.forward(h, ctx), [B, Tn, Hkv, D]), this.cos, this.sin, pos);
    const v = T.reshape(L.v.forward(h, ctx), [B, Tn, Hkv, D]);
    const a = cache ? cachedAttention(q, k, v, l, cache, kvStart) : blockAttention(q, k, v, kvStart, segments);
    const x1 = T.add(x, L.o.forward(T.reshape(a, [N, H * D]), ctx));
    const h2 = T.rmsnorm(x1, L.postNorm, c.normEps);
    const m = T.swiglu(L.gate.forward(h2, ctx), L.up.forward(h2, ctx));
    return T.add(x1, L.down.forward(m, ctx));
  }

  /** Final hidden states [batch·seq, d] (after the last norm). */
  hidden(block: TokenBlock, cache: KVCache | null = null): Tensor {
    const { ids, batch: B, seq: Tn } = block;
    const kvStart = block.kvStart ?? null, segments = block.segments ?? null;
    checkBlock('LlamaModel', block, cache);
    const pos = segments ? segmentPositions(segments) : blockPositions(B, Tn, cache ? cache.length : 0, kvStart);
    checkSlidingWindow(this.config, pos);
    this.ensureRope(pos);
    return runDecoder(T.embedding(this.embed, ids, [B * Tn]), this.layers.length,
      (l, x) => this.block(l, x, B, Tn, pos, kvStart, cache, segments), (x) => T.rmsnorm(x, this.norm, this.config.normEps), cache, Tn, this);
  }

  tokenLogprobs(block: TokenBlock, targets: Int32Array, opts: { meanLogits?: Float32Array; logSumSqProbs?: Float32Array; temperature?: number } = {}): Tensor {
    return T.tidy(() => T.lmHeadLogprobs(temperatureScaled(this.hidden(block), opts.temperature), this.lmHead, targets, { meanLogits: opts.meanLogits, logSumSqProbs: opts.logSumSqProbs }));
  }

  forwardCached(ids: Int32Array, tNew: number, cache: KVCache, kvStart: Int32Array | null): Float32Array {
    return T.noGrad(() => lastLogits(this.hidden({ ids, batch: cache.batch, seq: tNew, kvStart }, cache), cache.batch, tNew, this.lmHead));
  }

  newCache(batch: number, capacity: number): KVCache {
    return new KVCache(this.layers.length, batch, capacity, this.config.numKvHeads, this.config.headDim);
  }

  exportWeights(): WeightMap {
    const m: WeightMap = new Map();
    for (const [name, t] of this.parameters()) if (!name.includes('lora_')) m.set(name, weightOf(t));
    return m;
  }
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
