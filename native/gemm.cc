// Single-precision GEMM, row-major, batched:  C[b] = alpha · op(A[b]) · op(B[b]) + beta · C[b].
//
// Structure (Goto/BLIS): the output is cut into fixed tiles of TM×TN (they depend on the shape
// only, never on the thread count); each tile is one pool task. A task walks K in blocks of KC:
// it packs the KC×TN slab of op(B) into NR-wide micro-panels (kept in L2), then for every MR
// rows packs a KC×MR micro-panel of op(A) (kept in L1) and runs the register-blocked
// micro-kernel across the slab. Every C element is therefore summed in the same order whatever
// the thread count (work is never split over K), so 1 and N threads give bit-identical results.
//
// Micro-kernels, chosen at run time from CPU features (DPO_GEMM_KERNEL=avx512|avx2|portable
// forces one, gemmSetKernel(name) switches at run time for tests):
//   avx512: 12×32 tile of C in 24 zmm accumulators, one broadcast of A per row, FMA.
//   avx2:    6×16 tile in 12 ymm accumulators.
//   portable: 4×16 plain C++ (the compiler vectorizes it for whatever ISA it targets).
// Very thin products (M or N below a few rows) skip packing and use a direct loop.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "common.h"
#include "threadpool.h"

#if defined(__x86_64__) || defined(_M_X64)
#define DPO_GEMM_X86 1
#include <immintrin.h>
#endif

