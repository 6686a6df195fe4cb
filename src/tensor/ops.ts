// The op set a decoder-only transformer needs. Each op: check shapes (errors name the op and the
// shapes), run the forward kernel, and record a backward on the tape (tensor.ts).
// Float32 tensors run on the active backend (native when it loads); float64 tensors always run on
// the reference backend (the oracle used by gradient checks).

import { alloc, release } from './memory.js';
import { kernels, referenceKernels } from './backend.js';
import { gemmFor } from './autocast.js';
import { bf16Storage, embeddingFromBf16 } from './bf16-ops.js';
import { Act, type ActKind, type Buf, type Kernels } from './kernels.js';
import {
  Tensor, accumulateGrad, accumulateGradInPlace, empty, gradBuffer, isGradEnabled, isTraining, numel, record, shapeStr, type DType,
} from './tensor.js';

function K(dtype: DType): Kernels {
  return dtype === 'float64' ? referenceKernels : kernels();
}

function fail(op: string, msg: string): never {
  throw new RangeError(`${op}: ${msg}`);
}

function sameDtype(op: string, ...ts: Tensor[]): DType {
  const d = ts[0]!.dtype;
  for (const t of ts) if (t.dtype !== d) fail(op, `dtype mismatch: ${ts.map((x) => `${shapeStr(x.shape)} ${x.dtype}`).join(' vs ')}`);
  return d;
}

function lastDim(t: Tensor): number {
  return t.shape[t.shape.length - 1] ?? 1;
}

function like(t: Tensor): Tensor {
  return empty(t.shape, t.dtype);
}

// ---- views and copies ------------------------------------------------------------------------

/** Same data, new shape (one dimension may be −1). No copy. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const s = [...shape];
  const neg = s.indexOf(-1);
  if (neg >= 0) {
    const rest = s.reduce((a, d, i) => (i === neg ? a : a * d), 1);
    if (rest === 0 || x.size % rest !== 0) fail('reshape', `cannot reshape ${shapeStr(x.shape)} to ${shapeStr(shape)}`);
    s[neg] = x.size / rest;
  }
  if (numel(s) !== x.size) fail('reshape', `cannot reshape ${shapeStr(x.shape)} (${x.size} elements) to ${shapeStr(shape)}`);
  const out = new Tensor(x.data, s, { base: x });
  return record(out, 'reshape', [x], (g) => accumulateGrad(x, g));
}

/** dst += src (same length); long runs through the kernel, short ones in JS (call overhead). */
function addSlice(dst: Buf, src: Buf): void {
  if (dst.length >= 512) {
    K(dst instanceof Float64Array ? 'float64' : 'float32').add(dst, src, dst, dst.length);
    return;
  }
  for (let i = 0; i < dst.length; i++) dst[i]! += src[i]!;
}

function copyOf(g: Buf): Buf {
  const c = alloc(g instanceof Float64Array ? 'float64' : 'float32', g.length, false);
  c.set(g);
  return c;
}

/** Rows [start, start+len) of the first dimension: a view, no copy. */
export function narrowRows(x: Tensor, start: number, len: number): Tensor {
  const rows = x.shape[0]!;
  if (start < 0 || len < 0 || start + len > rows) fail('narrowRows', `rows [${start}, ${start + len}) out of ${shapeStr(x.shape)}`);
  const inner = rows === 0 ? 0 : x.size / rows;
  const out = new Tensor(x.data.subarray(start * inner, (start + len) * inner), [len, ...x.shape.slice(1)], { base: x });
  return record(out, 'narrowRows', [x], (g) => {
    accumulateGradInPlace(x, (gx) => addSlice(gx.subarray(start * inner, (start + len) * inner), g));
  });
}

/** Generic permutation of dimensions (copies). */
export function permute(x: Tensor, dims: readonly number[]): Tensor {
  const nd = x.ndim;
  if (dims.length !== nd || [...dims].sort().some((d, i) => d !== i)) fail('permute', `invalid dims ${shapeStr(dims)} for ${shapeStr(x.shape)}`);
  const outShape = dims.map((d) => x.shape[d]!);
  const out = empty(outShape, x.dtype);
  permuteInto(x.data, x.shape, dims, out.data);
  return record(out, 'permute', [x], (g) => {
    const inv = new Array<number>(nd);
    dims.forEach((d, i) => (inv[d] = i));
    const gx = alloc(x.dtype, x.size, false);
    permuteInto(g, outShape, inv, gx);
    accumulateGrad(x, gx);
  });
}

function permuteInto(src: Buf, shape: readonly number[], dims: readonly number[], dst: Buf): void {
  const nd = shape.length;
  const strides = new Array<number>(nd);
  let s = 1;
  for (let i = nd - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i]!;
  }
  const outShape = dims.map((d) => shape[d]!);
  const outStrides = dims.map((d) => strides[d]!);
  const n = src.length;
  if (n === 0) return;
  // Innermost output dimension as a strided run; the rest by an odometer.
  const inner = outShape[nd - 1] ?? 1;
  const innerStride = outStrides[nd - 1] ?? 1;
  const idx = new Array<number>(Math.max(nd - 1, 0)).fill(0);
  let o = 0;
  for (;;) {
    let base = 0;
    for (let i = 0; i < nd - 1; i++) base += idx[i]! * outStrides[i]!;
    for (let j = 0; j < inner; j++) dst[o++] = src[base + j * innerStride]!;
    let d = nd - 2;
    while (d >= 0) {
      idx[d]!++;
      if (idx[d]! < outShape[d]!) break;
      idx[d] = 0;
      d--;
    }
    if (d < 0) break;
  }
}

/** Swaps two dimensions (copies). */
export function transpose(x: Tensor, d0: number, d1: number): Tensor {
  const dims = x.shape.map((_, i) => i);
  dims[d0] = d1;
  dims[d1] = d0;
  return permute(x, dims);
}

/** Elements [start, start+len) along dim (copies unless dim is 0). */
export function narrow(x: Tensor, dim: number, start: number, len: number): Tensor {
  if (dim < 0) dim += x.ndim;
  if (dim === 0) return narrowRows(x, start, len);
  const size = x.shape[dim]!;
  if (start < 0 || len < 0 || start + len > size) fail('narrow', `[${start}, ${start + len}) out of dim ${dim} of ${shapeStr(x.shape)}`);
  const outer = numel(x.shape.slice(0, dim));
  const inner = numel(x.shape.slice(dim + 1));
  const outShape = [...x.shape];
  outShape[dim] = len;
  const out = empty(outShape, x.dtype);
  const k = K(x.dtype), cols = len * inner;
  // outer rows of cols elements, size·inner apart in x (one kernel call, not one per row).
  k.copy2d(x.data.subarray(start * inner), size * inner, out.data, cols, outer, cols, false);
  return record(out, 'narrow', [x], (g) => {
    accumulateGradInPlace(x, (gx) => k.copy2d(g, cols, gx.subarray(start * inner), size * inner, outer, cols, true));
  });
}

