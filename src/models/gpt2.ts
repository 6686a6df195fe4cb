// GPT-2 (Radford et al. 2019) in Hugging Face's naming:
//
//   x = wte[ids] + wpe[positions]
//   for each layer:
//     q, k, v = split(LayerNorm_1(x)·W_attnᵀ + b_attn)        (fused c_attn)
//     x = x + Attention_causal(q, k, v)·W_projᵀ + b_proj
//     x = x + GELU_tanh(LayerNorm_2(x)·W_fcᵀ + b_fc)·W_mprojᵀ + b_mproj
//   logp(target) = log_softmax(LayerNorm_f(x)·wteᵀ)[target]   (tied output embedding)
//
// Hugging Face stores GPT-2's projections as Conv1D weights [in, out]; they are transposed to the
// Linear layout [out, in] on load and back on export, so the compute path is the same as Llama's.

import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import { Rng } from '../tensor/random.js';
import type { ModelConfig } from '../io/config.js';
import type { Weight, WeightMap } from '../io/weights.js';
import { Linear, type ForwardContext } from '../nn/linear.js';
import { cachedAttention, lastLogits } from './llama.js';
import {
  KVCache, blockAttention, blockPositions, checkBlock, segmentPositions, initConst, initNormal, runDecoder, weightOf, type CausalLM, type TokenBlock, temperatureScaled,
} from './model.js';

export interface Gpt2Layer {
  ln1w: Tensor;
  ln1b: Tensor;
  attn: Linear;
  proj: Linear;
  ln2w: Tensor;
  ln2b: Tensor;
  fc: Linear;
  mproj: Linear;
}

const CONV1D = /\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight$/;

function transpose2d(w: Weight): Float32Array {
  const [r, c] = w.shape as [number, number];
  const out = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = w.data[i * c + j]!;
  return out;
}

export class Gpt2Model implements CausalLM {
  readonly wte: Tensor;
  readonly wpe: Tensor;
  readonly layers: Gpt2Layer[];
  readonly lnfw: Tensor;
  readonly lnfb: Tensor;
  ctx: ForwardContext = { adaptersEnabled: true, rng: null };

  private constructor(readonly config: ModelConfig, get: (name: string, shape: number[], init: 'normal' | 'ones' | 'zeros' | 'out') => Tensor) {
    const c = config;
    if (c.architecture !== 'gpt2') throw new Error(`Gpt2Model: architecture ${c.architecture} is not gpt2`);
    const d = c.hiddenSize, F = c.intermediateSize;
    const lin = (path: string, out: number, inF: number, init: 'normal' | 'out' = 'normal'): Linear =>
      new Linear(path, get(`${path}.weight`, [out, inF], init), get(`${path}.bias`, [out], 'zeros'));
    this.wte = get('wte.weight', [c.vocabSize, d], 'normal');
    this.wpe = get('wpe.weight', [c.maxPositions, d], 'normal');
    this.layers = [];
    for (let l = 0; l < c.numLayers; l++) {
      const p = `h.${l}`;
      this.layers.push({
        ln1w: get(`${p}.ln_1.weight`, [d], 'ones'),
        ln1b: get(`${p}.ln_1.bias`, [d], 'zeros'),
        attn: lin(`${p}.attn.c_attn`, 3 * d, d),
        proj: lin(`${p}.attn.c_proj`, d, d, 'out'),
        ln2w: get(`${p}.ln_2.weight`, [d], 'ones'),
        ln2b: get(`${p}.ln_2.bias`, [d], 'zeros'),
        fc: lin(`${p}.mlp.c_fc`, F, d),
        mproj: lin(`${p}.mlp.c_proj`, d, F, 'out'),
      });
    }
    this.lnfw = get('ln_f.weight', [d], 'ones');
    this.lnfb = get('ln_f.bias', [d], 'zeros');
  }

  /**
   * A model over checkpoint weights. Accepts GPT2LMHeadModel names ("transformer.h.0…") and
   * GPT2Model names ("h.0…"); Conv1D weights are transposed (copied) to [out, in].
   */
  static fromWeights(config: ModelConfig, weights: WeightMap, source = 'weights'): Gpt2Model {
    const prefix = weights.has('transformer.wte.weight') ? 'transformer.' : '';
    return new Gpt2Model(config, (name, shape) => {
      const full = prefix + name;
      const w = weights.get(full);
      if (!w) throw new Error(`${source}: missing tensor ${full}`);
      const conv = CONV1D.test(name);
      const fileShape = conv ? [shape[1]!, shape[0]!] : shape;
      if (w.shape.length !== fileShape.length || w.shape.some((x, i) => x !== fileShape[i])) {
        throw new Error(`${source}: tensor ${full} has shape [${w.shape.join(', ')}], expected [${fileShape.join(', ')}]`);
      }
      return T.fromBuffer(conv ? transpose2d(w) : w.data, shape, { requiresGrad: true, name });
    });
  }

