// In-memory model weights: every tensor is float32, whatever dtype the file stored, in row-major
// (C) order with the file's own shape. Also the scalar conversions between float32 and the 16-bit
// file formats (IEEE half, bfloat16), the q/k row permutations between RoPE conventions, and
// positional file I/O shared by the readers and writers.
//
// The model-file modules built on this one:
//   config.ts       config.json ⇄ ModelConfig, generation_config.json ⇄ GenerationDefaults
//   safetensors.ts  readSafetensors / readShardedSafetensors / writeSafetensors (F32, F16, BF16)
//   hf-dir.ts       loadHfDirectory / saveHfDirectory (config + weights + generation + tokenizer
//                   files), validateWeights, loadModel (HF directory or llama2.c .bin)
//   llama2c.ts      readLlama2cCheckpoint / writeLlama2cCheckpoint (legacy and version 1)
//   gguf.ts         writeLlamaGguf (llama.cpp), readGguf
// Weight names are always Hugging Face's (model.layers.N.self_attn.q_proj.weight, ...; GPT-2:
// transformer.h.N.attn.c_attn.weight, ...), with q/k rows in Hugging Face's rotate_half order.

import { readSync } from 'node:fs';
import { bf16ToF32, f32BitsToBf16Bits, f32ToBf16 } from '../tensor/bf16.js';

// The bfloat16 conversions live with the tensors (the bf16 GEMM uses them); io re-exports them.
export { bf16ToF32, f32BitsToBf16Bits, f32ToBf16 };

import type { Weight, WeightMap } from '../tensor/weight-map.js';

export type { Weight, WeightMap };
export { permuteHalvesToInterleaved, permuteInterleavedToHalves } from '../tensor/weight-map.js';

/** Number of elements of a shape (1 for a scalar []). */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function shapeString(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** A weight of the given shape: wraps `data` (checked against the shape) or allocates zeros. */
export function makeWeight(shape: readonly number[], data?: Float32Array): Weight {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new Error(`makeWeight: bad shape ${shapeString(shape)}`);
  }
  const n = numel(shape);
  if (data && data.length !== n) {
    throw new Error(`makeWeight: shape ${shapeString(shape)} needs ${n} elements, data has ${data.length}`);
  }
  return { shape: [...shape], data: data ?? new Float32Array(n) };
}

/**
 * The tensor `name`, checked against `expectedShape` when given. `source` names the file or
 * directory in the error message.
 */
export function getWeight(weights: WeightMap, name: string, expectedShape?: readonly number[], source = 'weights'): Weight {
  const w = weights.get(name);
  if (!w) throw new Error(`${source}: missing tensor ${name}`);
  if (expectedShape && !sameShape(w.shape, expectedShape)) {
    throw new Error(`${source}: tensor ${name} has shape ${shapeString(w.shape)}, expected ${shapeString(expectedShape)}`);
  }
  return w;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Total number of float parameters in the map. */
export function countParameters(weights: WeightMap): number {
  let n = 0;
  for (const w of weights.values()) n += w.data.length;
  return n;
}

/** Deep copy (new Float32Arrays). */
export function cloneWeights(weights: WeightMap): WeightMap {
  const out: WeightMap = new Map();
  for (const [name, w] of weights) out.set(name, { shape: [...w.shape], data: new Float32Array(w.data) });
  return out;
}

/** Names in the order every writer uses (plain code-unit sort, stable across runs). */
export function sortedNames(weights: WeightMap): string[] {
  return [...weights.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

// ---------------------------------------------------------------------------------------------
// Positional file I/O. Each call moves at most 1 GiB (the kernel and Node cap single reads and
// writes near 2 GiB), looping over short counts.

const IO_CHUNK = 1 << 30;

/** Reads exactly buf.length bytes at `position`; `what` names the file in the error. */
export function readExactly(fd: number, buf: Uint8Array, position: number, what: string): void {
  let done = 0;
  while (done < buf.length) {
    const n = readSync(fd, buf, done, Math.min(IO_CHUNK, buf.length - done), position + done);
    if (n === 0) throw new Error(`${what}: unexpected end of file at byte ${position + done}`);
    done += n;
  }
}

export { writeExactly, writeFileAtomically } from '../util/fs.js';

// ---------------------------------------------------------------------------------------------
// 16-bit float conversions. Bit-level, so NaN payloads, infinities, signed zeros and subnormals
// survive exactly as the hardware conversions (F16C / AVX512-BF16) treat them.

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** float32 bit pattern of an IEEE binary16 bit pattern (exact: every half is a float). */
export function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  let mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0; // inf / NaN (payload kept)
  if (exp !== 0) return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0; // 112 = 127 - 15
  if (mant === 0) return sign >>> 0; // signed zero
  // Subnormal half: value = mant * 2^-24; normalise it into a float32 normal.
  let e = 113; // exponent of 2^-14 in float32 bias, decremented per shift
  while ((mant & 0x400) === 0) {
    mant <<= 1;
    e--;
  }
  return (sign | (e << 23) | ((mant & 0x3ff) << 13)) >>> 0;
}

/** IEEE binary16 bit pattern of a float32 bit pattern, round-to-nearest-even, overflow to inf. */
export function f32BitsToF16Bits(u: number): number {
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0); // NaN stays quiet NaN
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // below half the smallest subnormal: rounds to zero
    mant |= 0x800000; // implicit leading one
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let r = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    if (rem > half || (rem === half && (r & 1) !== 0)) r++; // may carry into the smallest normal: correct
    return sign | r;
  }
  let r = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (r & 1) !== 0)) r++; // carry may reach 0x7c00 = inf: correct
  return sign | r;
}


export function f32ToBits(x: number): number {
  f32Scratch[0] = x;
  return u32Scratch[0]!;
}

export function bitsToF32(u: number): number {
  u32Scratch[0] = u;
  return f32Scratch[0]!;
}

let f16Table: Uint32Array | null = null;

/** Converts IEEE halves to float32 (out may be a view over any float32 memory). */
export function f16ToF32(src: Uint16Array, out: Float32Array = new Float32Array(src.length)): Float32Array {
  if (out.length < src.length) throw new Error(`f16ToF32: output has ${out.length} elements, need ${src.length}`);
  if (!f16Table) {
    // 256 KiB table: one lookup per element beats the branchy bit code by a wide margin.
    f16Table = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToF32Bits(h);
  }
  const table = f16Table;
  const o = new Uint32Array(out.buffer, out.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) o[i] = table[src[i]!]!;
  return out;
}


/** Converts float32 to IEEE halves, round-to-nearest-even. */
export function f32ToF16(src: Float32Array, out: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  if (out.length < src.length) throw new Error(`f32ToF16: output has ${out.length} elements, need ${src.length}`);
  const s = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32BitsToF16Bits(s[i]!);
  return out;
}
