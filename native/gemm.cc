// Single-precision GEMM, row-major, batched:  C[b] = alpha · op(A[b]) · op(B[b]) + beta · C[b].
//
// Structure (Goto/BLIS; the blocked driver is gemm-driver.h's template, shared with gemm_bf16.cc,
// instantiated here with float panels: Driver below). For one large product: for each slab of
// ≤ kSlabN columns (all of N when that slab fits in half the L2, so op(A) is packed only once per
// K block) and each K block of ≤ kKcMax, the pool first packs the KC×TN slab of op(B) into NR-wide micro-panels
// (shared, stays in L2), then tasks of kRowBlock rows pack their op(A) rows into MR-row
// micro-panels (L1) and run the register-blocked micro-kernel across the slab. Small batched
// products run one task per (batch item, row block), each packing its own operands. Very thin
// products (M < 4 or N < 8) skip packing and use direct loops, and so do
// a few rows (M ≤ 16) against a B stored N×K (batched decoding: each weight row read once).
//
// Determinism: all block sizes depend on the shape only, and work is split over rows/columns of
// C, never over K, so every C element is summed in the same order whatever the thread count:
// 1 and N threads give bit-identical results.
//
// Micro-kernels, chosen at run time from CPU features (DPO_GEMM_KERNEL=avx512|avx2|neon|portable
// forces one, gemmSetKernel(name) switches at run time for tests):
//   avx512: 12×32 tile of C in 24 zmm accumulators, one broadcast of A per row, FMA.
//   avx2:    6×16 tile in 12 ymm accumulators.
//   neon:     8×12 tile in 24 q-register accumulators, lane-indexed FMA (arm64).
//   wasm-simd128: 5×8 tile in 10 v128 accumulators, multiply + add (WebAssembly builds).
//   wasm-relaxed-simd: the same tile with f32x4.relaxed_madd (the *_relaxed wasm builds). With the
//                 SIMD128 packers it runs at 57-62 GFLOP/s per core in chromium (EPYC Zen 5),
//                 about 90% of the bench's multiply-add loop (58-65; bench/wasm-gemm.ts); other
//                 register blockings have no room (15 live vectors = V8's allocatable xmm0-14 on
//                 x86-64) and the BLIS loop order (B micro-panel outer) measured 0.96-1.02×.
//                 1024³ on 1 thread (Node, bench/wasm-gemm.ts --breakdown, CPU time): without
//                 packing the kernel runs at 95-97% of the loop, the whole call at 87-92% (packing
//                 2-3%, copies 0-5%, loaded machine). Measured and dropped: KC 128-512 with slabs of
//                 256-1024 columns, 24- or 48-row slab tasks (all within ±1.5%),
//                 reading op(A) from its rows instead of packing it (6 row pointers: 0.74×),
//                 alpha = 1 / beta ∈ {0, 1} epilogues without the multiplications (same), op(A)
//                 packed once per K block for all slabs with KC 512 (resident operands 1.01-1.03×,
//                 the bench call 1.00-1.015×: not worth a second driver loop).
//   portable: 4×16 plain C++ (the compiler vectorizes it for whatever ISA it targets).
// The AVX paths are compiled with target attributes, so no global -mavx flags are needed.
// Pack-buffer allocation failure is fatal (std::bad_alloc inside a pool task terminates).
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "abi.h"
#include "check.h"
#include "cpu.h"
#include "gemm-args.h"
#include "gemm-driver.h"
#include "kernel-choice.h"
#include "pack-buffers.h"
#include "threadpool.h"

#if defined(__x86_64__) || defined(_M_X64)
#define DPO_GEMM_X86 1
#include <immintrin.h>
#endif
#if defined(__aarch64__)
#define DPO_GEMM_NEON 1
#include <arm_neon.h>
#endif
#if defined(__wasm_simd128__)
#define DPO_GEMM_WASM 1
#include <wasm_simd128.h>
#endif

namespace dpo {
namespace {

// ---------------------------------------------------------------------------------------------
// Problem description and packing (scalar versions serve every kernel; AVX-512 adds register transposes).

struct Problem {
  bool ta, tb;
  int64_t M, N, K;
  const float* A;
  int64_t sA;
  const float* B;
  int64_t sB;
  float* C;
  int64_t sC;
  int64_t batch;
  float alpha, beta;
};

// Packs op(A)[i0:i0+rows, p0:p0+kc] as ceil(rows/MR) micro-panels of kc×MR (zero-padded).
void PackA(const Problem& P, const float* A, int64_t i0, int64_t rows, int64_t p0, int64_t kc, int mr,
           float* Ap) {
  const int64_t panels = (rows + mr - 1) / mr;
  if (rows % mr) std::memset(Ap + (panels - 1) * kc * mr, 0, sizeof(float) * kc * mr);
  if (P.ta) {
    // A stored K×M: stream each row segment of `rows` values once, dealing MR-wide pieces.
    for (int64_t k = 0; k < kc; k++) {
      const float* src = A + (p0 + k) * P.M + i0;
      for (int64_t ir = 0; ir < rows; ir += mr) {
        const int64_t h = std::min<int64_t>(mr, rows - ir);
        float* dst = Ap + (ir / mr) * kc * mr + k * mr;
        for (int64_t i = 0; i < h; i++) dst[i] = src[ir + i];
      }
    }
  } else {
    // A stored M×K: read each row contiguously, write with stride MR.
    for (int64_t i = 0; i < rows; i++) {
      const float* src = A + (i0 + i) * P.K + p0;
      float* dst = Ap + (i / mr) * kc * mr + i % mr;
      for (int64_t k = 0; k < kc; k++) dst[k * mr] = src[k];
    }
  }
}

// Packs op(B)[p0:p0+kc, j0:j0+cols] as ceil(cols/NR) micro-panels of kc×NR (zero-padded).
void PackB(const Problem& P, const float* B, int64_t p0, int64_t kc, int64_t j0, int64_t cols, int nr,
           float* Bp) {
  const int64_t panels = (cols + nr - 1) / nr;
  if (cols % nr) std::memset(Bp + (panels - 1) * kc * nr, 0, sizeof(float) * kc * nr);
  if (!P.tb) {
    // B stored K×N: stream each row segment once (contiguous reads), dealing NR-wide pieces
    // to the panels.
    for (int64_t k = 0; k < kc; k++) {
      const float* src = B + (p0 + k) * P.N + j0;
      for (int64_t jr = 0; jr < cols; jr += nr) {
        const int64_t w = std::min<int64_t>(nr, cols - jr);
        float* dst = Bp + (jr / nr) * kc * nr + k * nr;
        for (int64_t j = 0; j < w; j++) dst[j] = src[jr + j];
      }
    }
  } else {
    // B stored N×K: read each column of op(B) contiguously, write with stride NR.
    for (int64_t jr = 0; jr < cols; jr += nr) {
      const int64_t w = std::min<int64_t>(nr, cols - jr);
      float* panel = Bp + (jr / nr) * kc * nr;
      for (int64_t j = 0; j < w; j++) {
        const float* src = B + (j0 + jr + j) * P.K + p0;
        float* dst = panel + j;
        for (int64_t k = 0; k < kc; k++) dst[k * nr] = src[k];
      }
    }
  }
}

#if DPO_GEMM_X86
// AVX-512 packing. The transposing cases (op(A) from an M×K A, op(B) from an N×K B) load 16
// contiguous values from each row and transpose in registers; scalar versions of these cost a
// quarter of the GEMM time. Full micro-panels only, edges go scalar. The k tails use gathers,
// whose int32 element offsets (row·K) need 31·K below 2³¹.
// cols[c][r] = src[r·ld + c] for r < R, c < 16 (lanes R-15 zero): a 16×16 transpose (R = 12 for
// A panels, 16 for B panels). Stages: 32-bit interleave, 64-bit shuffle (each 128-bit lane then
// holds 4 rows of one column), then two rounds of 128-bit lane shuffles.
template <int R>
__attribute__((target("avx512f,avx2,fma"), always_inline)) inline void TransposeRows(const float* src, int64_t ld,
                                                                                      __m512* cols) {
  static_assert(R % 4 == 0 && R <= 16, "rows must be a multiple of 4, at most 16");
  __m512 r[R], t[R], u[16], v[16];
  for (int i = 0; i < R; i++) r[i] = _mm512_loadu_ps(src + i * ld);
  for (int i = 0; i < R; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  // u[4g + c], lane L = rows 4g..4g+3 of column 4L + c.
  for (int g = 0; g < R / 4; g++) {
    const __m512* tg = t + 4 * g;
    u[4 * g + 0] = _mm512_shuffle_ps(tg[0], tg[2], 0x44);
    u[4 * g + 1] = _mm512_shuffle_ps(tg[0], tg[2], 0xEE);
    u[4 * g + 2] = _mm512_shuffle_ps(tg[1], tg[3], 0x44);
    u[4 * g + 3] = _mm512_shuffle_ps(tg[1], tg[3], 0xEE);
  }
  for (int c = R; c < 16; c++) u[c] = _mm512_setzero_ps();
  // v[j] (j < 4): columns j and j+8 of rows 0-7; v[j+4]: columns j+4 and j+12; v[8+..]: rows 8-15.
  for (int h = 0; h < 16; h += 8) {
    for (int j = 0; j < 4; j++) {
      v[h + j] = _mm512_shuffle_f32x4(u[h + j], u[h + j + 4], 0x88);
      v[h + j + 4] = _mm512_shuffle_f32x4(u[h + j], u[h + j + 4], 0xDD);
    }
  }
  for (int c = 0; c < 8; c++) {
    cols[c] = _mm512_shuffle_f32x4(v[c], v[c + 8], 0x88);
    cols[c + 8] = _mm512_shuffle_f32x4(v[c], v[c + 8], 0xDD);
  }
}

__attribute__((target("avx512f,avx2,fma"))) void PackAAvx512(const Problem& P, const float* A, int64_t i0,
                                                             int64_t rows, int64_t p0, int64_t kc, int mr,
                                                             float* Ap) {
  const __mmask16 m12 = 0x0fff;
  const int64_t full = rows / 12 * 12;
  if (mr != 12 || (!P.ta && P.K * 31 > INT32_MAX)) {
    PackA(P, A, i0, rows, p0, kc, mr, Ap);
    return;
  }
  if (P.ta) {
    // A stored K×M: 12 contiguous values per panel and k (masked load/store).
    for (int64_t k = 0; k < kc; k++) {
      const float* src = A + (p0 + k) * P.M + i0;
      for (int64_t ir = 0; ir < full; ir += 12) {
        _mm512_mask_storeu_ps(Ap + (ir / 12) * kc * 12 + k * 12, m12, _mm512_maskz_loadu_ps(m12, src + ir));
      }
    }
    if (full < rows) PackA(P, A, i0 + full, rows - full, p0, kc, mr, Ap + (full / 12) * kc * 12);
    return;
  }
  // A stored M×K: per 16 values of k, load 16 from each of the 12 rows (contiguous, so the
  // prefetchers follow) and transpose in registers; the k tail uses a gather.
  const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0, 0, 0, 0),
                                         _mm512_set1_epi32(static_cast<int>(P.K)));
  const int64_t k16 = kc / 16 * 16;
  for (int64_t ir = 0; ir < full; ir += 12) {
    const float* src = A + (i0 + ir) * P.K + p0;
    float* dst = Ap + (ir / 12) * kc * 12;
    for (int64_t k = 0; k < k16; k += 16) {
      __m512 cols[16];
      TransposeRows<12>(src + k, P.K, cols);
      for (int c = 0; c < 16; c++) _mm512_mask_storeu_ps(dst + (k + c) * 12, m12, cols[c]);
    }
    for (int64_t k = k16; k < kc; k++) {
      const __m512 v = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m12, idx, src + k, 4);
      _mm512_mask_storeu_ps(dst + k * 12, m12, v);
    }
  }
  if (full < rows) PackA(P, A, i0 + full, rows - full, p0, kc, mr, Ap + (full / 12) * kc * 12);
}

