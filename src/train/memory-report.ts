// The memory floor of training: the bytes the training state needs at the least — every weight
// once (policy, and the reference where it is a separate copy; buffers shared between them, e.g.
// tied embeddings, count once), a float32 gradient and the two float32 AdamW moments of each
// trainable element — against the process's peak resident set. Printed at the start of training
// and by the step bench (bench/step.ts).
import type { Tensor } from '../tensor/index.js';

export interface MemoryFloor {
  /** Policy weights (trainable and frozen), bytes. */
  weights: number;
  /** Gradients of the trainable weights (float32). */
  grads: number;
  /** AdamW's first and second moments (float32). */
  optimizer: number;
  /** Reference weights not shared with the policy (0 when it is the adapters-off base, precomputed, or absent). */
  reference: number;
  total: number;
}

function bytesOf(tensors: Iterable<Tensor>, seen: Set<ArrayBufferLike>): number {
  let n = 0;
  for (const t of tensors) {
    const buf = t.data.buffer;
    if (seen.has(buf)) continue;
    seen.add(buf);
    n += t.data.byteLength;
  }
  return n;
}

/**
 * The training-state floor. `policy`: every tensor of the trained model; `trainable`: those the
 * optimizer updates; `reference`: the reference model's tensors when it is held separately;
 * `frozenBf16Bytes`: bytes of linear weights stored only as bf16 (Linear.weightBf16).
 */
export function memoryFloor(policy: Iterable<Tensor>, trainable: readonly Tensor[], reference: Iterable<Tensor> | null, frozenBf16Bytes = 0): MemoryFloor {
  const seen = new Set<ArrayBufferLike>();
  // Weights kept only as bf16 (frozen_dtype) count in weights: their float32 tensors are empty.
  const weights = bytesOf(policy, seen) + frozenBf16Bytes;
  const reference_ = reference ? bytesOf(reference, seen) : 0;
  let elems = 0;
  for (const p of trainable) elems += p.size;
  const grads = 4 * elems, optimizer = 8 * elems;
  return { weights, grads, optimizer, reference: reference_, total: weights + grads + optimizer + reference_ };
}

/** Peak resident set of this process so far, bytes. */
export function peakRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}

const gib = (b: number): string => `${(b / 2 ** 30).toFixed(2)} GiB`;

/** One line: the floor, its parts, the peak RSS so far and their ratio. */
export function formatMemoryReport(f: MemoryFloor, peakRss = peakRssBytes()): string {
  return `memory: training-state floor ${gib(f.total)} (weights ${gib(f.weights)}, grads ${gib(f.grads)}, AdamW ${gib(f.optimizer)}, ` +
    `reference ${gib(f.reference)}); peak RSS so far ${gib(peakRss)} = ${(peakRss / f.total).toFixed(2)}× the floor`;
}
