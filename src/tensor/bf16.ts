// bfloat16: conversions (round-to-nearest-even) and bf16 weight storage. A bfloat16 is the top
// half of a float32 (8-bit exponent, 8-bit significand with the implicit bit), so a product of
// two bf16 values is exact in float32 and the unit roundoff of a conversion is 2⁻⁸.
// The native kernels (native/gemm_bf16.cc) round exactly as f32BitsToBf16Bits does.

/** bfloat16 bit pattern of a float32 bit pattern, round-to-nearest-even; NaN stays a quiet NaN. */
export function f32BitsToBf16Bits(u: number): number {
  if ((u & 0x7f800000) === 0x7f800000 && (u & 0x7fffff) !== 0) return ((u >>> 16) | 0x40) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Converts bfloat16 to float32 (exact: a bfloat16 is the top half of a float32). */
export function bf16ToF32(src: Uint16Array, out: Float32Array = new Float32Array(src.length)): Float32Array {
  if (out.length < src.length) throw new Error(`bf16ToF32: output has ${out.length} elements, need ${src.length}`);
  const o = new Uint32Array(out.buffer, out.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) o[i] = src[i]! << 16;
  return out;
}

/** Converts float32 to bfloat16, round-to-nearest-even. */
export function f32ToBf16(src: Float32Array, out: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  if (out.length < src.length) throw new Error(`f32ToBf16: output has ${out.length} elements, need ${src.length}`);
  const s = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32BitsToBf16Bits(s[i]!);
  return out;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The float value of x rounded to bfloat16 (x is first rounded to float32). */
export function roundBf16(x: number): number {
  f32[0] = x;
  u32[0] = f32BitsToBf16Bits(u32[0]!) << 16;
  return f32[0]!;
}

/** Unit roundoff of a conversion to bfloat16 (8-bit significand): |bf16(x) − x| ≤ 2⁻⁸·|x|. */
export const BF16_UNIT_ROUNDOFF = 2 ** -8;
