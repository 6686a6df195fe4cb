// bf16 autocast (PyTorch's torch.autocast(dtype=bfloat16) on the CPU, what transformers' `bf16:
// true` turns on): float32 tensors, weights and optimizer state stay float32; the matrix products
// (linear layers and the LM head) round their operands to bfloat16 and accumulate in float32.
// Everything else — norms, softmax, attention, log-probs, losses, reductions — stays float32.
//
// The precision is process-wide state set by the trainer for a run. A product records at forward
// time which GEMM it used; its backward products use the same, whatever the state is by then.
import type { Kernels } from './kernels.js';
import type { DType } from './tensor.js';

export type MatmulPrecision = 'float32' | 'bf16';

let precision: MatmulPrecision = 'float32';

/** The precision of float32 matrix products now. */
export function matmulPrecision(): MatmulPrecision {
  return precision;
}

/** Sets the precision of float32 matrix products; returns the previous one (to restore). */
export function setMatmulPrecision(p: MatmulPrecision): MatmulPrecision {
  if (p !== 'float32' && p !== 'bf16') throw new Error(`setMatmulPrecision: expected 'float32' or 'bf16', got ${String(p)}`);
  const before = precision;
  precision = p;
  return before;
}

/** Runs fn with the given matmul precision, restoring the previous one afterwards (sync or async). */
export function withMatmulPrecision<T>(p: MatmulPrecision, fn: () => T): T {
  const before = setMatmulPrecision(p);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    precision = before;
    throw e;
  }
  if (result instanceof Promise) return result.finally(() => (precision = before)) as T;
  precision = before;
  return result;
}

/** The GEMM a product of this dtype uses now: gemmBf16 under bf16 autocast for float32, else gemm. */
export function gemmFor(k: Kernels, dtype: DType): Kernels['gemm'] {
  return precision === 'bf16' && dtype === 'float32' ? k.gemmBf16.bind(k) : k.gemm.bind(k);
}