__attribute__((target("avx512f,avx2,fma"))) void PackBAvx512(const Problem& P, const float* B, int64_t p0,
                                                             int64_t kc, int64_t j0, int64_t cols, int nr,
                                                             float* Bp) {
  const int64_t full = cols / 32 * 32;
  if (nr != 32 || (P.tb && P.K * 31 > INT32_MAX)) {
    PackB(P, B, p0, kc, j0, cols, nr, Bp);
    return;
  }
  if (!P.tb) {
    // B stored K×N: 32 contiguous values per panel and k.
    for (int64_t k = 0; k < kc; k++) {
      const float* src = B + (p0 + k) * P.N + j0;
      for (int64_t jr = 0; jr < full; jr += 32) {
        float* dst = Bp + (jr / 32) * kc * 32 + k * 32;
        _mm512_store_ps(dst, _mm512_loadu_ps(src + jr));
        _mm512_store_ps(dst + 16, _mm512_loadu_ps(src + jr + 16));
      }
    }
    if (full < cols) PackB(P, B, p0, kc, j0 + full, cols - full, nr, Bp + (full / 32) * kc * 32);
    return;
  }
  const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                         _mm512_set1_epi32(static_cast<int>(P.K)));
  // B stored N×K: per 16 values of k, transpose two 16×16 blocks (rows 0-15 and 16-31 of the
  // panel) from contiguous loads; the k tail uses gathers.
  const int64_t k16 = kc / 16 * 16;
  for (int64_t jr = 0; jr < full; jr += 32) {
    const float* src0 = B + (j0 + jr) * P.K + p0;
    const float* src1 = src0 + 16 * P.K;
    float* dst = Bp + (jr / 32) * kc * 32;
    for (int64_t k = 0; k < k16; k += 16) {
      __m512 cols[16];
      TransposeRows<16>(src0 + k, P.K, cols);
      for (int c = 0; c < 16; c++) _mm512_store_ps(dst + (k + c) * 32, cols[c]);
      TransposeRows<16>(src1 + k, P.K, cols);
      for (int c = 0; c < 16; c++) _mm512_store_ps(dst + (k + c) * 32 + 16, cols[c]);
    }
    for (int64_t k = k16; k < kc; k++) {
      _mm512_store_ps(dst + k * 32, _mm512_i32gather_ps(idx, src0 + k, 4));
      _mm512_store_ps(dst + k * 32 + 16, _mm512_i32gather_ps(idx, src1 + k, 4));
    }
  }
  if (full < cols) {
    // The partial last panel: scalar packer on a shifted view (it zero-pads).
    PackB(P, B, p0, kc, j0 + full, cols - full, nr, Bp + (full / 32) * kc * 32);
  }
}
// AVX2 packing for the 6×16 kernel (laptops without AVX-512). The transposing cases load 8
// contiguous values from each row and transpose 8×8 blocks in registers, like the AVX-512
// packers; edges and k tails go scalar.
// cols[c][r] = src[r·ld + c] for r < R, c < 8 (rows R-7 zero).
template <int R>
__attribute__((target("avx2,fma"), always_inline)) inline void Transpose8(const float* src, int64_t ld, __m256* cols) {
  static_assert(R >= 1 && R <= 8, "at most 8 rows");
  __m256 r[8], t[8], u[8];
  for (int i = 0; i < 8; i++) r[i] = i < R ? _mm256_loadu_ps(src + i * ld) : _mm256_setzero_ps();
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);      // c0 c0' c1 c1' | c4 c4' c5 c5'
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);  // c2 c2' c3 c3' | c6 c6' c7 c7'
  }
  for (int g = 0; g < 8; g += 4) {  // u[g + c]: rows g..g+3 of column c | column c + 4
    u[g + 0] = _mm256_shuffle_ps(t[g], t[g + 2], 0x44);
    u[g + 1] = _mm256_shuffle_ps(t[g], t[g + 2], 0xEE);
    u[g + 2] = _mm256_shuffle_ps(t[g + 1], t[g + 3], 0x44);
    u[g + 3] = _mm256_shuffle_ps(t[g + 1], t[g + 3], 0xEE);
  }
  for (int c = 0; c < 4; c++) {
    cols[c] = _mm256_permute2f128_ps(u[c], u[c + 4], 0x20);
    cols[c + 4] = _mm256_permute2f128_ps(u[c], u[c + 4], 0x31);
  }
}

