// Portable reference for every non-GEMM, non-attention kernel of the contract (src/tensor/kernels.ts).
// This is the oracle the native kernels are tested against, so it favours plain, obviously correct
// loops over speed. It works on Float32Array and Float64Array alike: all arithmetic happens in JS
// numbers (float64) and is rounded only when stored, so sums, norms and log-sum-exps accumulate in
// float64 by construction.
//
// Degenerate rows: a softmax row whose entries are all −Infinity has no mass; it yields all zeros
// (like attention's fully masked rows) and logsumexp −Infinity, never NaN.
import type { ActKind, Buf, Kernels } from '../kernels.js';
import { Act } from '../kernels.js';

type IntBuf = Int32Array;

// ---------------------------------------------------------------------------------------------
// Argument checks: every kernel names itself, the buffer and the sizes involved.

function checkCount(kernel: string, name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0) {
    throw new RangeError(`${kernel}: ${name} must be a non-negative integer, got ${v}`);
  }
}

function checkLen(kernel: string, name: string, buf: { length: number }, need: number, what: string): void {
  if (buf.length < need) {
    throw new RangeError(`${kernel}: ${name} has ${buf.length} elements, needs ${need} (${what})`);
  }
}

// ---------------------------------------------------------------------------------------------
// Scalar math.

function sigmoid(x: number): number {
  // Two branches so exp never overflows: for x < 0 use e^x / (1 + e^x).
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

const TWO_OVER_SQRT_PI = 1.1283791670955126;
const INV_SQRT_PI = 0.5641895835477563;

/**
 * erf to about 1e-15 relative (JavaScript has no Math.erf). For |x| < 2.5 the series
 * erf(x) = 2/√π · e^(−x²) · Σ 2ⁿ x^(2n+1) / (1·3·…·(2n+1)), whose terms are all positive (no
 * cancellation); beyond, 1 − erfc(x) with erfc from its continued fraction.
 */
function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const ax = Math.abs(x);
  if (ax >= 2.5) return Math.sign(x) * (1 - erfcLarge(ax));
  const x2 = x * x;
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= (2 * x2) / (2 * n + 1);
    sum += term;
    if (Math.abs(term) < 1e-17 * Math.abs(sum)) break;
  }
  return TWO_OVER_SQRT_PI * Math.exp(-x2) * sum;
}

/** erfc accurate in relative terms also in the far tails (used by the exact GELU for x ≪ 0). */
function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x >= 2.5) return erfcLarge(x);
  if (x <= -2.5) return 2 - erfcLarge(-x);
  return 1 - erf(x);
}

