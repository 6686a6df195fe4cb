// Ops on weights stored once as bfloat16 (frozen: a reference model, a LoRA base). The weight is
// a Uint16Array of bf16 bit patterns in the Hugging Face Linear layout [out, in]; the input is
// float32 and is rounded to bf16 inside the GEMM (float32 accumulation). The weight gets no
// gradient; the input does (dX = dY·W, also on the bf16 GEMM).
import { alloc } from './memory.js';
import { f32ToBf16 } from './bf16.js';
import { kernels } from './backend.js';
import { Tensor, accumulateGrad, empty, record, shapeStr } from './tensor.js';

/** y = x·Wᵀ + bias with W [outF, inF] stored as bf16; x: [..., inF] float32. */
export function linearFrozenBf16(x: Tensor, w: Uint16Array, outF: number, bias: Tensor | null): Tensor {
  const inF = x.shape[x.shape.length - 1]!;
  if (x.dtype !== 'float32') throw new Error(`linearFrozenBf16: input must be float32, got ${x.dtype}`);
  if (w.length !== outF * inF) throw new Error(`linearFrozenBf16: weight has ${w.length} elements, input ${shapeStr(x.shape)} needs [${outF}, ${inF}]`);
  if (bias && bias.size !== outF) throw new Error(`linearFrozenBf16: bias has ${bias.size} elements, expected ${outF}`);
  const k = kernels();
  const rows = x.size / inF;
  const out = empty([...x.shape.slice(0, -1), outF]);
  k.gemmBf16(false, true, rows, outF, inF, x.data, 0, w, 0, out.data, 0, 1, 1, 0);
  if (bias) k.addRowVector(out.data, bias.data, out.data, rows, outF);
  return record(out, 'linearFrozenBf16', [x], (g) => {
    const gx = alloc('float32', x.size, false);
    k.gemmBf16(false, false, rows, inF, outF, g, 0, w, 0, gx, 0, 1, 1, 0);
    accumulateGrad(x, gx);
  });
}

// Frozen tensors stored only as bf16 (frozen_dtype: bfloat16 for embeddings: a LoRA base's token
// embedding, which is also its tied LM head). The tensor keeps its shape and name; its float32
// data is released and the bf16 bits live here. embedding() and lmHeadLogprobs() read them (the
// LM head's products then run on the bf16 GEMM); anything needing the float32 values (training,
// export, merging) is refused by bf16StorageError.
const frozenBf16 = new WeakMap<Tensor, Uint16Array>();

/** The bf16 bits of a tensor stored by storeTensorAsBf16, or undefined. */
export function bf16Storage(t: Tensor): Uint16Array | undefined {
  return frozenBf16.get(t);
}

/** Keeps a frozen float32 tensor only as bf16 (round-to-nearest-even); returns the bf16 bytes (0 if already stored). */
export function storeTensorAsBf16(t: Tensor): number {
  if (frozenBf16.has(t)) return 0;
  if (t.requiresGrad) throw new Error(`${t.name ?? 'tensor'}: only a frozen tensor can be stored as bf16`);
  if (!(t.data instanceof Float32Array)) throw new Error(`${t.name ?? 'tensor'}: only float32 tensors can be stored as bf16, got ${t.dtype}`);
  const bits = f32ToBf16(t.data);
  frozenBf16.set(t, bits);
  t.data = new Float32Array(0);
  return bits.byteLength;
}

/** Throws when a tensor's float32 values are gone (stored as bf16): `what` names the operation. */
export function bf16StorageError(t: Tensor, what: string): void {
  if (frozenBf16.has(t)) throw new Error(`${t.name ?? 'tensor'} is stored as bf16 (frozen_dtype: bfloat16): cannot ${what}`);
}

/** Rows of a bf16-stored embedding table [V, D] for ids (no gradient: the table is frozen). */
export function embeddingFromBf16(table: Uint16Array, V: number, D: number, ids: Int32Array, idsShape: readonly number[]): Tensor {
  const out = empty([...idsShape, D]);
  const o = new Uint32Array(out.data.buffer, out.data.byteOffset, out.data.length);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (id < 0 || id >= V) throw new RangeError(`embedding: id ${id} at position ${i} out of range [0, ${V})`);
    const src = table.subarray(id * D, (id + 1) * D), base = i * D;
    for (let j = 0; j < D; j++) o[base + j] = src[j]! << 16;
  }
  return out;
}