namespace dpo {
namespace {

// ---------------------------------------------------------------------------------------------
// Micro-kernels. Ap: kc×MR (k-major, MR values of op(A) per k), Bp: kc×NR, both 64-byte
// aligned. Writes C[0:MR, 0:NR] = alpha·(Ap·Bp) + beta·C; beta == 0 never reads C.

using MicroKernel = void (*)(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc,
                             float alpha, float beta);

constexpr int kPortMR = 4, kPortNR = 16;

void MicroPortable(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc, float alpha,
                   float beta) {
  float acc[kPortMR][kPortNR] = {};
  for (int64_t k = 0; k < kc; k++) {
    const float* a = Ap + k * kPortMR;
    const float* b = Bp + k * kPortNR;
    for (int i = 0; i < kPortMR; i++) {
      const float ai = a[i];
      for (int j = 0; j < kPortNR; j++) acc[i][j] += ai * b[j];
    }
  }
  for (int i = 0; i < kPortMR; i++) {
    float* c = C + i * ldc;
    if (beta == 0.0f) {
      for (int j = 0; j < kPortNR; j++) c[j] = alpha * acc[i][j];
    } else {
      for (int j = 0; j < kPortNR; j++) c[j] = alpha * acc[i][j] + beta * c[j];
    }
  }
}

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

struct KernelDesc {
  const char* name;
  int mr, nr;
  MicroKernel micro;
};

constexpr KernelDesc kPortable = {"portable", kPortMR, kPortNR, MicroPortable};
#if DPO_GEMM_X86
constexpr KernelDesc kAvx2 = {"avx2", kAvx2MR, kAvx2NR, MicroAvx2};
constexpr KernelDesc kAvx512 = {"avx512", kAvx512MR, kAvx512NR, MicroAvx512};
#endif

bool Supported(const std::string& name) {
  if (name == "portable") return true;
#if DPO_GEMM_X86
  if (name == "avx2") return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (name == "avx512") return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
#endif
  return false;
}

const KernelDesc* ByName(const std::string& name) {
#if DPO_GEMM_X86
  if (name == "avx512") return &kAvx512;
  if (name == "avx2") return &kAvx2;
#endif
  if (name == "portable") return &kPortable;
  return nullptr;
}

const KernelDesc* BestKernel() {
#if DPO_GEMM_X86
  if (Supported("avx512")) return &kAvx512;
  if (Supported("avx2")) return &kAvx2;
#endif
  return &kPortable;
}

// The active kernel. Set once at load (env var honored) and by gemmSetKernel.
const KernelDesc* g_kernel = nullptr;
std::string g_kernel_error;  // a bad DPO_GEMM_KERNEL value: reported by every gemm call

void InitKernel() {
  if (g_kernel || !g_kernel_error.empty()) return;
  const char* env = std::getenv("DPO_GEMM_KERNEL");
  if (!env || !*env) {
    g_kernel = BestKernel();
    return;
  }
  const std::string name(env);
  if (!ByName(name)) {
    g_kernel_error = "gemm: DPO_GEMM_KERNEL='" + name + "' is not one of avx512, avx2, portable";
  } else if (!Supported(name)) {
    g_kernel_error = "gemm: DPO_GEMM_KERNEL='" + name + "' is not supported by this CPU";
  } else {
    g_kernel = ByName(name);
  }
}

// ---------------------------------------------------------------------------------------------
// Blocking. Tiles depend on the shape only (never on the thread count).

constexpr int64_t kKcMax = 384;  // KC×MR of A (18 KiB for MR=12) sits in L1 next to B lines
constexpr int64_t kTnMax = 512;  // KC×TN slab of packed B: 768 KiB, stays in L2
constexpr int64_t kTmMax = 384;  // rows per task: B slab reuse vs number of tasks

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

// Per-thread packing buffers, 64-byte aligned, grown on demand and kept for the thread's life.
struct PackBuffers {
  float* a = nullptr;
  size_t a_len = 0;
  float* b = nullptr;
  size_t b_len = 0;
  ~PackBuffers() {
    std::free(a);
    std::free(b);
  }
  static float* Grow(float*& p, size_t& len, size_t need) {
    if (need > len) {
      std::free(p);
      const size_t bytes = ((need * sizeof(float) + 63) / 64) * 64;
      p = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (!p) throw std::bad_alloc();
      len = need;
    }
    return p;
  }
};
thread_local PackBuffers tl_pack;

// Packs op(A)[i0:i0+rows, p0:p0+kc] as kc×MR (rows < MR are zero-padded).
inline void PackA(const Problem& P, const float* A, int64_t i0, int64_t rows, int64_t p0, int64_t kc,
                  int mr, float* Ap) {
  if (rows < mr) std::memset(Ap, 0, sizeof(float) * kc * mr);
  if (P.ta) {
    // A stored K×M: each k gives `rows` contiguous values.
    for (int64_t k = 0; k < kc; k++) {
      const float* src = A + (p0 + k) * P.M + i0;
      float* dst = Ap + k * mr;
      for (int64_t i = 0; i < rows; i++) dst[i] = src[i];
    }
  } else {
    // A stored M×K: read each row contiguously, write with stride MR.
    for (int64_t i = 0; i < rows; i++) {
      const float* src = A + (i0 + i) * P.K + p0;
      float* dst = Ap + i;
      for (int64_t k = 0; k < kc; k++) dst[k * mr] = src[k];
    }
  }
}

// Packs op(B)[p0:p0+kc, j0:j0+cols] as ceil(cols/NR) micro-panels of kc×NR (zero-padded).
inline void PackB(const Problem& P, const float* B, int64_t p0, int64_t kc, int64_t j0, int64_t cols,
                  int nr, float* Bp) {
  for (int64_t jr = 0; jr < cols; jr += nr) {
    const int64_t w = std::min<int64_t>(nr, cols - jr);
    float* panel = Bp + (jr / nr) * kc * nr;
    if (w < nr) std::memset(panel, 0, sizeof(float) * kc * nr);
    if (!P.tb) {
      // B stored K×N: each k gives w contiguous values.
      for (int64_t k = 0; k < kc; k++) {
        const float* src = B + (p0 + k) * P.N + j0 + jr;
        float* dst = panel + k * nr;
        for (int64_t j = 0; j < w; j++) dst[j] = src[j];
      }
    } else {
      // B stored N×K: read each column of op(B) contiguously, write with stride NR.
      for (int64_t j = 0; j < w; j++) {
        const float* src = B + (j0 + jr + j) * P.K + p0;
        float* dst = panel + j;
        for (int64_t k = 0; k < kc; k++) dst[k * nr] = src[k];
      }
    }
  }
}

// The K blocks: equal sizes ≤ kKcMax (e.g. K = 1024 → 3 × 342), so the last block is not a sliver.
inline int64_t KcFor(int64_t K) {
  const int64_t nblocks = (K + kKcMax - 1) / kKcMax;
  return (K + nblocks - 1) / nblocks;
}

// One output tile C[m0:m0+tm, n0:n0+tn] of batch item `bi`, all of K.
void ComputeTile(const Problem& P, const KernelDesc& kd, int64_t bi, int64_t m0, int64_t tm, int64_t n0,
                 int64_t tn) {
  const int mr = kd.mr, nr = kd.nr;
  const float* A = P.A + bi * P.sA;
  const float* B = P.B + bi * P.sB;
  float* C = P.C + bi * P.sC;
  const int64_t N = P.N;
  const int64_t kcMax = KcFor(P.K);
  const int64_t tnPad = (tn + nr - 1) / nr * nr;
  float* Bp = PackBuffers::Grow(tl_pack.b, tl_pack.b_len, static_cast<size_t>(kcMax * tnPad));
  float* Ap = PackBuffers::Grow(tl_pack.a, tl_pack.a_len, static_cast<size_t>(kcMax * mr));
  alignas(64) float edge[16 * 32];  // a partial tile is computed here, then merged into C

  for (int64_t p0 = 0; p0 < P.K; p0 += kcMax) {
    const int64_t kc = std::min(kcMax, P.K - p0);
    // The first K block applies beta; later blocks accumulate onto it.
    const float beta = p0 == 0 ? P.beta : 1.0f;
    PackB(P, B, p0, kc, n0, tn, nr, Bp);
    for (int64_t i = 0; i < tm; i += mr) {
      const int64_t rows = std::min<int64_t>(mr, tm - i);
      PackA(P, A, m0 + i, rows, p0, kc, mr, Ap);
      for (int64_t j = 0; j < tn; j += nr) {
        const int64_t cols = std::min<int64_t>(nr, tn - j);
        float* c = C + (m0 + i) * N + n0 + j;
        const float* bp = Bp + (j / nr) * kc * nr;
        if (rows == mr && cols == nr) {
          kd.micro(kc, Ap, bp, c, N, P.alpha, beta);
        } else {
          kd.micro(kc, Ap, bp, edge, nr, 1.0f, 0.0f);
          for (int64_t r = 0; r < rows; r++) {
            float* cr = c + r * N;
            const float* er = edge + r * nr;
            if (beta == 0.0f) {
              for (int64_t q = 0; q < cols; q++) cr[q] = P.alpha * er[q];
            } else {
              for (int64_t q = 0; q < cols; q++) cr[q] = P.alpha * er[q] + beta * cr[q];
            }
          }
        }
      }
    }
  }
}

// Thin products (M or N tiny): packing would cost as much as the arithmetic and the register
// tile would be mostly padding. Direct loops over rows of C, split into column chunks.
constexpr int64_t kDirectChunk = 256;

void DirectChunk(const Problem& P, int64_t bi, int64_t i, int64_t j0, int64_t cols) {
  const float* A = P.A + bi * P.sA;
  const float* B = P.B + bi * P.sB;
  float* c = P.C + bi * P.sC + i * P.N + j0;
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
    // Dot products with 16 independent partial sums (vectorizable without reassociation).
    for (int64_t j = 0; j < cols; j++) {
      const float* b = B + (j0 + j) * K;
      float part[16] = {};
      int64_t k = 0;
      if (!P.ta) {
        const float* a = A + i * K;
        for (; k + 16 <= K; k += 16)
          for (int l = 0; l < 16; l++) part[l] += a[k + l] * b[k + l];
        for (; k < K; k++) part[0] += a[k] * b[k];
      } else {
        for (; k < K; k++) part[k & 15] += A[k * M + i] * b[k];
      }
      float s = 0.0f;
      for (int l = 0; l < 16; l++) s += part[l];
      acc[j] = s;
    }
  }
  if (P.beta == 0.0f) {
    for (int64_t j = 0; j < cols; j++) c[j] = P.alpha * acc[j];
  } else {
    for (int64_t j = 0; j < cols; j++) c[j] = P.alpha * acc[j] + P.beta * c[j];
  }
}

// Work below this many multiply-adds runs on the calling thread only.
constexpr double kParallelMinFlops = 2.0 * 64 * 64 * 64;

void RunTasks(int64_t ntasks, double flops, const std::function<void(int64_t)>& fn) {
  if (flops < kParallelMinFlops) {
    for (int64_t t = 0; t < ntasks; t++) fn(t);
  } else {
    ParallelFor(ntasks, fn);
  }
}

void Gemm(const Problem& P, const KernelDesc& kd) {
  const int64_t M = P.M, N = P.N, K = P.K;
  if (P.batch == 0 || M == 0 || N == 0) return;
  const double flops = 2.0 * static_cast<double>(M) * N * K * P.batch;

  if (K == 0 || P.alpha == 0.0f) {
    // No products: C = beta·C (beta == 0 overwrites, NaN included).
    const int64_t n = M * N;
    RunTasks(P.batch, static_cast<double>(n) * P.batch, [&](int64_t bi) {
      float* c = P.C + bi * P.sC;
      if (P.beta == 0.0f) {
        std::fill(c, c + n, 0.0f);
      } else if (P.beta != 1.0f) {
        for (int64_t t = 0; t < n; t++) c[t] *= P.beta;
      }
    });
    return;
  }

  if (M < 4 || N < 8) {
    const int64_t chunks = (N + kDirectChunk - 1) / kDirectChunk;
    const int64_t perBatch = M * chunks;
    RunTasks(P.batch * perBatch, flops, [&](int64_t t) {
      const int64_t bi = t / perBatch, r = t % perBatch;
      const int64_t i = r / chunks, j0 = (r % chunks) * kDirectChunk;
      DirectChunk(P, bi, i, j0, std::min(kDirectChunk, N - j0));
    });
    return;
  }

  // Tile sizes: multiples of the register tile, as large as the caches allow; smaller when
  // the whole problem would otherwise give fewer than ~8 tasks (so 2-8 threads stay busy).
  const int mr = kd.mr, nr = kd.nr;
  auto roundUp = [](int64_t x, int64_t m) { return (x + m - 1) / m * m; };
  int64_t tm = std::min(roundUp(M, mr), kTmMax / mr * mr);
  int64_t tn = std::min(roundUp(N, nr), kTnMax / nr * nr);
  auto count = [&](int64_t a, int64_t b) { return P.batch * ((M + a - 1) / a) * ((N + b - 1) / b); };
  while (count(tm, tn) < 8 && flops > 64 * kParallelMinFlops) {
    if (tm >= tn && tm > 4 * mr) {
      tm = roundUp(tm / 2, mr);
    } else if (tn > 4 * nr) {
      tn = roundUp(tn / 2, nr);
    } else if (tm > 4 * mr) {
      tm = roundUp(tm / 2, mr);
    } else {
      break;
    }
  }
  const int64_t tilesM = (M + tm - 1) / tm, tilesN = (N + tn - 1) / tn;
  const int64_t perBatch = tilesM * tilesN;
  RunTasks(P.batch * perBatch, flops, [&](int64_t t) {
    const int64_t bi = t / perBatch, r = t % perBatch;
    const int64_t m0 = (r / tilesN) * tm, n0 = (r % tilesN) * tn;
    ComputeTile(P, kd, bi, m0, std::min(tm, M - m0), n0, std::min(tn, N - n0));
  });
}

// ---------------------------------------------------------------------------------------------
// N-API wrappers.

bool ThrowIf(Napi::Env env, bool bad, const std::string& msg, bool range = true) {
  if (!bad) return false;
  if (range) {
    Napi::RangeError::New(env, msg).ThrowAsJavaScriptException();
  } else {
    Napi::TypeError::New(env, msg).ThrowAsJavaScriptException();
  }
  return true;
}

std::string Str(double v) {
  if (v == std::floor(v) && std::fabs(v) < 9e15) return std::to_string(static_cast<int64_t>(v));
  return std::to_string(v);
}

// Reads a non-negative integer argument; throws naming it on failure.
bool IntArg(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t* out) {
  Napi::Env env = info.Env();
  if (ThrowIf(env, !info[i].IsNumber(), std::string("gemm: ") + name + " must be a number", false)) return false;
  const double v = info[i].As<Napi::Number>().DoubleValue();
  if (ThrowIf(env, !(v >= 0 && v <= 9007199254740991.0) || v != std::floor(v),
              std::string("gemm: ") + name + " must be a non-negative integer, got " + Str(v)))
    return false;
  *out = static_cast<int64_t>(v);
  return true;
}

bool F32Arg(const Napi::CallbackInfo& info, size_t i, const char* name, float** data, size_t* len) {
  Napi::Value v = info[i];
  if (ThrowIf(info.Env(),
              !v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array,
              std::string("gemm: ") + name + " must be a Float32Array", false))
    return false;
  auto arr = v.As<Napi::Float32Array>();
  *data = arr.Data();
  *len = arr.ElementLength();
  return true;
}

// Elements a batched operand spans: (batch − 1)·stride + rows·cols, in 128-bit to avoid overflow.
bool CheckSpan(Napi::Env env, const char* name, size_t len, int64_t batch, int64_t stride, int64_t rows,
               int64_t cols, const std::string& shape) {
  const __int128 need = static_cast<__int128>(batch - 1) * stride + static_cast<__int128>(rows) * cols;
  return !ThrowIf(env, need > static_cast<__int128>(len),
                  std::string("gemm: ") + name + " has " + std::to_string(len) + " elements but " + shape +
                      " needs " + Str(static_cast<double>(need)));
}

Napi::Value GemmJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (ThrowIf(env, info.Length() < 14,
              "gemm: expected 14 arguments (transA, transB, M, N, K, A, strideA, B, strideB, C, strideC, "
              "batch, alpha, beta), got " + std::to_string(info.Length()),
              false))
    return env.Undefined();
  Problem P;
  P.ta = info[0].ToBoolean().Value();
  P.tb = info[1].ToBoolean().Value();
  float *a, *b, *c;
  size_t la, lb, lc;
  if (!IntArg(info, 2, "M", &P.M) || !IntArg(info, 3, "N", &P.N) || !IntArg(info, 4, "K", &P.K) ||
      !F32Arg(info, 5, "A", &a, &la) || !IntArg(info, 6, "strideA", &P.sA) || !F32Arg(info, 7, "B", &b, &lb) ||
      !IntArg(info, 8, "strideB", &P.sB) || !F32Arg(info, 9, "C", &c, &lc) ||
      !IntArg(info, 10, "strideC", &P.sC) || !IntArg(info, 11, "batch", &P.batch))
    return env.Undefined();
  if (ThrowIf(env, !info[12].IsNumber() || !info[13].IsNumber(), "gemm: alpha and beta must be numbers", false))
    return env.Undefined();
  P.alpha = static_cast<float>(info[12].As<Napi::Number>().DoubleValue());
  P.beta = static_cast<float>(info[13].As<Napi::Number>().DoubleValue());
  P.A = a;
  P.B = b;
  P.C = c;

