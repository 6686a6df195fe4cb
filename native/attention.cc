// Causal grouped-query attention, memory-efficient ("flash"): no T×T matrix is ever stored.
//
// Layouts (see src/tensor/kernels.ts): q, out [B, Tq, H, D]; k, v [B, cap, Hkv, D] with item b at
// b·kvBatchStride; lse [B, H, Tq]. Query t sits at absolute position Tk − Tq + t and sees keys
// kvStart[b] ≤ j ≤ Tk − Tq + t. Query head h reads KV head h / (H / Hkv).
//
// Forward: one task per (batch, head, tile of kBQ queries). Keys are visited in tiles of kBK starting
// at kvStart and stopping at the tile's last visible key (the causal upper half is never touched);
// each key tile does S = Q·Kᵀ, an online-softmax update of (max, sum) per row and acc += P·V.
// Only out and lse leave the task.
//
// Backward (FlashAttention-2 formulas, Di = rowsum(dO∘O)):
//   P = exp(scale·Q·Kᵀ − lse), dP = dO·Vᵀ, dS = P∘(dP − Di), dQ = scale·dS·K, dK = scale·dSᵀ·Q, dV = Pᵀ·dO.
// Every task owns disjoint outputs, so the summation order never depends on the thread count.
// Fused (the default): one task per (batch, KV head) sweeps key tiles in order and, for each, the
// query heads of its group and the query rows that see the tile: S, dP, dV += Pᵀ·dO, dK += dSᵀ·Q
// and dQ += dS·K into a per-task [G, T, D] accumulator (5 products per tile pair).
// Two passes (when there are too few (batch, KV head) tasks to keep every thread busy): pass 1 per
// (batch, KV head, key tile) accumulates dK, dV over its query heads and the query rows that see
// the tile; pass 2 per (batch, head, query tile) accumulates dQ over key tiles (7 products: S and
// dP are computed in both passes). Both schemes recompute scores from q, k and lse tile by tile
// and add every dK, dV and dQ element in the same order (dQ: key tiles ascending, keys within a
// tile ascending), so they give bit-identical gradients and the choice may depend on the threads.
//
// Every matrix product is one small "broadcast A, vector B" GEMM (Gemm below): B and C rows have a
// padded width (multiple of 16 floats = one zmm; B rows are read in place when D is a multiple of
// 16, key tiles are packed transposed for Q·Kᵀ), A is read in place through strides, so transposed
// operands (Pᵀ, dSᵀ) cost nothing. Each C element is one multiply-add chain in a fixed order, so a
// score is bit-identical whichever tile or pass recomputes it.
//
// ISA: AVX-512 or AVX2+FMA kernels as Isa() (cpu.h) chooses, a portable path otherwise
// (DPO_NATIVE_ISA=avx2|generic caps the choice; tests and benchmarks compare the paths).
#include "abi.h"
#include "check.h"
#include "cpu.h"
#include "threadpool.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace dpo {
namespace {

constexpr int64_t kBQ = 64;  // query rows per tile
constexpr int64_t kBK = 64;  // keys per tile; a multiple of 16 (row stride of the packed Kᵀ, S, P)
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

inline int64_t RoundUp16(int64_t n) { return (n + 15) & ~int64_t(15); }

// Per-thread scratch, 64-byte aligned, grown on demand and reused by every tile and call.
struct Scratch {
  float* data = nullptr;
  size_t cap = 0;
  ~Scratch() { std::free(data); }
  float* Get(size_t n) {
    if (n > cap) {
      std::free(data);
      size_t bytes = ((n * sizeof(float) + 63) / 64) * 64;
      data = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (!data) {
        std::fprintf(stderr, "dpo attention: cannot allocate %zu bytes of scratch\n", bytes);
        std::abort();
      }
      cap = n;
    }
    return data;
  }
};
thread_local Scratch tScratch;

// ---------------------------------------------------------------------------------------------
// GEMM B operands from tensor rows (both ISAs).

// Rows src[r·stride + d] (r < n, d < D) as a GEMM B operand whose width is Dp = RoundUp16(D):
// read in place when D is a multiple of 16, else copied to dst with zero padding. *ld receives
// the row stride of the returned pointer.
const float* RowsOrPack(float* dst, const float* src, int64_t stride, int64_t n, int64_t D, int64_t Dp,
                        int64_t* ld) {
  if (D == Dp) {
    *ld = stride;
    return src;
  }
  for (int64_t r = 0; r < n; r++) {
    std::memcpy(dst + r * Dp, src + r * stride, D * sizeof(float));
    for (int64_t d = D; d < Dp; d++) dst[r * Dp + d] = 0.0f;
  }
  *ld = Dp;
  return dst;
}

// ---------------------------------------------------------------------------------------------
// Portable primitives.

struct PortableOps {
  // dst[d·kBK + jj] = src[jj·stride + d] for jj < n, zero for n ≤ jj < ncols: a key tile transposed,
  // so the scores of one query against 16 keys are one vector FMA per d.
  static void PackTransposed(float* dst, const float* src, int64_t stride, int64_t n, int64_t ncols,
                             int64_t D) {
    for (int64_t jj = 0; jj < n; jj++) {
      const float* s = src + jj * stride;
      for (int64_t d = 0; d < D; d++) dst[d * kBK + jj] = s[d];
    }
    for (int64_t d = 0; d < D; d++)
      for (int64_t jj = n; jj < ncols; jj++) dst[d * kBK + jj] = 0.0f;
  }

  // C[r·ldc + c] (+)= Σ_x A[r·ars + x·axs] · B[x·ldb + c]   for r < rows, c < ncols.
  static void Gemm(int64_t rows, int64_t ncols, int64_t K, const float* A, int64_t ars, int64_t axs,
                   const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate) {
    for (int64_t r = 0; r < rows; r++) {
      float* c = C + r * ldc;
      if (!accumulate) std::memset(c, 0, ncols * sizeof(float));
      const float* a = A + r * ars;
      for (int64_t x = 0; x < K; x++) {
        const float ax = a[x * axs];
        const float* b = B + x * ldb;
        for (int64_t j = 0; j < ncols; j++) c[j] += ax * b[j];
      }
    }
  }

  // s[j] *= scale for j < n; returns max_j s[j] (−inf when n = 0).
  static float ScaleMax(float* s, int64_t n, float scale) {
    float mx = kNegInf;
    for (int64_t j = 0; j < n; j++) {
      s[j] *= scale;
      mx = std::max(mx, s[j]);
    }
    return mx;
  }

