// Numerical helpers for gradient checks (use float64 buffers: central differences with h ≈ 1e-6
// need the precision).

export type FloatBuf = Float32Array | Float64Array;

/**
 * Central-difference gradient of a scalar function with respect to every element of x:
 * (f(x + h·e_i) − f(x − h·e_i)) / 2h. `loss` must read x afresh on every call; x is restored.
 */
export function numericGradient(loss: () => number, x: FloatBuf, h = 1e-6): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const orig = x[i]!;
    x[i] = orig + h;
    const fp = loss();
    x[i] = orig - h;
    const fm = loss();
    x[i] = orig;
    g[i] = (fp - fm) / (2 * h);
  }
  return g;
}

/** Σ a·b in float64. */
export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`dot: lengths differ (${a.length} vs ${b.length})`);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/** max |x|. */
export function maxAbs(x: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]!));
  return m;
}

/** Elementwise a − b as float64. */
export function sub(a: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  if (a.length !== b.length) throw new RangeError(`sub: lengths differ (${a.length} vs ${b.length})`);
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! - b[i]!;
  return out;
}

export function toF32(x: ArrayLike<number>): Float32Array {
  return Float32Array.from(x);
}

export function toF64(x: ArrayLike<number>): Float64Array {
  return Float64Array.from(x);
}

/** n float32 values uniform in [−1, 1) from the generator r (returns values in [0, 1)). */
export function uniformF32(n: number, r: () => number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = r() * 2 - 1;
  return x;
}
