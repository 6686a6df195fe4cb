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
// Micro-kernels, chosen at run time (DPO_GEMM_BF16_KERNEL=avx512bf16|avx512|portable forces one,
// gemmBf16SetKernel(name) switches in-process for tests):
//   avx512bf16: 12×32 tile in 24 zmm accumulators, vdpbf16ps (2 multiply-adds per lane).
//   avx512:     the converted-float32 fallback for AVX-512 CPUs without BF16: each pair word is
//               widened to two float32 (shift / mask) and accumulated with two FMAs in the same
//               order (hi then lo).
//   portable:   4×16 plain C++, same order.
// AMX (Intel Sapphire Rapids TMUL) is not implemented: see the README's bf16 section.
//
// Denormals: vdpbf16ps treats denormal inputs and results as zero (DAZ/FTZ), the converted paths
// do not; values below 1.2e-38 can therefore differ between paths (never between thread counts).
// Determinism: blocks depend on the shape only and work is split over rows/columns of C, never
// over K, so 1 and N threads give bit-identical results.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <new>
#include <string>

#include "abi.h"
#include "check.h"
#include "gemm-args.h"
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

// ---------------------------------------------------------------------------------------------
// Problem and packing.

struct Operand {
  const float* f32 = nullptr;     // one of these two is set
  const uint16_t* bf16 = nullptr;
  int64_t stride = 0;
  inline uint32_t At(int64_t i) const { return f32 ? Bf16Bits(f32[i]) : bf16[i]; }
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

// Packs op(A)[i0:i0+rows, p0:p0+kc] (p0 even) as ceil(rows/mr) panels of kc2 × mr pair words.
void PackA(const Problem& P, int64_t base, int64_t i0, int64_t rows, int64_t p0, int64_t kc, int mr, uint32_t* Ap) {
  const int64_t kc2 = (kc + 1) / 2;
  const int64_t panels = (rows + mr - 1) / mr;
  const Operand& A = P.A;
  for (int64_t pi = 0; pi < panels; pi++) {
    uint32_t* panel = Ap + pi * kc2 * mr;
    const int64_t h = std::min<int64_t>(mr, rows - pi * mr);
    for (int64_t r = 0; r < mr; r++) {
      uint32_t* dst = panel + r;
      if (r >= h) {
        for (int64_t p = 0; p < kc2; p++) dst[p * mr] = 0;
        continue;
      }
      const int64_t i = i0 + pi * mr + r;
      // Element (i, k) of op(A): A[i·K + k], or A[k·M + i] when A is stored K×M.
      const int64_t rowStep = P.ta ? P.M : 1;
      const int64_t start = base + (P.ta ? p0 * P.M + i : i * P.K + p0);
      if (A.f32 && !P.ta) {
        const float* src = A.f32 + start;
        int64_t p = 0;
        for (; 2 * p + 1 < kc; p++) dst[p * mr] = Bf16Bits(src[2 * p]) | (uint32_t(Bf16Bits(src[2 * p + 1])) << 16);
        if (2 * p < kc) dst[p * mr] = Bf16Bits(src[2 * p]);
      } else {
        int64_t p = 0;
        for (; 2 * p + 1 < kc; p++)
          dst[p * mr] = A.At(start + 2 * p * rowStep) | (A.At(start + (2 * p + 1) * rowStep) << 16);
        if (2 * p < kc) dst[p * mr] = A.At(start + 2 * p * rowStep);
      }
    }
  }
}

// Packs op(B)[p0:p0+kc, j0:j0+cols] (p0 even) as ceil(cols/nr) panels of kc2 × nr pair words.
void PackB(const Problem& P, int64_t base, int64_t p0, int64_t kc, int64_t j0, int64_t cols, int nr, uint32_t* Bp) {
  const int64_t kc2 = (kc + 1) / 2;
  const int64_t panels = (cols + nr - 1) / nr;
  const Operand& B = P.B;
  for (int64_t pj = 0; pj < panels; pj++) {
    uint32_t* panel = Bp + pj * kc2 * nr;
    const int64_t w = std::min<int64_t>(nr, cols - pj * nr);
    if (!P.tb) {
      // B stored K×N: rows k and k+1 are read contiguously, w columns at a time.
      for (int64_t p = 0; p < kc2; p++) {
        const int64_t k = p0 + 2 * p;
        const int64_t r0 = base + k * P.N + j0 + pj * nr;
        uint32_t* dst = panel + p * nr;
        const bool pair = 2 * p + 1 < kc;
        if (B.f32) {
          const float* lo = B.f32 + r0;
          const float* hi = lo + P.N;
          for (int64_t j = 0; j < w; j++) dst[j] = Bf16Bits(lo[j]) | (pair ? uint32_t(Bf16Bits(hi[j])) << 16 : 0u);
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
          const float* src = B.f32 + start;
          for (; 2 * p + 1 < kc; p++) dst[p * nr] = Bf16Bits(src[2 * p]) | (uint32_t(Bf16Bits(src[2 * p + 1])) << 16);
          if (2 * p < kc) dst[p * nr] = Bf16Bits(src[2 * p]);
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
constexpr int kMaxMR = 12, kMaxNR = 32;  // the largest tile of any kernel (edge buffers)

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

struct KernelDesc {
  const char* name;
  int mr, nr;
  MicroKernel micro;
};

constexpr KernelDesc kPortable = {"portable", kPortMR, kPortNR, MicroPortable};
#if DPO_BF16_X86
constexpr KernelDesc kAvx512 = {"avx512", kZmmMR, kZmmNR, MicroAvx512};
constexpr KernelDesc kAvx512Bf16 = {"avx512bf16", kZmmMR, kZmmNR, MicroAvx512Bf16};
#endif
constexpr const char* kNames = "avx512bf16, avx512, portable";

bool Supported(const std::string& name) {
  if (name == "portable") return true;
#if DPO_BF16_X86
  if (name == "avx512") return __builtin_cpu_supports("avx512f");
  if (name == "avx512bf16") return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
#endif
  return false;
}

const KernelDesc* ByName(const std::string& name) {
#if DPO_BF16_X86
  if (name == "avx512bf16") return &kAvx512Bf16;
  if (name == "avx512") return &kAvx512;
#endif
  if (name == "portable") return &kPortable;
  return nullptr;
}

const KernelDesc* BestKernel() {
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
constexpr int64_t kRowBlock = 48;    // rows of A per task
constexpr double kParallelMinFlops = 2.0 * 64 * 64 * 64;

using PackBuffersT = PackBuffers<uint32_t>;
thread_local PackBuffersT tl_pack;

// Equal K blocks of an even size ≤ kKcMax (so every block but the last has whole pairs).
inline int64_t KcFor(int64_t K) {
  const int64_t nblocks = (K + kKcMax - 1) / kKcMax;
  const int64_t kc = (K + nblocks - 1) / nblocks;
  return (kc + 1) / 2 * 2;
}

void KernelBlock(const Problem& P, const KernelDesc& kd, float* C, const uint32_t* Ap, const uint32_t* Bp, int64_t m0,
                 int64_t rows, int64_t n0, int64_t cols, int64_t kc2, float beta) {
  const int mr = kd.mr, nr = kd.nr;
  const int64_t N = P.N;
  alignas(64) float edge[kMaxMR * kMaxNR];
  for (int64_t i = 0; i < rows; i += mr) {
    const int64_t h = std::min<int64_t>(mr, rows - i);
    const uint32_t* ap = Ap + (i / mr) * kc2 * mr;
    for (int64_t j = 0; j < cols; j += nr) {
      const int64_t w = std::min<int64_t>(nr, cols - j);
      float* c = C + (m0 + i) * N + n0 + j;
      const uint32_t* bp = Bp + (j / nr) * kc2 * nr;
      if (h == mr && w == nr) {
        kd.micro(kc2, ap, bp, c, N, P.alpha, beta);
        continue;
      }
      kd.micro(kc2, ap, bp, edge, nr, 1.0f, 0.0f);
      for (int64_t r = 0; r < h; r++) {
        float* cr = c + r * N;
        const float* er = edge + r * nr;
        if (beta == 0.0f) {
          for (int64_t q = 0; q < w; q++) cr[q] = P.alpha * er[q];
        } else {
          for (int64_t q = 0; q < w; q++) cr[q] = P.alpha * er[q] + beta * cr[q];
        }
      }
    }
  }
}

void RunTasks(int64_t ntasks, bool parallel, const std::function<void(int64_t)>& fn) {
  if (!parallel) {
    for (int64_t t = 0; t < ntasks; t++) fn(t);
  } else {
    ParallelFor(ntasks, fn);
  }
}

inline int64_t RoundUp(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Small batched products: one task per (batch item, row block), each packing its own operands.
void ComputeItemRows(const Problem& P, const KernelDesc& kd, int64_t bi, int64_t m0, int64_t rows) {
  const int mr = kd.mr, nr = kd.nr;
  const int64_t kcMax = KcFor(P.K), kc2Max = kcMax / 2;
  uint32_t* Bp = PackBuffersT::Grow(tl_pack.b, tl_pack.b_len, static_cast<size_t>(kc2Max * RoundUp(P.N, nr)));
  uint32_t* Ap = PackBuffersT::Grow(tl_pack.a, tl_pack.a_len, static_cast<size_t>(kc2Max * RoundUp(rows, mr)));
  float* C = P.C + bi * P.sC;
  for (int64_t p0 = 0; p0 < P.K; p0 += kcMax) {
    const int64_t kc = std::min(kcMax, P.K - p0);
    PackB(P, bi * P.B.stride, p0, kc, 0, P.N, nr, Bp);
    PackA(P, bi * P.A.stride, m0, rows, p0, kc, mr, Ap);
    KernelBlock(P, kd, C, Ap, Bp, m0, rows, 0, P.N, (kc + 1) / 2, p0 == 0 ? P.beta : 1.0f);
  }
}

// One large item: per slab of columns and K block, the pool packs the slab of op(B) together
// (shared), then tasks over (row block, column block) pack their rows of op(A) and multiply.
void ComputeItemSlabs(const Problem& P, const KernelDesc& kd, int64_t bi, bool parallel) {
  const int mr = kd.mr, nr = kd.nr;
  const int64_t M = P.M, N = P.N, K = P.K;
  const int64_t kcMax = KcFor(K), kc2Max = kcMax / 2;
  const int64_t tnMax = std::min(RoundUp(N, nr), kSlabN);
  const int64_t rowBlock = std::max<int64_t>(mr, kRowBlock / mr * mr);
  const int64_t rowBlocks = (M + rowBlock - 1) / rowBlock;
  int64_t colBlock = tnMax;
  while (rowBlocks * ((tnMax + colBlock - 1) / colBlock) < 8 && colBlock > 4 * nr) colBlock = RoundUp(colBlock / 2, nr);
  uint32_t* Bp = PackBuffersT::Grow(tl_pack.b, tl_pack.b_len, static_cast<size_t>(kc2Max * tnMax));
  float* C = P.C + bi * P.sC;
  constexpr int64_t kPanelsPerPackTask = 2;
  for (int64_t n0 = 0; n0 < N; n0 += tnMax) {
    const int64_t tn = std::min(tnMax, N - n0);
    const int64_t panels = (tn + nr - 1) / nr;
    const int64_t colBlocks = (tn + colBlock - 1) / colBlock;
    for (int64_t p0 = 0; p0 < K; p0 += kcMax) {
      const int64_t kc = std::min(kcMax, K - p0), kc2 = (kc + 1) / 2;
      const float beta = p0 == 0 ? P.beta : 1.0f;
      RunTasks((panels + kPanelsPerPackTask - 1) / kPanelsPerPackTask, parallel, [&](int64_t t) {
        const int64_t j = t * kPanelsPerPackTask * nr;
        PackB(P, bi * P.B.stride, p0, kc, n0 + j, std::min(kPanelsPerPackTask * nr, tn - j), nr, Bp + (j / nr) * kc2 * nr);
      });
      RunTasks(rowBlocks * colBlocks, parallel, [&](int64_t t) {
        const int64_t m0 = (t / colBlocks) * rowBlock, rows = std::min(rowBlock, M - m0);
        const int64_t j = (t % colBlocks) * colBlock, w = std::min(colBlock, tn - j);
        uint32_t* Ap = PackBuffersT::Grow(tl_pack.a, tl_pack.a_len, static_cast<size_t>(kc2Max * RoundUp(rowBlock, mr)));
        PackA(P, bi * P.A.stride, m0, rows, p0, kc, mr, Ap);
        KernelBlock(P, kd, C, Ap, Bp + (j / nr) * kc2 * nr, m0, rows, n0 + j, w, kc2, beta);
      });
    }
  }
}

constexpr double kSlabMinFlops = 2.0 * 192 * 192 * 192;

void Gemm(const Problem& P, const KernelDesc& kd) {
  const int64_t M = P.M, N = P.N, K = P.K;
  if (P.batch == 0 || M == 0 || N == 0) return;
  const double flops = 2.0 * static_cast<double>(M) * N * K * P.batch;
  const bool parallel = flops >= kParallelMinFlops;
  if (K == 0 || P.alpha == 0.0f) {
    const int64_t n = M * N;
    RunTasks(P.batch, parallel, [&](int64_t bi) {
      float* c = P.C + bi * P.sC;
      if (P.beta == 0.0f) {
        std::fill(c, c + n, 0.0f);
      } else if (P.beta != 1.0f) {
        for (int64_t t = 0; t < n; t++) c[t] *= P.beta;
      }
    });
    return;
  }
  if (2.0 * static_cast<double>(M) * N * K >= kSlabMinFlops) {
    for (int64_t bi = 0; bi < P.batch; bi++) ComputeItemSlabs(P, kd, bi, parallel);
    return;
  }
  const int64_t rowBlock = std::max<int64_t>(kd.mr, kRowBlock / kd.mr * kd.mr);
  const int64_t rowBlocks = (M + rowBlock - 1) / rowBlock;
  RunTasks(P.batch * rowBlocks, parallel, [&](int64_t t) {
    const int64_t bi = t / rowBlocks, m0 = (t % rowBlocks) * rowBlock;
    ComputeItemRows(P, kd, bi, m0, std::min(rowBlock, M - m0));
  });
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
  static const std::string names = dpo::SupportedKernelNames({"avx512bf16", "avx512", "portable"}, dpo::Supported);
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
    for (int64_t i = t * kChunk; i < e; i++) d[i] = Bf16Bits(s[i]);
  });
  return DPO_OK;
}

}  // extern "C"