  // s[j] = exp(s[j] − shift) for j < n and 0 for n ≤ j < ncols; returns Σ s[j].
  static float ExpSubSum(float* s, int64_t n, int64_t ncols, float shift) {
    float sum = 0.0f;
    for (int64_t j = 0; j < n; j++) {
      s[j] = std::exp(s[j] - shift);
      sum += s[j];
    }
    for (int64_t j = n; j < ncols; j++) s[j] = 0.0f;
    return sum;
  }

  // In place: s (raw scores) → P = exp(scale·s − lse), dp → dS = P∘(dp − Di); zero for j ≥ n.
  static void SoftmaxGrad(float* s, float* dp, int64_t n, int64_t ncols, float scale, float lse, float Di) {
    for (int64_t j = 0; j < n; j++) {
      const float p = std::exp(s[j] * scale - lse);
      s[j] = p;
      dp[j] = p * (dp[j] - Di);
    }
    for (int64_t j = n; j < ncols; j++) s[j] = dp[j] = 0.0f;
  }
};

// ---------------------------------------------------------------------------------------------
// AVX-512 primitives.

#if defined(__x86_64__)
#define DPO_AVX512 __attribute__((target("avx512f")))

// exp(x) for one zmm: 2^n · poly(r), x = n·ln2 + r, |r| ≤ ln2/2 (Cephes expf polynomial, ~1 ulp).
// Inputs below −87.3 give exactly 0 (no denormals downstream); NaN propagates.
DPO_AVX512 inline __m512 Exp512(__m512 x) {
  const __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.3f), _CMP_NLT_UQ);
  x = _mm512_min_ps(_mm512_set1_ps(88.7f), _mm512_max_ps(_mm512_set1_ps(-87.3f), x));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_maskz_mov_ps(keep, _mm512_scalef_ps(p, n));
}

inline __mmask16 TailMask(int64_t left) {
  return left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1u);
}

// MR rows × NV·16 columns of C, accumulators in registers (MR = NV = 4: 16 zmm + 4 B + 1 A).
template <int MR, int NV>
DPO_AVX512 inline void MicroKernel(int64_t K, const float* A, int64_t ars, int64_t axs, const float* B,
                                   int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  __m512 acc[MR][NV];
  for (int r = 0; r < MR; r++)
    for (int v = 0; v < NV; v++)
      acc[r][v] = accumulate ? _mm512_loadu_ps(C + r * ldc + 16 * v) : _mm512_setzero_ps();
  for (int64_t x = 0; x < K; x++) {
    __m512 b[NV];
    for (int v = 0; v < NV; v++) b[v] = _mm512_loadu_ps(B + x * ldb + 16 * v);
    for (int r = 0; r < MR; r++) {
      const __m512 a = _mm512_set1_ps(A[r * ars + x * axs]);
      for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(a, b[v], acc[r][v]);
    }
  }
  for (int r = 0; r < MR; r++)
    for (int v = 0; v < NV; v++) _mm512_storeu_ps(C + r * ldc + 16 * v, acc[r][v]);
}

struct Avx512Ops {
  // Same contract as PortableOps::PackTransposed (ncols a multiple of 16), in 16×16 blocks
  // transposed in registers: scalar stores 256 B apart were a third of the tile time.
  DPO_AVX512 static void PackTransposed(float* dst, const float* src, int64_t stride, int64_t n,
                                        int64_t ncols, int64_t D) {
    for (int64_t j0 = 0; j0 < ncols; j0 += 16) {
      for (int64_t d0 = 0; d0 < D; d0 += 16) {
        const __mmask16 dm = TailMask(D - d0);
        __m512 r[16], t[16];
        for (int i = 0; i < 16; i++)  // rows past n load as zeros (padding keys)
          r[i] = _mm512_maskz_loadu_ps(j0 + i < n ? dm : __mmask16(0), src + (j0 + i) * stride + d0);
        // Within 128-bit lanes: pairs of rows, then quads (t[4i + c] holds column c of rows 4i..4i+3).
        for (int i = 0; i < 8; i++) {
          t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
          t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        for (int i = 0; i < 4; i++) {
          const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
          const __m512d c = _mm512_castps_pd(t[4 * i + 2]), e = _mm512_castps_pd(t[4 * i + 3]);
          r[4 * i + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
          r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
          r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, e));
          r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, e));
        }
        // Across lanes: lane L of r[4i + c] is column 4L + c of rows 4i..4i+3.
        for (int c = 0; c < 4; c++) {
          const __m512 va = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x88);
          const __m512 vb = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x88);
          const __m512 wa = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xDD);
          const __m512 wb = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xDD);
          t[c] = _mm512_shuffle_f32x4(va, vb, 0x88);       // column c
          t[8 + c] = _mm512_shuffle_f32x4(va, vb, 0xDD);   // column 8 + c
          t[4 + c] = _mm512_shuffle_f32x4(wa, wb, 0x88);   // column 4 + c
          t[12 + c] = _mm512_shuffle_f32x4(wa, wb, 0xDD);  // column 12 + c
        }
        for (int c = 0; c < 16 && d0 + c < D; c++) _mm512_storeu_ps(dst + (d0 + c) * kBK + j0, t[c]);
      }
    }
  }

  // Same contract as PortableOps::Gemm; ncols must be a multiple of 16.
  DPO_AVX512 static void Gemm(int64_t rows, int64_t ncols, int64_t K, const float* A, int64_t ars,
                              int64_t axs, const float* B, int64_t ldb, float* C, int64_t ldc,
                              bool accumulate) {
    for (int64_t r0 = 0; r0 < rows; r0 += 4) {
      const int mr = int(std::min<int64_t>(4, rows - r0));
      for (int64_t c0 = 0; c0 < ncols; c0 += 64) {
        const int nv = int(std::min<int64_t>(4, (ncols - c0) / 16));
        const float* a = A + r0 * ars;
        const float* b = B + c0;
        float* c = C + r0 * ldc + c0;
        switch (mr * 8 + nv) {
#define DPO_CASE(M, N) \
  case M * 8 + N: MicroKernel<M, N>(K, a, ars, axs, b, ldb, c, ldc, accumulate); break;
          DPO_CASE(1, 1) DPO_CASE(1, 2) DPO_CASE(1, 3) DPO_CASE(1, 4)
          DPO_CASE(2, 1) DPO_CASE(2, 2) DPO_CASE(2, 3) DPO_CASE(2, 4)
          DPO_CASE(3, 1) DPO_CASE(3, 2) DPO_CASE(3, 3) DPO_CASE(3, 4)
          DPO_CASE(4, 1) DPO_CASE(4, 2) DPO_CASE(4, 3) DPO_CASE(4, 4)
#undef DPO_CASE
          default: break;
        }
      }
    }
  }

  DPO_AVX512 static float ScaleMax(float* s, int64_t n, float scale) {
    __m512 mx = _mm512_set1_ps(kNegInf);
    const __m512 sc = _mm512_set1_ps(scale);
    for (int64_t j = 0; j < n; j += 16) {
      const __mmask16 m = TailMask(n - j);
      const __m512 x = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, s + j), sc);
      _mm512_mask_storeu_ps(s + j, m, x);
      mx = _mm512_mask_max_ps(mx, m, mx, x);
    }
    return _mm512_reduce_max_ps(mx);
  }

  DPO_AVX512 static float ExpSubSum(float* s, int64_t n, int64_t ncols, float shift) {
    __m512 sum = _mm512_setzero_ps();
    const __m512 sh = _mm512_set1_ps(shift);
    for (int64_t j = 0; j < ncols; j += 16) {
      const __mmask16 m = j < n ? TailMask(n - j) : __mmask16(0);
      const __m512 p = _mm512_maskz_mov_ps(m, Exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, s + j), sh)));
      _mm512_storeu_ps(s + j, p);
      sum = _mm512_add_ps(sum, p);
    }
    return _mm512_reduce_add_ps(sum);
  }

  DPO_AVX512 static void SoftmaxGrad(float* s, float* dp, int64_t n, int64_t ncols, float scale, float lse,
                                     float Di) {
    const __m512 sc = _mm512_set1_ps(scale), l = _mm512_set1_ps(lse), di = _mm512_set1_ps(Di);
    for (int64_t j = 0; j < ncols; j += 16) {
      const __mmask16 m = j < n ? TailMask(n - j) : __mmask16(0);
      const __m512 x = _mm512_maskz_loadu_ps(m, s + j);
      const __m512 p = _mm512_maskz_mov_ps(m, Exp512(_mm512_sub_ps(_mm512_mul_ps(x, sc), l)));
      const __m512 g = _mm512_mul_ps(p, _mm512_sub_ps(_mm512_maskz_loadu_ps(m, dp + j), di));
      _mm512_storeu_ps(s + j, p);
      _mm512_storeu_ps(dp + j, g);
    }
  }
};
#undef DPO_AVX512

