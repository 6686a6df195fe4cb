// A linear layer in the Hugging Face layout (weight [out, in], optional bias) with an optional
// LoRA adapter (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models"):
//   y = x·Wᵀ + b + (α/r) · dropout(x)·Aᵀ·Bᵀ,   A: [r, in] (random), B: [out, r] (zeros)
// (α/√r with rsLoRA, Kalajdzievski 2023: "A Rank Stabilization Scaling Factor for Fine-Tuning with LoRA")
// The base weight is frozen while an adapter is attached; disabling adapters gives the base
// model back exactly (the DPO reference model at no extra memory).

import * as T from '../tensor/index.js';
import { f32ToBf16 } from '../tensor/bf16.js';
import type { Tensor } from '../tensor/index.js';
import { Rng } from '../tensor/random.js';

export interface LoraAdapter {
  A: Tensor;
  B: Tensor;
  rank: number;
  alpha: number;
  dropout: number;
  /** rsLoRA (Kalajdzievski 2023; PEFT use_rslora): scale α/√r instead of α/r. */
  rslora?: boolean;
}

/** The factor the adapter's product B·A is scaled by: α/r, or α/√r with rsLoRA (PEFT's `scaling`). */
export function loraScaling(lora: Pick<LoraAdapter, 'alpha' | 'rank' | 'rslora'>): number {
  return lora.rslora ? lora.alpha / Math.sqrt(lora.rank) : lora.alpha / lora.rank;
}

/** What a forward pass needs beyond the inputs: adapters on/off and the dropout RNG. */
export interface ForwardContext {
  adaptersEnabled: boolean;
  rng: Rng | null;
  /** Gradient checkpointing (TRL's gradient_checkpointing): keep only each block's input while
   *  training and recompute the block in backward (runDecoder). */
  gradientCheckpointing?: boolean;
}

export class Linear {
  lora: LoraAdapter | null = null;
  /** The frozen weight stored once as bfloat16 (storeFrozenAsBf16); weight.data is then empty. */
  weightBf16: Uint16Array | null = null;

  constructor(
    /** Module path, e.g. "model.layers.0.self_attn.q_proj". */
    readonly path: string,
    public weight: Tensor,
    public bias: Tensor | null,
  ) {}

  get inFeatures(): number {
    return this.weight.shape[1]!;
  }

  get outFeatures(): number {
    return this.weight.shape[0]!;
  }

  forward(x: Tensor, ctx: ForwardContext): Tensor {
    const y = this.weightBf16 ? T.linearFrozenBf16(x, this.weightBf16, this.outFeatures, this.bias) : linearBias(x, this.weight, this.bias);
    const lora = this.lora;
    if (!lora || !ctx.adaptersEnabled) return y;
    const xd = lora.dropout > 0 && ctx.rng ? T.dropout(x, lora.dropout, ctx.rng.uniform) : x;
    // y + scaling·(xd·Aᵀ)·Bᵀ: the update goes into y's buffer by one GEMM (no [rows, out] temporaries).
    return T.addLinear(y, T.linear(xd, lora.A), lora.B, loraScaling(lora), { consumeY: true });
  }

  /** Attaches a fresh adapter: A ~ Kaiming-uniform (as PEFT), B = 0, so the output is unchanged. */
  attachLora(rank: number, alpha: number, dropout: number, rng: Rng, rslora = false): LoraAdapter {
    const inF = this.inFeatures, outF = this.outFeatures;
    const a = new Float32Array(rank * inF);
    // PEFT: kaiming_uniform_(a=sqrt(5)) → bound = 1/sqrt(in).
    const bound = 1 / Math.sqrt(inF);
    for (let i = 0; i < a.length; i++) a[i] = (rng.next() * 2 - 1) * bound;
    this.lora = {
      A: T.tensor(a, [rank, inF], { requiresGrad: true, name: `${this.path}.lora_A.weight` }),
      B: T.zeros([outF, rank], 'float32', true),
      rank,
      alpha,
      dropout,
      ...(rslora ? { rslora } : {}),
    };
    this.lora.B.name = `${this.path}.lora_B.weight`;
    this.weight.requiresGrad = false;
    if (this.bias) this.bias.requiresGrad = false;
    return this.lora;
  }

  /**
   * Keeps the (frozen) weight only as bfloat16: half the bytes; products run on the bf16 GEMM.
   * The float32 copy is released, so the weight can no longer train, be merged or be exported.
   */
  storeFrozenAsBf16(): void {
    if (this.weightBf16) return;
    if (this.weight.requiresGrad) throw new Error(`${this.path}: only a frozen weight can be stored as bf16`);
    if (!(this.weight.data instanceof Float32Array)) throw new Error(`${this.path}: weight is not float32`);
    this.weightBf16 = f32ToBf16(this.weight.data);
    this.weight.data = new Float32Array(0);
  }

  /** W += s·B·A (s = loraScaling: α/r, or α/√r with rsLoRA) and drops the adapter: the one home of merging. */
  mergeLora(): void {
    const lora = this.lora;
    if (!lora) return;
    if (this.weightBf16) throw new Error(`${this.path}: cannot merge an adapter into a weight stored as bf16 (frozen_dtype: bfloat16)`);
    const delta = T.noGrad(() => T.matmul(lora.B, lora.A));
    const s = loraScaling(lora);
    const W = this.weight.data, D = delta.data;
    for (let i = 0; i < W.length; i++) W[i] = W[i]! + s * D[i]!;
    this.lora = null;
  }
}

/** Stores every frozen linear weight of a model as bf16 (frozen_dtype: bfloat16); returns the bytes kept. */
export function storeFrozenLinearsAsBf16(linears: readonly Linear[]): number {
  let bytes = 0;
  for (const l of linears) {
    if (l.weight.requiresGrad) continue;
    l.storeFrozenAsBf16();
    bytes += l.weightBf16!.byteLength;
  }
  return bytes;
}

/** x·Wᵀ + b with a row-broadcast bias (no index map, a cheap fused backward for the bias). */
export function linearBias(x: Tensor, w: Tensor, b: Tensor | null): Tensor {
  const y = T.linear(x, w);
  return b ? T.addRowVector(y, b) : y;
}