// Stores the 6 low lanes of v at dst (4 + 2 values: plain stores, no masked store).
__attribute__((target("avx2,fma"), always_inline)) inline void Store6(float* dst, __m256 v) {
  _mm_storeu_ps(dst, _mm256_castps256_ps128(v));
  _mm_storel_pi(reinterpret_cast<__m64*>(dst + 4), _mm256_extractf128_ps(v, 1));
}

__attribute__((target("avx2,fma"))) void PackAAvx2(const Problem& P, const float* A, int64_t i0, int64_t rows,
                                                   int64_t p0, int64_t kc, int mr, float* Ap) {
  const int64_t full = rows / 6 * 6;
  if (mr != 6 || full == 0) {
    PackA(P, A, i0, rows, p0, kc, mr, Ap);
    return;
  }
  if (P.ta) {
    // A stored K×M: 6 contiguous values per panel and k.
    for (int64_t k = 0; k < kc; k++) {
      const float* src = A + (p0 + k) * P.M + i0;
      for (int64_t ir = 0; ir < full; ir += 6) {
        float* dst = Ap + (ir / 6) * kc * 6 + k * 6;
        _mm_storeu_ps(dst, _mm_loadu_ps(src + ir));
        dst[4] = src[ir + 4];
        dst[5] = src[ir + 5];
      }
    }
  } else {
    // A stored M×K: 8 values of k from each of the 6 rows, transposed in registers.
    const int64_t k8 = kc / 8 * 8;
    for (int64_t ir = 0; ir < full; ir += 6) {
      const float* src = A + (i0 + ir) * P.K + p0;
      float* dst = Ap + (ir / 6) * kc * 6;
      for (int64_t k = 0; k < k8; k += 8) {
        __m256 cols[8];
        Transpose8<6>(src + k, P.K, cols);
        for (int c = 0; c < 8; c++) Store6(dst + (k + c) * 6, cols[c]);
      }
      for (int64_t k = k8; k < kc; k++) {
        for (int i = 0; i < 6; i++) dst[k * 6 + i] = src[i * P.K + k];
      }
    }
  }
  if (full < rows) PackA(P, A, i0 + full, rows - full, p0, kc, mr, Ap + (full / 6) * kc * 6);
}

__attribute__((target("avx2,fma"))) void PackBAvx2(const Problem& P, const float* B, int64_t p0, int64_t kc,
                                                   int64_t j0, int64_t cols, int nr, float* Bp) {
  const int64_t full = cols / 16 * 16;
  if (nr != 16 || full == 0) {
    PackB(P, B, p0, kc, j0, cols, nr, Bp);
    return;
  }
  if (!P.tb) {
    // B stored K×N: 16 contiguous values per panel and k.
    for (int64_t k = 0; k < kc; k++) {
      const float* src = B + (p0 + k) * P.N + j0;
      for (int64_t jr = 0; jr < full; jr += 16) {
        float* dst = Bp + (jr / 16) * kc * 16 + k * 16;
        _mm256_store_ps(dst, _mm256_loadu_ps(src + jr));
        _mm256_store_ps(dst + 8, _mm256_loadu_ps(src + jr + 8));
      }
    }
  } else {
    // B stored N×K: per 8 values of k, two 8×8 transposes (panel columns 0-7 and 8-15).
    const int64_t k8 = kc / 8 * 8;
    for (int64_t jr = 0; jr < full; jr += 16) {
      const float* src0 = B + (j0 + jr) * P.K + p0;
      const float* src1 = src0 + 8 * P.K;
      float* dst = Bp + (jr / 16) * kc * 16;
      for (int64_t k = 0; k < k8; k += 8) {
        __m256 c0[8], c1[8];
        Transpose8<8>(src0 + k, P.K, c0);
        Transpose8<8>(src1 + k, P.K, c1);
        for (int c = 0; c < 8; c++) {
          _mm256_store_ps(dst + (k + c) * 16, c0[c]);
          _mm256_store_ps(dst + (k + c) * 16 + 8, c1[c]);
        }
      }
      for (int64_t k = k8; k < kc; k++) {
        for (int j = 0; j < 16; j++) dst[k * 16 + j] = src0[j * P.K + k];
      }
    }
  }
  if (full < cols) PackB(P, B, p0, kc, j0 + full, cols - full, nr, Bp + (full / 16) * kc * 16);
}
#endif  // DPO_GEMM_X86

// ---------------------------------------------------------------------------------------------
// Micro-kernels. Ap: kc×MR (k-major, MR values of op(A) per k), Bp: kc×NR, both 64-byte
// aligned. Writes C[0:MR, 0:NR] = alpha·(Ap·Bp) + beta·C; beta == 0 never reads C.

using MicroKernel = void (*)(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc,
                             float alpha, float beta);

constexpr int kPortMR = 4, kPortNR = 16;

// One accumulator row per A row, columns innermost: the shape compilers turn into plain vector
// multiply-adds (SSE2 by default on x86-64, NEON on arm64) without shuffles.
void MicroPortable(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc, float alpha,
                   float beta) {
  float c0[kPortNR] = {}, c1[kPortNR] = {}, c2[kPortNR] = {}, c3[kPortNR] = {};
  for (int64_t k = 0; k < kc; k++) {
    const float* b = Bp + k * kPortNR;
    const float a0 = Ap[0], a1 = Ap[1], a2 = Ap[2], a3 = Ap[3];
    for (int j = 0; j < kPortNR; j++) {
      c0[j] += a0 * b[j];
      c1[j] += a1 * b[j];
      c2[j] += a2 * b[j];
      c3[j] += a3 * b[j];
    }
    Ap += kPortMR;
  }
  float* rows[kPortMR] = {C, C + ldc, C + 2 * ldc, C + 3 * ldc};
  const float* acc[kPortMR] = {c0, c1, c2, c3};
  for (int i = 0; i < kPortMR; i++) {
    float* c = rows[i];
    if (beta == 0.0f) {
      for (int j = 0; j < kPortNR; j++) c[j] = alpha * acc[i][j];
    } else {
      for (int j = 0; j < kPortNR; j++) c[j] = alpha * acc[i][j] + beta * c[j];
    }
  }
}

#if DPO_GEMM_WASM
// WebAssembly SIMD128: an MR×8 tile of C in 2·MR v128 accumulators. kFma (builds compiled with
// -mrelaxed-simd, see scripts/build-wasm.mjs) uses f32x4.relaxed_madd, which the engine may run
// fused or as multiply + add (V8 on x86-64 with FMA3 and on arm64 fuses): the result depends on
// the engine and CPU, never on the thread count. It takes MR = 6: 12 accumulators, two B vectors
// and one broadcast of A, 15 live vectors, V8's allocatable xmm0-14 on x86-64. Plain SIMD128 has
// no FMA: multiply, then add, whose product is one more live vector, so it takes MR = 5 (6 rows
// spilled: 31 GFLOP/s per core against 55-57 for 5 rows, EPYC, V8; same sums either way).
constexpr int kWasmMR = 6, kWasmPlainMR = 5, kWasmNR = 8;
template <bool kFma>
__attribute__((always_inline)) inline v128_t WasmMadd(v128_t a, v128_t b, v128_t acc) {
#if defined(__wasm_relaxed_simd__)
  if (kFma) return wasm_f32x4_relaxed_madd(a, b, acc);
#endif
  return wasm_f32x4_add(acc, wasm_f32x4_mul(a, b));
}

// SIMD128 packing for the 6×8 and 5×8 kernels. Scalar packing cost 12-17% of a 1-thread GEMM here (the
// kernel alone ran 1.05-1.17× faster with packing skipped, EPYC, V8): the transposing cases
// (op(A) from an M×K A, op(B) from an N×K B) load 4 contiguous values of k from each row and
// transpose in registers; the others copy whole vectors. Edges and k tails go scalar.
__attribute__((always_inline)) inline v128_t WasmLoad(const float* p) { return wasm_v128_load(p); }

