// AdamW (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization") over the trainable
// parameters, with the update itself in one fused native kernel per tensor, and global-norm
// gradient clipping. Norm weights and biases (1-D parameters) get no weight decay, as in
// Hugging Face's Trainer.

import { kernels } from '../tensor/backend.js';
import type { Tensor } from '../tensor/index.js';

export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

export interface AdamWState {
  step: number;
  /** First and second moments by parameter name. */
  m: Map<string, Float32Array>;
  v: Map<string, Float32Array>;
}

export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  /** Optimizer steps taken. */
  step = 0;
  private readonly m: Float32Array[];
  private readonly v: Float32Array[];

  constructor(readonly params: readonly Tensor[], opts: AdamWOptions = {}) {
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0;
    const names = new Set<string>();
    for (const p of params) {
      if (!p.name) throw new Error('AdamW: every parameter needs a name (for checkpoints)');
      if (names.has(p.name)) throw new Error(`AdamW: parameter ${p.name} listed twice`);
      if (!(p.data instanceof Float32Array)) throw new Error(`AdamW: parameter ${p.name} is not float32`);
      names.add(p.name);
    }
    this.m = params.map((p) => new Float32Array(p.size));
    this.v = params.map((p) => new Float32Array(p.size));
  }

  /** Applies one update with learning rate lr to every parameter that has a gradient. */
  update(lr: number): void {
    this.step++;
    const bc1 = 1 - Math.pow(this.beta1, this.step);
    const bc2 = 1 - Math.pow(this.beta2, this.step);
    const k = kernels();
    this.params.forEach((p, i) => {
      if (!p.grad) return;
      const wd = p.ndim >= 2 ? this.weightDecay : 0;
      k.adamw(p.data, p.grad, this.m[i]!, this.v[i]!, p.size, lr, this.beta1, this.beta2, this.eps, wd, bc1, bc2);
    });
  }

  state(): AdamWState {
    const m = new Map<string, Float32Array>(), v = new Map<string, Float32Array>();
    this.params.forEach((p, i) => {
      m.set(p.name!, this.m[i]!);
      v.set(p.name!, this.v[i]!);
    });
    return { step: this.step, m, v };
  }

  /** Restores moments saved by state() (names and sizes must match). */
  load(state: AdamWState): void {
    this.params.forEach((p, i) => {
      const m = state.m.get(p.name!), v = state.v.get(p.name!);
      if (!m || !v) throw new Error(`AdamW.load: no optimizer state for parameter ${p.name}`);
      if (m.length !== p.size || v.length !== p.size) throw new Error(`AdamW.load: state of ${p.name} has ${m.length} elements, parameter has ${p.size}`);
      this.m[i]!.set(m);
      this.v[i]!.set(v);
    });
    this.step = state.step;
  }
}

/**
 * Global L2 norm of all gradients; when maxNorm > 0 and the norm exceeds it, scales every
 * gradient by maxNorm / norm (PyTorch's clip_grad_norm_, with its 1e-6 guard). Returns the norm
 * before clipping (what TRL logs as grad_norm).
 */
export function clipGradNorm(params: readonly Tensor[], maxNorm: number): number {
  const k = kernels();
  let sq = 0;
  for (const p of params) if (p.grad) sq += k.sumSquares(p.grad, p.size);
  const norm = Math.sqrt(sq);
  if (maxNorm > 0 && Number.isFinite(norm) && norm > maxNorm) {
    const s = maxNorm / (norm + 1e-6);
    for (const p of params) if (p.grad) k.scale(p.grad, p.size, s);
  }
  return norm;
}