  static random(config: ModelConfig, seed = 0): Gpt2Model {
    const rng = new Rng(seed);
    const std = 0.02;
    return new Gpt2Model(config, (name, shape, init) =>
      init === 'ones' ? initConst(shape, 1, name)
        : init === 'zeros' ? initConst(shape, 0, name)
          : initNormal(shape, init === 'out' ? std / Math.sqrt(2 * config.numLayers) : name === 'wpe.weight' ? 0.01 : std, rng, name));
  }

  linears(): Linear[] {
    return this.layers.flatMap((L) => [L.attn, L.proj, L.fc, L.mproj]);
  }

  parameters(): Map<string, Tensor> {
    const m = new Map<string, Tensor>();
    const add = (t: Tensor | null): void => {
      if (t) m.set(t.name!, t);
    };
    add(this.wte);
    add(this.wpe);
    for (const L of this.layers) for (const t of [L.ln1w, L.ln1b, L.ln2w, L.ln2b]) add(t);
    for (const lin of this.linears()) {
      add(lin.weight);
      add(lin.bias);
      if (lin.lora) {
        add(lin.lora.A);
        add(lin.lora.B);
      }
    }
    add(this.lnfw);
    add(this.lnfb);
    return m;
  }

  trainableParameters(): Tensor[] {
    return [...this.parameters().values()].filter((t) => t.requiresGrad);
  }

  private block(l: number, x: Tensor, B: number, Tn: number, kvStart: Int32Array | null, cache: KVCache | null, segments: Int32Array | null): Tensor {
    const c = this.config, L = this.layers[l]!, ctx = this.ctx;
    const d = c.hiddenSize, H = c.numHeads, D = c.headDim, N = B * Tn;
    const qkv = L.attn.forward(T.layernorm(x, L.ln1w, L.ln1b, c.normEps), ctx);
    const q = T.reshape(T.narrow(qkv, 1, 0, d), [B, Tn, H, D]);
    const k = T.reshape(T.narrow(qkv, 1, d, d), [B, Tn, H, D]);
    const v = T.reshape(T.narrow(qkv, 1, 2 * d, d), [B, Tn, H, D]);
    const a = cache ? cachedAttention(q, k, v, l, cache, kvStart) : blockAttention(q, k, v, kvStart, segments);
    const x1 = T.add(x, L.proj.forward(T.reshape(a, [N, d]), ctx));
    const f = T.activation(L.fc.forward(T.layernorm(x1, L.ln2w, L.ln2b, c.normEps), ctx), actKind(c));
    return T.add(x1, L.mproj.forward(f, ctx));
  }

  hidden(block: TokenBlock, cache: KVCache | null = null): Tensor {
    const { ids, batch: B, seq: Tn } = block;
    const kvStart = block.kvStart ?? null, segments = block.segments ?? null;
    checkBlock('Gpt2Model', block, cache);
    const pos = segments ? segmentPositions(segments) : blockPositions(B, Tn, cache ? cache.length : 0, kvStart);
    for (let i = 0; i < pos.length; i++) {
      if (pos[i]! >= this.config.maxPositions) throw new RangeError(`Gpt2Model: position ${pos[i]} beyond n_positions ${this.config.maxPositions}`);
    }
    const x = T.add(T.embedding(this.wte, ids, [B * Tn]), T.embedding(this.wpe, pos, [B * Tn]));
    return runDecoder(x, this.layers.length, (l, h) => this.block(l, h, B, Tn, kvStart, cache, segments),
      (h) => T.layernorm(h, this.lnfw, this.lnfb, this.config.normEps), cache, Tn, this);
  }

  tokenLogprobs(block: TokenBlock, targets: Int32Array, opts: { meanLogits?: Float32Array; logSumSqProbs?: Float32Array; temperature?: number } = {}): Tensor {
    return T.tidy(() => T.lmHeadLogprobs(temperatureScaled(this.hidden(block), opts.temperature), this.wte, targets, { meanLogits: opts.meanLogits, logSumSqProbs: opts.logSumSqProbs }));
  }

  forwardCached(ids: Int32Array, tNew: number, cache: KVCache, kvStart: Int32Array | null): Float32Array {
    return T.noGrad(() => lastLogits(this.hidden({ ids, batch: cache.batch, seq: tNew, kvStart }, cache), cache.batch, tNew, this.wte));
  }

  newCache(batch: number, capacity: number): KVCache {
    return new KVCache(this.layers.length, batch, capacity, this.config.numHeads, this.config.headDim);
  }

  /** GPT2LMHeadModel names, Conv1D weights transposed back to [in, out]. */
  exportWeights(): WeightMap {
    const m: WeightMap = new Map();
    for (const [name, t] of this.parameters()) {
      if (name.includes('lora_')) continue;
      const w = weightOf(t);
      m.set(`transformer.${name}`, CONV1D.test(name) ? { shape: [w.shape[1]!, w.shape[0]!], data: transpose2d(w) } : w);
    }
    return m;
  }
}

function actKind(c: ModelConfig): T.ActKind {
  return c.activation === 'gelu' ? T.Act.gelu : c.activation === 'silu' ? T.Act.silu : T.Act.geluTanh;
}