  InitKernel();
  if (ThrowIf(env, g_kernel == nullptr, g_kernel_error, false)) return env.Undefined();
  if (P.batch == 0 || P.M == 0 || P.N == 0) return env.Undefined();

  const std::string dims = "M=" + std::to_string(P.M) + " N=" + std::to_string(P.N) +
                           " K=" + std::to_string(P.K) + " batch=" + std::to_string(P.batch);
  const std::string opA = P.ta ? "A (K×M" : "A (M×K";
  const std::string opB = P.tb ? "B (N×K" : "B (K×N";
  if (!CheckSpan(env, "A", la, P.batch, P.sA, P.M, P.K, opA + ", strideA=" + std::to_string(P.sA) + ", " + dims + ")") ||
      !CheckSpan(env, "B", lb, P.batch, P.sB, P.K, P.N, opB + ", strideB=" + std::to_string(P.sB) + ", " + dims + ")") ||
      !CheckSpan(env, "C", lc, P.batch, P.sC, P.M, P.N, "C (M×N, strideC=" + std::to_string(P.sC) + ", " + dims + ")"))
    return env.Undefined();
  // Batch items writing overlapping C would race (and the result would depend on timing).
  if (ThrowIf(env, P.batch > 1 && P.sC < P.M * P.N,
              "gemm: strideC=" + std::to_string(P.sC) + " is smaller than M·N=" + std::to_string(P.M * P.N) +
                  " with batch=" + std::to_string(P.batch) + ": outputs of batch items would overlap"))
    return env.Undefined();