/** Concatenation along dim. */
export function concat(xs: readonly Tensor[], dim: number): Tensor {
  if (xs.length === 0) fail('concat', 'no tensors');
  const first = xs[0]!;
  if (dim < 0) dim += first.ndim;
  const dtype = sameDtype('concat', ...xs);
  for (const t of xs) {
    if (t.ndim !== first.ndim || t.shape.some((d, i) => i !== dim && d !== first.shape[i])) {
      fail('concat', `shapes differ outside dim ${dim}: ${xs.map((x) => shapeStr(x.shape)).join(', ')}`);
    }
  }
  const outer = numel(first.shape.slice(0, dim));
  const inner = numel(first.shape.slice(dim + 1));
  const total = xs.reduce((a, t) => a + t.shape[dim]!, 0);
  const outShape = [...first.shape];
  outShape[dim] = total;
  const out = empty(outShape, dtype);
  const k = K(dtype);
  let off = 0;
  const offsets: number[] = [];
  for (const t of xs) {
    const len = t.shape[dim]!;
    offsets.push(off);
    k.copy2d(t.data, len * inner, out.data.subarray(off * inner), total * inner, outer, len * inner, false);
    off += len;
  }
  return record(out, 'concat', xs, (g) => {
    xs.forEach((t, i) => {
      if (!t.requiresGrad) return;
      const len = t.shape[dim]!;
      const gx = alloc(dtype, t.size, false);
      k.copy2d(g.subarray(offsets[i]! * inner), total * inner, gx, len * inner, outer, len * inner, false);
      accumulateGrad(t, gx);
    });
  });
}

// ---- elementwise with broadcasting -----------------------------------------------------------

function broadcastShape(op: string, a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) fail(op, `shapes ${shapeStr(a)} and ${shapeStr(b)} do not broadcast`);
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** For each output element, the index into a tensor of shape s broadcast to outShape. */
function broadcastIndex(s: readonly number[], outShape: readonly number[]): Int32Array | null {
  const n = numel(outShape);
  if (s.length === outShape.length && s.every((d, i) => d === outShape[i])) return null;
  const nd = outShape.length;
  const strides = new Array<number>(nd).fill(0);
  let st = 1;
  for (let i = s.length - 1; i >= 0; i--) {
    const oi = nd - s.length + i;
    strides[oi] = s[i] === 1 ? 0 : st;
    st *= s[i]!;
  }
  const idx = new Int32Array(n);
  const pos = new Array<number>(nd).fill(0);
  let cur = 0;
  for (let k = 0; k < n; k++) {
    idx[k] = cur;
    for (let d = nd - 1; d >= 0; d--) {
      pos[d]!++;
      cur += strides[d]!;
      if (pos[d]! < outShape[d]!) break;
      cur -= strides[d]! * outShape[d]!;
      pos[d] = 0;
    }
  }
  return idx;
}

/** Sums g (shaped like the broadcast output) back to an operand's own size via its index map. */
function reduceBroadcast(g: Buf, idx: Int32Array | null, size: number, dtype: DType): Buf {
  const out = alloc(dtype, size);
  if (idx === null) {
    out.set(g);
    return out;
  }
  for (let k = 0; k < g.length; k++) out[idx[k]!]! += g[k]!;
  return out;
}

type BinaryKind = 'add' | 'sub' | 'mul' | 'div';

function binary(kind: BinaryKind, a: Tensor, b: Tensor): Tensor {
  const dtype = sameDtype(kind, a, b);
  const outShape = broadcastShape(kind, a.shape, b.shape);
  const out = empty(outShape, dtype);
  const ia = broadcastIndex(a.shape, outShape);
  const ib = broadcastIndex(b.shape, outShape);
  const A = a.data, B = b.data, O = out.data, n = O.length;
  const k = K(dtype);
  if (!ia && !ib && kind === 'add') k.add(A, B, O, n);
  else if (!ia && !ib && kind === 'mul') k.mul(A, B, O, n);
  else {
    for (let i = 0; i < n; i++) {
      const x = A[ia ? ia[i]! : i]!, y = B[ib ? ib[i]! : i]!;
      O[i] = kind === 'add' ? x + y : kind === 'sub' ? x - y : kind === 'mul' ? x * y : x / y;
    }
  }
  const saved = kind === 'mul' || kind === 'div' ? [a, b] : [];
  return record(out, kind, [a, b], (g) => {
    // Same-shape add: both gradients are g itself (b gets a copy, a takes g over: its last use).
    if (kind === 'add' && !ia && !ib) {
      if (b.requiresGrad) accumulateGrad(b, a.requiresGrad ? copyOf(g) : g);
      if (a.requiresGrad) accumulateGrad(a, g);
      return;
    }
    if (a.requiresGrad) {
      let ga: Buf;
      if (kind === 'add' || kind === 'sub') ga = g;
      else {
        ga = alloc(dtype, n, false);
        for (let i = 0; i < n; i++) {
          const y = B[ib ? ib[i]! : i]!;
          ga[i] = kind === 'mul' ? g[i]! * y : g[i]! / y;
        }
      }
      accumulateGrad(a, reduceBroadcast(ga, ia, a.size, dtype));
      if (ga !== g) release(ga);
    }
    if (b.requiresGrad) {
      const gb = alloc(dtype, n, false);
      for (let i = 0; i < n; i++) {
        if (kind === 'add') gb[i] = g[i]!;
        else if (kind === 'sub') gb[i] = -g[i]!;
        else if (kind === 'mul') gb[i] = g[i]! * A[ia ? ia[i]! : i]!;
        else {
          const y = B[ib ? ib[i]! : i]!;
          gb[i] = (-g[i]! * A[ia ? ia[i]! : i]!) / (y * y);
        }
      }
      accumulateGrad(b, reduceBroadcast(gb, ib, b.size, dtype));
      release(gb);
    }
  }, { saved });
}

export const add = (a: Tensor, b: Tensor): Tensor => binary('add', a, b);
export const sub = (a: Tensor, b: Tensor): Tensor => binary('sub', a, b);
export const mul = (a: Tensor, b: Tensor): Tensor => binary('mul', a, b);
export const div = (a: Tensor, b: Tensor): Tensor => binary('div', a, b);

