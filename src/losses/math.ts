// Scalar float64 helpers for the preference losses. Every one is written so that it never
// overflows or produces NaN for finite inputs, however large: the losses are fed log-probs of
// hundreds of tokens, so β·h of several hundred (or thousand) is an ordinary value.

// softplus(x) = log(1 + e^x). For x > 0 rewrite as x + log(1 + e^-x) so e^x never overflows;
// log1p keeps full precision when e^x (or e^-x) is tiny.
export function softplus(x: number): number {
  return x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x));
}

// log σ(x) = −softplus(−x).
export function logSigmoid(x: number): number {
  return -softplus(-x);
}

// σ(x) = 1 / (1 + e^-x), evaluated on the side where the exponential is ≤ 1.
export function sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

// σ'(x) = σ(x)·σ(−x) = e^-|x| / (1 + e^-|x|)²; exact for large |x| where σ(x)·(1 − σ(x)) would
// lose everything to the rounding of 1 − σ(x).
export function sigmoidGrad(x: number): number {
  const e = Math.exp(-Math.abs(x));
  const d = 1 + e;
  return e / (d * d);
}

// log(1 − e^x) for x < 0, switching formulas at −ln 2 as in Mächler (2012), "Accurately computing
// log(1 − exp(−|a|))" — the same split as TRL's ORPO log1mexp.
export function log1mexp(x: number): number {
  return x < -Math.LN2 ? Math.log1p(-Math.exp(x)) : Math.log(-Math.expm1(x));
}

// d/dx log(1 − e^x) = −e^x / (1 − e^x) = 1 / (1 − e^-x) = −1 / expm1(−x), x < 0.
export function log1mexpGrad(x: number): number {
  return -1 / Math.expm1(-x);
}

// Levenshtein distance, for "did you mean" suggestions on unknown names.
export function editDistance(a: string, b: string): number {
  const prev = new Array<number>(b.length + 1);
  const cur = new Array<number>(b.length + 1);
  for (let j = 0; j <= b.length; j++) prev[j] = j;
  for (let i = 1; i <= a.length; i++) {
    cur[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const sub = prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1);
      cur[j] = Math.min(sub, prev[j] + 1, cur[j - 1] + 1);
    }
    for (let j = 0; j <= b.length; j++) prev[j] = cur[j];
  }
  return prev[b.length];
}

// Indices 0..n-1 ordered by ascending value; ties keep index order so results are deterministic
// (torch.sort makes no promise on ties; the loss value does not depend on the tie order).
export function argsortAscending(values: Float64Array): Int32Array {
  const idx = Array.from({ length: values.length }, (_, i) => i);
  idx.sort((a, b) => values[a] - values[b] || a - b);
  return Int32Array.from(idx);
}
