// Portable reference GEMM: the oracle for the native kernel, and the fallback.
// Straightforward i-k-j loops (row-major, cache-friendly on B and C); correct, not fast.
import type { Buf } from '../kernels.js';
import { bf16ToF32, roundBf16 } from '../bf16.js';

export function gemm(
  transA: boolean, transB: boolean, M: number, N: number, K: number,
  A: Buf, strideA: number, B: Buf, strideB: number, C: Buf, strideC: number,
  batch: number, alpha: number, beta: number,
): void {
  const f64 = C instanceof Float64Array;
  const row = f64 ? new Float64Array(N) : new Float32Array(N);
  for (let b = 0; b < batch; b++) {
    const a0 = b * strideA, b0 = b * strideB, c0 = b * strideC;
    for (let i = 0; i < M; i++) {
      row.fill(0);
      for (let p = 0; p < K; p++) {
        const aip = transA ? A[a0 + p * M + i]! : A[a0 + i * K + p]!;
        if (aip === 0) continue;
        if (transB) {
          for (let j = 0; j < N; j++) row[j]! += aip * B[b0 + j * K + p]!;
        } else {
          const bo = b0 + p * N;
          for (let j = 0; j < N; j++) row[j]! += aip * B[bo + j]!;
        }
      }
      const co = c0 + i * N;
      if (beta === 0) for (let j = 0; j < N; j++) C[co + j] = alpha * row[j]!;
      else for (let j = 0; j < N; j++) C[co + j] = alpha * row[j]! + beta * C[co + j]!;
    }
  }
}

/**
 * gemm on operands rounded to bfloat16 (round-to-nearest-even; a Uint16Array operand holds bf16
 * bit patterns), accumulated in C's precision: the oracle and fallback for the native gemmBf16.
 */
export function gemmBf16(
  transA: boolean, transB: boolean, M: number, N: number, K: number,
  A: Buf | Uint16Array, strideA: number, B: Buf | Uint16Array, strideB: number, C: Buf, strideC: number,
  batch: number, alpha: number, beta: number,
): void {
  const spanA = batch > 0 ? (batch - 1) * strideA + M * K : 0, spanB = batch > 0 ? (batch - 1) * strideB + K * N : 0;
  const toBf16 = (x: Buf | Uint16Array, n: number): Buf => {
    const out = C instanceof Float64Array ? new Float64Array(n) : new Float32Array(n);
    if (x instanceof Uint16Array) {
      const f = bf16ToF32(x.subarray(0, n));
      out.set(f);
    } else {
      for (let i = 0; i < n; i++) out[i] = roundBf16(x[i]!);
    }
    return out;
  };
  gemm(transA, transB, M, N, K, toBf16(A, spanA), strideA, toBf16(B, spanB), strideB, C, strideC, batch, alpha, beta);
}