/** a·s + c elementwise with scalars. */
export function affine(x: Tensor, s: number, c = 0): Tensor {
  const out = like(x);
  const X = x.data, O = out.data;
  for (let i = 0; i < X.length; i++) O[i] = X[i]! * s + c;
  return record(out, 'affine', [x], (g) => {
    const gx = alloc(x.dtype, x.size, false);
    for (let i = 0; i < gx.length; i++) gx[i] = g[i]! * s;
    accumulateGrad(x, gx);
  });
}

export const scale = (x: Tensor, s: number): Tensor => affine(x, s, 0);
export const neg = (x: Tensor): Tensor => affine(x, -1, 0);
export const addScalar = (x: Tensor, c: number): Tensor => affine(x, 1, c);

type UnaryKind = 'exp' | 'log' | 'sigmoid' | 'logsigmoid' | 'tanh' | 'square' | 'sqrt' | 'abs';

function unaryForward(kind: UnaryKind, x: number): number {
  switch (kind) {
    case 'exp': return Math.exp(x);
    case 'log': return Math.log(x);
    case 'sigmoid': return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
    case 'logsigmoid': return x >= 0 ? -Math.log1p(Math.exp(-x)) : x - Math.log1p(Math.exp(x));
    case 'tanh': return Math.tanh(x);
    case 'square': return x * x;
    case 'sqrt': return Math.sqrt(x);
    case 'abs': return Math.abs(x);
  }
}

/** d out / d x given input x and output y. */
function unaryDeriv(kind: UnaryKind, x: number, y: number): number {
  switch (kind) {
    case 'exp': return y;
    case 'log': return 1 / x;
    case 'sigmoid': return y * (1 - y);
    case 'logsigmoid': return 1 - unaryForward('sigmoid', x);
    case 'tanh': return 1 - y * y;
    case 'square': return 2 * x;
    case 'sqrt': return 0.5 / y;
    case 'abs': return x > 0 ? 1 : x < 0 ? -1 : 0;
  }
}

function unary(kind: UnaryKind, x: Tensor): Tensor {
  const out = like(x);
  const X = x.data, O = out.data;
  for (let i = 0; i < X.length; i++) O[i] = unaryForward(kind, X[i]!);
  return record(out, kind, [x], (g) => {
    const gx = alloc(x.dtype, x.size, false);
    for (let i = 0; i < gx.length; i++) gx[i] = g[i]! * unaryDeriv(kind, X[i]!, O[i]!);
    accumulateGrad(x, gx);
  }, { saved: [x, out] });
}

export const exp = (x: Tensor): Tensor => unary('exp', x);
export const log = (x: Tensor): Tensor => unary('log', x);
export const sigmoid = (x: Tensor): Tensor => unary('sigmoid', x);
/** log σ(x), stable for large |x|. */
export const logSigmoid = (x: Tensor): Tensor => unary('logsigmoid', x);
export const tanh = (x: Tensor): Tensor => unary('tanh', x);
export const square = (x: Tensor): Tensor => unary('square', x);
export const sqrt = (x: Tensor): Tensor => unary('sqrt', x);
export const abs = (x: Tensor): Tensor => unary('abs', x);

// ---- reductions ------------------------------------------------------------------------------

/** Sum of all elements → shape [1]. */
export function sumAll(x: Tensor): Tensor {
  const out = empty([1], x.dtype);
  let s = 0;
  const X = x.data;
  for (let i = 0; i < X.length; i++) s += X[i]!;
  out.data[0] = s;
  return record(out, 'sumAll', [x], (g) => {
    const gx = alloc(x.dtype, x.size, false);
    gx.fill(g[0]!);
    accumulateGrad(x, gx);
  });
}

/** Mean of all elements → shape [1]. */
export function meanAll(x: Tensor): Tensor {
  return scale(sumAll(x), 1 / x.size);
}

/** Sum over dim (keepdim false drops it). */
export function sum(x: Tensor, dim: number, keepdim = false): Tensor {
  if (dim < 0) dim += x.ndim;
  if (dim < 0 || dim >= x.ndim) fail('sum', `dim out of range for ${shapeStr(x.shape)}`);
  const outer = numel(x.shape.slice(0, dim));
  const size = x.shape[dim]!;
  const inner = numel(x.shape.slice(dim + 1));
  const outShape = keepdim ? x.shape.map((d, i) => (i === dim ? 1 : d)) : x.shape.filter((_, i) => i !== dim);
  const out = empty(outShape, x.dtype);
  const X = x.data, O = out.data;
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < inner; j++) {
      let s = 0;
      for (let k = 0; k < size; k++) s += X[(o * size + k) * inner + j]!;
      O[o * inner + j] = s;
    }
  }
  return record(out, 'sum', [x], (g) => {
    const gx = alloc(x.dtype, x.size, false);
    for (let o = 0; o < outer; o++) {
      for (let k = 0; k < size; k++) {
        for (let j = 0; j < inner; j++) gx[(o * size + k) * inner + j] = g[o * inner + j]!;
      }
    }
    accumulateGrad(x, gx);
  });
}

export function mean(x: Tensor, dim: number, keepdim = false): Tensor {
  const d = dim < 0 ? dim + x.ndim : dim;
  return scale(sum(x, d, keepdim), 1 / x.shape[d]!);
}

// ---- linear algebra --------------------------------------------------------------------------

/**
 * Matrix product over the last two dimensions. a: [..., M, K] (or [..., K, M] with transA),
 * b: [K, N] (broadcast over a's batch) or [..., K, N] with the same batch dims (or [.., N, K]
 * with transB).
 */