/** erfc(x) for x ≥ 2.5: continued fraction e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))), Lentz's method. */
function erfcLarge(x: number): number {
  if (x === Infinity) return 0;
  const tiny = 1e-300;
  let f = x;
  let c = x;
  let d = 0;
  for (let n = 1; n < 500; n++) {
    const a = n / 2;
    d = x + a * d;
    d = d === 0 ? 1 / tiny : 1 / d;
    c = x + a / c;
    if (c === 0) c = tiny;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return (INV_SQRT_PI * Math.exp(-x * x)) / f;
}

const GELU_K = Math.sqrt(2 / Math.PI);
const GELU_C = 0.044715;
const INV_SQRT2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

function actForward(kind: ActKind, x: number): number {
  switch (kind) {
    case Act.silu:
      return x * sigmoid(x);
    case Act.geluTanh: {
      // 0.5·x·(1 + tanh(u)) = x·σ(2u): the σ form has no cancellation for x ≪ 0.
      const u = GELU_K * (x + GELU_C * x * x * x);
      return x * sigmoid(2 * u);
    }
    case Act.gelu:
      // Φ(x) = erfc(−x/√2)/2, accurate for x ≪ 0 where 1 + erf(·) would cancel.
      return 0.5 * x * erfc(-x * INV_SQRT2);
    case Act.relu:
      return x < 0 ? 0 : x;
    default:
      throw new RangeError(`activationForward: unknown activation kind ${kind as number}`);
  }
}

function actDerivative(kind: ActKind, x: number): number {
  switch (kind) {
    case Act.silu: {
      const s = sigmoid(x);
      return s * (1 + x * (1 - s));
    }
    case Act.geluTanh: {
      // d/dx [x·σ(2u)] = σ(2u) + x·2σ(2u)(1−σ(2u))·u'(x), u' = k(1 + 3c·x²).
      const u = GELU_K * (x + GELU_C * x * x * x);
      const s = sigmoid(2 * u);
      const du = GELU_K * (1 + 3 * GELU_C * x * x);
      return s + 2 * x * s * (1 - s) * du;
    }
    case Act.gelu:
      // Φ(x) + x·φ(x)
      return 0.5 * erfc(-x * INV_SQRT2) + x * INV_SQRT_2PI * Math.exp(-0.5 * x * x);
    case Act.relu:
      return x > 0 ? 1 : 0;
    default:
      throw new RangeError(`activationBackward: unknown activation kind ${kind as number}`);
  }
}

// ---------------------------------------------------------------------------------------------
// RMSNorm: y = x · rstd · w, rstd = 1/sqrt(mean(x²) + eps).

export function rmsnormForward(x: Buf, weight: Buf, out: Buf, rstd: Buf, rows: number, dim: number, eps: number): void {
  const K = 'rmsnormForward';
  checkCount(K, 'rows', rows);
  checkCount(K, 'dim', dim);
  const n = rows * dim;
  checkLen(K, 'x', x, n, `rows*dim = ${rows}*${dim}`);
  checkLen(K, 'weight', weight, dim, `dim = ${dim}`);
  checkLen(K, 'out', out, n, `rows*dim = ${rows}*${dim}`);
  checkLen(K, 'rstd', rstd, rows, `rows = ${rows}`);
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    let ss = 0;
    for (let j = 0; j < dim; j++) ss += x[o + j]! * x[o + j]!;
    const rs = 1 / Math.sqrt(ss / dim + eps);
    rstd[r] = rs;
    for (let j = 0; j < dim; j++) out[o + j] = x[o + j]! * rs * weight[j]!;
  }
}

export function rmsnormBackward(
  dy: Buf, x: Buf, weight: Buf, rstd: Buf, dx: Buf, dweight: Buf, rows: number, dim: number,
): void {
  const K = 'rmsnormBackward';
  checkCount(K, 'rows', rows);
  checkCount(K, 'dim', dim);
  const n = rows * dim;
  checkLen(K, 'dy', dy, n, `rows*dim = ${rows}*${dim}`);
  checkLen(K, 'x', x, n, `rows*dim = ${rows}*${dim}`);
  checkLen(K, 'weight', weight, dim, `dim = ${dim}`);
  checkLen(K, 'rstd', rstd, rows, `rows = ${rows}`);
  checkLen(K, 'dx', dx, n, `rows*dim = ${rows}*${dim}`);
  checkLen(K, 'dweight', dweight, dim, `dim = ${dim}`);
  const dw = new Float64Array(dim);
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    const rs = rstd[r]!;
    // dx_i = rs · (w_i·dy_i − x_i · rs² · Σ_j dy_j·w_j·x_j / dim)
    let dot = 0;
    for (let j = 0; j < dim; j++) dot += dy[o + j]! * weight[j]! * x[o + j]!;
    const c = (rs * rs * dot) / dim;
    for (let j = 0; j < dim; j++) {
      dw[j] += dy[o + j]! * x[o + j]! * rs;
      dx[o + j] = rs * (weight[j]! * dy[o + j]! - x[o + j]! * c);
    }
  }
  for (let j = 0; j < dim; j++) dweight[j] = dweight[j]! + dw[j]!;
}

// ---------------------------------------------------------------------------------------------
// LayerNorm: y = (x − mean) · rstd · w + b.

