// The kernel contract: every backend (native C++ addon, portable TypeScript reference)
// implements exactly these functions on flat, row-major, contiguous buffers.
//
// Conventions (all backends):
// - Buffers are passed as typed-array views; kernels read and write them in place, never copy.
//   The native backend accepts Float32Array only; the reference backend also Float64Array
//   (the float64 oracle for gradient checks).
// - "out" arguments are overwritten; arguments documented as "accumulated" get `+=`.
// - Results must not depend on the thread count: any reduction across rows sums partial results
//   over fixed-size chunks in a fixed order (never one partial per thread).
// - Integer arguments are element counts, never byte counts.

export type Buf = Float32Array | Float64Array;

/** Activation kinds for activationForward/Backward. Numbers so the native call stays cheap. */
export const Act = {
  /** x·σ(x) */
  silu: 0,
  /** GPT-2's "gelu_new": 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) */
  geluTanh: 1,
  /** exact GELU: 0.5·x·(1 + erf(x/√2)) */
  gelu: 2,
  relu: 3,
} as const;
export type ActKind = (typeof Act)[keyof typeof Act];

export interface Kernels {
  /** 'native' or 'reference'. */
  readonly name: string;
  /** Threads used by the kernels (1 for the reference backend). */
  numThreads(): number;
  /** Sets the thread count (the native pool resizes; the reference backend ignores it). */
  setNumThreads(n: number): void;

  /**
   * Batched matrix product, row-major, packed leading dimensions:
   *   C[b] = alpha · op(A[b]) · op(B[b]) + beta · C[b]   for b in [0, batch)
   * op(A) is M×K (A is stored K×M when transA), op(B) is K×N (B is stored N×K when transB),
   * C is M×N. strideA/B/C are the element distances between batch items (0 broadcasts one
   * matrix to every batch item). beta = 0 must overwrite C even if it holds NaN.
   */
  gemm(
    transA: boolean, transB: boolean, M: number, N: number, K: number,
    A: Buf, strideA: number, B: Buf, strideB: number, C: Buf, strideC: number,
    batch: number, alpha: number, beta: number,
  ): void;

  /**
   * gemm with both operands rounded to bfloat16 (round-to-nearest-even) and float32 accumulation:
   * the matrix products of bf16 autocast. A and B are float buffers (rounded while packing) or
   * Uint16Arrays of bf16 bit patterns (weights stored once as bf16); C is float32 (native) or any
   * float buffer (reference). Same layout, strides and beta rules as gemm.
   */
  gemmBf16(
    transA: boolean, transB: boolean, M: number, N: number, K: number,
    A: Buf | Uint16Array, strideA: number, B: Buf | Uint16Array, strideB: number, C: Buf, strideC: number,
    batch: number, alpha: number, beta: number,
  ): void;

  /** out = x / rms(x) · weight per row; rstd[r] = 1/sqrt(mean(x²)+eps) saved for backward. */
  rmsnormForward(x: Buf, weight: Buf, out: Buf, rstd: Buf, rows: number, dim: number, eps: number): void;
  /** dx overwritten; dweight accumulated. */
  rmsnormBackward(dy: Buf, x: Buf, weight: Buf, rstd: Buf, dx: Buf, dweight: Buf, rows: number, dim: number): void;

  /** out = (x − mean)·rstd·weight + bias per row; mean and rstd saved. */
  layernormForward(x: Buf, weight: Buf, bias: Buf, out: Buf, mean: Buf, rstd: Buf, rows: number, dim: number, eps: number): void;
  /** dx overwritten; dweight and dbias accumulated. */
  layernormBackward(dy: Buf, x: Buf, weight: Buf, mean: Buf, rstd: Buf, dx: Buf, dweight: Buf, dbias: Buf, rows: number, dim: number): void;

  /**
   * Rotary position embedding, Hugging Face "rotate_half" convention: within each head the pair
   * (i, i + headDim/2) is rotated by angle positions[b·seq + t] · invFreq[i].
   * x and out are [batch, seq, heads, headDim] (out may be x). cos/sin are tables
   * [maxPos, headDim/2] (cos[p·half + i]). inverse = true rotates by −angle (the backward).
   */
  rope(
    x: Buf, out: Buf, cos: Buf, sin: Buf, positions: Int32Array,
    batch: number, seq: number, heads: number, headDim: number, inverse: boolean,
  ): void;

