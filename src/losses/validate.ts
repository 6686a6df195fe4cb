// Input checks shared by the loss functions: every error names the loss, the field and the shape
// or the offending index, so a trainer bug is found from the message alone.

export function checkLogps(where: string, field: string, a: unknown, n: number): asserts a is Float64Array {
  if (!(a instanceof Float64Array)) {
    throw new Error(`${where}: ${field} must be a Float64Array (got ${describe(a)})`);
  }
  if (a.length !== n) {
    throw new Error(`${where}: ${field} has length ${a.length}, expected ${n} (one entry per pair)`);
  }
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(a[i])) throw new Error(`${where}: ${field}[${i}] is ${a[i]}; log-probs must be finite`);
  }
}

/** Token counts: integers ≥ min (1 where the loss divides by them). */
export function checkCounts(where: string, field: string, a: unknown, n: number, min: number): asserts a is ArrayLike<number> {
  if (a === null || typeof a !== 'object' || typeof (a as ArrayLike<number>).length !== 'number') {
    throw new Error(`${where}: ${field} must be an array of token counts (got ${describe(a)})`);
  }
  const arr = a as ArrayLike<number>;
  if (arr.length !== n) {
    throw new Error(`${where}: ${field} has length ${arr.length}, expected ${n} (one entry per pair)`);
  }
  for (let i = 0; i < n; i++) {
    const v = arr[i];
    if (!Number.isInteger(v) || v < min) {
      throw new Error(`${where}: ${field}[${i}] is ${v}; token counts must be integers ≥ ${min}`);
    }
  }
}

export function checkParam(where: string, name: string, v: number, ok: boolean, rule: string): void {
  if (!Number.isFinite(v) || !ok) throw new Error(`${where}: ${name} = ${v} is invalid; it must be ${rule}`);
}

function describe(a: unknown): string {
  if (a === undefined) return 'undefined';
  if (a === null) return 'null';
  if (ArrayBuffer.isView(a)) return `${a.constructor.name}`;
  if (Array.isArray(a)) return `Array(${a.length})`;
  return typeof a;
}
