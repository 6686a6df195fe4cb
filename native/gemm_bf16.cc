// bfloat16 GEMM with float32 accumulation, row-major, batched:
//   C[b] = alpha · op(bf16(A[b])) · op(bf16(B[b])) + beta · C[b]      (C float32)
// A and B are either Float32Array (rounded to bf16, round-to-nearest-even, while packing: the
// autocast case, an activation or a float32 master weight) or Uint16Array holding bf16 bit
// patterns (a weight stored once as bf16: frozen reference, LoRA base).
//
// Packed layout: values go in k-pairs. A micro-panel of op(A) holds, per pair p = (k, k+1), MR
// 32-bit words (low half bf16 of k, high half of k+1); a panel of op(B) holds NR such words per
// pair. An odd K pads the last pair with a zero. This is the operand layout of vdpbf16ps
// (AVX512_BF16): lane j += a.hi·b.hi then += a.lo·b.lo, products exact in float32 (8-bit
// significands), sums rounded to float32.
//
// Micro-kernels, chosen at run time (DPO_GEMM_BF16_KERNEL=amx|avx512bf16|avx512|portable|
// amx-emulated forces one, gemmBf16SetKernel(name) switches in-process for tests):
//   amx:        Intel AMX (Sapphire Rapids+), 32×32 block of C in four tiles, TDPBF16PS over 16
//               pairs per step (A panels row-major, K padded to 16 pairs). Chosen automatically
//               only when CPUID, XCR0 and Linux's arch_prctl permission allow it (cpu.cc) AND a
//               start-up self-check against amx-emulated gives the same bits.
//   avx512bf16: 12×32 tile in 24 zmm accumulators, vdpbf16ps (2 multiply-adds per lane).
//   avx512:     the converted-float32 fallback for AVX-512 CPUs without BF16: each pair word is
//               widened to two float32 (shift / mask) and accumulated with two FMAs in the same
//               order (hi then lo).
//   portable:   4×16 plain C++, same order.
//   amx-emulated: the amx kernel (same blocking, packing, tails, threading) on the scalar software
//               emulator of the tile instructions in amx-tiles.h; test-only (about 100× slower), so
//               every machine tests the AMX code; never chosen automatically.
// amx/amx-emulated sum the pair products in TDPBF16PS's order (low and high elements in separate
// chains over 16 pairs, see amx-tiles.h), so they differ from the other paths in the last bits.
//
// Denormals: vdpbf16ps and TDPBF16PS treat denormal inputs and results as zero (DAZ/FTZ), the
// converted paths do not; values below 1.2e-38 can therefore differ between paths (never between
// thread counts).
// Blocking and scheduling: gemm-driver.h's blocked driver (shared with gemm.cc), instantiated here
// with pair-word panels (Driver below).
// Determinism: blocks depend on the shape only and work is split over rows/columns of C, never
// over K, so 1 and N threads give bit-identical results.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "abi.h"
#include "amx-tiles.h"
#include "check.h"
#include "cpu.h"
#include "gemm-args.h"
#include "gemm-driver.h"
#include "kernel-choice.h"
#include "pack-buffers.h"
#include "threadpool.h"

#if defined(__x86_64__) || defined(_M_X64)
#define DPO_BF16_X86 1
#include <immintrin.h>
#endif

namespace dpo {
namespace {

// ---------------------------------------------------------------------------------------------
// Conversions.

// bf16 bits of a float32, round-to-nearest-even; a NaN stays a quiet NaN (same as
// f32BitsToBf16Bits in src/io/weights.ts). Overflow rounds to ±Inf as RNE demands.
inline uint16_t Bf16Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

inline float Bf16ToF32(uint32_t h) {
  const uint32_t u = h << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Vectorized float32 → bf16, bit-identical to Bf16Bits (round-to-nearest-even, quiet NaN, denormal
// inputs rounded like any other value). As 32-bit words: rne(u) = u + 0x7fff + bit16(u) (its high
// half is the bf16), or u | 0x00400000 for a NaN; a pair word is then (rne(lo) >> 16) | (rne(hi) &
// 0xffff0000). With AVX512_BF16, vcvtne2ps2bf16 rounds 32 values at once but flushes denormal
// inputs to zero (measured, and as the SDM's convert_fp32_to_bfloat16 says), so a group of 32
// holding a denormal takes the integer sequence instead. The path follows Isa() (DPO_NATIVE_ISA
// caps it, so tests can run the AVX2 and scalar converters on an AVX-512 machine).
enum class ConvIsa { kScalar, kAvx2, kAvx512, kAvx512Bf16 };
ConvIsa ConversionIsa() {
  static const ConvIsa isa = [] {
#if DPO_BF16_X86
    const int v = Isa();
    if (v >= 2) return __builtin_cpu_supports("avx512bf16") ? ConvIsa::kAvx512Bf16 : ConvIsa::kAvx512;
    if (v == 1) return ConvIsa::kAvx2;
#endif
    return ConvIsa::kScalar;
  }();
  return isa;
}

#if DPO_BF16_X86
__attribute__((target("avx512f"), always_inline)) inline __m512i Rne512(__m512i u) {
  const __m512i bias = _mm512_add_epi32(_mm512_set1_epi32(0x7fff), _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1)));
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
  return _mm512_mask_or_epi32(_mm512_add_epi32(u, bias), nan, u, _mm512_set1_epi32(0x00400000));
}
__attribute__((target("avx2"), always_inline)) inline __m256i Rne256(__m256i u) {
  const __m256i bias = _mm256_add_epi32(_mm256_set1_epi32(0x7fff), _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1)));
  // |u| > 0x7f800000 as signed compare (|u| ≤ 0x7fffffff is non-negative).
  const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)), _mm256_set1_epi32(0x7f800000));
  return _mm256_blendv_epi8(_mm256_add_epi32(u, bias), _mm256_or_si256(u, _mm256_set1_epi32(0x00400000)), nan);
}

