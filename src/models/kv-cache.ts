// The key/value cache of cached (incremental) inference: part of the CausalLM contract (model.ts),
// filled by the decoders (decoder.ts). Imports nothing from src/models, so the contract and the
// implementation can both name it without an import circle. Its buffers come from the tensor pool
// and go back with dispose() (a generation batch's cache, allocated fresh per batch, otherwise
// waited in glibc's heap for the garbage collector).

import { alloc, release } from '../tensor/memory.js';

/** Keys and values of past tokens, per layer: [batch, capacity, kvHeads, headDim]. */
export class KVCache {
  readonly k: Float32Array[];
  readonly v: Float32Array[];
  /** Tokens stored so far (the same for every row). */
  length = 0;

  constructor(
    readonly layers: number,
    readonly batch: number,
    readonly capacity: number,
    readonly kvHeads: number,
    readonly headDim: number,
  ) {
    const n = batch * capacity * kvHeads * headDim;
    this.k = Array.from({ length: layers }, () => alloc('float32', n) as Float32Array);
    this.v = Array.from({ length: layers }, () => alloc('float32', n) as Float32Array);
  }

  private disposed = false;

  /** Returns the buffers to the tensor pool; the cache must not be used afterwards. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const b of this.k) release(b);
    for (const b of this.v) release(b);
  }

  get batchStride(): number {
    return this.capacity * this.kvHeads * this.headDim;
  }

  /** Copies new keys/values [batch, tNew, kvHeads, headDim] of one layer at the current length. */
  write(layer: number, k: Float32Array, v: Float32Array, tNew: number): void {
    if (this.disposed) throw new Error('KV cache used after dispose()');
    if (this.length + tNew > this.capacity) {
      throw new RangeError(`KV cache full: ${this.length} + ${tNew} tokens exceed its capacity ${this.capacity}`);
    }
    const row = this.kvHeads * this.headDim;
    for (let b = 0; b < this.batch; b++) {
      const src = b * tNew * row;
      const dst = b * this.batchStride + this.length * row;
      this.k[layer]!.set(k.subarray(src, src + tNew * row), dst);
      this.v[layer]!.set(v.subarray(src, src + tNew * row), dst);
    }
  }
}