export function matmul(a: Tensor, b: Tensor, opts: { transA?: boolean; transB?: boolean } = {}): Tensor {
  const transA = opts.transA ?? false, transB = opts.transB ?? false;
  const dtype = sameDtype('matmul', a, b);
  if (a.ndim < 2 || b.ndim < 2) fail('matmul', `needs at least 2-D operands, got ${shapeStr(a.shape)} and ${shapeStr(b.shape)}`);
  const [ar, ac] = a.shape.slice(-2) as [number, number];
  const [br, bc] = b.shape.slice(-2) as [number, number];
  const M = transA ? ac : ar, Ka = transA ? ar : ac;
  const Kb = transB ? bc : br, N = transB ? br : bc;
  if (Ka !== Kb) fail('matmul', `inner dimensions differ: ${shapeStr(a.shape)}${transA ? 'ᵀ' : ''} · ${shapeStr(b.shape)}${transB ? 'ᵀ' : ''}`);
  const batchA = a.shape.slice(0, -2), batchB = b.shape.slice(0, -2);
  const batch = numel(batchA);
  const bBroadcast = batchB.length === 0;
  if (!bBroadcast && (batchB.length !== batchA.length || batchB.some((d, i) => d !== batchA[i]))) {
    fail('matmul', `batch dimensions differ: ${shapeStr(a.shape)} · ${shapeStr(b.shape)}`);
  }
  const Kd = Ka;
  const out = empty([...batchA, M, N], dtype);
  const k = K(dtype);
  const gm = gemmFor(k, dtype);  // bf16 autocast: chosen at forward time, backward follows
  const sA = M * Kd, sB = bBroadcast ? 0 : Kd * N, sC = M * N;
  gm(transA, transB, M, N, Kd, a.data, sA, b.data, sB, out.data, sC, batch, 1, 0);
  return record(out, 'matmul', [a, b], (g) => {
    if (a.requiresGrad) {
      // dA = dC·op(B)ᵀ, laid out as A is stored.
      const ga = alloc(dtype, a.size, false);
      if (!transA) gm(false, !transB, M, Kd, N, g, sC, b.data, sB, ga, sA, batch, 1, 0);
      else gm(transB, true, Kd, M, N, b.data, sB, g, sC, ga, sA, batch, 1, 0);
      accumulateGrad(a, ga);
    }
    if (b.requiresGrad) {
      // dB = op(A)ᵀ·dC, laid out as B is stored; a broadcast B sums over the batch.
      // Zeroed only for the per-item accumulation below (beta = 1); every other path overwrites.
      const gb = alloc(dtype, b.size, bBroadcast && transA);
      if (bBroadcast) {
        // Treat the batch as extra rows: [batch·M, K]ᵀ · [batch·M, N] (only when A is not transposed).
        if (!transA) {
          if (!transB) gm(true, false, Kd, N, batch * M, a.data, 0, g, 0, gb, 0, 1, 1, 0);
          else gm(true, false, N, Kd, batch * M, g, 0, a.data, 0, gb, 0, 1, 1, 0);
        } else {
          for (let i = 0; i < batch; i++) {
            const ai = a.data.subarray(i * sA, (i + 1) * sA), gi = g.subarray(i * sC, (i + 1) * sC);
            if (!transB) gm(false, false, Kd, N, M, ai, 0, gi, 0, gb, 0, 1, 1, 1);
            else gm(true, true, N, Kd, M, gi, 0, ai, 0, gb, 0, 1, 1, 1);
          }
        }
      } else if (!transB) {
        gm(!transA, false, Kd, N, M, a.data, sA, g, sC, gb, sB, batch, 1, 0);
      } else {
        gm(true, transA, N, Kd, M, g, sC, a.data, sA, gb, sB, batch, 1, 0);
      }
      accumulateGrad(b, gb);
    }
  }, { saved: [a, b] });
}

/** y = x·wᵀ + bias, w in the Hugging Face Linear layout [out, in]; x: [..., in]. */
export function linear(x: Tensor, w: Tensor, bias?: Tensor | null): Tensor {
  const inF = lastDim(x);
  if (w.ndim !== 2 || w.shape[1] !== inF) fail('linear', `weight ${shapeStr(w.shape)} does not fit input ${shapeStr(x.shape)} (expected [out, ${inF}])`);
  const rows = x.size / inF;
  const x2 = x.ndim === 2 ? x : reshape(x, [rows, inF]);
  let y = matmul(x2, w, { transB: true });
  if (bias) {
    if (bias.size !== w.shape[0]) fail('linear', `bias ${shapeStr(bias.shape)} does not fit weight ${shapeStr(w.shape)}`);
    y = add(y, bias);
  }
  return x.ndim === 2 ? y : reshape(y, [...x.shape.slice(0, -1), w.shape[0]!]);
}

/**
 * y + alpha·x·wᵀ in one GEMM (beta 1) — LoRA's low-rank update added to the base output without
 * the product, scaled and summed tensors in between (three [rows, out] buffers per adapted layer).
 * x: [..., in], w: [out, in], y: [..., out]. With `consumeY` (the caller's promise that y is a
 * fresh result nothing else reads) y's buffer is taken over, unless a node saved it or it is a
 * view or a leaf that wants a gradient; otherwise it is copied.
 */
export function addLinear(y: Tensor, x: Tensor, w: Tensor, alpha: number, opts: { consumeY?: boolean } = {}): Tensor {
  const inF = lastDim(x);
  const dtype = sameDtype('addLinear', y, x, w);
  if (w.ndim !== 2 || w.shape[1] !== inF) fail('addLinear', `weight ${shapeStr(w.shape)} does not fit input ${shapeStr(x.shape)} (expected [out, ${inF}])`);
  const rows = x.size / inF, outF = w.shape[0]!;
  if (y.size !== rows * outF || lastDim(y) !== outF) fail('addLinear', `y ${shapeStr(y.shape)} does not fit x ${shapeStr(x.shape)} · w ${shapeStr(w.shape)}ᵀ`);
  const k = K(dtype);
  const gm = gemmFor(k, dtype);  // bf16 autocast: chosen at forward time, backward follows
  let out: Tensor;
  if (opts.consumeY && !(y.isLeaf && y.requiresGrad) && y.savedBy === 0 && !y.isView && !y.retained) {
    out = new Tensor(y.data, y.shape);
    y.data = new Float32Array(0);  // the tape never reads it again (release of an empty buffer is a no-op)
  } else {
    out = empty(y.shape, dtype);
    out.data.set(y.data);
  }
  gm(false, true, rows, outF, inF, x.data, 0, w.data, 0, out.data, 0, 1, alpha, 1);
  return record(out, 'addLinear', [y, x, w], (g) => {
    if (x.requiresGrad) {
      const gx = alloc(dtype, x.size, false);
      gm(false, false, rows, inF, outF, g, 0, w.data, 0, gx, 0, 1, alpha, 0);
      accumulateGrad(x, gx);
    }
    if (w.requiresGrad) {
      const gw = alloc(dtype, w.size, false);
      gm(true, false, outF, inF, rows, g, 0, x.data, 0, gw, 0, 1, alpha, 0);
      accumulateGrad(w, gw);
    }
    accumulateGrad(y, g);  // last use of g: y may take it over
  }, { saved: [x, w] });
}

// ---- transformer ops -------------------------------------------------------------------------

/** out[..., :] = table[ids[...], :]; ids are token ids in [0, V). Output shape [...idsShape, D]. */
export function embedding(table: Tensor, ids: Int32Array, idsShape: readonly number[] = [ids.length]): Tensor {
  if (table.ndim !== 2) fail('embedding', `table must be [V, D], got ${shapeStr(table.shape)}`);
  const [V, D] = table.shape as [number, number];
  if (numel(idsShape) !== ids.length) fail('embedding', `ids shape ${shapeStr(idsShape)} does not match ${ids.length} ids`);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (id < 0 || id >= V) fail('embedding', `id ${id} at position ${i} out of range [0, ${V}) for table ${shapeStr(table.shape)}`);
  }
  const bits = bf16Storage(table);
  if (bits) return embeddingFromBf16(bits, V, D, ids, idsShape);  // frozen, stored as bf16
  const out = empty([...idsShape, D], table.dtype);
  const k = K(table.dtype);
  k.embeddingForward(ids, table.data, out.data, ids.length, D);
  return record(out, 'embedding', [table], (g) => {
    // embeddingBackward accumulates: add straight into the table's gradient (no V×D temporary).
    accumulateGradInPlace(table, (gt) => k.embeddingBackward(ids, g, gt, ids.length, D));
  });
}