// op(A) from an M×K A for the 5×8 tile: 4 values of k from each of 5 rows → 4 columns of 5 = 20
// contiguous floats (rows 0-3 transposed in registers, row 4 dealt between them).
void PackA5Wasm(const Problem& P, const float* A, int64_t i0, int64_t rows, int64_t p0, int64_t kc, float* Ap) {
  const int64_t full = rows / 5 * 5, k4 = kc / 4 * 4;
  for (int64_t ir = 0; ir < full; ir += 5) {
    const float* src = A + (i0 + ir) * P.K + p0;
    float* dst = Ap + (ir / 5) * kc * 5;
    for (int64_t k = 0; k < k4; k += 4) {
      const v128_t r0 = WasmLoad(src + k), r1 = WasmLoad(src + P.K + k), r2 = WasmLoad(src + 2 * P.K + k);
      const v128_t r3 = WasmLoad(src + 3 * P.K + k), r4 = WasmLoad(src + 4 * P.K + k);
      const v128_t t0 = wasm_i32x4_shuffle(r0, r1, 0, 4, 1, 5), t1 = wasm_i32x4_shuffle(r0, r1, 2, 6, 3, 7);
      const v128_t t2 = wasm_i32x4_shuffle(r2, r3, 0, 4, 1, 5), t3 = wasm_i32x4_shuffle(r2, r3, 2, 6, 3, 7);
      const v128_t c0 = wasm_i32x4_shuffle(t0, t2, 0, 1, 4, 5), c1 = wasm_i32x4_shuffle(t0, t2, 2, 3, 6, 7);
      const v128_t c2 = wasm_i32x4_shuffle(t1, t3, 0, 1, 4, 5), c3 = wasm_i32x4_shuffle(t1, t3, 2, 3, 6, 7);
      float* d = dst + k * 5;  // [c0 r4₀] [c1 r4₁] [c2 r4₂] [c3 r4₃]
      wasm_v128_store(d, c0);
      wasm_v128_store(d + 4, wasm_i32x4_shuffle(r4, c1, 0, 4, 5, 6));
      wasm_v128_store(d + 8, wasm_i32x4_shuffle(wasm_i32x4_shuffle(c1, r4, 3, 5, 3, 5), c2, 0, 1, 4, 5));
      wasm_v128_store(d + 12, wasm_i32x4_shuffle(wasm_i32x4_shuffle(c2, r4, 2, 3, 6, 6), c3, 0, 1, 2, 4));
      wasm_v128_store(d + 16, wasm_i32x4_shuffle(c3, r4, 1, 2, 3, 7));
    }
    for (int64_t k = k4; k < kc; k++) {
      for (int i = 0; i < 5; i++) dst[k * 5 + i] = src[i * P.K + k];
    }
  }
  if (full < rows) PackA(P, A, i0 + full, rows - full, p0, kc, 5, Ap + (full / 5) * kc * 5);
}

void PackAWasm(const Problem& P, const float* A, int64_t i0, int64_t rows, int64_t p0, int64_t kc, int mr, float* Ap) {
  if (mr == kWasmPlainMR && !P.ta && rows >= 5) {
    PackA5Wasm(P, A, i0, rows, p0, kc, Ap);
    return;
  }
  const int64_t full = rows / 6 * 6;
  if (mr != 6 || full == 0) {
    PackA(P, A, i0, rows, p0, kc, mr, Ap);
    return;
  }
  if (P.ta) {
    // A stored K×M: 6 contiguous values per panel and k.
    for (int64_t k = 0; k < kc; k++) {
      const float* src = A + (p0 + k) * P.M + i0;
      for (int64_t ir = 0; ir < full; ir += 6) {
        float* dst = Ap + (ir / 6) * kc * 6 + k * 6;
        wasm_v128_store(dst, WasmLoad(src + ir));
        wasm_v128_store64_lane(dst + 4, wasm_v128_load64_zero(src + ir + 4), 0);
      }
    }
  } else {
    // A stored M×K: 4 values of k from each of the 6 rows → 4 columns of 6 = 24 contiguous floats.
    const int64_t k4 = kc / 4 * 4;
    for (int64_t ir = 0; ir < full; ir += 6) {
      const float* src = A + (i0 + ir) * P.K + p0;
      float* dst = Ap + (ir / 6) * kc * 6;
      for (int64_t k = 0; k < k4; k += 4) {
        const v128_t r0 = WasmLoad(src + k), r1 = WasmLoad(src + P.K + k), r2 = WasmLoad(src + 2 * P.K + k);
        const v128_t r3 = WasmLoad(src + 3 * P.K + k), r4 = WasmLoad(src + 4 * P.K + k), r5 = WasmLoad(src + 5 * P.K + k);
        const v128_t t0 = wasm_i32x4_shuffle(r0, r1, 0, 4, 1, 5), t1 = wasm_i32x4_shuffle(r0, r1, 2, 6, 3, 7);
        const v128_t t2 = wasm_i32x4_shuffle(r2, r3, 0, 4, 1, 5), t3 = wasm_i32x4_shuffle(r2, r3, 2, 6, 3, 7);
        const v128_t lo = wasm_i32x4_shuffle(r4, r5, 0, 4, 1, 5), hi = wasm_i32x4_shuffle(r4, r5, 2, 6, 3, 7);
        const v128_t c0 = wasm_i32x4_shuffle(t0, t2, 0, 1, 4, 5), c1 = wasm_i32x4_shuffle(t0, t2, 2, 3, 6, 7);
        const v128_t c2 = wasm_i32x4_shuffle(t1, t3, 0, 1, 4, 5), c3 = wasm_i32x4_shuffle(t1, t3, 2, 3, 6, 7);
        float* d = dst + k * 6;  // column k: rows 0-3 of c0, rows 4-5 of lo; and so on
        wasm_v128_store(d, c0);
        wasm_v128_store(d + 4, wasm_i32x4_shuffle(lo, c1, 0, 1, 4, 5));
        wasm_v128_store(d + 8, wasm_i32x4_shuffle(c1, lo, 2, 3, 6, 7));
        wasm_v128_store(d + 12, c2);
        wasm_v128_store(d + 16, wasm_i32x4_shuffle(hi, c3, 0, 1, 4, 5));
        wasm_v128_store(d + 20, wasm_i32x4_shuffle(c3, hi, 2, 3, 6, 7));
      }
      for (int64_t k = k4; k < kc; k++) {
        for (int i = 0; i < 6; i++) dst[k * 6 + i] = src[i * P.K + k];
      }
    }
  }
  if (full < rows) PackA(P, A, i0 + full, rows - full, p0, kc, mr, Ap + (full / 6) * kc * 6);
}