export function layernormForward(
  x: Buf, weight: Buf, bias: Buf, out: Buf, mean: Buf, rstd: Buf, rows: number, dim: number, eps: number,
): void {
  const K = 'layernormForward';
  checkCount(K, 'rows', rows);
  checkCount(K, 'dim', dim);
  const n = rows * dim;
  checkLen(K, 'x', x, n, `rows*dim = ${rows}*${dim}`);
  checkLen(K, 'weight', weight, dim, `dim = ${dim}`);
  checkLen(K, 'bias', bias, dim, `dim = ${dim}`);
  checkLen(K, 'out', out, n, `rows*dim = ${rows}*${dim}`);
  checkLen(K, 'mean', mean, rows, `rows = ${rows}`);
  checkLen(K, 'rstd', rstd, rows, `rows = ${rows}`);
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    let s = 0;
    for (let j = 0; j < dim; j++) s += x[o + j]!;
    const mu = s / dim;
    // Two-pass variance: no cancellation when |mean| ≫ std.
    let v = 0;
    for (let j = 0; j < dim; j++) v += (x[o + j]! - mu) * (x[o + j]! - mu);
    const rs = 1 / Math.sqrt(v / dim + eps);
    mean[r] = mu;
    rstd[r] = rs;
    for (let j = 0; j < dim; j++) out[o + j] = (x[o + j]! - mu) * rs * weight[j]! + bias[j]!;
  }
}

export function layernormBackward(
  dy: Buf, x: Buf, weight: Buf, mean: Buf, rstd: Buf, dx: Buf, dweight: Buf, dbias: Buf, rows: number, dim: number,
): void {
  const K = 'layernormBackward';
  checkCount(K, 'rows', rows);
  checkCount(K, 'dim', dim);
  const n = rows * dim;
  checkLen(K, 'dy', dy, n, `rows*dim = ${rows}*${dim}`);
  checkLen(K, 'x', x, n, `rows*dim = ${rows}*${dim}`);
  checkLen(K, 'weight', weight, dim, `dim = ${dim}`);
  checkLen(K, 'mean', mean, rows, `rows = ${rows}`);
  checkLen(K, 'rstd', rstd, rows, `rows = ${rows}`);
  checkLen(K, 'dx', dx, n, `rows*dim = ${rows}*${dim}`);
  checkLen(K, 'dweight', dweight, dim, `dim = ${dim}`);
  checkLen(K, 'dbias', dbias, dim, `dim = ${dim}`);
  const dw = new Float64Array(dim);
  const db = new Float64Array(dim);
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    const mu = mean[r]!;
    const rs = rstd[r]!;
    // With g = dy·w and xhat = (x − mean)·rstd:
    //   dx = rstd · (g − mean(g) − xhat · mean(g·xhat))
    let sg = 0;
    let sgx = 0;
    for (let j = 0; j < dim; j++) {
      const xhat = (x[o + j]! - mu) * rs;
      const g = dy[o + j]! * weight[j]!;
      sg += g;
      sgx += g * xhat;
    }
    const mg = sg / dim;
    const mgx = sgx / dim;
    for (let j = 0; j < dim; j++) {
      const xhat = (x[o + j]! - mu) * rs;
      const g = dy[o + j]! * weight[j]!;
      dw[j] += dy[o + j]! * xhat;
      db[j] += dy[o + j]!;
      dx[o + j] = rs * (g - mg - xhat * mgx);
    }
  }
  for (let j = 0; j < dim; j++) {
    dweight[j] = dweight[j]! + dw[j]!;
    dbias[j] = dbias[j]! + db[j]!;
  }
}

// ---------------------------------------------------------------------------------------------
// Rotary position embedding (rotate_half convention): pairs (i, i + half) of each head.