/** RMSNorm over the last dimension: x / sqrt(mean(x²) + eps) · weight. */
export function rmsnorm(x: Tensor, weight: Tensor, eps: number): Tensor {
  const dim = lastDim(x);
  if (weight.size !== dim) fail('rmsnorm', `weight ${shapeStr(weight.shape)} does not fit input ${shapeStr(x.shape)}`);
  const dtype = sameDtype('rmsnorm', x, weight);
  const rows = x.size / dim;
  const out = like(x);
  const k = K(dtype);
  const rstd = alloc(dtype, rows, false);
  k.rmsnormForward(x.data, weight.data, out.data, rstd, rows, dim, eps);
  return record(out, 'rmsnorm', [x, weight], (g) => {
    const gx = alloc(dtype, x.size, false);
    const gw = gradBuffer(weight);
    k.rmsnormBackward(g, x.data, weight.data, rstd, gx, gw, rows, dim);
    accumulateGrad(x, gx);
    accumulateGrad(weight, gw);
  }, { saved: [x, weight], scratch: [rstd] });
}

/** LayerNorm over the last dimension. */
export function layernorm(x: Tensor, weight: Tensor, bias: Tensor, eps: number): Tensor {
  const dim = lastDim(x);
  if (weight.size !== dim || bias.size !== dim) {
    fail('layernorm', `weight ${shapeStr(weight.shape)} / bias ${shapeStr(bias.shape)} do not fit input ${shapeStr(x.shape)}`);
  }
  const dtype = sameDtype('layernorm', x, weight, bias);
  const rows = x.size / dim;
  const out = like(x);
  const k = K(dtype);
  const mu = alloc(dtype, rows, false), rstd = alloc(dtype, rows, false);
  k.layernormForward(x.data, weight.data, bias.data, out.data, mu, rstd, rows, dim, eps);
  return record(out, 'layernorm', [x, weight, bias], (g) => {
    const gx = alloc(dtype, x.size, false);
    const gw = gradBuffer(weight), gb = gradBuffer(bias);
    k.layernormBackward(g, x.data, weight.data, mu, rstd, gx, gw, gb, rows, dim);
    accumulateGrad(x, gx);
    accumulateGrad(weight, gw);
    accumulateGrad(bias, gb);
  }, { saved: [x, weight], scratch: [mu, rstd] });
}

/**
 * Rotary embedding (rotate_half convention) of x: [B, T, H, D] at the given positions
 * (Int32Array [B·T]), with cos/sin tables [maxPos, D/2] (see makeRopeTables).
 */
export function rope(x: Tensor, cos: Buf, sin: Buf, positions: Int32Array): Tensor {
  if (x.ndim !== 4) fail('rope', `input must be [B, T, H, D], got ${shapeStr(x.shape)}`);
  const [B, T, H, D] = x.shape as [number, number, number, number];
  if (D % 2 !== 0) fail('rope', `head dim ${D} must be even`);
  if (positions.length !== B * T) fail('rope', `positions has ${positions.length} entries, expected B·T = ${B * T}`);
  const maxPos = cos.length / (D / 2);
  for (let i = 0; i < positions.length; i++) {
    if (positions[i]! < 0 || positions[i]! >= maxPos) fail('rope', `position ${positions[i]} outside the table (max ${maxPos - 1})`);
  }
  const k = K(x.dtype);
  const c = castTable(cos, x.dtype), s = castTable(sin, x.dtype);
  const out = like(x);
  k.rope(x.data, out.data, c, s, positions, B, T, H, D, false);
  return record(out, 'rope', [x], (g) => {
    const gx = alloc(x.dtype, x.size, false);
    k.rope(g, gx, c, s, positions, B, T, H, D, true);
    accumulateGrad(x, gx);
  });
}

function castTable(t: Buf, dtype: DType): Buf {
  if ((dtype === 'float64') === t instanceof Float64Array) return t;
  return dtype === 'float64' ? Float64Array.from(t) : Float32Array.from(t);
}

/**
 * Causal self-attention (training form, Tq = Tk = T): q [B, T, H, D], k and v [B, T, Hkv, D]
 * → [B, T, H, D]. kvStart (Int32Array [B], optional) masks keys before it (left padding).
 * Memory-efficient: the backward recomputes scores from q, k and the saved log-sum-exp.
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: { scale?: number; kvStart?: Int32Array | null } = {}): Tensor {
  if (q.ndim !== 4 || k.ndim !== 4 || v.ndim !== 4) fail('attention', `q, k, v must be [B, T, heads, D]: ${shapeStr(q.shape)}, ${shapeStr(k.shape)}, ${shapeStr(v.shape)}`);
  const [B, T, H, D] = q.shape as [number, number, number, number];
  const [Bk, Tk, Hkv, Dk] = k.shape as [number, number, number, number];
  if (Bk !== B || Tk !== T || Dk !== D || v.shape.some((d, i) => d !== k.shape[i])) {
    fail('attention', `k ${shapeStr(k.shape)} / v ${shapeStr(v.shape)} do not fit q ${shapeStr(q.shape)}`);
  }
  if (H % Hkv !== 0) fail('attention', `${H} query heads are not a multiple of ${Hkv} KV heads`);
  const kvStart = opts.kvStart ?? null;
  if (kvStart && kvStart.length !== B) fail('attention', `kvStart has ${kvStart.length} entries, expected ${B}`);
  const dtype = sameDtype('attention', q, k, v);
  const scaleF = opts.scale ?? 1 / Math.sqrt(D);
  const kern = K(dtype);
  const out = like(q);
  const lse = alloc(dtype, B * H * T, false);
  kern.attentionForward(q.data, k.data, v.data, out.data, lse, B, T, T, H, Hkv, D, scaleF, T * Hkv * D, kvStart);
  return record(out, 'attention', [q, k, v], (g) => {
    const dq = alloc(dtype, q.size, false), dk = alloc(dtype, k.size, false), dv = alloc(dtype, v.size, false);
    kern.attentionBackward(g, q.data, k.data, v.data, out.data, lse, dq, dk, dv, B, T, H, Hkv, D, scaleF, kvStart);
    accumulateGrad(q, dq);
    accumulateGrad(k, dk);
    accumulateGrad(v, dv);
  }, { saved: [q, k, v, out], scratch: [lse] });
}

/**
 * Causal attention over sequences packed back to back in one row (padding-free batches):
 * q [1, N, H, D], k and v [1, N, Hkv, D], lengths of the packed sequences (Σ = N). Each sequence
 * attends only to its own earlier tokens. Runs as right-padded attention over [S, max length]
 * between two row gathers; the padding slots repeat their sequence's last row, which no real
 * query sees (causal) and whose gradients are exactly zero, so the result equals attention of
 * each sequence alone. Only the attention pays for the padding, not the linear layers around it.
 *
 * opts.rows makes the sequences a tree (rows shared by several sequences, e.g. a pair's prompt
 * before its chosen and rejected branches): sequence s reads the packed rows
 * rows[o_s .. o_s + lengths[s] − 1] in that order (Σ lengths = rows.length; every packed row read
 * at least once). A row's output comes from the first sequence that reads it; the gathers'
 * backward sums the keys' and values' gradients of every sequence reading a row into that row.
 */