  /**
   * Causal scaled-dot-product attention with grouped-query heads, memory-efficient (tiled,
   * online softmax: no T×T matrix kept).
   * q: [batch, Tq, H, D]; k, v: [batch, cap, Hkv, D] where item b starts at b·kvBatchStride
   * (kvBatchStride = Tk·Hkv·D when contiguous; larger for a KV cache with capacity cap ≥ Tk).
   * Query t (0 ≤ t < Tq) sits at absolute position Tk − Tq + t and attends keys
   * kvStart[b] ≤ j ≤ Tk − Tq + t (kvStart null means 0: it masks left padding).
   * Query head h uses KV head floor(h / (H / Hkv)).
   * out: [batch, Tq, H, D]; lse: [batch, H, Tq] log-sum-exp of the scaled scores (for backward).
   * A query row with no visible key gets out = 0 and lse = −Infinity.
   */
  attentionForward(
    q: Buf, k: Buf, v: Buf, out: Buf, lse: Buf,
    batch: number, Tq: number, Tk: number, H: number, Hkv: number, D: number,
    scale: number, kvBatchStride: number, kvStart: Int32Array | null,
  ): void;
  /**
   * Backward of attentionForward for the training case (Tq = Tk = T, contiguous k/v).
   * dq, dk, dv are overwritten. Scores are recomputed tile by tile from q, k and lse.
   */
  attentionBackward(
    dout: Buf, q: Buf, k: Buf, v: Buf, out: Buf, lse: Buf, dq: Buf, dk: Buf, dv: Buf,
    batch: number, T: number, H: number, Hkv: number, D: number,
    scale: number, kvStart: Int32Array | null,
  ): void;

  /** out = act(x), n elements (out may be x). */
  activationForward(kind: ActKind, x: Buf, out: Buf, n: number): void;
  /** dx = dy · act'(x) (dx may be dy). */
  activationBackward(kind: ActKind, x: Buf, dy: Buf, dx: Buf, n: number): void;

  /** out = silu(gate) · up. */
  swigluForward(gate: Buf, up: Buf, out: Buf, n: number): void;
  /** dgate, dup overwritten. */
  swigluBackward(gate: Buf, up: Buf, dy: Buf, dgate: Buf, dup: Buf, n: number): void;

  /** Row-wise softmax over cols (out may be x). */
  softmaxForward(x: Buf, out: Buf, rows: number, cols: number): void;
  /** dx = y · (dy − Σ dy·y) per row. */
  softmaxBackward(y: Buf, dy: Buf, dx: Buf, rows: number, cols: number): void;

  /**
   * Fused log-softmax + gather: logp[r] = logits[r, targets[r]] − logsumexp(logits[r, :]),
   * lse[r] saved. targets[r] < 0 marks an ignored row: logp[r] = 0 (lse still written).
   * Never materializes the log-softmax.
   */
  logSoftmaxGather(logits: Buf, targets: Int32Array, logp: Buf, lse: Buf, rows: number, vocab: number): void;
  /**
   * dlogits[r, :] = dlogp[r] · (onehot(targets[r]) − softmax(logits[r, :])); 0 for ignored rows.
   * Overwrites; dlogits may be logits (in place).
   */
  logSoftmaxGatherBackward(logits: Buf, targets: Int32Array, lse: Buf, dlogp: Buf, dlogits: Buf, rows: number, vocab: number): void;

  /** out[i, :] = table[ids[i], :]. */
  embeddingForward(ids: Int32Array, table: Buf, out: Buf, n: number, dim: number): void;
  /** dtable[ids[i], :] += dy[i, :], in order of i (deterministic). */
  embeddingBackward(ids: Int32Array, dy: Buf, dtable: Buf, n: number, dim: number): void;

  /**
   * One decoupled-weight-decay Adam step (Loshchilov & Hutter), in place on param, m, v:
   *   m = b1·m + (1−b1)·g;  v = b2·v + (1−b2)·g²
   *   param −= lr · ( (m / bc1) / (sqrt(v / bc2) + eps) + wd · param )
   * where bc1 = 1 − b1^t and bc2 = 1 − b2^t are passed in.
   */
  adamw(
    param: Buf, grad: Buf, m: Buf, v: Buf, n: number,
    lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, bc1: number, bc2: number,
  ): void;
  /** Σ x², accumulated in float64 over fixed chunks (same result for any thread count). */
  sumSquares(x: Buf, n: number): number;
  /** x *= s in place. */
  scale(x: Buf, n: number, s: number): void;
  /** out = a + b (out may alias a or b). */
  add(a: Buf, b: Buf, out: Buf, n: number): void;
  /** out = a · b (out may alias a or b). */
  mul(a: Buf, b: Buf, out: Buf, n: number): void;
  /** y += alpha · x. */
  axpy(alpha: number, x: Buf, y: Buf, n: number): void;
  /** out[r, j] = x[r, j] + b[j] for rows × n (bias add; out may alias x). */
  addRowVector(x: Buf, b: Buf, out: Buf, rows: number, n: number): void;
  /**
   * out[j] += Σ_r x[r, j] over rows × n (the bias gradient), accumulated in float64 over fixed
   * chunks of rows added in order (same result for any thread count).
   */
  sumRows(x: Buf, out: Buf, rows: number, n: number): void;
  /**
   * A 2-D block copy between strided rows: dst[r·dstStride + c] = src[r·srcStride + c]
   * (accumulate: +=) for r < rows, c < cols. Slicing a column range (narrow, concat) and adding
   * its gradient back, in one call instead of one per row.
   */
  copy2d(src: Buf, srcStride: number, dst: Buf, dstStride: number, rows: number, cols: number, accumulate: boolean): void;
}