// 16 pair words from 32 consecutive floats (element 2p low, 2p + 1 high).
__attribute__((target("avx512f"), always_inline)) inline __m512i Pairs512(const float* src) {
  // The bf16 of each value in the low half of its dword, then vpmovdw keeps those halves in order
  // (little-endian: element 2p is the low half of pair word p).
  const __m512i a = _mm512_srli_epi32(Rne512(_mm512_loadu_si512(src)), 16);
  const __m512i b = _mm512_srli_epi32(Rne512(_mm512_loadu_si512(src + 16)), 16);
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi32_epi16(a)), _mm512_cvtepi32_epi16(b), 1);
}
__attribute__((target("avx512f,avx512bf16"), always_inline)) inline __m512i Pairs512Bf16(const float* src) {
  const __m512 a = _mm512_loadu_ps(src), b = _mm512_loadu_ps(src + 16);
  const __m512i expo = _mm512_set1_epi32(0x7f800000), mant = _mm512_set1_epi32(0x007fffff);
  const __mmask16 da = _mm512_testn_epi32_mask(_mm512_castps_si512(a), expo) & _mm512_test_epi32_mask(_mm512_castps_si512(a), mant);
  const __mmask16 db = _mm512_testn_epi32_mask(_mm512_castps_si512(b), expo) & _mm512_test_epi32_mask(_mm512_castps_si512(b), mant);
  if ((da | db) != 0) return Pairs512(src);
  // cvtne2ps2bf16(b, a): bf16 of a in the low 16 elements, of b in the high: element i = src[i].
  return (__m512i)_mm512_cvtne2ps_pbh(b, a);
}

// The pair loop of ConvertPairs for a 16-word step PAIRS(src) (two functions, so the vcvtne2ps2bf16
// one is only ever compiled into code that runs on AVX512_BF16 CPUs).
#define DPO_CONVERT_PAIRS_512(PAIRS)                                                                    \
  int64_t p = 0;                                                                                        \
  alignas(64) uint32_t tmp[16];                                                                         \
  for (; 2 * p + 32 <= kc; p += 16) {                                                                   \
    const __m512i w = PAIRS(src + 2 * p);                                                               \
    if (stride == 1) {                                                                                  \
      _mm512_storeu_si512(dst + p, w);                                                                  \
    } else {                                                                                            \
      _mm512_store_si512(tmp, w);                                                                       \
      for (int q = 0; q < 16; q++) dst[(p + q) * stride] = tmp[q];                                      \
    }                                                                                                   \
  }                                                                                                     \
  for (; 2 * p + 1 < kc; p++) dst[p * stride] = Bf16Bits(src[2 * p]) | (uint32_t(Bf16Bits(src[2 * p + 1])) << 16); \
  if (2 * p < kc) dst[p * stride] = Bf16Bits(src[2 * p]);

__attribute__((target("avx512f"))) void ConvertPairsAvx512(const float* src, int64_t kc, uint32_t* dst, int64_t stride) {
  DPO_CONVERT_PAIRS_512(Pairs512)
}
__attribute__((target("avx512f,avx512bf16"))) void ConvertPairsAvx512Bf16(const float* src, int64_t kc, uint32_t* dst,
                                                                          int64_t stride) {
  DPO_CONVERT_PAIRS_512(Pairs512Bf16)
}
#undef DPO_CONVERT_PAIRS_512

__attribute__((target("avx2"))) void ConvertPairsAvx2(const float* src, int64_t kc, uint32_t* dst, int64_t stride) {
  int64_t p = 0;
  alignas(32) uint32_t tmp[8];
  for (; 2 * p + 16 <= kc; p += 8) {
    const __m256i a = _mm256_srli_epi32(Rne256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 2 * p))), 16);
    const __m256i b = _mm256_srli_epi32(Rne256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 2 * p + 8))), 16);
    // vpackusdw (values < 2¹⁶: no saturation) interleaves 64-bit quarters per 128-bit lane: a0-3,
    // b0-3 | a4-7, b4-7; vpermq puts them in order.
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b), 0xd8);
    if (stride == 1) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + p), packed);
    } else {
      _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), packed);
      for (int q = 0; q < 8; q++) dst[(p + q) * stride] = tmp[q];
    }
  }
  for (; 2 * p + 1 < kc; p++) dst[p * stride] = Bf16Bits(src[2 * p]) | (uint32_t(Bf16Bits(src[2 * p + 1])) << 16);
  if (2 * p < kc) dst[p * stride] = Bf16Bits(src[2 * p]);
}