void PackBWasm(const Problem& P, const float* B, int64_t p0, int64_t kc, int64_t j0, int64_t cols, int nr, float* Bp) {
  const int64_t full = cols / 8 * 8;
  if (nr != 8 || full == 0) {
    PackB(P, B, p0, kc, j0, cols, nr, Bp);
    return;
  }
  if (!P.tb) {
    // B stored K×N: 8 contiguous values per panel and k.
    for (int64_t k = 0; k < kc; k++) {
      const float* src = B + (p0 + k) * P.N + j0;
      for (int64_t jr = 0; jr < full; jr += 8) {
        float* dst = Bp + (jr / 8) * kc * 8 + k * 8;
        wasm_v128_store(dst, WasmLoad(src + jr));
        wasm_v128_store(dst + 4, WasmLoad(src + jr + 4));
      }
    }
  } else {
    // B stored N×K: 4 values of k from each of the panel's 8 rows, two 4×4 transposes.
    const int64_t k4 = kc / 4 * 4;
    for (int64_t jr = 0; jr < full; jr += 8) {
      const float* src = B + (j0 + jr) * P.K + p0;
      float* dst = Bp + (jr / 8) * kc * 8;
      for (int64_t k = 0; k < k4; k += 4) {
        for (int h = 0; h < 2; h++) {
          const float* s = src + 4 * h * P.K + k;
          const v128_t r0 = WasmLoad(s), r1 = WasmLoad(s + P.K), r2 = WasmLoad(s + 2 * P.K), r3 = WasmLoad(s + 3 * P.K);
          const v128_t t0 = wasm_i32x4_shuffle(r0, r1, 0, 4, 1, 5), t1 = wasm_i32x4_shuffle(r0, r1, 2, 6, 3, 7);
          const v128_t t2 = wasm_i32x4_shuffle(r2, r3, 0, 4, 1, 5), t3 = wasm_i32x4_shuffle(r2, r3, 2, 6, 3, 7);
          float* d = dst + k * 8 + 4 * h;
          wasm_v128_store(d, wasm_i32x4_shuffle(t0, t2, 0, 1, 4, 5));
          wasm_v128_store(d + 8, wasm_i32x4_shuffle(t0, t2, 2, 3, 6, 7));
          wasm_v128_store(d + 16, wasm_i32x4_shuffle(t1, t3, 0, 1, 4, 5));
          wasm_v128_store(d + 24, wasm_i32x4_shuffle(t1, t3, 2, 3, 6, 7));
        }
      }
      for (int64_t k = k4; k < kc; k++) {
        for (int j = 0; j < 8; j++) dst[k * 8 + j] = src[j * P.K + k];
      }
    }
  }
  if (full < cols) PackB(P, B, p0, kc, j0 + full, cols - full, nr, Bp + (full / 8) * kc * 8);
}

#if defined(DPO_GEMM_PROBE)
// Probe builds only (`node scripts/build-wasm.mjs --probe` → dist/wasm-probe/, for `node
// dist/bench/wasm-gemm.js --breakdown`): dpo_gemm_probe(mode) makes the GEMM skip parts of its work
// so the bench can time them apart — 1: packing op(A), 2: packing op(B) (the kernel then reads the
// panels of an earlier call), 4: the micro-kernel. Results are wrong while a mode is set.
int g_probe = 0;
#endif

template <bool kFma, int MR>
void MicroWasm(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc, float alpha, float beta) {
#if defined(DPO_GEMM_PROBE)
  if (g_probe & 4) return;
#endif
  v128_t c[MR][2];
  for (int i = 0; i < MR; i++) c[i][0] = c[i][1] = wasm_f32x4_splat(0.0f);
  for (int64_t k = 0; k < kc; k++) {
    const v128_t b0 = wasm_v128_load(Bp), b1 = wasm_v128_load(Bp + 4);
#pragma clang loop unroll(full)
    for (int i = 0; i < MR; i++) {
      const v128_t a = wasm_v128_load32_splat(Ap + i);
      c[i][0] = WasmMadd<kFma>(a, b0, c[i][0]);
      c[i][1] = WasmMadd<kFma>(a, b1, c[i][1]);
    }
    Ap += MR;
    Bp += kWasmNR;
  }
  const v128_t va = wasm_f32x4_splat(alpha);
  if (beta == 0.0f) {
    for (int i = 0; i < MR; i++) {
      wasm_v128_store(C + i * ldc, wasm_f32x4_mul(va, c[i][0]));
      wasm_v128_store(C + i * ldc + 4, wasm_f32x4_mul(va, c[i][1]));
    }
  } else {
    const v128_t vb = wasm_f32x4_splat(beta);
    for (int i = 0; i < MR; i++) {
      float* r = C + i * ldc;
      wasm_v128_store(r, wasm_f32x4_add(wasm_f32x4_mul(va, c[i][0]), wasm_f32x4_mul(vb, wasm_v128_load(r))));
      wasm_v128_store(r + 4, wasm_f32x4_add(wasm_f32x4_mul(va, c[i][1]), wasm_f32x4_mul(vb, wasm_v128_load(r + 4))));
    }
  }
}
#endif

#if DPO_GEMM_X86
constexpr int kAvx2MR = 6, kAvx2NR = 16;

__attribute__((target("avx2,fma"))) void MicroAvx2(int64_t kc, const float* Ap, const float* Bp, float* C,
                                                   int64_t ldc, float alpha, float beta) {
  __m256 c[kAvx2MR][2];
#pragma GCC unroll 8
  for (int i = 0; i < kAvx2MR; i++) c[i][0] = c[i][1] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; k++) {
    const __m256 b0 = _mm256_load_ps(Bp), b1 = _mm256_load_ps(Bp + 8);
#pragma GCC unroll 8
    for (int i = 0; i < kAvx2MR; i++) {
      const __m256 a = _mm256_broadcast_ss(Ap + i);
      c[i][0] = _mm256_fmadd_ps(a, b0, c[i][0]);
      c[i][1] = _mm256_fmadd_ps(a, b1, c[i][1]);
    }
    Ap += kAvx2MR;
    Bp += kAvx2NR;
  }
  const __m256 va = _mm256_set1_ps(alpha);
  if (beta == 0.0f) {
#pragma GCC unroll 8
    for (int i = 0; i < kAvx2MR; i++) {
      _mm256_storeu_ps(C + i * ldc, _mm256_mul_ps(va, c[i][0]));
      _mm256_storeu_ps(C + i * ldc + 8, _mm256_mul_ps(va, c[i][1]));
    }
  } else {
    const __m256 vb = _mm256_set1_ps(beta);
#pragma GCC unroll 8
    for (int i = 0; i < kAvx2MR; i++) {
      float* r = C + i * ldc;
      _mm256_storeu_ps(r, _mm256_fmadd_ps(va, c[i][0], _mm256_mul_ps(vb, _mm256_loadu_ps(r))));
      _mm256_storeu_ps(r + 8, _mm256_fmadd_ps(va, c[i][1], _mm256_mul_ps(vb, _mm256_loadu_ps(r + 8))));
    }
  }
}

constexpr int kAvx512MR = 12, kAvx512NR = 32;

