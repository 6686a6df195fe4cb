// Tolerance assertions for numeric arrays, with messages that point at the worst element.
import assert from 'node:assert/strict';

export interface CloseOptions {
  /** relative tolerance (per element, against |expected|) */
  rtol?: number;
  /** absolute tolerance */
  atol?: number;
  /** prefix for the failure message */
  label?: string;
}

/**
 * Passes when |actual − expected| ≤ atol + rtol·|expected| for every element. Non-finite values
 * must match exactly (NaN with NaN, ±Infinity with the same sign).
 */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, opts: CloseOptions = {}): void {
  const { rtol = 1e-6, atol = 0, label = 'values' } = opts;
  assert.equal(actual.length, expected.length, `${label}: length ${actual.length} != expected ${expected.length}`);
  let bad = 0;
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (!Number.isFinite(a) || !Number.isFinite(e)) {
      if (Object.is(a, e) || (a === e)) continue;
      bad++;
      if (worst < 0 || worstExcess !== Infinity) {
        worst = i;
        worstExcess = Infinity;
      }
      continue;
    }
    const err = Math.abs(a - e);
    const tol = atol + rtol * Math.abs(e);
    if (err > tol) {
      bad++;
      const excess = err / (tol || Number.MIN_VALUE);
      if (excess > worstExcess) {
        worstExcess = excess;
        worst = i;
      }
    }
  }
  if (bad > 0) {
    const a = actual[worst]!;
    const e = expected[worst]!;
    assert.fail(
      `${label}: ${bad} of ${actual.length} elements out of tolerance (rtol ${rtol}, atol ${atol}); ` +
        `worst [${worst}]: actual ${a}, expected ${e}, |diff| ${Math.abs(a - e)}`,
    );
  }
}

/** Scalar version of assertClose. */
export function assertCloseScalar(actual: number, expected: number, opts: CloseOptions = {}): void {
  assertClose([actual], [expected], opts);
}

/** Byte-for-byte equality of two typed arrays (bit-identical floats, NaN payloads included). */
export function assertBitIdentical(actual: ArrayBufferView, expected: ArrayBufferView, label = 'values'): void {
  const a = new Uint8Array(actual.buffer, actual.byteOffset, actual.byteLength);
  const e = new Uint8Array(expected.buffer, expected.byteOffset, expected.byteLength);
  assert.equal(a.length, e.length, `${label}: byte length ${a.length} != ${e.length}`);
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== e[i]) {
      const bpe = (actual as unknown as { BYTES_PER_ELEMENT?: number }).BYTES_PER_ELEMENT ?? 1;
      const idx = Math.floor(i / bpe);
      const av = (actual as unknown as ArrayLike<number>)[idx];
      const ev = (expected as unknown as ArrayLike<number>)[idx];
      assert.fail(`${label}: not bit-identical at element ${idx}: ${av} vs ${ev}`);
    }
  }
}