// ---------------------------------------------------------------------------------------------
// AVX2+FMA primitives (x86 without AVX-512). Same contracts and the same arithmetic as the AVX-512
// ones: each C element is the same FMA chain, exp is the same polynomial with the same 2^n
// scaling, and the sums are reduced in the order of _mm512_reduce_add_ps, so this path gives the
// AVX-512 path's results bit for bit.
#define DPO_AVX2 __attribute__((target("avx2,fma")))

// Lanes j < left of an 8-float vector (all when left ≥ 8, none when left ≤ 0).
DPO_AVX2 inline __m256i Mask8(int64_t left) {
  const int32_t l = int32_t(std::max<int64_t>(0, std::min<int64_t>(8, left)));
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(l), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// exp(x), as Exp512: clamp, n = round(x·log2 e), Cephes polynomial in r = x − n·ln2, then
// p·2^n as p·2^(n>>1)·2^(n−(n>>1)) (two exact power-of-two products: the one rounding is the
// last, as in vscalefps, and n = 128 at x = 88.7 does not overflow the exponent field).
DPO_AVX2 inline __m256 Exp256(__m256 x) {
  const __m256 keep = _mm256_cmp_ps(x, _mm256_set1_ps(-87.3f), _CMP_NLT_UQ);
  x = _mm256_min_ps(_mm256_set1_ps(88.7f), _mm256_max_ps(_mm256_set1_ps(-87.3f), x));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i ni = _mm256_cvtps_epi32(n);  // integral already: exact
  const __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
  const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
  return _mm256_and_ps(keep, _mm256_mul_ps(_mm256_mul_ps(p, s1), s2));
}

// Σ of the 16 lanes lo ‖ hi in the order of _mm512_reduce_add_ps (halves, quarters, pairs).
DPO_AVX2 inline float ReduceAdd16(__m256 lo, __m256 hi) {
  const __m256 s8 = _mm256_add_ps(hi, lo);
  const __m128 s4 = _mm_add_ps(_mm256_extractf128_ps(s8, 1), _mm256_castps256_ps128(s8));
  const __m128 s2 = _mm_add_ps(s4, _mm_shuffle_ps(s4, s4, _MM_SHUFFLE(1, 0, 3, 2)));
  return _mm_cvtss_f32(s2) + _mm_cvtss_f32(_mm_shuffle_ps(s2, s2, 1));
}

// MR ≤ 6 rows × 16 columns of C in registers (12 ymm accumulators + 2 B + 1 A). One named
// variable per accumulator: GCC 12 keeps an array of __m256 on the stack and spills every FMA.
template <int MR>
DPO_AVX2 inline void MicroKernel6x16(int64_t K, const float* A, int64_t ars, int64_t axs, const float* B,
                                     int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  static_assert(MR >= 1 && MR <= 6, "1 to 6 rows");
#define DPO_ROWS6(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define DPO_DECL(i) __m256 c##i##0 = _mm256_setzero_ps(), c##i##1 = _mm256_setzero_ps();
  DPO_ROWS6(DPO_DECL)
#undef DPO_DECL
  if (accumulate) {
#define DPO_LOAD(i)                                  \
  if (MR > i) {                                      \
    c##i##0 = _mm256_loadu_ps(C + i * ldc);          \
    c##i##1 = _mm256_loadu_ps(C + i * ldc + 8);      \
  }
    DPO_ROWS6(DPO_LOAD)
#undef DPO_LOAD
  }
  for (int64_t x = 0; x < K; x++) {
    const __m256 b0 = _mm256_loadu_ps(B + x * ldb), b1 = _mm256_loadu_ps(B + x * ldb + 8);
    const float* a = A + x * axs;
#define DPO_STEP(i)                                      \
  if (MR > i) {                                          \
    const __m256 ai = _mm256_broadcast_ss(a + i * ars);  \
    c##i##0 = _mm256_fmadd_ps(ai, b0, c##i##0);          \
    c##i##1 = _mm256_fmadd_ps(ai, b1, c##i##1);          \
  }
    DPO_ROWS6(DPO_STEP)
#undef DPO_STEP
  }
#define DPO_STORE(i)                               \
  if (MR > i) {                                    \
    _mm256_storeu_ps(C + i * ldc, c##i##0);        \
    _mm256_storeu_ps(C + i * ldc + 8, c##i##1);    \
  }
  DPO_ROWS6(DPO_STORE)
#undef DPO_STORE
#undef DPO_ROWS6
}

struct Avx2Ops {
  // Same contract as PortableOps::PackTransposed (ncols a multiple of 16), in 8×8 blocks
  // transposed in registers.
  DPO_AVX2 static void PackTransposed(float* dst, const float* src, int64_t stride, int64_t n,
                                      int64_t ncols, int64_t D) {
    const __m256 zero = _mm256_setzero_ps();
    for (int64_t j0 = 0; j0 < ncols; j0 += 8) {
      for (int64_t d0 = 0; d0 < D; d0 += 8) {
        const bool full = d0 + 8 <= D;
        const __m256i dm = Mask8(D - d0);
        __m256 r[8];
        for (int i = 0; i < 8; i++) {  // rows past n are zeros (padding keys)
          const float* p = src + (j0 + i) * stride + d0;
          r[i] = j0 + i >= n ? zero : full ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, dm);
        }
        __m256 t[8], u[8];
        for (int i = 0; i < 4; i++) {
          t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
          t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        for (int h = 0; h < 2; h++) {  // rows 4h..4h+3: u[4h + c] holds column c (and c + 4) per lane
          u[4 * h + 0] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0x44);
          u[4 * h + 1] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0xEE);
          u[4 * h + 2] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0x44);
          u[4 * h + 3] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0xEE);
        }
        for (int c = 0; c < 4; c++) {
          r[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);      // column c
          r[4 + c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);  // column 4 + c
        }
        for (int c = 0; c < 8 && d0 + c < D; c++) _mm256_storeu_ps(dst + (d0 + c) * kBK + j0, r[c]);
      }
    }
  }

  // Same contract as PortableOps::Gemm; ncols must be a multiple of 16.
  DPO_AVX2 static void Gemm(int64_t rows, int64_t ncols, int64_t K, const float* A, int64_t ars,
                            int64_t axs, const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate) {
    for (int64_t r0 = 0; r0 < rows; r0 += 6) {
      const int mr = int(std::min<int64_t>(6, rows - r0));
      for (int64_t c0 = 0; c0 < ncols; c0 += 16) {
        const float* a = A + r0 * ars;
        const float* b = B + c0;
        float* c = C + r0 * ldc + c0;
        switch (mr) {
#define DPO_CASE(M) \
  case M: MicroKernel6x16<M>(K, a, ars, axs, b, ldb, c, ldc, accumulate); break;
          DPO_CASE(1) DPO_CASE(2) DPO_CASE(3) DPO_CASE(4) DPO_CASE(5) DPO_CASE(6)
#undef DPO_CASE
          default: break;
        }
      }
    }
  }

  DPO_AVX2 static float ScaleMax(float* s, int64_t n, float scale) {
    __m256 mx = _mm256_set1_ps(kNegInf);
    const __m256 sc = _mm256_set1_ps(scale);
    for (int64_t j = 0; j < n; j += 8) {
      const __m256i m = Mask8(n - j);
      const __m256 x = _mm256_mul_ps(_mm256_maskload_ps(s + j, m), sc);
      _mm256_maskstore_ps(s + j, m, x);
      mx = _mm256_blendv_ps(mx, _mm256_max_ps(mx, x), _mm256_castsi256_ps(m));
    }
    const __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(mx, 1), _mm256_castps256_ps128(mx));
    const __m128 m2 = _mm_max_ps(m4, _mm_shuffle_ps(m4, m4, _MM_SHUFFLE(1, 0, 3, 2)));
    return std::max(_mm_cvtss_f32(m2), _mm_cvtss_f32(_mm_shuffle_ps(m2, m2, 1)));
  }

  DPO_AVX2 static float ExpSubSum(float* s, int64_t n, int64_t ncols, float shift) {
    __m256 sum[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};  // lanes 0–7 and 8–15 of a zmm
    const __m256 sh = _mm256_set1_ps(shift);
    for (int64_t j = 0; j < ncols; j += 8) {
      const __m256 m = _mm256_castsi256_ps(Mask8(n - j));
      const __m256 x = _mm256_and_ps(m, _mm256_loadu_ps(s + j));  // ncols ≤ row width: in bounds
      const __m256 p = _mm256_and_ps(m, Exp256(_mm256_sub_ps(x, sh)));
      _mm256_storeu_ps(s + j, p);
      sum[(j >> 3) & 1] = _mm256_add_ps(sum[(j >> 3) & 1], p);
    }
    return ReduceAdd16(sum[0], sum[1]);
  }

  DPO_AVX2 static void SoftmaxGrad(float* s, float* dp, int64_t n, int64_t ncols, float scale, float lse,
                                   float Di) {
    const __m256 sc = _mm256_set1_ps(scale), l = _mm256_set1_ps(lse), di = _mm256_set1_ps(Di);
    for (int64_t j = 0; j < ncols; j += 8) {
      const __m256 m = _mm256_castsi256_ps(Mask8(n - j));
      const __m256 x = _mm256_and_ps(m, _mm256_loadu_ps(s + j));
      const __m256 p = _mm256_and_ps(m, Exp256(_mm256_sub_ps(_mm256_mul_ps(x, sc), l)));
      const __m256 g = _mm256_mul_ps(p, _mm256_sub_ps(_mm256_and_ps(m, _mm256_loadu_ps(dp + j)), di));
      _mm256_storeu_ps(s + j, p);
      _mm256_storeu_ps(dp + j, g);
    }
  }
};
#undef DPO_AVX2
#endif  // __x86_64__

