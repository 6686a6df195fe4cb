// Tensor storage: every tensor buffer is allocated here, so the process can report the bytes
// held by tensors (current and peak) and reuse freed buffers instead of waiting for the GC.
//
// Lifetime: a buffer is either released explicitly (release(), called by the autograd tape as soon
// as a saved activation or an intermediate gradient is no longer needed, or by Tensor.dispose()),
// or, when its tensor is simply dropped, reclaimed by the garbage collector (counted through a
// FinalizationRegistry). Released buffers go to a size-keyed pool and are handed out again.

import type { Buf } from './kernels.js';

export type DType = 'float32' | 'float64';

let currentBytes = 0;
let peakBytes = 0;
let pooledBytes = 0;
/** Upper bound on the bytes kept in the pool (beyond it, released buffers go to the GC). */
let poolLimitBytes = Number(process.env.DPO_POOL_LIMIT_MB ?? 4096) * 1024 * 1024;

const pools = new Map<string, Buf[]>();
// Buffers handed out and not yet released. A WeakSet does not keep them alive; the registry
// notices when the GC takes one that was never released.
const live = new WeakSet<Buf>();
const registry = new FinalizationRegistry<number>((bytes) => {
  currentBytes -= bytes;
});

function key(dtype: DType, n: number): string {
  return dtype === 'float32' ? `f${n}` : `d${n}`;
}

/**
 * A buffer of n elements. zero = true guarantees zeros (a fresh buffer is zero; a pooled one is
 * cleared); zero = false leaves pooled contents, for outputs the kernel overwrites entirely.
 */
export function alloc(dtype: DType, n: number, zero = true): Buf {
  const pool = pools.get(key(dtype, n));
  let buf: Buf;
  const bytes = n * (dtype === 'float32' ? 4 : 8);
  if (pool && pool.length > 0) {
    buf = pool.pop()!;
    pooledBytes -= bytes;
    if (zero) buf.fill(0);
  } else {
    buf = dtype === 'float32' ? new Float32Array(n) : new Float64Array(n);
  }
  live.add(buf);
  const token = {};
  registry.register(buf, bytes, token);
  tokens.set(buf, token);
  currentBytes += bytes;
  if (currentBytes > peakBytes) peakBytes = currentBytes;
  return buf;
}

const tokens = new WeakMap<Buf, object>();

/**
 * Returns a buffer to the pool. The caller guarantees nothing reads or writes it afterwards.
 * Releasing a buffer that did not come from alloc() (or twice) is ignored.
 */
export function release(buf: Buf): void {
  if (!live.has(buf)) return;
  live.delete(buf);
  const token = tokens.get(buf);
  if (token) registry.unregister(token);
  tokens.delete(buf);
  const bytes = buf.byteLength;
  currentBytes -= bytes;
  // Only whole buffers are pooled (views into a larger allocation are not ours to reuse).
  if (buf.byteOffset !== 0 || buf.buffer.byteLength !== bytes) return;
  if (pooledBytes + bytes > poolLimitBytes) return;
  const k = key(buf instanceof Float32Array ? 'float32' : 'float64', buf.length);
  let pool = pools.get(k);
  if (!pool) pools.set(k, (pool = []));
  pool.push(buf);
  pooledBytes += bytes;
}

export interface MemoryStats {
  /** Bytes in tensor buffers handed out and not yet released or collected. */
  currentBytes: number;
  /** Highest currentBytes since start (or resetPeak()). */
  peakBytes: number;
  /** Bytes kept in the reuse pool. */
  pooledBytes: number;
}

export function memoryStats(): MemoryStats {
  return { currentBytes, peakBytes, pooledBytes };
}

export function resetPeak(): void {
  peakBytes = currentBytes;
}

/** Drops every pooled buffer (to the GC). */
export function clearPool(): void {
  pools.clear();
  pooledBytes = 0;
}

export function setPoolLimit(bytes: number): void {
  poolLimitBytes = bytes;
  if (pooledBytes > bytes) clearPool();
}