__attribute__((target("avx512f"))) void ConvertTwoRowsAvx512(const float* lo, const float* hi, int64_t w, uint32_t* dst) {
  int64_t j = 0;
  const __m512i himask = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
  for (; j + 16 <= w; j += 16) {
    const __m512i l = _mm512_srli_epi32(Rne512(_mm512_loadu_si512(lo + j)), 16);
    const __m512i h = hi ? _mm512_and_si512(Rne512(_mm512_loadu_si512(hi + j)), himask) : _mm512_setzero_si512();
    _mm512_storeu_si512(dst + j, _mm512_or_si512(l, h));
  }
  for (; j < w; j++) dst[j] = Bf16Bits(lo[j]) | (hi ? uint32_t(Bf16Bits(hi[j])) << 16 : 0u);
}

__attribute__((target("avx2"))) void ConvertTwoRowsAvx2(const float* lo, const float* hi, int64_t w, uint32_t* dst) {
  int64_t j = 0;
  const __m256i himask = _mm256_set1_epi32(static_cast<int>(0xffff0000u));
  for (; j + 8 <= w; j += 8) {
    const __m256i l = _mm256_srli_epi32(Rne256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(lo + j))), 16);
    const __m256i h = hi ? _mm256_and_si256(Rne256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(hi + j))), himask)
                         : _mm256_setzero_si256();
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + j), _mm256_or_si256(l, h));
  }
  for (; j < w; j++) dst[j] = Bf16Bits(lo[j]) | (hi ? uint32_t(Bf16Bits(hi[j])) << 16 : 0u);
}
#endif

// ceil(kc/2) pair words from kc consecutive floats, word p at dst[p·stride] (odd kc: high half 0).
void ConvertPairs(const float* src, int64_t kc, uint32_t* dst, int64_t stride) {
#if DPO_BF16_X86
  switch (ConversionIsa()) {
    case ConvIsa::kAvx512Bf16: return ConvertPairsAvx512Bf16(src, kc, dst, stride);
    case ConvIsa::kAvx512: return ConvertPairsAvx512(src, kc, dst, stride);
    case ConvIsa::kAvx2: return ConvertPairsAvx2(src, kc, dst, stride);
    case ConvIsa::kScalar: break;
  }
#endif
  int64_t p = 0;
  for (; 2 * p + 1 < kc; p++) dst[p * stride] = Bf16Bits(src[2 * p]) | (uint32_t(Bf16Bits(src[2 * p + 1])) << 16);
  if (2 * p < kc) dst[p * stride] = Bf16Bits(src[2 * p]);
}

// w pair words dst[j] = bf16(lo[j]) | bf16(hi[j]) << 16 (hi null: high halves 0).
void ConvertTwoRows(const float* lo, const float* hi, int64_t w, uint32_t* dst) {
#if DPO_BF16_X86
  switch (ConversionIsa()) {
    case ConvIsa::kAvx512Bf16:
    case ConvIsa::kAvx512: return ConvertTwoRowsAvx512(lo, hi, w, dst);
    case ConvIsa::kAvx2: return ConvertTwoRowsAvx2(lo, hi, w, dst);
    case ConvIsa::kScalar: break;
  }
#endif
  for (int64_t j = 0; j < w; j++) dst[j] = Bf16Bits(lo[j]) | (hi ? uint32_t(Bf16Bits(hi[j])) << 16 : 0u);
}

// n bf16 values (f32ToBf16): pair words written as two halves each (little-endian = the order).
void ConvertToBf16(const float* src, int64_t n, uint16_t* dst) {
  constexpr int64_t kStep = 256;  // pair words through a small aligned buffer
  alignas(64) uint32_t words[kStep / 2];
  for (int64_t i = 0; i < n; i += kStep) {
    const int64_t len = std::min(kStep, n - i);
    ConvertPairs(src + i, len, words, 1);
    std::memcpy(dst + i, words, static_cast<size_t>(len) * 2);
  }
}

// ---------------------------------------------------------------------------------------------
// Problem and packing.

constexpr int kMaxMR = 32, kMaxNR = 32;  // the largest tile of any kernel (edge buffers)

struct Operand {
  const float* f32 = nullptr;     // one of these two is set
  const uint16_t* bf16 = nullptr;
  int64_t stride = 0;
};

struct Problem {
  bool ta, tb;
  int64_t M, N, K;
  Operand A, B;
  float* C;
  int64_t sC;
  int64_t batch;
  float alpha, beta;
};