export function packedAttention(q: Tensor, k: Tensor, v: Tensor, lengths: Int32Array, opts: { scale?: number; rows?: Int32Array | null } = {}): Tensor {
  if (q.ndim !== 4 || q.shape[0] !== 1 || k.ndim !== 4 || v.ndim !== 4) {
    fail('packedAttention', `q, k, v must be [1, N, heads, D]: ${shapeStr(q.shape)}, ${shapeStr(k.shape)}, ${shapeStr(v.shape)}`);
  }
  const [, N, H, D] = q.shape as [number, number, number, number];
  const Hkv = k.shape[2]!;
  const rows = opts.rows ?? null;
  let total = 0, L = 0;
  for (let s = 0; s < lengths.length; s++) {
    const n = lengths[s]!;
    if (!Number.isInteger(n) || n <= 0) fail('packedAttention', `sequence ${s} has length ${n}`);
    total += n;
    L = Math.max(L, n);
  }
  if (rows ? total !== rows.length : total !== N) {
    fail('packedAttention', rows ? `lengths add up to ${total}, but rows has ${rows.length} entries` : `lengths add up to ${total}, but q has ${N} tokens`);
  }
  if (rows) {
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i]!;
      if (!(r >= 0 && r < N)) fail('packedAttention', `rows[${i}] = ${r} is outside 0..${N - 1}`);
    }
  }
  const S = lengths.length;
  const toPadded = new Int32Array(S * L), fromPadded = new Int32Array(N).fill(-1);
  let off = 0;
  for (let s = 0; s < S; s++) {
    const n = lengths[s]!;
    for (let t = 0; t < L; t++) {
      const j = off + Math.min(t, n - 1);
      toPadded[s * L + t] = rows ? rows[j]! : j;
    }
    for (let t = 0; t < n; t++) {
      const r = rows ? rows[off + t]! : off + t;
      if (fromPadded[r] === -1) fromPadded[r] = s * L + t;
    }
    off += n;
  }
  if (rows) {
    const missing = fromPadded.indexOf(-1);
    if (missing >= 0) fail('packedAttention', `packed row ${missing} is read by no sequence`);
  }
  const pad = (x: Tensor, heads: number): Tensor => reshape(embedding(reshape(x, [N, heads * D]), toPadded), [S, L, heads, D]);
  const out = attention(pad(q, H), pad(k, Hkv), pad(v, Hkv), { scale: opts.scale });
  return reshape(embedding(reshape(out, [S * L, H * D]), fromPadded), [1, N, H, D]);
}

/** Elementwise activation. */
export function activation(x: Tensor, kind: ActKind): Tensor {
  const k = K(x.dtype);
  const out = like(x);
  k.activationForward(kind, x.data, out.data, x.size);
  return record(out, 'activation', [x], (g) => {
    const gx = alloc(x.dtype, x.size, false);
    k.activationBackward(kind, x.data, g, gx, x.size);
    accumulateGrad(x, gx);
  }, { saved: [x] });
}

export const silu = (x: Tensor): Tensor => activation(x, Act.silu);
export const geluTanh = (x: Tensor): Tensor => activation(x, Act.geluTanh);
export const gelu = (x: Tensor): Tensor => activation(x, Act.gelu);
export const relu = (x: Tensor): Tensor => activation(x, Act.relu);

/** silu(gate) · up, fused. */
export function swiglu(gate: Tensor, up: Tensor): Tensor {
  if (gate.size !== up.size) fail('swiglu', `gate ${shapeStr(gate.shape)} and up ${shapeStr(up.shape)} differ`);
  const dtype = sameDtype('swiglu', gate, up);
  const k = K(dtype);
  const out = like(gate);
  k.swigluForward(gate.data, up.data, out.data, gate.size);
  return record(out, 'swiglu', [gate, up], (g) => {
    const dg = alloc(dtype, gate.size, false), du = alloc(dtype, up.size, false);
    k.swigluBackward(gate.data, up.data, g, dg, du, gate.size);
    accumulateGrad(gate, dg);
    accumulateGrad(up, du);
  }, { saved: [gate, up] });
}

/** Softmax over the last dimension. */
export function softmax(x: Tensor): Tensor {
  const cols = lastDim(x), rows = x.size / cols;
  const k = K(x.dtype);
  const out = like(x);
  k.softmaxForward(x.data, out.data, rows, cols);
  return record(out, 'softmax', [x], (g) => {
    const gx = alloc(x.dtype, x.size, false);
    k.softmaxBackward(out.data, g, gx, rows, cols);
    accumulateGrad(x, gx);
  }, { saved: [out] });
}

/**
 * log softmax(logits)[target] per row: logits [N, V] (or [..., V]), targets Int32Array with one
 * entry per row (−1 = ignored → 0). Output has logits' shape without the last dimension.
 */
export function logSoftmaxGather(logits: Tensor, targets: Int32Array): Tensor {
  const V = lastDim(logits), rows = logits.size / V;
  if (targets.length !== rows) fail('logSoftmaxGather', `targets has ${targets.length} entries for ${rows} rows of ${shapeStr(logits.shape)}`);
  checkTargets('logSoftmaxGather', targets, V);
  const k = K(logits.dtype);
  const out = empty(logits.shape.slice(0, -1), logits.dtype);
  const lse = alloc(logits.dtype, rows, false);
  k.logSoftmaxGather(logits.data, targets, out.data, lse, rows, V);
  return record(out, 'logSoftmaxGather', [logits], (g) => {
    const gl = alloc(logits.dtype, logits.size, false);
    k.logSoftmaxGatherBackward(logits.data, targets, lse, g, gl, rows, V);
    accumulateGrad(logits, gl);
  }, { saved: [logits], scratch: [lse] });
}