// The path Isa() (cpu.h) names: 2 = AVX-512, 1 = AVX2+FMA, 0 = portable (DPO_NATIVE_ISA=avx2|generic
// caps it).

// ---------------------------------------------------------------------------------------------
// Forward.

struct FwdArgs {
  const float *q, *k, *v;
  float *out, *lse;
  int64_t B, Tq, Tk, H, Hkv, D;
  float scale;
  int64_t kvStride;
  const int32_t* kvStart;
};

template <class Ops>
void ForwardTile(const FwdArgs& a, int64_t b, int64_t h, int64_t qt) {
  const int64_t D = a.D, Dp = RoundUp16(D), G = a.H / a.Hkv, g = h / G;
  const int64_t qStride = a.H * D, kStride = a.Hkv * D;
  const int64_t t0 = qt * kBQ, nr = std::min(kBQ, a.Tq - t0);
  const int64_t off = a.Tk - a.Tq;  // absolute position of query t is off + t
  const int64_t ks = a.kvStart ? a.kvStart[b] : 0;
  const float* qb = a.q + ((b * a.Tq + t0) * a.H + h) * D;
  const float* kb = a.k + b * a.kvStride + g * D;
  const float* vb = a.v + b * a.kvStride + g * D;
  float* ob = a.out + ((b * a.Tq + t0) * a.H + h) * D;
  float* lb = a.lse + (b * a.H + h) * a.Tq + t0;

  float* S = tScratch.Get(kBQ * kBK + kBQ * Dp + D * kBK + kBK * Dp + 2 * kBQ);
  float* acc = S + kBQ * kBK;   // [kBQ, Dp] unnormalized output
  float* Kt = acc + kBQ * Dp;   // [D, kBK] key tile transposed
  float* Vp = Kt + D * kBK;     // [kBK, Dp] value tile (when D is not a multiple of 16)
  float* m = Vp + kBK * Dp;     // running max of scaled scores per row
  float* l = m + kBQ;           // running Σ exp(s − m) per row
  std::fill(m, m + nr, kNegInf);
  std::fill(l, l + nr, 0.0f);
  std::fill(acc, acc + nr * Dp, 0.0f);

  const int64_t lastKey = off + t0 + nr - 1;  // last key the tile's last row sees
  for (int64_t j0 = ks; j0 <= lastKey; j0 += kBK) {
    const int64_t nk = std::min(kBK, lastKey + 1 - j0), ncols = RoundUp16(nk);
    // Rows whose last visible key precedes j0 see nothing here; they form a prefix of the tile.
    const int64_t first = std::max<int64_t>(0, j0 - off - t0), rows = nr - first;
    Ops::PackTransposed(Kt, kb + j0 * kStride, kStride, nk, ncols, D);
    int64_t ldv;
    const float* V = RowsOrPack(Vp, vb + j0 * kStride, kStride, nk, D, Dp, &ldv);
    Ops::Gemm(rows, ncols, D, qb + first * qStride, qStride, 1, Kt, kBK, S + first * kBK, kBK, false);
    for (int64_t i = first; i < nr; i++) {
      const int64_t nv = std::min(nk, off + t0 + i - j0 + 1);  // visible keys of row i in this tile
      float* s = S + i * kBK;
      const float mnew = std::max(m[i], Ops::ScaleMax(s, nv, a.scale));
      const float alpha = std::exp(m[i] - mnew);  // 0 on the first visited tile (m = −inf)
      const float sum = Ops::ExpSubSum(s, nv, ncols, mnew);
      l[i] = l[i] * alpha + sum;
      m[i] = mnew;
      if (alpha != 1.0f) {
        float* ai = acc + i * Dp;
        for (int64_t d = 0; d < Dp; d++) ai[d] *= alpha;
      }
    }
    Ops::Gemm(rows, Dp, nk, S + first * kBK, kBK, 1, V, ldv, acc + first * Dp, Dp, true);
  }

  for (int64_t i = 0; i < nr; i++) {
    float* o = ob + i * qStride;
    if (l[i] == 0.0f) {  // no visible key (left padding): defined as out 0, lse −inf
      std::fill(o, o + D, 0.0f);
      lb[i] = kNegInf;
      continue;
    }
    const float inv = 1.0f / l[i];
    const float* ai = acc + i * Dp;
    for (int64_t d = 0; d < D; d++) o[d] = ai[d] * inv;
    lb[i] = m[i] + std::log(l[i]);
  }
}