// Packs op(A)[i0:i0+rows, p0:p0+kc] (p0 even) as ceil(rows/mr) panels of kc2p × mr pair words
// (kc2p ≥ ceil(kc/2): the pairs beyond are zero). Pair-major panels (word (p, r) at p·mr + r: the
// vector kernels broadcast one row's pair) or, with rowMajor, row-major ones (word (r, p) at
// r·kc2p + p: the rows of an AMX A tile).
void PackA(const Problem& P, int64_t base, int64_t i0, int64_t rows, int64_t p0, int64_t kc, int mr, int64_t kc2p,
           bool rowMajor, uint32_t* Ap) {
  const int64_t kc2 = (kc + 1) / 2;
  const int64_t panels = (rows + mr - 1) / mr;
  const int64_t pairStep = rowMajor ? 1 : mr;
  const Operand& A = P.A;
  for (int64_t pi = 0; pi < panels; pi++) {
    uint32_t* panel = Ap + pi * kc2p * mr;
    const int64_t h = std::min<int64_t>(mr, rows - pi * mr);
    if (P.ta) {
      // A stored K×M (dW = dYᵀ·X): the pair (k, k+1) of h consecutive rows comes from two rows of
      // A, converted (or, stored bf16, interleaved) together into the panel's pair-major row p
      // (row-major panels: scattered).
      alignas(64) uint32_t tmp[kMaxMR];
      for (int64_t p = 0; p < kc2p; p++) {
        uint32_t* dst = rowMajor ? tmp : panel + p * mr;
        if (p < kc2) {
          const int64_t at = base + (p0 + 2 * p) * P.M + i0 + pi * mr;
          const bool pair = 2 * p + 1 < kc;
          if (A.f32) {
            ConvertTwoRows(A.f32 + at, pair ? A.f32 + at + P.M : nullptr, h, dst);
          } else {
            const uint16_t* lo = A.bf16 + at;
            const uint16_t* hi = pair ? lo + P.M : nullptr;
            for (int64_t r = 0; r < h; r++) dst[r] = lo[r] | (hi ? uint32_t(hi[r]) << 16 : 0u);
          }
          std::fill(dst + h, dst + mr, 0u);
        } else {
          std::fill(dst, dst + mr, 0u);
        }
        if (rowMajor)
          for (int64_t r = 0; r < mr; r++) panel[r * kc2p + p] = tmp[r];
      }
      continue;
    }
    for (int64_t r = 0; r < mr; r++) {
      uint32_t* dst = panel + (rowMajor ? r * kc2p : r);
      for (int64_t p = r >= h ? 0 : kc2; p < kc2p; p++) dst[p * pairStep] = 0;
      if (r >= h) continue;
      // Element (i, k) of op(A) = A[i·K + k] (A stored M×K; K×M was handled above).
      const int64_t start = base + (i0 + pi * mr + r) * P.K + p0;
      if (A.f32) {
        ConvertPairs(A.f32 + start, kc, dst, pairStep);
      } else {
        // Stored bf16, row-major: the pairs are already adjacent.
        const uint16_t* src = A.bf16 + start;
        int64_t p = 0;
        for (; 2 * p + 1 < kc; p++) dst[p * pairStep] = src[2 * p] | (uint32_t(src[2 * p + 1]) << 16);
        if (2 * p < kc) dst[p * pairStep] = src[2 * p];
      }
    }
  }
}

