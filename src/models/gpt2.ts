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
import { activationName, configError, parseActivation, type Architecture, type ConfigFields, type ModelConfig } from './config.js';
import { ggufNameFrom, type ArchitectureDef, type DeclareWeight } from './architecture.js';
import { transpose2d, type WeightMap } from '../tensor/weight-map.js';
import { Linear } from '../nn/linear.js';
import {
  DecoderLM, KVCache, blockAttention, blockPositions, cachedAttention, checkBlock, segmentPositions, parameterMap, randomInit, runDecoder, 
  
} from './decoder.js';
import type { TokenBlock } from './model.js';

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

export class Gpt2Model extends DecoderLM {
  protected get def(): ArchitectureDef {
    return GPT2;
  }

  readonly wte: Tensor;
  readonly wpe: Tensor;
  readonly layers: Gpt2Layer[];
  readonly lnfw: Tensor;
  readonly lnfb: Tensor;
  /** The output embedding: wte when tied (GPT-2's default), else lm_head.weight. */
  readonly lmHead: Tensor;

  private constructor(readonly config: ModelConfig, get: DeclareWeight) {
    super();
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
    this.lmHead = c.tieWordEmbeddings ? this.wte : get('lm_head.weight', [c.vocabSize, d], 'normal');
  }

  /** Declares every weight through `get` (the one declaration the registry also runs for shapes). */
  static build(config: ModelConfig, get: DeclareWeight): Gpt2Model {
    return new Gpt2Model(config, get);
  }