template <class Ops>
void RunForward(const FwdArgs& a) {
  const int64_t nqt = (a.Tq + kBQ - 1) / kBQ;
  // Later query tiles see more keys: all of them are handed out first so the pool ends balanced.
  ParallelFor(a.B * a.H * nqt, [&](int64_t task) {
    const int64_t qt = nqt - 1 - task / (a.B * a.H), bh = task % (a.B * a.H);
    ForwardTile<Ops>(a, bh / a.H, bh % a.H, qt);
  });
}

// ---------------------------------------------------------------------------------------------
// Backward.

struct BwdArgs {
  const float *dout, *q, *k, *v, *out, *lse;
  float *dq, *dk, *dv;
  int64_t B, T, H, Hkv, D;
  float scale;
  const int32_t* kvStart;
  const float* Dvec;  // [B, H, T]: Di = Σ_d dO·O
};

// Per-thread buffers of one key-tile sweep (see SweepKeyTile); extra floats follow dVacc.
struct TileBufs {
  float *Kt, *Vt, *Kp, *S, *dP, *Qp, *dOp, *dKacc, *dVacc, *extra;
};

TileBufs TileScratch(int64_t D, int64_t Dp, int64_t extra) {
  TileBufs t;
  t.Kt = tScratch.Get(2 * D * kBK + kBK * Dp + 2 * kBQ * kBK + 2 * kBQ * Dp + 2 * kBK * Dp + extra);
  t.Vt = t.Kt + D * kBK;         // [D, kBK] key and value tiles, transposed
  t.Kp = t.Vt + D * kBK;         // [kBK, Dp] key rows (the B operand of dS·K)
  t.S = t.Kp + kBK * Dp;         // [kBQ, kBK] scores → P
  t.dP = t.S + kBQ * kBK;        // [kBQ, kBK] dO·Vᵀ → dS
  t.Qp = t.dP + kBQ * kBK;       // [kBQ, Dp]
  t.dOp = t.Qp + kBQ * Dp;       // [kBQ, Dp]
  t.dKacc = t.dOp + kBQ * Dp;    // [kBK, Dp] Σ dSᵀ·Q (scale applied at the end)
  t.dVacc = t.dKacc + kBK * Dp;  // [kBK, Dp] Σ Pᵀ·dO
  t.extra = t.dVacc + kBK * Dp;
  return t;
}

