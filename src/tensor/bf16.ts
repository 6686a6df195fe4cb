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

type GemmFn = (
  transA: boolean, transB: boolean, M: number, N: number, K: number,
  A: Float32Array | Float64Array, strideA: number, B: Float32Array | Float64Array, strideB: number,
  C: Float32Array | Float64Array, strideC: number, batch: number, alpha: number, beta: number,
) => void;

/**
 * A gemmBf16 built on a backend's float32 gemm (backends without a bf16 kernel, e.g. wasm):
 * operands are rounded to bf16 into float32 copies (products of bf16 values are exact in float32),
 * then multiplied with float32 accumulation — the converted-float32 path.
 */
export function gemmBf16ViaGemm(gemm: GemmFn) {
  return (
    transA: boolean, transB: boolean, M: number, N: number, K: number,
    A: Float32Array | Float64Array | Uint16Array, strideA: number, B: Float32Array | Float64Array | Uint16Array, strideB: number,
    C: Float32Array | Float64Array, strideC: number, batch: number, alpha: number, beta: number,
  ): void => {
    const round = (x: Float32Array | Float64Array | Uint16Array, n: number): Float32Array => {
      if (x instanceof Uint16Array) return bf16ToF32(x.subarray(0, n));
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = roundBf16(x[i]!);
      return out;
    };
    const span = (s: number, rows: number, cols: number) => (batch > 0 ? (batch - 1) * s + rows * cols : 0);
    gemm(transA, transB, M, N, K, round(A, span(strideA, M, K)), strideA, round(B, span(strideB, K, N)), strideB, C, strideC, batch, alpha, beta);
  };
}