export function rope(
  x: Buf, out: Buf, cos: Buf, sin: Buf, positions: IntBuf,
  batch: number, seq: number, heads: number, headDim: number, inverse: boolean,
): void {
  const K = 'rope';
  checkCount(K, 'batch', batch);
  checkCount(K, 'seq', seq);
  checkCount(K, 'heads', heads);
  checkCount(K, 'headDim', headDim);
  if (headDim % 2 !== 0) throw new RangeError(`${K}: headDim must be even, got ${headDim}`);
  const half = headDim / 2;
  const n = batch * seq * heads * headDim;
  const what = `batch*seq*heads*headDim = ${batch}*${seq}*${heads}*${headDim}`;
  checkLen(K, 'x', x, n, what);
  checkLen(K, 'out', out, n, what);
  checkLen(K, 'positions', positions, batch * seq, `batch*seq = ${batch}*${seq}`);
  if (cos.length !== sin.length) {
    throw new RangeError(`${K}: cos has ${cos.length} elements but sin has ${sin.length}`);
  }
  const maxPos = half > 0 ? Math.floor(cos.length / half) : 0;
  const sign = inverse ? -1 : 1;
  for (let bt = 0; bt < batch * seq; bt++) {
    const p = positions[bt]!;
    if (half > 0 && (p < 0 || p >= maxPos)) {
      throw new RangeError(`${K}: positions[${bt}] = ${p} is outside the cos/sin table [0, ${maxPos})`);
    }
    for (let h = 0; h < heads; h++) {
      const o = (bt * heads + h) * headDim;
      for (let i = 0; i < half; i++) {
        const c = cos[p * half + i]!;
        const s = sign * sin[p * half + i]!;
        const x1 = x[o + i]!;
        const x2 = x[o + half + i]!;
        // Read both halves before writing: out may be x.
        out[o + i] = x1 * c - x2 * s;
        out[o + half + i] = x2 * c + x1 * s;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Elementwise activations.

export function activationForward(kind: ActKind, x: Buf, out: Buf, n: number): void {
  const K = 'activationForward';
  checkCount(K, 'n', n);
  checkLen(K, 'x', x, n, `n = ${n}`);
  checkLen(K, 'out', out, n, `n = ${n}`);
  actForward(kind, 0); // rejects an unknown kind even when n = 0
  for (let i = 0; i < n; i++) out[i] = actForward(kind, x[i]!);
}

export function activationBackward(kind: ActKind, x: Buf, dy: Buf, dx: Buf, n: number): void {
  const K = 'activationBackward';
  checkCount(K, 'n', n);
  checkLen(K, 'x', x, n, `n = ${n}`);
  checkLen(K, 'dy', dy, n, `n = ${n}`);
  checkLen(K, 'dx', dx, n, `n = ${n}`);
  actDerivative(kind, 0);
  for (let i = 0; i < n; i++) dx[i] = dy[i]! * actDerivative(kind, x[i]!);
}

export function swigluForward(gate: Buf, up: Buf, out: Buf, n: number): void {
  const K = 'swigluForward';
  checkCount(K, 'n', n);
  checkLen(K, 'gate', gate, n, `n = ${n}`);
  checkLen(K, 'up', up, n, `n = ${n}`);
  checkLen(K, 'out', out, n, `n = ${n}`);
  for (let i = 0; i < n; i++) {
    const g = gate[i]!;
    out[i] = g * sigmoid(g) * up[i]!;
  }
}

export function swigluBackward(gate: Buf, up: Buf, dy: Buf, dgate: Buf, dup: Buf, n: number): void {
  const K = 'swigluBackward';
  checkCount(K, 'n', n);
  checkLen(K, 'gate', gate, n, `n = ${n}`);
  checkLen(K, 'up', up, n, `n = ${n}`);
  checkLen(K, 'dy', dy, n, `n = ${n}`);
  checkLen(K, 'dgate', dgate, n, `n = ${n}`);
  checkLen(K, 'dup', dup, n, `n = ${n}`);
  for (let i = 0; i < n; i++) {
    const g = gate[i]!;
    const u = up[i]!;
    const d = dy[i]!;
    const s = sigmoid(g);
    dgate[i] = d * u * s * (1 + g * (1 - s));
    dup[i] = d * g * s;
  }
}

// ---------------------------------------------------------------------------------------------
// Softmax and the fused log-softmax + gather.

export function softmaxForward(x: Buf, out: Buf, rows: number, cols: number): void {
  const K = 'softmaxForward';
  checkCount(K, 'rows', rows);
  checkCount(K, 'cols', cols);
  checkLen(K, 'x', x, rows * cols, `rows*cols = ${rows}*${cols}`);
  checkLen(K, 'out', out, rows * cols, `rows*cols = ${rows}*${cols}`);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let m = -Infinity;
    for (let j = 0; j < cols; j++) m = Math.max(m, x[o + j]!);
    if (m === -Infinity) {
      for (let j = 0; j < cols; j++) out[o + j] = 0;
      continue;
    }
    // Keep the exponentials in float64 until normalized (out may be Float32Array and may be x).
    const e = new Float64Array(cols);
    let sum = 0;
    for (let j = 0; j < cols; j++) {
      e[j] = Math.exp(x[o + j]! - m);
      sum += e[j]!;
    }
    for (let j = 0; j < cols; j++) out[o + j] = e[j]! / sum;
  }
}

export function softmaxBackward(y: Buf, dy: Buf, dx: Buf, rows: number, cols: number): void {
  const K = 'softmaxBackward';
  checkCount(K, 'rows', rows);
  checkCount(K, 'cols', cols);
  const what = `rows*cols = ${rows}*${cols}`;
  checkLen(K, 'y', y, rows * cols, what);
  checkLen(K, 'dy', dy, rows * cols, what);
  checkLen(K, 'dx', dx, rows * cols, what);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let dot = 0;
    for (let j = 0; j < cols; j++) dot += dy[o + j]! * y[o + j]!;
    for (let j = 0; j < cols; j++) dx[o + j] = y[o + j]! * (dy[o + j]! - dot);
  }
}

/** logsumexp of x[o, o + n): max-subtracted; −Infinity for an empty or all −Infinity row. */
function logSumExp(x: Buf, o: number, n: number): number {
  let m = -Infinity;
  for (let j = 0; j < n; j++) m = Math.max(m, x[o + j]!);
  if (m === -Infinity) return -Infinity;
  let sum = 0;
  for (let j = 0; j < n; j++) sum += Math.exp(x[o + j]! - m);
  return m + Math.log(sum);
}

function checkTargets(kernel: string, targets: IntBuf, rows: number, vocab: number): void {
  for (let r = 0; r < rows; r++) {
    const t = targets[r]!;
    if (t >= vocab) throw new RangeError(`${kernel}: targets[${r}] = ${t} is out of range for vocab ${vocab}`);
  }
}

export function logSoftmaxGather(logits: Buf, targets: IntBuf, logp: Buf, lse: Buf, rows: number, vocab: number): void {
  const K = 'logSoftmaxGather';
  checkCount(K, 'rows', rows);
  checkCount(K, 'vocab', vocab);
  checkLen(K, 'logits', logits, rows * vocab, `rows*vocab = ${rows}*${vocab}`);
  checkLen(K, 'targets', targets, rows, `rows = ${rows}`);
  checkLen(K, 'logp', logp, rows, `rows = ${rows}`);
  checkLen(K, 'lse', lse, rows, `rows = ${rows}`);
  checkTargets(K, targets, rows, vocab);
  for (let r = 0; r < rows; r++) {
    const l = logSumExp(logits, r * vocab, vocab);
    lse[r] = l;
    const t = targets[r]!;
    if (t < 0) logp[r] = 0;
    else logp[r] = l === -Infinity ? -Infinity : logits[r * vocab + t]! - l;
  }
}

export function logSoftmaxGatherBackward(
  logits: Buf, targets: IntBuf, lse: Buf, dlogp: Buf, dlogits: Buf, rows: number, vocab: number,
): void {
  const K = 'logSoftmaxGatherBackward';
  checkCount(K, 'rows', rows);
  checkCount(K, 'vocab', vocab);
  checkLen(K, 'logits', logits, rows * vocab, `rows*vocab = ${rows}*${vocab}`);
  checkLen(K, 'targets', targets, rows, `rows = ${rows}`);
  checkLen(K, 'lse', lse, rows, `rows = ${rows}`);
  checkLen(K, 'dlogp', dlogp, rows, `rows = ${rows}`);
  checkLen(K, 'dlogits', dlogits, rows * vocab, `rows*vocab = ${rows}*${vocab}`);
  checkTargets(K, targets, rows, vocab);
  for (let r = 0; r < rows; r++) {
    const o = r * vocab;
    const t = targets[r]!;
    if (t < 0) {
      for (let j = 0; j < vocab; j++) dlogits[o + j] = 0;
      continue;
    }
    const g = dlogp[r]!;
    const l = lse[r]!;
    for (let j = 0; j < vocab; j++) {
      const p = l === -Infinity ? 0 : Math.exp(logits[o + j]! - l);
      dlogits[o + j] = (j === t ? g : 0) - g * p;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Embedding lookup.

function checkIds(kernel: string, ids: IntBuf, n: number, tableRows: number): void {
  for (let i = 0; i < n; i++) {
    const id = ids[i]!;
    if (id < 0 || id >= tableRows) {
      throw new RangeError(`${kernel}: ids[${i}] = ${id} is outside the table's ${tableRows} rows`);
    }
  }
}

export function embeddingForward(ids: IntBuf, table: Buf, out: Buf, n: number, dim: number): void {
  const K = 'embeddingForward';
  checkCount(K, 'n', n);
  checkCount(K, 'dim', dim);
  checkLen(K, 'ids', ids, n, `n = ${n}`);
  checkLen(K, 'out', out, n * dim, `n*dim = ${n}*${dim}`);
  const tableRows = dim > 0 ? Math.floor(table.length / dim) : 0;
  checkIds(K, ids, n, tableRows);
  for (let i = 0; i < n; i++) {
    const src = ids[i]! * dim;
    for (let j = 0; j < dim; j++) out[i * dim + j] = table[src + j]!;
  }
}

export function embeddingBackward(ids: IntBuf, dy: Buf, dtable: Buf, n: number, dim: number): void {
  const K = 'embeddingBackward';
  checkCount(K, 'n', n);
  checkCount(K, 'dim', dim);
  checkLen(K, 'ids', ids, n, `n = ${n}`);
  checkLen(K, 'dy', dy, n * dim, `n*dim = ${n}*${dim}`);
  const tableRows = dim > 0 ? Math.floor(dtable.length / dim) : 0;
  checkIds(K, ids, n, tableRows);
  for (let i = 0; i < n; i++) {
    const dst = ids[i]! * dim;
    for (let j = 0; j < dim; j++) dtable[dst + j] = dtable[dst + j]! + dy[i * dim + j]!;
  }
}

// ---------------------------------------------------------------------------------------------
// Optimizer and vector helpers.

export function adamw(
  param: Buf, grad: Buf, m: Buf, v: Buf, n: number,
  lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, bc1: number, bc2: number,
): void {
  const K = 'adamw';
  checkCount(K, 'n', n);
  checkLen(K, 'param', param, n, `n = ${n}`);
  checkLen(K, 'grad', grad, n, `n = ${n}`);
  checkLen(K, 'm', m, n, `n = ${n}`);
  checkLen(K, 'v', v, n, `n = ${n}`);
  for (let i = 0; i < n; i++) {
    const g = grad[i]!;
    const mi = beta1 * m[i]! + (1 - beta1) * g;
    const vi = beta2 * v[i]! + (1 - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const p = param[i]!;
    param[i] = p - lr * (mi / bc1 / (Math.sqrt(vi / bc2) + eps) + weightDecay * p);
  }
}

export function sumSquares(x: Buf, n: number): number {
  checkCount('sumSquares', 'n', n);
  checkLen('sumSquares', 'x', x, n, `n = ${n}`);
  let s = 0;
  for (let i = 0; i < n; i++) s += x[i]! * x[i]!;
  return s;
}

export function scale(x: Buf, n: number, s: number): void {
  checkCount('scale', 'n', n);
  checkLen('scale', 'x', x, n, `n = ${n}`);
  for (let i = 0; i < n; i++) x[i] = x[i]! * s;
}

export function add(a: Buf, b: Buf, out: Buf, n: number): void {
  checkCount('add', 'n', n);
  checkLen('add', 'a', a, n, `n = ${n}`);
  checkLen('add', 'b', b, n, `n = ${n}`);
  checkLen('add', 'out', out, n, `n = ${n}`);
  for (let i = 0; i < n; i++) out[i] = a[i]! + b[i]!;
}

export function mul(a: Buf, b: Buf, out: Buf, n: number): void {
  checkCount('mul', 'n', n);
  checkLen('mul', 'a', a, n, `n = ${n}`);
  checkLen('mul', 'b', b, n, `n = ${n}`);
  checkLen('mul', 'out', out, n, `n = ${n}`);
  for (let i = 0; i < n; i++) out[i] = a[i]! * b[i]!;
}

export function axpy(alpha: number, x: Buf, y: Buf, n: number): void {
  checkCount('axpy', 'n', n);
  checkLen('axpy', 'x', x, n, `n = ${n}`);
  checkLen('axpy', 'y', y, n, `n = ${n}`);
  for (let i = 0; i < n; i++) y[i] = y[i]! + alpha * x[i]!;
}

export function addRowVector(x: Buf, b: Buf, out: Buf, rows: number, n: number): void {
  const K = 'addRowVector';
  checkCount(K, 'rows', rows);
  checkCount(K, 'n', n);
  checkLen(K, 'x', x, rows * n, `rows*n = ${rows}*${n}`);
  checkLen(K, 'b', b, n, `n = ${n}`);
  checkLen(K, 'out', out, rows * n, `rows*n = ${rows}*${n}`);
  for (let r = 0; r < rows; r++) for (let j = 0; j < n; j++) out[r * n + j] = x[r * n + j]! + b[j]!;
}

export function sumRows(x: Buf, out: Buf, rows: number, n: number): void {
  const K = 'sumRows';
  checkCount(K, 'rows', rows);
  checkCount(K, 'n', n);
  checkLen(K, 'x', x, rows * n, `rows*n = ${rows}*${n}`);
  checkLen(K, 'out', out, n, `n = ${n}`);
  for (let j = 0; j < n; j++) {
    let s = 0;
    for (let r = 0; r < rows; r++) s += x[r * n + j]!;
    out[j] = out[j]! + s;
  }
}

export function copy2d(src: Buf, srcStride: number, dst: Buf, dstStride: number, rows: number, cols: number, accumulate: boolean): void {
  const K = 'copy2d';
  checkCount(K, 'rows', rows);
  checkCount(K, 'cols', cols);
  checkCount(K, 'srcStride', srcStride);
  checkCount(K, 'dstStride', dstStride);
  if (rows > 0 && cols > 0) {
    checkLen(K, 'src', src, (rows - 1) * srcStride + cols, `(rows-1)*stride+cols = (${rows}-1)*${srcStride}+${cols}`);
    checkLen(K, 'dst', dst, (rows - 1) * dstStride + cols, `(rows-1)*stride+cols = (${rows}-1)*${dstStride}+${cols}`);
  }
  for (let r = 0; r < rows; r++) {
    const s0 = r * srcStride, d0 = r * dstStride;
    if (accumulate) for (let c = 0; c < cols; c++) dst[d0 + c] = dst[d0 + c]! + src[s0 + c]!;
    else for (let c = 0; c < cols; c++) dst[d0 + c] = src[s0 + c]!;
  }
}

// Compile-time check that this module provides exactly the contract's signatures.
const _contract: Pick<
  Kernels,
  | 'rmsnormForward' | 'rmsnormBackward' | 'layernormForward' | 'layernormBackward' | 'rope'
  | 'activationForward' | 'activationBackward' | 'swigluForward' | 'swigluBackward'
  | 'softmaxForward' | 'softmaxBackward' | 'logSoftmaxGather' | 'logSoftmaxGatherBackward'
  | 'embeddingForward' | 'embeddingBackward' | 'adamw' | 'sumSquares' | 'scale' | 'add' | 'mul' | 'axpy'
  | 'addRowVector' | 'sumRows' | 'copy2d'
> = {
  rmsnormForward, rmsnormBackward, layernormForward, layernormBackward, rope,
  activationForward, activationBackward, swigluForward, swigluBackward,
  softmaxForward, softmaxBackward, logSoftmaxGather, logSoftmaxGatherBackward,
  embeddingForward, embeddingBackward, adamw, sumSquares, scale, add, mul, axpy,
  addRowVector, sumRows, copy2d,
};
void _contract;