// Packs op(B)[p0:p0+kc, j0:j0+cols] (p0 even) as ceil(cols/nr) panels of kc2p × nr pair words
// (pairs beyond ceil(kc/2) zero): word (p, j) at p·nr + j, also the layout of AMX B tiles.
void PackB(const Problem& P, int64_t base, int64_t p0, int64_t kc, int64_t j0, int64_t cols, int nr, int64_t kc2p,
           uint32_t* Bp) {
  const int64_t kc2 = (kc + 1) / 2;
  const int64_t panels = (cols + nr - 1) / nr;
  const Operand& B = P.B;
  for (int64_t pj = 0; pj < panels; pj++) {
    uint32_t* panel = Bp + pj * kc2p * nr;
    const int64_t w = std::min<int64_t>(nr, cols - pj * nr);
    std::fill(panel + kc2 * nr, panel + kc2p * nr, 0u);
    if (!P.tb) {
      // B stored K×N: rows k and k+1 are read contiguously, w columns at a time.
      for (int64_t p = 0; p < kc2; p++) {
        const int64_t k = p0 + 2 * p;
        const int64_t r0 = base + k * P.N + j0 + pj * nr;
        uint32_t* dst = panel + p * nr;
        const bool pair = 2 * p + 1 < kc;
        if (B.f32) {
          ConvertTwoRows(B.f32 + r0, pair ? B.f32 + r0 + P.N : nullptr, w, dst);
        } else {
          const uint16_t* lo = B.bf16 + r0;
          const uint16_t* hi = lo + P.N;
          for (int64_t j = 0; j < w; j++) dst[j] = lo[j] | (pair ? uint32_t(hi[j]) << 16 : 0u);
        }
        for (int64_t j = w; j < nr; j++) dst[j] = 0;
      }
    } else {
      // B stored N×K (a Linear weight): column j of op(B) is row j of B, its pairs contiguous.
      for (int64_t j = 0; j < nr; j++) {
        uint32_t* dst = panel + j;
        if (j >= w) {
          for (int64_t p = 0; p < kc2; p++) dst[p * nr] = 0;
          continue;
        }
        const int64_t start = base + (j0 + pj * nr + j) * P.K + p0;
        int64_t p = 0;
        if (B.f32) {
          ConvertPairs(B.f32 + start, kc, dst, nr);
        } else {
          const uint16_t* src = B.bf16 + start;
          for (; 2 * p + 1 < kc; p++) dst[p * nr] = src[2 * p] | (uint32_t(src[2 * p + 1]) << 16);
          if (2 * p < kc) dst[p * nr] = src[2 * p];
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Micro-kernels: C[0:MR, 0:NR] = alpha · Σ_p (pair products) + beta · C (beta = 0 overwrites).

using MicroKernel = void (*)(int64_t kc2, const uint32_t* Ap, const uint32_t* Bp, float* C, int64_t ldc, float alpha,
                             float beta);

constexpr int kPortMR = 4, kPortNR = 16;

void MicroPortable(int64_t kc2, const uint32_t* Ap, const uint32_t* Bp, float* C, int64_t ldc, float alpha,
                   float beta) {
  float acc[kPortMR][kPortNR] = {};
  for (int64_t p = 0; p < kc2; p++) {
    const uint32_t* a = Ap + p * kPortMR;
    const uint32_t* b = Bp + p * kPortNR;
    for (int r = 0; r < kPortMR; r++) {
      const float ahi = Bf16ToF32(a[r] >> 16), alo = Bf16ToF32(a[r] & 0xffffu);
      for (int j = 0; j < kPortNR; j++) {
        acc[r][j] += ahi * Bf16ToF32(b[j] >> 16);
        acc[r][j] += alo * Bf16ToF32(b[j] & 0xffffu);
      }
    }
  }
  for (int r = 0; r < kPortMR; r++) {
    float* c = C + r * ldc;
    for (int j = 0; j < kPortNR; j++) c[j] = beta == 0.0f ? alpha * acc[r][j] : alpha * acc[r][j] + beta * c[j];
  }
}

#if DPO_BF16_X86
constexpr int kZmmMR = 12, kZmmNR = 32;

__attribute__((target("avx512f"), always_inline)) inline void StoreTile(__m512 (*acc)[2], float* C, int64_t ldc,
                                                                         float alpha, float beta) {
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  for (int r = 0; r < kZmmMR; r++) {
    float* c = C + r * ldc;
    for (int h = 0; h < 2; h++) {
      const __m512 x = _mm512_mul_ps(va, acc[r][h]);
      _mm512_storeu_ps(c + 16 * h, beta == 0.0f ? x : _mm512_fmadd_ps(vb, _mm512_loadu_ps(c + 16 * h), x));
    }
  }
}

__attribute__((target("avx512f,avx512bf16"))) void MicroAvx512Bf16(int64_t kc2, const uint32_t* Ap, const uint32_t* Bp,
                                                                   float* C, int64_t ldc, float alpha, float beta) {
  __m512 acc[kZmmMR][2];
  for (int r = 0; r < kZmmMR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int64_t p = 0; p < kc2; p++) {
    const uint32_t* a = Ap + p * kZmmMR;
    const __m512bh b0 = (__m512bh)_mm512_load_si512(Bp + p * kZmmNR);
    const __m512bh b1 = (__m512bh)_mm512_load_si512(Bp + p * kZmmNR + 16);
    _mm_prefetch(reinterpret_cast<const char*>(Bp + (p + 8) * kZmmNR), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(Bp + (p + 8) * kZmmNR + 16), _MM_HINT_T0);
    for (int r = 0; r < kZmmMR; r++) {
      const __m512bh av = (__m512bh)_mm512_set1_epi32(static_cast<int>(a[r]));
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], av, b0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], av, b1);
    }
  }
  StoreTile(acc, C, ldc, alpha, beta);
}

__attribute__((target("avx512f"))) void MicroAvx512(int64_t kc2, const uint32_t* Ap, const uint32_t* Bp, float* C,
                                                    int64_t ldc, float alpha, float beta) {
  __m512 acc[kZmmMR][2];
  for (int r = 0; r < kZmmMR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  const __m512i himask = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
  for (int64_t p = 0; p < kc2; p++) {
    const uint32_t* a = Ap + p * kZmmMR;
    const __m512i b0 = _mm512_load_si512(Bp + p * kZmmNR);
    const __m512i b1 = _mm512_load_si512(Bp + p * kZmmNR + 16);
    const __m512 b0h = _mm512_castsi512_ps(_mm512_and_si512(b0, himask));
    const __m512 b0l = _mm512_castsi512_ps(_mm512_slli_epi32(b0, 16));
    const __m512 b1h = _mm512_castsi512_ps(_mm512_and_si512(b1, himask));
    const __m512 b1l = _mm512_castsi512_ps(_mm512_slli_epi32(b1, 16));
    for (int r = 0; r < kZmmMR; r++) {
      const __m512 ah = _mm512_castsi512_ps(_mm512_set1_epi32(static_cast<int>(a[r] & 0xffff0000u)));
      const __m512 al = _mm512_castsi512_ps(_mm512_set1_epi32(static_cast<int>(a[r] << 16)));
      acc[r][0] = _mm512_fmadd_ps(al, b0l, _mm512_fmadd_ps(ah, b0h, acc[r][0]));
      acc[r][1] = _mm512_fmadd_ps(al, b1l, _mm512_fmadd_ps(ah, b1h, acc[r][1]));
    }
  }
  StoreTile(acc, C, ldc, alpha, beta);
}
#endif

// AMX: a 32×32 block of C in four 16×16 float32 tiles (tmm0..3), per step of 16 pairs two A tiles
// (32 rows × 16 pair words, row-major panel) and two B tiles (16 pair rows × 16 columns, the
// pair-major B panel with a 128-byte row stride), four TDPBF16PS. Written once against the tile-op
// layer (amx-tiles.h): T = AmxHwTiles (the instructions) or AmxEmuTiles (the emulator). kc2 is a
// multiple of 16 (the packers pad with zero pairs). The result leaves through the same non-inlined
// epilogue for both, so amx and amx-emulated can only differ in the tile arithmetic.
constexpr int kAmxMR = 32, kAmxNR = 32, kAmxPairs = 16;

__attribute__((noinline)) void AmxEpilogue(const float* acc, float* C, int64_t ldc, float alpha, float beta) {
  MergeTile(C, ldc, acc, kAmxNR, kAmxMR, kAmxNR, alpha, beta);
}

template <class T>
__attribute__((always_inline)) inline void MicroAmxBody(int64_t kc2, const uint32_t* Ap, const uint32_t* Bp, float* acc) {
  T::Begin();
  T::ZeroC();
  const int64_t strideA = kc2 * 4, strideB = kAmxNR * 4;
  for (int64_t p = 0; p < kc2; p += kAmxPairs) {
    T::LoadA(Ap + p, Ap + 16 * kc2 + p, strideA);
    T::LoadB(Bp + p * kAmxNR, Bp + p * kAmxNR + 16, strideB);
    T::Dp();
  }
  T::StoreC(acc, kAmxNR);
  T::End();
}

void MicroAmxEmulated(int64_t kc2, const uint32_t* Ap, const uint32_t* Bp, float* C, int64_t ldc, float alpha,
                      float beta) {
  alignas(64) float acc[kAmxMR * kAmxNR];
  MicroAmxBody<AmxEmuTiles>(kc2, Ap, Bp, acc);
  AmxEpilogue(acc, C, ldc, alpha, beta);
}

#if DPO_AMX_HW
void MicroAmxTiles(int64_t kc2, const uint32_t* Ap, const uint32_t* Bp,
                                                                float* acc) {
  MicroAmxBody<AmxHwTiles>(kc2, Ap, Bp, acc);
}
void MicroAmx(int64_t kc2, const uint32_t* Ap, const uint32_t* Bp, float* C, int64_t ldc, float alpha, float beta) {
  alignas(64) float acc[kAmxMR * kAmxNR];
  MicroAmxTiles(kc2, Ap, Bp, acc);
  AmxEpilogue(acc, C, ldc, alpha, beta);
}
#endif

struct KernelDesc {
  const char* name;
  int mr, nr;
  MicroKernel micro;
  int kpairs = 1;          // packed K is padded with zero pairs to a multiple of this
  bool aRowMajor = false;  // A panels row-major (AMX tiles) instead of pair-major
};

constexpr KernelDesc kPortable = {"portable", kPortMR, kPortNR, MicroPortable};
constexpr KernelDesc kAmxEmulated = {"amx-emulated", kAmxMR, kAmxNR, MicroAmxEmulated, kAmxPairs, true};
#if DPO_BF16_X86
constexpr KernelDesc kAvx512 = {"avx512", kZmmMR, kZmmNR, MicroAvx512};
constexpr KernelDesc kAvx512Bf16 = {"avx512bf16", kZmmMR, kZmmNR, MicroAvx512Bf16};
#endif
#if DPO_AMX_HW
constexpr KernelDesc kAmx = {"amx", kAmxMR, kAmxNR, MicroAmx, kAmxPairs, true};
#else
// Known everywhere (so DPO_GEMM_BF16_KERNEL=amx says "not supported", not "unknown"), usable only
// where the real instructions are built: never Supported() here.
constexpr KernelDesc kAmx = {"amx", kAmxMR, kAmxNR, nullptr, kAmxPairs, true};
#endif
// Every path, best first (amx-emulated last: the slow test path, never chosen automatically).
constexpr const char* kNames = "amx, avx512bf16, avx512, portable, amx-emulated";

bool Supported(const std::string& name) {
  if (name == "portable" || name == "amx-emulated") return true;
#if DPO_BF16_X86
  if (name == "avx512") return __builtin_cpu_supports("avx512f");
  if (name == "avx512bf16") return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
#endif
#if DPO_AMX_HW
  if (name == "amx") return AmxTilesUsable();
#endif
  return false;
}

const KernelDesc* ByName(const std::string& name) {
  if (name == "amx") return &kAmx;
#if DPO_BF16_X86
  if (name == "avx512bf16") return &kAvx512Bf16;
  if (name == "avx512") return &kAvx512;
#endif
  if (name == "portable") return &kPortable;
  if (name == "amx-emulated") return &kAmxEmulated;
  return nullptr;
}

void Gemm(const Problem& P, const KernelDesc& kd);
bool AmxSelfCheck(const KernelDesc& amx);

// The automatic choice: amx if usable and it passes the self-check, else the best vector path.
// DPO_GEMM_BF16_AMX_STANDIN=<path> (tests only) makes that path stand in for the real AMX one
// (treated as usable and self-checked), so the self-check and its fallback run on any machine.
const KernelDesc* BestKernel() {
  const char* standin = std::getenv("DPO_GEMM_BF16_AMX_STANDIN");
  const KernelDesc* amx = standin && *standin ? ByName(standin) : (Supported("amx") ? ByName("amx") : nullptr);
  if (amx && AmxSelfCheck(*amx)) return amx;
  for (const char* n : {"avx512bf16", "avx512"})
    if (Supported(n)) return ByName(n);
  return &kPortable;
}

std::atomic<const KernelDesc*> g_kernel{nullptr};
std::string g_kernel_error;
std::once_flag g_kernel_once;

const KernelDesc* ActiveKernel() {
  std::call_once(g_kernel_once, [] {
    g_kernel = ChooseKernelFromEnv<KernelDesc>("DPO_GEMM_BF16_KERNEL", "", kNames, ByName, Supported, BestKernel, &g_kernel_error);
  });
  return g_kernel.load();
}

// ---------------------------------------------------------------------------------------------
// Blocking (shape only, never the thread count).

constexpr int64_t kKcMax = 512;      // k values per block (256 pair words): A panel 12 KiB in L1
constexpr int64_t kSlabN = 1024;     // columns of packed B per slab: ≤ 1 MiB (L2)
constexpr double kParallelMinFlops = 2.0 * 64 * 64 * 64;

using PackBuffersT = PackBuffers<uint32_t>;
thread_local PackBuffersT tl_pack;

void RunTasks(int64_t ntasks, bool parallel, const std::function<void(int64_t)>& fn) {
  RunTasksOn(ntasks, parallel, fn);
}

// The bf16 driver's traits for the blocked driver (gemm-driver.h): panels of pair words, the
// block's pairs padded to a multiple of kd.kpairs deep; K blocks of an even size ≤ kKcMax (so
// every block but the last has whole pairs); slabs of ≤ kSlabN columns.
struct Driver {
  using Panel = uint32_t;
  static constexpr int kMaxTile = kMaxMR * kMaxNR;
  static constexpr bool kPrefetch = false;
  static constexpr int64_t kPanelsPerPackTask = 2;
  const Problem& P;
  const KernelDesc& kd;
  static PackBuffersT& Buffers() { return tl_pack; }
  int64_t Kc() const { return RoundUp(EqualKBlock(P.K, kKcMax), 2); }
  int64_t Depth(int64_t kc) const { return RoundUp((kc + 1) / 2, kd.kpairs); }
  int64_t SlabCols() const { return std::min(RoundUp(P.N, kd.nr), kSlabN); }
  void PackA(int64_t bi, int64_t i0, int64_t rows, int64_t p0, int64_t kc, int64_t depth, uint32_t* Ap) const {
    dpo::PackA(P, bi * P.A.stride, i0, rows, p0, kc, kd.mr, depth, kd.aRowMajor, Ap);
  }
  void PackB(int64_t bi, int64_t p0, int64_t kc, int64_t j0, int64_t cols, int64_t depth, uint32_t* Bp) const {
    dpo::PackB(P, bi * P.B.stride, p0, kc, j0, cols, kd.nr, depth, Bp);
  }
};

void Gemm(const Problem& P, const KernelDesc& kd) {
  const int64_t M = P.M, N = P.N, K = P.K;
  if (P.batch == 0 || M == 0 || N == 0) return;
  const double flops = 2.0 * static_cast<double>(M) * N * K * P.batch;
  const bool parallel = flops >= kParallelMinFlops;
  if (K == 0 || P.alpha == 0.0f) {
    ScaleOnly(P.C, P.sC, P.batch, M * N, P.beta, parallel);
    return;
  }
  BlockedGemmT(Driver{P, kd}, parallel);
}

// The start-up self-check of the real AMX path (run when `amx` is chosen automatically): a GEMM
// with row, column and K tails (37×45, K = 70: partial tiles, a padded 16-pair step, an odd
// pair) on amx and on amx-emulated must give the same bits; otherwise one warning and the next
// path (avx512bf16). A wrong or differently rounding tile unit can then never reach training.
bool AmxSelfCheck(const KernelDesc& amx) {
  constexpr int64_t M = 37, N = 45, K = 70;
  std::vector<float> A(M * K), B(K * N), C1(M * N), C2(M * N);
  uint32_t s = 12345;
  auto next = [&s] {
    s = s * 1664525u + 1013904223u;
    return static_cast<float>(s >> 8) / 16777216.0f * 2.0f - 1.0f;
  };
  for (float& x : A) x = next();
  for (float& x : B) x = next();
  Problem P{false, true, M, N, K, {}, {}, nullptr, M * N, 1, 1.0f, 0.0f};
  P.A.f32 = A.data();
  P.A.stride = M * K;
  P.B.f32 = B.data();
  P.B.stride = K * N;
  P.C = C1.data();
  Gemm(P, amx);
  P.C = C2.data();
  Gemm(P, kAmxEmulated);
  if (std::memcmp(C1.data(), C2.data(), C1.size() * sizeof(float)) == 0) return true;
  int64_t at = 0;
  while (std::memcmp(&C1[at], &C2[at], 4) == 0) at++;
  std::fprintf(stderr,
               "dpo: warning: the AMX bf16 GEMM (%s) differs from its emulation of TDPBF16PS (C[%lld] = %.9g, "
               "emulated %.9g); using the next bf16 path instead (DPO_GEMM_BF16_KERNEL=amx forces AMX)\n",
               amx.name, static_cast<long long>(at), C1[at], C2[at]);
  return false;
}

}  // namespace
}  // namespace dpo

// ---------------------------------------------------------------------------------------------
// The C ABI (abi.h); the bindings are generated from the kernel table (napi.cc, wasm.cc).

extern "C" {

int dpo_gemm_bf16(int transA, int transB, double Md, double Nd, double Kd, const void* A, size_t A_len,
                  dpo_dtype A_dtype, double sAd, const void* B, size_t B_len, dpo_dtype B_dtype, double sBd, float* C,
                  size_t C_len, double sCd, double batchd, double alpha, double beta) {
  using namespace dpo;
  Check a("gemmBf16");
  GemmArgs g;
  const KernelDesc* kd = ActiveKernel();
  const auto operandA = [&](int64_t need, const std::string& what) { a.F32OrBf16(A, A_len, A_dtype, "A", need, what); };
  const auto operandB = [&](int64_t need, const std::string& what) { a.F32OrBf16(B, B_len, B_dtype, "B", need, what); };
  if (!CheckGemmArgs(a, g, transA, transB, Md, Nd, Kd, sAd, sBd, sCd, batchd, alpha, beta, operandA, operandB, C,
                     C_len, kd ? nullptr : &g_kernel_error))
    return a.status();
  // A union operand is float32 (rounded while packing) or bf16 bits, as its dtype says.
  const auto operand = [](const void* p, dpo_dtype dtype, int64_t stride) {
    Operand op;
    if (dtype == DPO_F32) op.f32 = static_cast<const float*>(p);
    else op.bf16 = static_cast<const uint16_t*>(p);
    op.stride = stride;
    return op;
  };
  const Problem P{g.ta, g.tb, g.M, g.N, g.K, operand(A, A_dtype, g.sA), operand(B, B_dtype, g.sB), C, g.sC,
                  g.batch, g.alpha, g.beta};
  Gemm(P, *kd);
  return DPO_OK;
}

const char* dpo_gemm_bf16_kernel(void) {
  const dpo::KernelDesc* kd = dpo::ActiveKernel();
  return kd ? kd->name : "none";
}

int dpo_gemm_bf16_set_kernel(const char* name) {
  using namespace dpo;
  return SetKernelByName("gemmBf16SetKernel", name, kNames, ByName, Supported, ActiveKernel, &g_kernel);
}

const char* dpo_gemm_bf16_kernels_supported(void) {
  static const std::string names = dpo::SupportedKernelNames({"amx", "avx512bf16", "avx512", "portable", "amx-emulated"}, dpo::Supported);
  return names.c_str();
}

int dpo_f32_to_bf16(const float* src, size_t src_len, uint16_t* dst, size_t dst_len) {
  using namespace dpo;
  Check a("f32ToBf16");
  const float* s = a.F32(src, src_len, "src", 0, "");
  const int64_t n = static_cast<int64_t>(src_len);
  uint16_t* d = a.U16(dst, dst_len, "dst", n, "one per element of src");
  if (!a.ok()) return a.status();
  constexpr int64_t kChunk = 1 << 16;
  RunTasks((n + kChunk - 1) / kChunk, n >= 4 * kChunk, [&](int64_t t) {
    const int64_t e = std::min(n, (t + 1) * kChunk);
    ConvertToBf16(s + t * kChunk, e - t * kChunk, d + t * kChunk);
  });
  return DPO_OK;
}

}  // extern "C"