// Written with one named variable per accumulator: GCC 12 spills an array-of-__m512 version.
#define DPO_ROWS12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
__attribute__((target("avx512f,avx2,fma"))) void MicroAvx512(int64_t kc, const float* Ap, const float* Bp,
                                                             float* C, int64_t ldc, float alpha, float beta) {
#define DPO_DECL(i) __m512 c##i##0 = _mm512_setzero_ps(), c##i##1 = _mm512_setzero_ps();
  DPO_ROWS12(DPO_DECL)
#undef DPO_DECL
  for (int64_t k = 0; k < kc; k++) {
    const __m512 b0 = _mm512_load_ps(Bp), b1 = _mm512_load_ps(Bp + 16);
#define DPO_FMA(i)                                \
  {                                               \
    const __m512 a = _mm512_set1_ps(Ap[i]);       \
    c##i##0 = _mm512_fmadd_ps(a, b0, c##i##0);    \
    c##i##1 = _mm512_fmadd_ps(a, b1, c##i##1);    \
  }
    DPO_ROWS12(DPO_FMA)
#undef DPO_FMA
    Ap += kAvx512MR;
    Bp += kAvx512NR;
  }
  const __m512 va = _mm512_set1_ps(alpha);
  if (beta == 0.0f) {
#define DPO_ST(i)                                  \
  _mm512_storeu_ps(C, _mm512_mul_ps(va, c##i##0));        \
  _mm512_storeu_ps(C + 16, _mm512_mul_ps(va, c##i##1));   \
  C += ldc;
    DPO_ROWS12(DPO_ST)
#undef DPO_ST
  } else {
    const __m512 vb = _mm512_set1_ps(beta);
#define DPO_ST(i)                                                                          \
  _mm512_storeu_ps(C, _mm512_fmadd_ps(va, c##i##0, _mm512_mul_ps(vb, _mm512_loadu_ps(C))));           \
  _mm512_storeu_ps(C + 16, _mm512_fmadd_ps(va, c##i##1, _mm512_mul_ps(vb, _mm512_loadu_ps(C + 16)))); \
  C += ldc;
    DPO_ROWS12(DPO_ST)
#undef DPO_ST
  }
}
#undef DPO_ROWS12
#endif  // DPO_GEMM_X86

#if DPO_GEMM_NEON
// NEON (AArch64 Advanced SIMD, always present on arm64): an 8×12 tile of C in 24 q-register
// accumulators; per k, two loads of A (8 rows), three of B (12 columns), and 24 lane-indexed FMAs.
// 24 + 5 registers of the 32: nothing spills.
constexpr int kNeonMR = 8, kNeonNR = 12;

#define DPO_NEON_ROWS(X) X(0, a0, 0) X(1, a0, 1) X(2, a0, 2) X(3, a0, 3) X(4, a1, 0) X(5, a1, 1) X(6, a1, 2) X(7, a1, 3)
void MicroNeon(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc, float alpha, float beta) {
#define DPO_DECL(i, a, l) float32x4_t c##i##0 = vdupq_n_f32(0.0f), c##i##1 = c##i##0, c##i##2 = c##i##0;
  DPO_NEON_ROWS(DPO_DECL)
#undef DPO_DECL
  for (int64_t k = 0; k < kc; k++) {
    const float32x4_t b0 = vld1q_f32(Bp), b1 = vld1q_f32(Bp + 4), b2 = vld1q_f32(Bp + 8);
    const float32x4_t a0 = vld1q_f32(Ap), a1 = vld1q_f32(Ap + 4);
#define DPO_FMA(i, a, l)                             \
  c##i##0 = vfmaq_laneq_f32(c##i##0, b0, a, l);      \
  c##i##1 = vfmaq_laneq_f32(c##i##1, b1, a, l);      \
  c##i##2 = vfmaq_laneq_f32(c##i##2, b2, a, l);
    DPO_NEON_ROWS(DPO_FMA)
#undef DPO_FMA
    Ap += kNeonMR;
    Bp += kNeonNR;
  }
  const float32x4_t va = vdupq_n_f32(alpha);
  if (beta == 0.0f) {
#define DPO_ST(i, a, l)                               \
  vst1q_f32(C, vmulq_f32(va, c##i##0));               \
  vst1q_f32(C + 4, vmulq_f32(va, c##i##1));           \
  vst1q_f32(C + 8, vmulq_f32(va, c##i##2));           \
  C += ldc;
    DPO_NEON_ROWS(DPO_ST)
#undef DPO_ST
  } else {
    const float32x4_t vb = vdupq_n_f32(beta);
#define DPO_ST(i, a, l)                                                         \
  vst1q_f32(C, vfmaq_f32(vmulq_f32(vb, vld1q_f32(C)), va, c##i##0));            \
  vst1q_f32(C + 4, vfmaq_f32(vmulq_f32(vb, vld1q_f32(C + 4)), va, c##i##1));    \
  vst1q_f32(C + 8, vfmaq_f32(vmulq_f32(vb, vld1q_f32(C + 8)), va, c##i##2));    \
  C += ldc;
    DPO_NEON_ROWS(DPO_ST)
#undef DPO_ST
  }
}
#undef DPO_NEON_ROWS

// A weight row dotted with a few rows (batched decoding): four accumulators per row.
void DotRowsNeon(const float* A, int64_t M, int64_t K, const float* w, float* out) {
  for (int64_t m = 0; m < M; m++) {
    const float* a = A + m * K;
    float32x4_t s0 = vdupq_n_f32(0.0f), s1 = s0, s2 = s0, s3 = s0;
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
      s0 = vfmaq_f32(s0, vld1q_f32(a + k), vld1q_f32(w + k));
      s1 = vfmaq_f32(s1, vld1q_f32(a + k + 4), vld1q_f32(w + k + 4));
      s2 = vfmaq_f32(s2, vld1q_f32(a + k + 8), vld1q_f32(w + k + 8));
      s3 = vfmaq_f32(s3, vld1q_f32(a + k + 12), vld1q_f32(w + k + 12));
    }
    float s = vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
    for (; k < K; k++) s += a[k] * w[k];
    out[m] = s;
  }
}
#endif  // DPO_GEMM_NEON

using PackAFn = void (*)(const Problem&, const float*, int64_t, int64_t, int64_t, int64_t, int, float*);
using PackBFn = void (*)(const Problem&, const float*, int64_t, int64_t, int64_t, int64_t, int, float*);
// out[m] = Σ_k A[m·K + k] · w[k] for m < M (M ≤ kFewRowsMax): one weight row against a few rows.
using DotRowsFn = void (*)(const float* A, int64_t M, int64_t K, const float* w, float* out);

inline float Dot(const float* a, const float* b, int64_t K);

void DotRowsPortable(const float* A, int64_t M, int64_t K, const float* w, float* out) {
  for (int64_t m = 0; m < M; m++) out[m] = Dot(A + m * K, w, K);
}

#if DPO_GEMM_X86
// R rows at once: each 16-wide slice of w is loaded once and multiplied into R accumulators;
// lane l sums k ≡ l (mod 16) in order, then the lanes are added by a fixed tree.
template <int R>
__attribute__((target("avx512f"))) inline void DotRowsAvx512R(const float* A, int64_t K, const float* w, float* out) {
  __m512 acc[R];
  for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    // The weight row after next, one cache line per slice: streaming W overlaps with the products.
    _mm_prefetch(reinterpret_cast<const char*>(w + 2 * K + k), _MM_HINT_T0);
    const __m512 wv = _mm512_loadu_ps(w + k);
    for (int r = 0; r < R; r++) acc[r] = _mm512_fmadd_ps(_mm512_loadu_ps(A + r * K + k), wv, acc[r]);
  }
  if (k < K) {
    const __mmask16 m = static_cast<__mmask16>((1u << (K - k)) - 1u);
    const __m512 wv = _mm512_maskz_loadu_ps(m, w + k);
    for (int r = 0; r < R; r++) acc[r] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, A + r * K + k), wv, acc[r]);
  }
  for (int r = 0; r < R; r++) out[r] = _mm512_reduce_add_ps(acc[r]);
}

__attribute__((target("avx512f"))) void DotRowsAvx512(const float* A, int64_t M, int64_t K, const float* w, float* out) {
  for (int64_t m0 = 0; m0 < M; m0 += 8) {
    const float* a = A + m0 * K;
    float* o = out + m0;
    switch (std::min<int64_t>(8, M - m0)) {
      case 1: DotRowsAvx512R<1>(a, K, w, o); break;
      case 2: DotRowsAvx512R<2>(a, K, w, o); break;
      case 3: DotRowsAvx512R<3>(a, K, w, o); break;
      case 4: DotRowsAvx512R<4>(a, K, w, o); break;
      case 5: DotRowsAvx512R<5>(a, K, w, o); break;
      case 6: DotRowsAvx512R<6>(a, K, w, o); break;
      case 7: DotRowsAvx512R<7>(a, K, w, o); break;
      default: DotRowsAvx512R<8>(a, K, w, o); break;
    }
  }
}
#endif

struct KernelDesc {
  const char* name;
  int mr, nr;
  MicroKernel micro;
  PackAFn packA;
  PackBFn packB;
  DotRowsFn dotRows;
};

constexpr KernelDesc kPortable = {"portable", kPortMR, kPortNR, MicroPortable, PackA, PackB, DotRowsPortable};
#if DPO_GEMM_X86
constexpr KernelDesc kAvx2 = {"avx2", kAvx2MR, kAvx2NR, MicroAvx2, PackAAvx2, PackBAvx2, DotRowsPortable};
constexpr KernelDesc kAvx512 = {"avx512", kAvx512MR, kAvx512NR, MicroAvx512, PackAAvx512, PackBAvx512, DotRowsAvx512};
#endif
#if DPO_GEMM_WASM
constexpr KernelDesc kWasm = {"wasm-simd128", kWasmPlainMR, kWasmNR, MicroWasm<false, kWasmPlainMR>, PackAWasm, PackBWasm, DotRowsPortable};
#if defined(__wasm_relaxed_simd__)
constexpr KernelDesc kWasmRelaxed = {"wasm-relaxed-simd", kWasmMR, kWasmNR, MicroWasm<true, kWasmMR>, PackAWasm, PackBWasm, DotRowsPortable};
#endif
#endif
#if DPO_GEMM_NEON
constexpr KernelDesc kNeon = {"neon", kNeonMR, kNeonNR, MicroNeon, PackA, PackB, DotRowsNeon};
#endif

bool Supported(const std::string& name) {
  if (name == "portable") return true;
#if DPO_GEMM_X86
  if (name == "avx2") return Cpu().avx2fma;
  if (name == "avx512") return Cpu().avx512;
#endif
#if DPO_GEMM_NEON
  if (name == "neon") return true;  // Advanced SIMD is part of the AArch64 base ISA
#endif
#if DPO_GEMM_WASM
  if (name == "wasm-simd128") return true;  // compiled in only for SIMD128 builds
#if defined(__wasm_relaxed_simd__)
  if (name == "wasm-relaxed-simd") return true;  // the engine validated the module, so it has relaxed SIMD
#endif
#endif
  return false;
}

const KernelDesc* ByName(const std::string& name) {
#if DPO_GEMM_X86
  if (name == "avx512") return &kAvx512;
  if (name == "avx2") return &kAvx2;
#endif
#if DPO_GEMM_NEON
  if (name == "neon") return &kNeon;
#endif
#if DPO_GEMM_WASM
#if defined(__wasm_relaxed_simd__)
  if (name == "wasm-relaxed-simd") return &kWasmRelaxed;
#endif
  if (name == "wasm-simd128") return &kWasm;
#endif
  if (name == "portable") return &kPortable;
  return nullptr;
}

// The micro-kernels this build contains, for messages.
std::string KernelNames() {
  std::string s;
#if DPO_GEMM_X86
  s += "avx512, avx2, ";
#endif
#if DPO_GEMM_NEON
  s += "neon, ";
#endif
#if DPO_GEMM_WASM
#if defined(__wasm_relaxed_simd__)
  s += "wasm-relaxed-simd, ";
#endif
  s += "wasm-simd128, ";
#endif
  return s + "portable";
}

const KernelDesc* BestKernel() {
#if DPO_GEMM_X86
  if (Supported("avx512")) return &kAvx512;
  if (Supported("avx2")) return &kAvx2;
#endif
#if DPO_GEMM_NEON
  return &kNeon;
#endif
#if DPO_GEMM_WASM
#if defined(__wasm_relaxed_simd__)
  return &kWasmRelaxed;
#endif
  return &kWasm;
#endif
  return &kPortable;
}

// The active kernel: chosen on first use (DPO_GEMM_KERNEL honored), switched by gemmSetKernel.
// Atomic because Node worker threads may call gemm concurrently.
std::atomic<const KernelDesc*> g_kernel{nullptr};
std::string g_kernel_error;  // a bad DPO_GEMM_KERNEL value: reported by every gemm call
std::once_flag g_kernel_once;

const KernelDesc* ActiveKernel() {
  std::call_once(g_kernel_once, [] {
    g_kernel = ChooseKernelFromEnv<KernelDesc>("DPO_GEMM_KERNEL", "", KernelNames(), ByName, Supported, BestKernel, &g_kernel_error);
  });
  return g_kernel.load();
}

// ---------------------------------------------------------------------------------------------
// Blocking. Tiles depend on the shape only (never on the thread count).

constexpr int64_t kKcMax = 256;   // KC×MR of A (12 KiB for MR=12) sits in L1 next to B lines
constexpr int64_t kSlabN = 512;   // KC×TN slab of packed B: ≤ 512 KiB, stays in L2 with A and C

// Columns of a slab that covers all of N: op(A) is then packed once per K block instead of once
// per slab, which matters when A is the big operand (dW = Xᵀ·dY with M = vocabulary or 3072:
// +5-12% measured on the backward shapes). Bounded by half the L2 cache (the slab must stay there);
// the column split never changes a sum, so this may depend on the machine.
int64_t WholeSlabMaxCols() {
  static const int64_t cols = [] {
    long l2 = 0;
#ifdef _SC_LEVEL2_CACHE_SIZE
    l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
    if (l2 <= 0) l2 = 1 << 20;
    return std::max<int64_t>(kSlabN, int64_t(l2) / 2 / (kKcMax * int64_t(sizeof(float))));
  }();
  return cols;
}

using PackBuffersT = PackBuffers<float>;
thread_local PackBuffersT tl_pack;

// The float32 driver's traits for the blocked driver (gemm-driver.h): panels of float, kc deep;
// K blocks ≤ kKcMax; slabs of all of N when that fits WholeSlabMaxCols, else ≤ kSlabN columns.
struct Driver {
  using Panel = float;
  static constexpr int kMaxTile = 16 * 32;  // the largest tile (avx512 12×32) fits
  static constexpr bool kPrefetch = true;
  static constexpr int64_t kPanelsPerPackTask = 4;
  const Problem& P;
  const KernelDesc& kd;
  static PackBuffersT& Buffers() { return tl_pack; }
  int64_t Kc() const { return EqualKBlock(P.K, kKcMax); }
  static int64_t Depth(int64_t kc) { return kc; }
  int64_t SlabCols() const {
    const int64_t all = RoundUp(P.N, kd.nr);
    return all <= WholeSlabMaxCols() ? all : std::min(all, kSlabN / kd.nr * kd.nr);
  }
  void PackA(int64_t bi, int64_t i0, int64_t rows, int64_t p0, int64_t kc, int64_t, float* Ap) const {
#if defined(DPO_GEMM_PROBE)
    if (g_probe & 1) return;
#endif
    kd.packA(P, P.A + bi * P.sA, i0, rows, p0, kc, kd.mr, Ap);
  }
  void PackB(int64_t bi, int64_t p0, int64_t kc, int64_t j0, int64_t cols, int64_t, float* Bp) const {
#if defined(DPO_GEMM_PROBE)
    if (g_probe & 2) return;
#endif
    kd.packB(P, P.B + bi * P.sB, p0, kc, j0, cols, kd.nr, Bp);
  }
};

// Thin products (M or N tiny): packing would cost as much as the arithmetic and the register
// tile would be mostly padding (these are matrix-vector products, bound by memory).
constexpr int64_t kDirectChunk = 256;  // columns of C per task when M is tiny
constexpr int64_t kDirectRows = 64;    // rows of C per task when N is tiny

// Dot product with 16 independent partial sums (vectorizable without reassociation; the order
// is fixed, so the result does not depend on threads).
inline float Dot(const float* a, const float* b, int64_t K) {
  float part[16] = {};
  int64_t k = 0;
  for (; k + 16 <= K; k += 16)
    for (int l = 0; l < 16; l++) part[l] += a[k + l] * b[k + l];
  for (int l = 0; k < K; k++, l++) part[l] += a[k] * b[k];
  float s = 0.0f;
  for (int l = 0; l < 16; l++) s += part[l];
  return s;
}

inline void StoreRow(const Problem& P, float* c, const float* acc, int64_t cols) {
  if (P.beta == 0.0f) {
    for (int64_t j = 0; j < cols; j++) c[j] = P.alpha * acc[j];
  } else {
    for (int64_t j = 0; j < cols; j++) c[j] = P.alpha * acc[j] + P.beta * c[j];
  }
}

// Per-thread scratch for contiguous copies of a strided row of op(A) or column of op(B).
thread_local std::vector<float> tl_row, tl_cols;

// M tiny: C[i, j0:j0+cols]. Without transB, rows of B are axpy'd into the accumulator; with
// transB, each element is a dot product of contiguous rows.
void DirectRowChunk(const Problem& P, int64_t bi, int64_t i, int64_t j0, int64_t cols) {
  const float* A = P.A + bi * P.sA;
  const float* B = P.B + bi * P.sB;
  const int64_t K = P.K, M = P.M, N = P.N;
  float acc[kDirectChunk];
  if (!P.tb) {
    for (int64_t j = 0; j < cols; j++) acc[j] = 0.0f;
    for (int64_t k = 0; k < K; k++) {
      const float a = P.ta ? A[k * M + i] : A[i * K + k];
      const float* b = B + k * N + j0;
      for (int64_t j = 0; j < cols; j++) acc[j] += a * b[j];
    }
  } else {
    const float* a = A + i * K;
    if (P.ta) {
      tl_row.resize(K);
      for (int64_t k = 0; k < K; k++) tl_row[k] = A[k * M + i];
      a = tl_row.data();
    }
    for (int64_t j = 0; j < cols; j++) acc[j] = Dot(a, B + (j0 + j) * K, K);
  }
  StoreRow(P, P.C + bi * P.sC + i * N + j0, acc, cols);
}

// Few rows against a weight stored N×K (Y = X·Wᵀ with 4 ≤ M ≤ kFewRowsMax: batched decoding):
// columns [j0, j0+cols) of C. Each W row is read once, straight from memory, and dotted with all
// M rows of A while it sits in L1; packing W for the blocked path would cost more than the products.
constexpr int64_t kFewRowsMax = 16;
constexpr int64_t kFewRowsChunk = 32;  // W rows per task

void DirectFewRows(const Problem& P, const KernelDesc& kd, int64_t bi, int64_t j0, int64_t cols) {
  const float* A = P.A + bi * P.sA;
  const float* B = P.B + bi * P.sB;
  float* C = P.C + bi * P.sC;
  const int64_t M = P.M, N = P.N, K = P.K;
  float out[kFewRowsMax];
  for (int64_t j = j0; j < j0 + cols; j++) {
    kd.dotRows(A, M, K, B + j * K, out);
    for (int64_t m = 0; m < M; m++) {
      float* c = C + m * N + j;
      *c = P.beta == 0.0f ? P.alpha * out[m] : P.alpha * out[m] + P.beta * *c;
    }
  }
}

// N tiny (< 8): rows [i0, i0+rows) of C, each element a dot product; the N columns of op(B)
// (and a transposed A row) are first copied to contiguous scratch.
void DirectColumns(const Problem& P, int64_t bi, int64_t i0, int64_t rows) {
  const float* A = P.A + bi * P.sA;
  const float* B = P.B + bi * P.sB;
  const int64_t K = P.K, M = P.M, N = P.N;
  tl_cols.resize(N * K);
  for (int64_t j = 0; j < N; j++) {
    float* dst = tl_cols.data() + j * K;
    if (P.tb) {
      std::memcpy(dst, B + j * K, sizeof(float) * K);
    } else {
      for (int64_t k = 0; k < K; k++) dst[k] = B[k * N + j];
    }
  }
  if (P.ta) tl_row.resize(K);
  float acc[8];
  for (int64_t i = i0; i < i0 + rows; i++) {
    const float* a = A + i * K;
    if (P.ta) {
      for (int64_t k = 0; k < K; k++) tl_row[k] = A[k * M + i];
      a = tl_row.data();
    }
    for (int64_t j = 0; j < N; j++) acc[j] = Dot(a, tl_cols.data() + j * K, K);
    StoreRow(P, P.C + bi * P.sC + i * N, acc, N);
  }
}

// Work below this many flops (~20 µs) runs on the calling thread only: waking the pool would
// cost as much as it saves.
constexpr double kParallelMinFlops = 2.0 * 128 * 128 * 128;

// Thin products (M < 4 or N < 8: GEMV-like, decoding) are memory-bound: each flop reads a
// weight, so a second thread (more bandwidth) pays off from a much smaller size.
constexpr double kThinParallelMinFlops = 2.0 * 48 * 48 * 48;

void RunTasks(int64_t ntasks, double flops, const std::function<void(int64_t)>& fn,
              double minFlops = kParallelMinFlops) {
  RunTasksOn(ntasks, flops >= minFlops, fn);
}

void Gemm(const Problem& P, const KernelDesc& kd) {
  const int64_t M = P.M, N = P.N, K = P.K;
  if (P.batch == 0 || M == 0 || N == 0) return;
  const double flops = 2.0 * static_cast<double>(M) * N * K * P.batch;

  if (K == 0 || P.alpha == 0.0f) {
    ScaleOnly(P.C, P.sC, P.batch, M * N, P.beta, static_cast<double>(M * N) * P.batch >= kParallelMinFlops);
    return;
  }

  if (N < 8) {
    const int64_t blocks = (M + kDirectRows - 1) / kDirectRows;
    RunTasks(P.batch * blocks, flops, [&](int64_t t) {
      const int64_t bi = t / blocks, i0 = (t % blocks) * kDirectRows;
      DirectColumns(P, bi, i0, std::min(kDirectRows, M - i0));
    }, kThinParallelMinFlops);
    return;
  }
  if (M < 4) {
    // At least ~8 column chunks (multiples of 16) so that a GEMV with N = 192 or 576 splits
    // evenly over the threads; each C element is still one dot product in a fixed order.
    const int64_t width = std::min<int64_t>(kDirectChunk, std::max<int64_t>(16, ((N + 7) / 8 + 15) / 16 * 16));
    const int64_t chunks = (N + width - 1) / width;
    const int64_t perBatch = M * chunks;
    RunTasks(P.batch * perBatch, flops, [&](int64_t t) {
      const int64_t bi = t / perBatch, r = t % perBatch;
      const int64_t i = r / chunks, j0 = (r % chunks) * width;
      DirectRowChunk(P, bi, i, j0, std::min(width, N - j0));
    }, kThinParallelMinFlops);
    return;
  }

  if (M <= kFewRowsMax && P.tb && !P.ta) {
    const int64_t chunks = (N + kFewRowsChunk - 1) / kFewRowsChunk;
    RunTasks(P.batch * chunks, flops, [&](int64_t t) {
      const int64_t bi = t / chunks, j0 = (t % chunks) * kFewRowsChunk;
      DirectFewRows(P, kd, bi, j0, std::min(kFewRowsChunk, N - j0));
    }, kThinParallelMinFlops);
    return;
  }

  BlockedGemmT(Driver{P, kd}, flops >= kParallelMinFlops);
}

}  // namespace
}  // namespace dpo

// ---------------------------------------------------------------------------------------------
// C ABI (abi.h).

using namespace dpo;

extern "C" {

int dpo_gemm(int transA, int transB, double Md, double Nd, double Kd, const float* A, size_t A_len, double sAd,
             const float* B, size_t B_len, double sBd, float* C, size_t C_len, double sCd, double batchd,
             double alpha, double beta) {
  Check a("gemm");
  GemmArgs g;
  const KernelDesc* kd = ActiveKernel();
  const auto operandA = [&](int64_t need, const std::string& what) { a.F32(A, A_len, "A", need, what); };
  const auto operandB = [&](int64_t need, const std::string& what) { a.F32(B, B_len, "B", need, what); };
  if (!CheckGemmArgs(a, g, transA, transB, Md, Nd, Kd, sAd, sBd, sCd, batchd, alpha, beta, operandA, operandB, C,
                     C_len, kd ? nullptr : &g_kernel_error))
    return a.status();
  const Problem P{g.ta, g.tb, g.M, g.N, g.K, A, g.sA, B, g.sB, C, g.sC, g.batch, g.alpha, g.beta};
  Gemm(P, *kd);
  return DPO_OK;
}

const char* dpo_gemm_kernel(void) {
  const KernelDesc* kd = ActiveKernel();
  return kd ? kd->name : "none";
}

int dpo_gemm_set_kernel(const char* name) {
  return SetKernelByName("gemmSetKernel", name, KernelNames(), ByName, Supported, ActiveKernel, &g_kernel);
}

const char* dpo_gemm_kernels_supported(void) {
  static const std::string names = SupportedKernelNames({"avx512", "avx2", "neon", "wasm-relaxed-simd", "wasm-simd128", "portable"}, Supported);
  return names.c_str();
}

}  // extern "C"

#if defined(DPO_GEMM_PROBE)
extern "C" void dpo_gemm_probe(int mode) { dpo::g_probe = mode; }
#endif