  Gemm(P, *g_kernel);
  return env.Undefined();
}

// gemmKernel() → the active micro-kernel name.
Napi::Value GemmKernelJs(const Napi::CallbackInfo& info) {
  InitKernel();
  return Napi::String::New(info.Env(), g_kernel ? g_kernel->name : "none");
}

// gemmSetKernel(name): switch the micro-kernel (tests exercise every path in one process).
Napi::Value GemmSetKernelJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (ThrowIf(env, info.Length() < 1 || !info[0].IsString(), "gemmSetKernel: expected a kernel name", false))
    return env.Undefined();
  const std::string name = info[0].As<Napi::String>().Utf8Value();
  if (ThrowIf(env, !ByName(name), "gemmSetKernel: unknown kernel '" + name + "' (avx512, avx2, portable)")) {
    return env.Undefined();
  }
  if (ThrowIf(env, !Supported(name), "gemmSetKernel: kernel '" + name + "' is not supported by this CPU"))
    return env.Undefined();
  g_kernel = ByName(name);
  g_kernel_error.clear();
  return env.Undefined();
}

// gemmKernelsSupported() → names this CPU can run, best first.
Napi::Value GemmKernelsSupportedJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array out = Napi::Array::New(env);
  uint32_t n = 0;
  for (const char* name : {"avx512", "avx2", "portable"})
    if (Supported(name)) out.Set(n++, Napi::String::New(env, name));
  return out;
}

}  // namespace

void RegisterGemm(Napi::Env env, Napi::Object exports) {
  exports.Set("gemm", Napi::Function::New(env, GemmJs, "gemm"));
  exports.Set("gemmKernel", Napi::Function::New(env, GemmKernelJs, "gemmKernel"));
  exports.Set("gemmSetKernel", Napi::Function::New(env, GemmSetKernelJs, "gemmSetKernel"));
  exports.Set("gemmKernelsSupported", Napi::Function::New(env, GemmKernelsSupportedJs, "gemmKernelsSupported"));
}

}  // namespace dpo