// Keys j0 .. j0+kBK of KV head g of batch item b against every query head of the group and every
// query row that sees them: writes the tile's dK, dV and, when dQacc ([G, T, Dp]) is given, adds
// dS·K into it as well (the fused scheme). The same products in the same order either way.
template <class Ops>
void SweepKeyTile(const BwdArgs& a, int64_t b, int64_t g, int64_t j0, const TileBufs& s, float* dQacc) {
  const int64_t T = a.T, D = a.D, Dp = RoundUp16(D), G = a.H / a.Hkv;
  const int64_t qStride = a.H * D, kStride = a.Hkv * D;
  const int64_t kvBase = b * T * kStride + g * D;
  const int64_t nk = std::min(kBK, T - j0), ncols = RoundUp16(nk);
  Ops::PackTransposed(s.Kt, a.k + kvBase + j0 * kStride, kStride, nk, ncols, D);
  Ops::PackTransposed(s.Vt, a.v + kvBase + j0 * kStride, kStride, nk, ncols, D);
  int64_t ldk = 0;
  const float* Kr = dQacc ? RowsOrPack(s.Kp, a.k + kvBase + j0 * kStride, kStride, nk, D, Dp, &ldk) : nullptr;
  std::fill(s.dKacc, s.dKacc + 2 * kBK * Dp, 0.0f);

  for (int64_t h = g * G; h < (g + 1) * G; h++) {
    const float* lseRow = a.lse + (b * a.H + h) * T;
    const float* DiRow = a.Dvec + (b * a.H + h) * T;
    // Queries before j0 cannot see these keys (causal): start at t = j0.
    for (int64_t i0 = j0; i0 < T; i0 += kBQ) {
      const int64_t nr = std::min(kBQ, T - i0);
      const float* qa = a.q + ((b * T + i0) * a.H + h) * D;
      const float* da = a.dout + ((b * T + i0) * a.H + h) * D;
      int64_t ldq, ldo;
      const float* Q = RowsOrPack(s.Qp, qa, qStride, nr, D, Dp, &ldq);
      const float* dO = RowsOrPack(s.dOp, da, qStride, nr, D, Dp, &ldo);
      Ops::Gemm(nr, ncols, D, qa, qStride, 1, s.Kt, kBK, s.S, kBK, false);
      Ops::Gemm(nr, ncols, D, da, qStride, 1, s.Vt, kBK, s.dP, kBK, false);
      for (int64_t i = 0; i < nr; i++) {
        const int64_t t = i0 + i;
        const float L = lseRow[t];
        const int64_t nv = L == kNegInf ? 0 : std::min(nk, t - j0 + 1);
        Ops::SoftmaxGrad(s.S + i * kBK, s.dP + i * kBK, nv, ncols, a.scale, L, DiRow[t]);
      }
      // dV += Pᵀ·dO and dK += dSᵀ·Q: A read transposed (row stride 1, inner stride kBK).
      Ops::Gemm(nk, Dp, nr, s.S, 1, kBK, dO, ldo, s.dVacc, Dp, true);
      Ops::Gemm(nk, Dp, nr, s.dP, 1, kBK, Q, ldq, s.dKacc, Dp, true);
      if (dQacc) Ops::Gemm(nr, Dp, nk, s.dP, kBK, 1, Kr, ldk, dQacc + ((h - g * G) * T + i0) * Dp, Dp, true);
    }
  }
  for (int64_t jj = 0; jj < nk; jj++) {
    float* dk = a.dk + kvBase + (j0 + jj) * kStride;
    float* dv = a.dv + kvBase + (j0 + jj) * kStride;
    for (int64_t d = 0; d < D; d++) {
      dk[d] = a.scale * s.dKacc[jj * Dp + d];
      dv[d] = s.dVacc[jj * Dp + d];
    }
  }
}

// Masked keys (before kvStart) get no gradient.
void ZeroMaskedKeys(const BwdArgs& a, int64_t b, int64_t g, int64_t ks) {
  const int64_t kStride = a.Hkv * a.D, kvBase = b * a.T * kStride + g * a.D;
  for (int64_t j = 0; j < ks; j++) {
    std::fill(a.dk + kvBase + j * kStride, a.dk + kvBase + j * kStride + a.D, 0.0f);
    std::fill(a.dv + kvBase + j * kStride, a.dv + kvBase + j * kStride + a.D, 0.0f);
  }
}

// Pass 1: dK, dV of key tile kt (keys ks + kt·kBK ...) for KV head g of batch item b.
template <class Ops>
void BackwardKVTile(const BwdArgs& a, int64_t b, int64_t g, int64_t kt) {
  const int64_t ks = std::min<int64_t>(a.kvStart ? a.kvStart[b] : 0, a.T);
  if (kt == 0) ZeroMaskedKeys(a, b, g, ks);
  const int64_t j0 = ks + kt * kBK;
  if (j0 >= a.T) return;
  SweepKeyTile<Ops>(a, b, g, j0, TileScratch(a.D, RoundUp16(a.D), 0), nullptr);
}

// Pass 2: dQ of query tile qt for head h of batch item b.
template <class Ops>
void BackwardQTile(const BwdArgs& a, int64_t b, int64_t h, int64_t qt) {
  const int64_t T = a.T, D = a.D, Dp = RoundUp16(D), G = a.H / a.Hkv, g = h / G;
  const int64_t qStride = a.H * D, kStride = a.Hkv * D;
  const int64_t t0 = qt * kBQ, nr = std::min(kBQ, T - t0);
  const int64_t ks = a.kvStart ? a.kvStart[b] : 0;
  const float* qa = a.q + ((b * T + t0) * a.H + h) * D;
  const float* da = a.dout + ((b * T + t0) * a.H + h) * D;
  const float* kb = a.k + b * T * kStride + g * D;
  const float* vb = a.v + b * T * kStride + g * D;
  const float* lseRow = a.lse + (b * a.H + h) * T + t0;
  const float* DiRow = a.Dvec + (b * a.H + h) * T + t0;

  float* Kt = tScratch.Get(2 * D * kBK + kBK * Dp + 2 * kBQ * kBK + kBQ * Dp);
  float* Vt = Kt + D * kBK;       // [D, kBK]
  float* Kp = Vt + D * kBK;       // [kBK, Dp]
  float* S = Kp + kBK * Dp;       // [kBQ, kBK]
  float* dP = S + kBQ * kBK;      // [kBQ, kBK]
  float* dQacc = dP + kBQ * kBK;  // [kBQ, Dp] Σ dS·K (scale applied at the end)
  std::fill(dQacc, dQacc + nr * Dp, 0.0f);

  const int64_t lastKey = t0 + nr - 1;
  for (int64_t j0 = ks; j0 <= lastKey; j0 += kBK) {
    const int64_t nk = std::min(kBK, lastKey + 1 - j0), ncols = RoundUp16(nk);
    const int64_t first = std::max<int64_t>(0, j0 - t0), rows = nr - first;
    Ops::PackTransposed(Kt, kb + j0 * kStride, kStride, nk, ncols, D);
    Ops::PackTransposed(Vt, vb + j0 * kStride, kStride, nk, ncols, D);
    int64_t ldk;
    const float* Kr = RowsOrPack(Kp, kb + j0 * kStride, kStride, nk, D, Dp, &ldk);
    Ops::Gemm(rows, ncols, D, qa + first * qStride, qStride, 1, Kt, kBK, S + first * kBK, kBK, false);
    Ops::Gemm(rows, ncols, D, da + first * qStride, qStride, 1, Vt, kBK, dP + first * kBK, kBK, false);
    for (int64_t i = first; i < nr; i++) {
      const float L = lseRow[i];
      const int64_t nv = L == kNegInf ? 0 : std::min(nk, t0 + i - j0 + 1);
      Ops::SoftmaxGrad(S + i * kBK, dP + i * kBK, nv, ncols, a.scale, L, DiRow[i]);
    }
    Ops::Gemm(rows, Dp, nk, dP + first * kBK, kBK, 1, Kr, ldk, dQacc + first * Dp, Dp, true);
  }
  for (int64_t i = 0; i < nr; i++) {
    float* dq = a.dq + ((b * T + t0 + i) * a.H + h) * D;
    for (int64_t d = 0; d < D; d++) dq[d] = a.scale * dQacc[i * Dp + d];
  }
}