function checkTargets(op: string, targets: Int32Array, V: number): void {
  for (let i = 0; i < targets.length; i++) {
    const t = targets[i]!;
    if (t >= V || t < -1) fail(op, `target ${t} at row ${i} out of range [0, ${V}) (−1 = ignored)`);
  }
}

/** lmHeadLogprobs keeps the logits for backward (or, without grad, computes them at once) up to this many bytes (default maxLogitsBytes)… */
const LOGITS_KEEP_BYTES = 512 * 2 ** 20;
/** …and otherwise computes (and in backward recomputes) them in chunks of at most this many. */
const LOGITS_CHUNK_BYTES = 128 * 2 ** 20;

/**
 * Fused language-model head + log-softmax + gather: for hidden states h [N, d] and the output
 * embedding W [V, d], the log-probability of targets[i] under softmax(h[i]·Wᵀ), for i in [0, N)
 * (−1 = ignored → 0). Only rows with a target are computed (prompt and padding rows cost
 * nothing). When their logits fit in maxLogitsBytes (default 512 MiB: 2,600 rows of a 50k
 * vocabulary) they are computed by one GEMM and kept for backward, which then needs two GEMMs;
 * otherwise (or with keepLogits: false) they are computed in chunks of rows (≤ 128 MiB) and never
 * held whole: backward recomputes each chunk (the idea behind Liger's fused linear
 * cross-entropy), so memory is O(chunk·V). W's gradient accumulates in place, chunk by chunk.
 */
export function lmHeadLogprobs(
  h: Tensor, W: Tensor, targets: Int32Array,
  opts: {
    chunkRows?: number;
    /** Upper bound on the logits buffer (bytes); decides between keeping and recomputing. */
    maxLogitsBytes?: number;
    /** false: never keep the logits for backward, recompute them per chunk (gradient checkpointing). */
    keepLogits?: boolean;
    /** Receives each row's mean logit over the vocabulary (h·mean(W), no grad). */ meanLogits?: Buf;
    /** Receives, for each row with a target, log Σ_v softmax(z)_v² = logsumexp(2z) − 2·logsumexp(z)
     *  (WPO's normalizer, no grad); rows without a target get 0. */
    logSumSqProbs?: Buf;
  } = {},
): Tensor {
  if (h.ndim !== 2 || W.ndim !== 2 || h.shape[1] !== W.shape[1]) {
    fail('lmHeadLogprobs', `hidden ${shapeStr(h.shape)} and weight ${shapeStr(W.shape)} must be [N, d] and [V, d]`);
  }
  const [N, d] = h.shape as [number, number];
  const V = W.shape[0]!;
  if (targets.length !== N) fail('lmHeadLogprobs', `targets has ${targets.length} entries for ${N} rows`);
  checkTargets('lmHeadLogprobs', targets, V);
  const dtype = sameDtype('lmHeadLogprobs', h, W);
  const k = K(dtype);
  // The logits' products follow bf16 autocast (a W stored as bf16 always uses the bf16 GEMM);
  // log-softmax stays float32.
  const Wbits = bf16Storage(W);
  const Wd: Buf | Uint16Array = Wbits ?? W.data;
  const gm: Kernels['gemmBf16'] = Wbits ? k.gemmBf16.bind(k) : gemmFor(k, dtype);
  const needGrad = isGradEnabled() && (h.requiresGrad || W.requiresGrad);
  // Compact the rows that have a target: hA [Na, d], tA [Na].
  const rowsA: number[] = [];
  for (let i = 0; i < N; i++) if (targets[i]! >= 0) rowsA.push(i);
  const Na = rowsA.length;
  const all = Na === N;
  const hA = all ? h.data : alloc(dtype, Na * d, false);
  const tA = all ? targets : new Int32Array(Na);
  if (!all) {
    rowsA.forEach((r, i) => {
      hA.set(h.data.subarray(r * d, (r + 1) * d), i * d);
      tA[i] = targets[r]!;
    });
  }
  const elemBytes = dtype === 'float32' ? 4 : 8;
  const budget = opts.maxLogitsBytes ?? LOGITS_KEEP_BYTES;
  const rowsOf = (bytes: number): number => Math.max(1, Math.floor(bytes / (V * elemBytes)));
  // Keep the logits for backward when they fit the budget (and keepLogits allows); otherwise
  // chunks of at most LOGITS_CHUNK_BYTES. A no-grad pass (a reference model's log-probs) also
  // takes the whole budget in one GEMM unless keepLogits is false (gradient checkpointing: the
  // memory floor): every chunk packs (and under bf16 autocast converts) all of W again, which made
  // the reference's head 10% (GPT-2 small, 3 chunks) to 40% (SmolLM2-135M) dearer than the policy's.
  const keep = needGrad && Na > 0 && opts.keepLogits !== false && (opts.chunkRows ?? rowsOf(budget)) >= Na;
  const chunkBytes = !needGrad && opts.keepLogits !== false ? budget : Math.min(budget, LOGITS_CHUNK_BYTES);
  const chunk = keep ? Na : Math.max(1, Math.min(Na, opts.chunkRows ?? rowsOf(chunkBytes)));
  const out = zerosLike1(N, dtype);
  const lse = alloc(dtype, Na, false);
  const logpA = all ? out.data : alloc(dtype, Na, false);
  const logits = alloc(dtype, Math.max(1, chunk * V), false);
  for (let r0 = 0; r0 < Na; r0 += chunk) {
    const n = Math.min(chunk, Na - r0);
    gm(false, true, n, V, d, hA.subarray(r0 * d, (r0 + n) * d), 0, Wd, 0, logits, 0, 1, 1, 0);
    k.logSoftmaxGather(logits, tA.subarray(r0, r0 + n), logpA.subarray(r0, r0 + n), lse.subarray(r0, r0 + n), n, V);
    if (opts.logSumSqProbs) {
      if (opts.logSumSqProbs.length !== N) fail('lmHeadLogprobs', `logSumSqProbs has ${opts.logSumSqProbs.length} entries for ${N} rows`);
      for (let i = 0; i < n; i++) {
        const z = logits.subarray(i * V, (i + 1) * V);
        let m = -Infinity;
        for (let v = 0; v < V; v++) if (z[v]! > m) m = z[v]!;
        let acc = 0;
        for (let v = 0; v < V; v++) acc += Math.exp(2 * (z[v]! - m));
        // logsumexp(2z) − 2·logsumexp(z), with logsumexp(2z) = 2m + log Σ e^(2(z − m)).
        opts.logSumSqProbs[rowsA[r0 + i]!] = 2 * m + Math.log(acc) - 2 * lse[r0 + i]!;
      }
    }
  }
  if (!all) {
    rowsA.forEach((r, i) => (out.data[r] = logpA[i]!));
    release(logpA);
  }
  if (!keep) release(logits);
  if (opts.meanLogits) {
    if (opts.meanLogits.length !== N) fail('lmHeadLogprobs', `meanLogits has ${opts.meanLogits.length} entries for ${N} rows`);
    // mean_v(h·W_v) = h·(mean_v W_v): two matrix-vector products on the kernels, not the logits.
    const ones = alloc(dtype, V, false).fill(1);
    const wbar = alloc(dtype, d, false);
    const means = alloc(dtype, N, false);
    if (Wbits) k.gemmBf16(false, false, 1, d, V, ones, 0, Wbits, 0, wbar, 0, 1, 1 / V, 0);  // ones are exact in bf16
    else k.gemm(false, false, 1, d, V, ones, 0, W.data, 0, wbar, 0, 1, 1 / V, 0);
    k.gemm(false, false, N, 1, d, h.data, 0, wbar, 0, means, 0, 1, 1, 0);
    opts.meanLogits.set(means);
    release(ones);
    release(wbar);
    release(means);
  }
  if (!needGrad || Na === 0) {
    release(lse);
    if (!all) release(hA);
    return out;
  }
  return record(out, 'lmHeadLogprobs', [h, W], (g) => {
    const gA = alloc(dtype, Na, false);
    rowsA.forEach((r, i) => (gA[i] = g[r]!));
    const ghA = h.requiresGrad ? alloc(dtype, Na * d, false) : null;
    // dl overwrites the logits in place (kept from forward, or recomputed per chunk).
    const dl = keep ? logits : alloc(dtype, chunk * V, false);
    for (let r0 = 0; r0 < Na; r0 += chunk) {
      const n = Math.min(chunk, Na - r0);
      const hc = hA.subarray(r0 * d, (r0 + n) * d);
      if (!keep) gm(false, true, n, V, d, hc, 0, Wd, 0, dl, 0, 1, 1, 0);
      k.logSoftmaxGatherBackward(dl, tA.subarray(r0, r0 + n), lse.subarray(r0, r0 + n), gA.subarray(r0, r0 + n), dl, n, V);
      // dh = dlogits·W ; dW += dlogitsᵀ·h
      if (ghA) gm(false, false, n, d, V, dl, 0, Wd, 0, ghA.subarray(r0 * d, (r0 + n) * d), 0, 1, 1, 0);
      // Straight into W's gradient (beta 1): no V×d temporary (W is the tied embedding: 150+ MiB).
      if (W.requiresGrad) accumulateGradInPlace(W, (gw) => gm(true, false, V, d, n, dl, 0, hc, 0, gw, 0, 1, 1, 1));
    }
    if (!keep) release(dl);
    release(gA);
    if (ghA) {
      if (all) accumulateGrad(h, ghA);
      else {
        const gh = alloc(dtype, h.size);
        rowsA.forEach((r, i) => gh.set(ghA.subarray(i * d, (i + 1) * d), r * d));
        release(ghA);
        accumulateGrad(h, gh);
      }
    }
    // The kept logits and the compacted rows are scratch: released after backward (or at once
    // when this node never gets one).
  }, { saved: [h, W], scratch: [lse, ...(keep ? [logits] : []), ...(all ? [] : [hA])] });
}