  /**
   * A model over checkpoint weights. Accepts GPT2LMHeadModel names ("transformer.h.0…") and
   * GPT2Model names ("h.0…"); Conv1D weights are transposed (copied) to [out, in].
   */
  static fromWeights(config: ModelConfig, weights: WeightMap, source = 'weights'): Gpt2Model {
    const prefix = weights.has('transformer.wte.weight') ? 'transformer.' : '';
    return new Gpt2Model(config, (name, shape) => {
      const full = name === 'lm_head.weight' ? name : prefix + name;
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
    return new Gpt2Model(config, randomInit(config, seed, (name) => (name === 'wpe.weight' ? 0.01 : 0.02)));
  }

  linears(): Linear[] {
    return this.layers.flatMap((L) => [L.attn, L.proj, L.fc, L.mproj]);
  }

  parameters(): Map<string, Tensor> {
    return parameterMap([this.wte, this.wpe, ...this.layers.flatMap((L) => [L.ln1w, L.ln1b, L.ln2w, L.ln2b])], this.linears(),
      [this.lnfw, this.lnfb, this.lmHead !== this.wte ? this.lmHead : null]);
  }

  private block(l: number, x: Tensor, B: number, Tn: number, kvStart: Int32Array | null, cache: KVCache | null, segments: Int32Array | null, packedRows: Int32Array | null): Tensor {
    const c = this.config, L = this.layers[l]!, ctx = this.ctx;
    const d = c.hiddenSize, H = c.numHeads, D = c.headDim, N = B * Tn;
    const qkv = L.attn.forward(T.layernorm(x, L.ln1w, L.ln1b, c.normEps), ctx);
    const q = T.reshape(T.narrow(qkv, 1, 0, d), [B, Tn, H, D]);
    const k = T.reshape(T.narrow(qkv, 1, d, d), [B, Tn, H, D]);
    const v = T.reshape(T.narrow(qkv, 1, 2 * d, d), [B, Tn, H, D]);
    const a = cache ? cachedAttention(q, k, v, l, cache, kvStart) : blockAttention(q, k, v, kvStart, segments, packedRows);
    const x1 = T.add(x, L.proj.forward(T.reshape(a, [N, d]), ctx));
    const f = T.activation(L.fc.forward(T.layernorm(x1, L.ln2w, L.ln2b, c.normEps), ctx), actKind(c));
    return T.add(x1, L.mproj.forward(f, ctx));
  }

  hidden(block: TokenBlock, cache: KVCache | null = null): Tensor {
    const { ids, batch: B, seq: Tn } = block;
    const kvStart = block.kvStart ?? null, segments = block.segments ?? null, packedRows = block.packedRows ?? null;
    checkBlock('Gpt2Model', block, cache);
    const pos = segments ? segmentPositions(segments, packedRows) : blockPositions(B, Tn, cache ? cache.length : 0, kvStart);
    for (let i = 0; i < pos.length; i++) {
      if (pos[i]! >= this.config.maxPositions) throw new RangeError(`Gpt2Model: position ${pos[i]} beyond n_positions ${this.config.maxPositions}`);
    }
    const x = T.add(T.embedding(this.wte, ids, [B * Tn]), T.embedding(this.wpe, pos, [B * Tn]));
    return runDecoder(x, this.layers.length, (l, h) => this.block(l, h, B, Tn, kvStart, cache, segments, packedRows),
      (h) => T.layernorm(h, this.lnfw, this.lnfb, this.config.normEps), cache, Tn, this);
  }

}

function actKind(c: ModelConfig): T.ActKind {
  return c.activation === 'gelu' ? T.Act.gelu : c.activation === 'silu' ? T.Act.silu : T.Act.geluTanh;
}

// ---------------------------------------------------------------------------------------------
// config.json (GPT2LMHeadModel, GPT2Model); defaults follow transformers' GPT2Config.

function parseGpt2Config(f: ConfigFields, architecture: Architecture): ModelConfig {
  const hiddenSize = f.int('n_embd');
  const numHeads = f.int('n_head');
  if (hiddenSize % numHeads !== 0) throw configError(f.source, `n_embd ${hiddenSize} is not divisible by n_head ${numHeads}`);
  return {
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
    raw: f.raw,
  };
}

function writeGpt2Config(cfg: ModelConfig, out: Record<string, unknown>): void {
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
  out.activation_function = activationName(cfg, 'activation_function');
}

/** GPT-2: the registry's entry. Weights live under "transformer."; Conv1D weights are stored [in, out]. */
export const GPT2: ArchitectureDef = {
  names: ['gpt2'],
  hfClasses: { GPT2LMHeadModel: 'gpt2', GPT2Model: 'gpt2' },
  modelTypes: { gpt2: 'gpt2' },
  tiedByDefault: true,
  parseConfig: parseGpt2Config,
  writeConfig: writeGpt2Config,
  build: (config, get) => Gpt2Model.build(config, get),
  fromWeights: (config, weights, source) => Gpt2Model.fromWeights(config, weights, source),
  random: (config, seed) => Gpt2Model.random(config, seed),
  hfName: (name) => (name === 'lm_head.weight' ? name : `transformer.${name}`),
  hfTransposed: (name) => CONV1D.test(name),
  loraTargets: ['c_attn'],
  peftPath: (path) => `transformer.${path}`,
  // llama.cpp's gpt2 (convert_hf_to_gguf.py's GPT2Model): weights [out, in] as declared, fused
  // q/k/v as attn_qkv, learned positions as position_embd, output.weight written out (a copy of the
  // tied embedding, as the converter writes it).
  gguf: {
    arch: () => 'gpt2',
    check(cfg, src) {
      if (cfg.activation !== 'gelu_tanh') throw new Error(`${src}: llama.cpp's gpt2 uses the tanh GELU (gelu_new), the model has ${cfg.activation}`);
    },
    params: (cfg) => [
      ['vocab_size', 'u32', cfg.vocabSize],
      ['context_length', 'u32', cfg.maxPositions],
      ['embedding_length', 'u32', cfg.hiddenSize],
      ['block_count', 'u32', cfg.numLayers],
      ['feed_forward_length', 'u32', cfg.intermediateSize],
      ['attention.head_count', 'u32', cfg.numHeads],
      ['attention.layer_norm_epsilon', 'f32', cfg.normEps],
    ],
    name: (name) => ggufNameFrom(GPT2_GGUF_NAMES, name),
    extra: (cfg, written) => (cfg.tieWordEmbeddings ? [{ after: null, name: 'output.weight', weight: written.get('token_embd.weight')! }] : []),
  },
};

const GPT2_GGUF_NAMES: [RegExp, string][] = [
  [/^wte\.weight$/, 'token_embd.weight'],
  [/^wpe\.weight$/, 'position_embd.weight'],
  [/^h\.(\d+)\.ln_1\.(weight|bias)$/, 'blk.$1.attn_norm.$2'],
  [/^h\.(\d+)\.attn\.c_attn\.(weight|bias)$/, 'blk.$1.attn_qkv.$2'],
  [/^h\.(\d+)\.attn\.c_proj\.(weight|bias)$/, 'blk.$1.attn_output.$2'],
  [/^h\.(\d+)\.ln_2\.(weight|bias)$/, 'blk.$1.ffn_norm.$2'],
  [/^h\.(\d+)\.mlp\.c_fc\.(weight|bias)$/, 'blk.$1.ffn_up.$2'],
  [/^h\.(\d+)\.mlp\.c_proj\.(weight|bias)$/, 'blk.$1.ffn_down.$2'],
  [/^ln_f\.(weight|bias)$/, 'output_norm.$1'],
  [/^lm_head\.weight$/, 'output.weight'],
];