// Fused pass: dQ, dK and dV of KV head g of batch item b in one sweep over key tiles.
template <class Ops>
void BackwardGroup(const BwdArgs& a, int64_t b, int64_t g) {
  const int64_t T = a.T, D = a.D, Dp = RoundUp16(D), G = a.H / a.Hkv;
  const int64_t ks = std::min<int64_t>(a.kvStart ? a.kvStart[b] : 0, T);
  ZeroMaskedKeys(a, b, g, ks);
  const TileBufs s = TileScratch(D, Dp, G * T * Dp);
  float* dQacc = s.extra;  // [G, T, Dp] Σ dS·K (scale applied at the end)
  std::fill(dQacc, dQacc + G * T * Dp, 0.0f);
  for (int64_t j0 = ks; j0 < T; j0 += kBK) SweepKeyTile<Ops>(a, b, g, j0, s, dQacc);
  for (int64_t h = g * G; h < (g + 1) * G; h++) {
    const float* dQh = dQacc + (h - g * G) * T * Dp;
    for (int64_t t = 0; t < T; t++) {
      float* dq = a.dq + ((b * T + t) * a.H + h) * D;
      for (int64_t d = 0; d < D; d++) dq[d] = a.scale * dQh[t * Dp + d];
    }
  }
}

// DPO_ATTENTION_BACKWARD=fused|two-pass forces a scheme (tests compare them); otherwise fused
// when the (batch, KV head) tasks keep every thread busy: at least 4 per thread, or an equal
// number per thread (tasks cost about the same without left padding).
bool UseFusedBackward(int64_t tasks) {
  static const int forced = [] {
    const char* env = std::getenv("DPO_ATTENTION_BACKWARD");
    if (!env || !*env) return 0;
    if (std::strcmp(env, "fused") == 0) return 1;
    if (std::strcmp(env, "two-pass") == 0) return 2;
    std::fprintf(stderr, "dpo attention: DPO_ATTENTION_BACKWARD=%s is not fused or two-pass; using the default\n", env);
    return 0;
  }();
  if (forced) return forced == 1;
  const int64_t threads = NumThreads();
  return tasks >= 4 * threads || tasks % threads == 0;
}

template <class Ops>
void RunBackward(BwdArgs a) {
  const int64_t T = a.T, D = a.D;
  std::vector<float> Dvec(size_t(a.B * a.H * T));
  // Di = rowsum(dO∘O), [B, H, T]; one task per (b, h), each a plain sequential sum.
  ParallelFor(a.B * a.H, [&](int64_t bh) {
    const int64_t b = bh / a.H, h = bh % a.H;
    for (int64_t t = 0; t < T; t++) {
      const float* o = a.out + ((b * T + t) * a.H + h) * D;
      const float* d = a.dout + ((b * T + t) * a.H + h) * D;
      float s = 0.0f;
      for (int64_t x = 0; x < D; x++) s += o[x] * d[x];
      Dvec[bh * T + t] = s;
    }
  });
  a.Dvec = Dvec.data();
  if (UseFusedBackward(a.B * a.Hkv)) {
    ParallelFor(a.B * a.Hkv, [&](int64_t bg) { BackwardGroup<Ops>(a, bg / a.Hkv, bg % a.Hkv); });
    return;
  }
  const int64_t ntiles = (T + kBK - 1) / kBK;
  // Low key tiles are seen by more queries: they go first.
  ParallelFor(a.B * a.Hkv * ntiles, [&](int64_t task) {
    const int64_t kt = task / (a.B * a.Hkv), bg = task % (a.B * a.Hkv);
    BackwardKVTile<Ops>(a, bg / a.Hkv, bg % a.Hkv, kt);
  });
  const int64_t nqt = (T + kBQ - 1) / kBQ;
  ParallelFor(a.B * a.H * nqt, [&](int64_t task) {
    const int64_t qt = nqt - 1 - task / (a.B * a.H), bh = task % (a.B * a.H);
    BackwardQTile<Ops>(a, bh / a.H, bh % a.H, qt);
  });
}

// ---------------------------------------------------------------------------------------------
// Argument checks.

// Shared shape checks: dims positive, H a multiple of Hkv, Tq ≤ Tk, kvStart non-negative with
// ≥ batch entries.
const int32_t* CheckHeads(Check& a, int64_t B, int64_t Tq, int64_t Tk, int64_t H, int64_t Hkv, int64_t D,
                          const int32_t* kvStart, size_t kvStart_len) {
  if (!a.ok()) return nullptr;
  const std::string dims = "batch=" + std::to_string(B) + ", Tq=" + std::to_string(Tq) +
                           ", Tk=" + std::to_string(Tk) + ", H=" + std::to_string(H) +
                           ", Hkv=" + std::to_string(Hkv) + ", D=" + std::to_string(D);
  if (!a.Require(H >= 1 && Hkv >= 1 && D >= 1, "invalid sizes (" + dims + ")")) return nullptr;
  if (!a.Require(H % Hkv == 0, "H must be a multiple of Hkv (" + dims + ")")) return nullptr;
  if (!a.Require(Tq <= Tk, "Tq must not exceed Tk (" + dims + ")")) return nullptr;
  const int32_t* ks = a.OptI32(kvStart, kvStart_len, "kvStart", B, "one entry per batch item");
  if (ks) {
    for (int64_t b = 0; b < B && a.ok(); b++)
      a.Require(ks[b] >= 0, "kvStart[" + std::to_string(b) + "] = " + std::to_string(ks[b]) + " is negative");
  }
  return ks;
}

}  // namespace
}  // namespace dpo