function zerosLike1(n: number, dtype: DType): Tensor {
  return new Tensor(alloc(dtype, n), [n]);
}

/** Multiplies by a fixed 0/1-or-scale mask (same shape) with no gradient to the mask. */
export function maskMul(x: Tensor, mask: Buf): Tensor {
  if (mask.length !== x.size) fail('maskMul', `mask has ${mask.length} elements for ${shapeStr(x.shape)}`);
  const out = like(x);
  const X = x.data, O = out.data;
  for (let i = 0; i < X.length; i++) O[i] = X[i]! * mask[i]!;
  return record(out, 'maskMul', [x], (g) => {
    const gx = alloc(x.dtype, x.size, false);
    for (let i = 0; i < gx.length; i++) gx[i] = g[i]! * mask[i]!;
    accumulateGrad(x, gx);
  });
}

/**
 * Inverted dropout with probability p, using rand() in [0, 1) for each element (seeded by the
 * caller for reproducibility). Identity when p = 0 or grad is disabled (evaluation).
 */
export function dropout(x: Tensor, p: number, rand: () => number): Tensor {
  if (p <= 0 || !isTraining()) return x;
  if (p >= 1) fail('dropout', `p must be < 1, got ${p}`);
  const mask = alloc(x.dtype, x.size, false);
  const keep = 1 / (1 - p);
  for (let i = 0; i < mask.length; i++) mask[i] = rand() < p ? 0 : keep;
  return maskMul(x, mask);
}

/** Cos/sin tables [maxPos, headDim/2] for rope, with inverse frequencies invFreq[i]. */
export function makeRopeTables(maxPos: number, invFreq: ArrayLike<number>): { cos: Float32Array; sin: Float32Array } {
  const half = invFreq.length;
  const cos = new Float32Array(maxPos * half), sin = new Float32Array(maxPos * half);
  for (let p = 0; p < maxPos; p++) {
    for (let i = 0; i < half; i++) {
      const a = p * invFreq[i]!;
      cos[p * half + i] = Math.cos(a);
      sin[p * half + i] = Math.sin(a);
    }
  }
  return { cos, sin };
}

/** A copy of x that is a leaf (detached from the tape). */
export function detach(x: Tensor): Tensor {
  const out = like(x);
  out.data.set(x.data);
  return out;
}

/** Casts to another dtype (the result is detached unless dtypes match). */
export function toDtype(x: Tensor, dtype: DType): Tensor {
  if (x.dtype === dtype) return x;
  const out = empty(x.shape, dtype);
  out.data.set(x.data);
  return out;
}

/** x + b with b broadcast over every row of x (b's size = x's last dimension): biases. */
export function addRowVector(x: Tensor, b: Tensor): Tensor {
  const n = lastDim(x);
  if (b.size !== n) fail('addRowVector', `vector ${shapeStr(b.shape)} does not fit rows of ${shapeStr(x.shape)}`);
  const dtype = sameDtype('addRowVector', x, b);
  const rows = x.size / n;
  const out = like(x);
  const k = K(dtype);
  k.addRowVector(x.data, b.data, out.data, rows, n);
  return record(out, 'addRowVector', [x, b], (g) => {
    if (b.requiresGrad) {
      const gb = alloc(dtype, n);
      k.sumRows(g, gb, rows, n);
      accumulateGrad(b, gb);
    }
    // g's last use: x takes it over (no copy).
    if (x.requiresGrad) accumulateGrad(x, g);
  });
}