// ---------------------------------------------------------------------------------------------
// C ABI (abi.h).

using namespace dpo;

extern "C" {

int dpo_attention_forward(const float* q, size_t q_len, const float* k, size_t k_len, const float* v,
                          size_t v_len, float* out, size_t out_len, float* lse, size_t lse_len, double batch,
                          double Tq, double Tk, double H, double Hkv, double D, double scale, double kvBatchStride,
                          const int32_t* kvStart, size_t kvStart_len) {
  Check c("attentionForward");
  FwdArgs a;
  a.B = c.Count(batch, "batch"), a.Tq = c.Count(Tq, "Tq"), a.Tk = c.Count(Tk, "Tk"), a.H = c.Count(H, "H");
  a.Hkv = c.Count(Hkv, "Hkv"), a.D = c.Count(D, "D"), a.kvStride = c.Count(kvBatchStride, "kvBatchStride");
  a.scale = float(scale);
  a.kvStart = CheckHeads(c, a.B, a.Tq, a.Tk, a.H, a.Hkv, a.D, kvStart, kvStart_len);
  const int64_t kvItem = SatMul(SatMul(a.Tk, a.Hkv), a.D);
  c.Require(a.kvStride >= kvItem, "kvBatchStride " + std::to_string(a.kvStride) + " is below Tk·Hkv·D = " +
                                      std::to_string(kvItem));
  const int64_t kvNeed = a.B == 0 ? 0 : SatAdd(SatMul(a.B - 1, a.kvStride), kvItem);
  const std::string qf = "batch·Tq·H·D = " + std::to_string(a.B) + "·" + std::to_string(a.Tq) + "·" +
                         std::to_string(a.H) + "·" + std::to_string(a.D);
  const std::string kvf = "(batch−1)·kvBatchStride + Tk·Hkv·D with batch=" + std::to_string(a.B) +
                          ", kvBatchStride=" + std::to_string(a.kvStride) + ", Tk=" + std::to_string(a.Tk) +
                          ", Hkv=" + std::to_string(a.Hkv) + ", D=" + std::to_string(a.D);
  const int64_t qNeed = SatMul(SatMul(SatMul(a.B, a.Tq), a.H), a.D);
  a.q = c.F32(q, q_len, "q", qNeed, qf);
  a.k = c.F32(k, k_len, "k", kvNeed, kvf);
  a.v = c.F32(v, v_len, "v", kvNeed, kvf);
  a.out = c.F32(out, out_len, "out", qNeed, qf);
  a.lse = c.F32(lse, lse_len, "lse", SatMul(SatMul(a.B, a.H), a.Tq), "batch·H·Tq");
  if (!c.ok()) return c.status();
  if (qNeed == 0) return DPO_OK;
#if defined(__x86_64__)
  if (Isa() == 2) {
    RunForward<Avx512Ops>(a);
    return DPO_OK;
  }
  if (Isa() == 1) {
    RunForward<Avx2Ops>(a);
    return DPO_OK;
  }
#endif
  RunForward<PortableOps>(a);
  return DPO_OK;
}

int dpo_attention_backward(const float* dout, size_t dout_len, const float* q, size_t q_len, const float* k,
                           size_t k_len, const float* v, size_t v_len, const float* out, size_t out_len,
                           const float* lse, size_t lse_len, float* dq, size_t dq_len, float* dk, size_t dk_len,
                           float* dv, size_t dv_len, double batch, double T, double H, double Hkv, double D,
                           double scale, const int32_t* kvStart, size_t kvStart_len) {
  Check c("attentionBackward");
  BwdArgs a;
  a.B = c.Count(batch, "batch"), a.T = c.Count(T, "T"), a.H = c.Count(H, "H"), a.Hkv = c.Count(Hkv, "Hkv");
  a.D = c.Count(D, "D");
  a.scale = float(scale);
  a.Dvec = nullptr;
  a.kvStart = CheckHeads(c, a.B, a.T, a.T, a.H, a.Hkv, a.D, kvStart, kvStart_len);
  const int64_t bt = SatMul(a.B, a.T);
  const int64_t qNeed = SatMul(SatMul(bt, a.H), a.D), kvNeed = SatMul(SatMul(bt, a.Hkv), a.D);
  const std::string qf = "batch·T·H·D = " + std::to_string(a.B) + "·" + std::to_string(a.T) + "·" +
                         std::to_string(a.H) + "·" + std::to_string(a.D);
  const std::string kvf = "batch·T·Hkv·D = " + std::to_string(a.B) + "·" + std::to_string(a.T) + "·" +
                          std::to_string(a.Hkv) + "·" + std::to_string(a.D);
  a.dout = c.F32(dout, dout_len, "dout", qNeed, qf);
  a.q = c.F32(q, q_len, "q", qNeed, qf);
  a.k = c.F32(k, k_len, "k", kvNeed, kvf);
  a.v = c.F32(v, v_len, "v", kvNeed, kvf);
  a.out = c.F32(out, out_len, "out", qNeed, qf);
  a.lse = c.F32(lse, lse_len, "lse", SatMul(SatMul(a.B, a.H), a.T), "batch·H·T");
  a.dq = c.F32(dq, dq_len, "dq", qNeed, qf);
  a.dk = c.F32(dk, dk_len, "dk", kvNeed, kvf);
  a.dv = c.F32(dv, dv_len, "dv", kvNeed, kvf);
  if (!c.ok()) return c.status();
  if (qNeed == 0) return DPO_OK;
#if defined(__x86_64__)
  if (Isa() == 2) {
    RunBackward<Avx512Ops>(a);
    return DPO_OK;
  }
  if (Isa() == 1) {
    RunBackward<Avx2Ops>(a);
    return DPO_OK;
  }
#endif
  RunBackward<PortableOps>(a);
  return DPO_OK;
}

}  // extern "C"
