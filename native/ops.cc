// Native non-GEMM kernels: norms, rotary embedding, activations, softmax, fused log-softmax +
// gather, embedding, AdamW and vector helpers (contract: src/tensor/kernels.ts, oracle:
// src/tensor/reference/ops.ts).
//
// How the code is organised:
// - Every kernel body is a plain loop nest over a range of rows or elements (`*_impl`), written so
//   GCC auto-vectorizes it: elementwise loops, and reductions spread over L independent lanes
//   (acc[l]) so no reassociation is needed. MULTIVERSION compiles each body three times (AVX-512,
//   AVX2+FMA, baseline x86-64) and picks one at run time from the CPU; the baseline copy is the
//   portable fallback (also for non-x86 builds).
// - exp is a polynomial (FastExp, ≤ 2 ulp); sums of squares, norms' statistics, softmax sums and
//   log-sum-exps accumulate in float64.
// - Threads: work is split into FIXED-size chunks of rows/elements. Reductions across rows
//   (dweight, dbias, sumSquares) produce one partial per fixed chunk and add the partials in chunk
//   order, so results are bit-identical for any thread count. Small inputs stay on the caller.
// - The C ABI entry points at the end (abi.h) check every argument with a Check (check.h) before
//   any work starts; the bindings throw TypeError/RangeError naming the kernel, buffer and sizes.
#include "abi.h"
#include "check.h"
#include "cpu.h"
#include "threadpool.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

// Placed after the includes so it applies to this file's kernels only. GCC does not if-convert a
// float compare that may trap, which would keep every loop with a select (exp's range clamp,
// relu) scalar; we never rely on floating-point exception flags.
#pragma GCC optimize("no-trapping-math")

namespace dpo {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

#define DPO_INLINE inline __attribute__((always_inline))

// ---------------------------------------------------------------------------------------------
// Instruction-set dispatch.

#if defined(__x86_64__)
#if defined(__clang__)
#define DPO_TARGET_AVX512 __attribute__((target("avx2,fma,avx512f,avx512vl,avx512bw,avx512dq")))
#else
// GCC's generic tuning would use 256-bit vectors even with AVX-512 enabled.
#define DPO_TARGET_AVX512 \
  __attribute__((target("avx2,fma,avx512f,avx512vl,avx512bw,avx512dq,prefer-vector-width=512")))
#endif
#define DPO_TARGET_AVX2 __attribute__((target("avx2,fma")))

// Isa() (cpu.h): 2 = AVX-512, 1 = AVX2+FMA, 0 = baseline; DPO_NATIVE_ISA caps it.
#define MULTIVERSION(name, params, args)                   \
  DPO_TARGET_AVX512 void name##_avx512 params { name##_impl args; } \
  DPO_TARGET_AVX2 void name##_avx2 params { name##_impl args; }     \
  void name##_base params { name##_impl args; }                     \
  void name params {                                                \
    const int isa = Isa();                                          \
    if (isa == 2) name##_avx512 args;                               \
    else if (isa == 1) name##_avx2 args;                            \
    else name##_base args;                                          \
  }
#else
#define MULTIVERSION(name, params, args) \
  void name params { name##_impl args; }
#endif

// ---------------------------------------------------------------------------------------------
// Scalar building blocks (always inlined so each ISA copy vectorizes them).

// exp(x) = 2^n · e^r, n = round(x·log2 e), r = x − n·ln 2 (ln 2 split in two for exactness),
// e^r from Cephes' degree-7 polynomial on |r| ≤ ln2/2. Max relative error ≈ 1e-7 (measured
// 7.9e-8 over the finite range). exp(−inf) = 0, NaN stays NaN, results below FLT_MIN flush to 0.
DPO_INLINE float FastExp(float x) {
  const float hi = 88.7228391116729996f;   // ln(FLT_MAX)
  const float lo = -87.3365447504019f;     // ln(FLT_MIN)
  float xc = x < lo ? lo : x;
  xc = xc > hi ? hi : xc;
  // Round to nearest by adding and subtracting 1.5·2^23 (valid for |v| < 2^22).
  const float n = (xc * 1.44269504088896341f + 12582912.f) - 12582912.f;
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.f;
  // 2^n from the exponent bits; n = 128 (x just below ln FLT_MAX) is built as 2^127 · 2.
  const float twice = n > 127.f ? 2.f : 1.f;
  const float nc = n > 127.f ? 127.f : n;
  const int32_t bits = (static_cast<int32_t>(nc) + 127) << 23;
  float s;
  std::memcpy(&s, &bits, sizeof s);
  const float res = p * s * twice;
  return x < lo ? 0.f : (x > hi ? kInf : res);
}

// FastExp for arguments known to be ≤ 88 (x − max in softmax and log-sum-exp): without the
// overflow handling the exp-and-sum loops run about 1.5x faster. Same accuracy; NaN stays NaN.
DPO_INLINE float FastExpBounded(float x) {
  const float lo = -87.3365447504019f;
  const float xc = x < lo ? lo : x;
  const float n = (xc * 1.44269504088896341f + 12582912.f) - 12582912.f;
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float s;
  std::memcpy(&s, &bits, sizeof s);
  return x < lo ? 0.f : p * s;
}

// 1/(1 + e^−x): e^−x overflows to +inf for x ≪ 0, giving exactly 0, so no branch is needed.
DPO_INLINE float Sigmoid(float x) { return 1.f / (1.f + FastExp(-x)); }

// Exact GELU pieces for a = |x|: returns Φ(−a) = erfc(a/√2)/2 and, when phi is non-null,
// φ(a) = e^(−a²/2)/√(2π). erfc uses Numerical Recipes' erfcc, t·e^(−z² + P(t)) with
// t = 1/(1 + z/2), relative error < 1.2e-7 for all z ≥ 0. e^(−a²/2) is split as
// e^(−ah²/2)·e^(−(a−ah)(a+ah)/2) with ah = a rounded to 12 significant bits (ah² is exact):
// rounding −a²/2 ≈ −80 to float directly would cost 4e-6 relative in the far tail.
DPO_INLINE float GeluTail(float x, float* phi) {
  float a = x < 0.f ? -x : x;
  a = a > 20.f ? 20.f : a;  // Φ(−20) ≈ 3e-89 is 0 in float; also keeps ±inf out of the split
  uint32_t bits;
  std::memcpy(&bits, &a, sizeof bits);
  bits &= 0xFFFFF000u;
  float ah;
  std::memcpy(&ah, &bits, sizeof ah);
  const float lowPart = -0.5f * ((a - ah) * (a + ah));
  const float e1 = FastExp(-0.5f * ah * ah);
  const float t = 1.f / (1.f + 0.35355339059327373f * a);  // z/2 = a/(2√2)
  float p = 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  if (phi) *phi = 0.3989422804014327f * e1 * FastExp(lowPart);
  return 0.5f * t * e1 * FastExp(lowPart + p);
}

constexpr int L = 16;  // reduction lanes: one 512-bit float vector, two double vectors

DPO_INLINE double LaneSum(const double* acc) {
  double s = 0;
  for (int l = 0; l < L; l++) s += acc[l];
  return s;
}

DPO_INLINE double SumF64(const float* x, int64_t n) {
  double acc[L] = {};
  int64_t j = 0;
  for (; j + L <= n; j += L)
    for (int l = 0; l < L; l++) acc[l] += static_cast<double>(x[j + l]);
  double tail = 0;
  for (; j < n; j++) tail += static_cast<double>(x[j]);
  return LaneSum(acc) + tail;
}

DPO_INLINE double SumSqF64(const float* x, int64_t n) {
  double acc[L] = {};
  int64_t j = 0;
  for (; j + L <= n; j += L)
    for (int l = 0; l < L; l++) {
      const double v = x[j + l];
      acc[l] += v * v;
    }
  double tail = 0;
  for (; j < n; j++) tail += static_cast<double>(x[j]) * x[j];
  return LaneSum(acc) + tail;
}

DPO_INLINE double DotF64(const float* a, const float* b, int64_t n) {
  double acc[L] = {};
  int64_t j = 0;
  for (; j + L <= n; j += L)
    for (int l = 0; l < L; l++) acc[l] += static_cast<double>(a[j + l]) * b[j + l];
  double tail = 0;
  for (; j < n; j++) tail += static_cast<double>(a[j]) * b[j];
  return LaneSum(acc) + tail;
}

// max over x[0, n); −inf for n = 0. Compares the floats as integers: flipping the low 31 bits
// of negative values makes signed-integer order equal float order, and an integer max reduction
// vectorizes (a float one would not without -ffast-math). A +NaN entry wins, like Math.max.
DPO_INLINE int32_t OrderedBits(int32_t b) { return b ^ ((b >> 31) & 0x7FFFFFFF); }

DPO_INLINE float MaxF(const float* x, int64_t n) {
  int32_t acc = OrderedBits(static_cast<int32_t>(0xFF800000u));  // −inf
  for (int64_t j = 0; j < n; j++) {
    int32_t b;
    std::memcpy(&b, x + j, sizeof b);
    b = OrderedBits(b);
    acc = b > acc ? b : acc;
  }
  acc = OrderedBits(acc);  // the mapping is its own inverse
  float m;
  std::memcpy(&m, &acc, sizeof m);
  return m;
}

// ---------------------------------------------------------------------------------------------
// Threading.

// Below this many elements of work the pool's wake-up costs more than a second core saves.
constexpr int64_t kMinParallelWork = 1 << 15;
// Elementwise kernels: elements per task.
constexpr int64_t kElemChunk = 1 << 14;
// Row reductions (norm backward): rows per partial. Fixed, so results never depend on threads.
constexpr int64_t kRowsPerPartial = 32;
// sumSquares: elements per partial.
constexpr int64_t kSumChunk = 1 << 16;

void Run(int64_t ntasks, int64_t work, const std::function<void(int64_t)>& fn) {
  if (ntasks <= 1 || work < kMinParallelWork || NumThreads() <= 1) {
    for (int64_t t = 0; t < ntasks; t++) fn(t);
    return;
  }
  ParallelFor(ntasks, fn);
}

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Runs body(i0, i1) over [0, n) in kElemChunk pieces.
void RunElementwise(int64_t n, const std::function<void(int64_t, int64_t)>& body) {
  const int64_t tasks = CeilDiv(n, kElemChunk);
  Run(tasks, n, [&](int64_t t) {
    const int64_t i0 = t * kElemChunk;
    body(i0, std::min(n, i0 + kElemChunk));
  });
}

// Runs body(r0, r1) over [0, rows) in pieces of about kElemChunk elements (row work is
// independent here, so the piece size does not affect results).
void RunRows(int64_t rows, int64_t rowWork, const std::function<void(int64_t, int64_t)>& body) {
  const int64_t per = std::max<int64_t>(1, kElemChunk / std::max<int64_t>(1, rowWork));
  const int64_t tasks = CeilDiv(rows, per);
  Run(tasks, rows * rowWork, [&](int64_t t) {
    const int64_t r0 = t * per;
    body(r0, std::min(rows, r0 + per));
  });
}

// ---------------------------------------------------------------------------------------------
// RMSNorm.

DPO_INLINE void rmsnorm_fwd_impl(const float* x, const float* w, float* out, float* rstd,
                                 int64_t r0, int64_t r1, int64_t dim, double eps) {
  for (int64_t r = r0; r < r1; r++) {
    const float* xr = x + r * dim;
    float* yr = out + r * dim;
    const double ss = SumSqF64(xr, dim);
    const float rs = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(dim) + eps));
    rstd[r] = rs;
    for (int64_t j = 0; j < dim; j++) yr[j] = xr[j] * rs * w[j];
  }
}
MULTIVERSION(rmsnorm_fwd,
             (const float* x, const float* w, float* out, float* rstd, int64_t r0, int64_t r1, int64_t dim, double eps),
             (x, w, out, rstd, r0, r1, dim, eps))

// dx_i = rs·(w_i·dy_i − x_i·rs²·Σ_j dy_j·w_j·x_j / dim); dweight partial pdw += dy·x·rs.
DPO_INLINE void rmsnorm_bwd_impl(const float* dy, const float* x, const float* w, const float* rstd,
                                 float* dx, double* pdw, int64_t r0, int64_t r1, int64_t dim) {
  for (int64_t r = r0; r < r1; r++) {
    const float* dyr = dy + r * dim;
    const float* xr = x + r * dim;
    float* dxr = dx + r * dim;
    const float rs = rstd[r];
    double acc[L] = {};
    int64_t j = 0;
    for (; j + L <= dim; j += L)
      for (int l = 0; l < L; l++) acc[l] += static_cast<double>(dyr[j + l] * w[j + l]) * xr[j + l];
    double dot = 0;
    for (; j < dim; j++) dot += static_cast<double>(dyr[j] * w[j]) * xr[j];
    dot += LaneSum(acc);
    const float c = static_cast<float>(static_cast<double>(rs) * rs * dot / static_cast<double>(dim));
    for (j = 0; j < dim; j++) {
      const float g = dyr[j];
      const float xv = xr[j];
      pdw[j] += static_cast<double>(g * xv * rs);
      dxr[j] = rs * (w[j] * g - xv * c);
    }
  }
}
MULTIVERSION(rmsnorm_bwd,
             (const float* dy, const float* x, const float* w, const float* rstd, float* dx, double* pdw,
              int64_t r0, int64_t r1, int64_t dim),
             (dy, x, w, rstd, dx, pdw, r0, r1, dim))

// ---------------------------------------------------------------------------------------------
// LayerNorm.

DPO_INLINE void layernorm_fwd_impl(const float* x, const float* w, const float* b, float* out, float* mean,
                                   float* rstd, int64_t r0, int64_t r1, int64_t dim, double eps) {
  for (int64_t r = r0; r < r1; r++) {
    const float* xr = x + r * dim;
    float* yr = out + r * dim;
    const double mu = SumF64(xr, dim) / static_cast<double>(dim);
    // Two-pass variance (the row is in L1): no cancellation when |mean| ≫ std.
    double acc[L] = {};
    int64_t j = 0;
    for (; j + L <= dim; j += L)
      for (int l = 0; l < L; l++) {
        const double d = static_cast<double>(xr[j + l]) - mu;
        acc[l] += d * d;
      }
    double var = 0;
    for (; j < dim; j++) {
      const double d = static_cast<double>(xr[j]) - mu;
      var += d * d;
    }
    var += LaneSum(acc);
    const float rs = static_cast<float>(1.0 / std::sqrt(var / static_cast<double>(dim) + eps));
    const float muf = static_cast<float>(mu);
    mean[r] = muf;
    rstd[r] = rs;
    for (j = 0; j < dim; j++) yr[j] = (xr[j] - muf) * rs * w[j] + b[j];
  }
}
MULTIVERSION(layernorm_fwd,
             (const float* x, const float* w, const float* b, float* out, float* mean, float* rstd,
              int64_t r0, int64_t r1, int64_t dim, double eps),
             (x, w, b, out, mean, rstd, r0, r1, dim, eps))

// With g = dy·w, xhat = (x − mean)·rstd: dx = rstd·(g − mean(g) − xhat·mean(g·xhat));
// partials pdw += dy·xhat, pdb += dy.
DPO_INLINE void layernorm_bwd_impl(const float* dy, const float* x, const float* w, const float* mean,
                                   const float* rstd, float* dx, double* pdw, double* pdb,
                                   int64_t r0, int64_t r1, int64_t dim) {
  for (int64_t r = r0; r < r1; r++) {
    const float* dyr = dy + r * dim;
    const float* xr = x + r * dim;
    float* dxr = dx + r * dim;
    const float mu = mean[r];
    const float rs = rstd[r];
    // Σg and Σg·xhat = rstd·(Σg·x − mean·Σg), each over L lanes in float64 (g·x is exact there).
    double ag[L] = {}, agx[L] = {};
    int64_t j = 0;
    for (; j + L <= dim; j += L)
      for (int l = 0; l < L; l++) ag[l] += static_cast<double>(dyr[j + l] * w[j + l]);
    for (j = 0; j + L <= dim; j += L)
      for (int l = 0; l < L; l++) agx[l] += static_cast<double>(dyr[j + l] * w[j + l]) * xr[j + l];
    double sg = 0, sgxRaw = 0;
    for (int64_t k = j; k < dim; k++) {
      const float g = dyr[k] * w[k];
      sg += static_cast<double>(g);
      sgxRaw += static_cast<double>(g) * xr[k];
    }
    sg += LaneSum(ag);
    sgxRaw += LaneSum(agx);
    const double sgx = static_cast<double>(rs) * (sgxRaw - static_cast<double>(mu) * sg);
    const float mg = static_cast<float>(sg / static_cast<double>(dim));
    const float mgx = static_cast<float>(sgx / static_cast<double>(dim));
    for (j = 0; j < dim; j++) {
      const float d = dyr[j];
      const float xhat = (xr[j] - mu) * rs;
      pdw[j] += static_cast<double>(d * xhat);
      pdb[j] += static_cast<double>(d);
      dxr[j] = rs * (d * w[j] - mg - xhat * mgx);
    }
  }
}
MULTIVERSION(layernorm_bwd,
             (const float* dy, const float* x, const float* w, const float* mean, const float* rstd, float* dx,
              double* pdw, double* pdb, int64_t r0, int64_t r1, int64_t dim),
             (dy, x, w, mean, rstd, dx, pdw, pdb, r0, r1, dim))

// Adds the per-chunk partials (chunk order, float64) to the accumulated float output.
void ReducePartials(const std::vector<double>& partials, int64_t chunks, int64_t dim, float* dst) {
  std::vector<double> total(static_cast<size_t>(dim), 0.0);
  for (int64_t c = 0; c < chunks; c++) {
    const double* p = partials.data() + c * dim;
    for (int64_t j = 0; j < dim; j++) total[j] += p[j];
  }
  for (int64_t j = 0; j < dim; j++) dst[j] = static_cast<float>(static_cast<double>(dst[j]) + total[j]);
}

// ---------------------------------------------------------------------------------------------
// Rotary embedding: rows bt ∈ [bt0, bt1) of [batch·seq], all heads; sign = −1 for the inverse.

DPO_INLINE void rope_rows_impl(const float* x, float* out, const float* cosT, const float* sinT, const int32_t* pos,
                          int64_t bt0, int64_t bt1, int64_t heads, int64_t headDim, float sign) {
  const int64_t half = headDim / 2;
  for (int64_t bt = bt0; bt < bt1; bt++) {
    const float* c = cosT + static_cast<int64_t>(pos[bt]) * half;
    const float* s = sinT + static_cast<int64_t>(pos[bt]) * half;
    for (int64_t h = 0; h < heads; h++) {
      const int64_t o = (bt * heads + h) * headDim;
      const float* x1 = x + o;
      const float* x2 = x1 + half;
      float* o1 = out + o;
      float* o2 = o1 + half;
      // Both halves are loaded before either is stored: out may be x.
      for (int64_t i = 0; i < half; i++) {
        const float a = x1[i], b = x2[i], ci = c[i], si = sign * s[i];
        o1[i] = a * ci - b * si;
        o2[i] = b * ci + a * si;
      }
    }
  }
}
MULTIVERSION(rope_rows,
             (const float* x, float* out, const float* cosT, const float* sinT, const int32_t* pos,
              int64_t bt0, int64_t bt1, int64_t heads, int64_t headDim, float sign),
             (x, out, cosT, sinT, pos, bt0, bt1, heads, headDim, sign))

// ---------------------------------------------------------------------------------------------
// Activations. Kinds as in kernels.ts: 0 silu, 1 geluTanh, 2 gelu (exact), 3 relu.

constexpr float kGeluK = 0.7978845608028654f;   // sqrt(2/pi)
constexpr float kGeluC = 0.044715f;

DPO_INLINE void act_fwd_impl(int kind, const float* x, float* out, int64_t n) {
  switch (kind) {
    case 0:
      for (int64_t i = 0; i < n; i++) {
        const float v = x[i];
        out[i] = v * Sigmoid(v);
      }
      break;
    case 1:
      // 0.5·x·(1 + tanh(u)) = x·σ(2u): no cancellation for x ≪ 0.
      for (int64_t i = 0; i < n; i++) {
        const float v = x[i];
        const float u = kGeluK * (v + kGeluC * v * v * v);
        out[i] = v * Sigmoid(2.f * u);
      }
      break;
    case 2:
      // x·Φ(x), Φ(x) = Φ(−|x|) for x < 0, else 1 − Φ(−|x|) (no cancellation in the left tail).
      for (int64_t i = 0; i < n; i++) {
        const float v = x[i];
        const float q = GeluTail(v, nullptr);
        out[i] = v * (v < 0.f ? q : 1.f - q);
      }
      break;
    default:
      for (int64_t i = 0; i < n; i++) {
        const float v = x[i];
        out[i] = v < 0.f ? 0.f : v;
      }
      break;
  }
}
MULTIVERSION(act_fwd, (int kind, const float* x, float* out, int64_t n), (kind, x, out, n))

DPO_INLINE void act_bwd_impl(int kind, const float* x, const float* dy, float* dx, int64_t n) {
  switch (kind) {
    case 0:
      for (int64_t i = 0; i < n; i++) {
        const float v = x[i];
        const float s = Sigmoid(v);
        dx[i] = dy[i] * (s * (1.f + v * (1.f - s)));
      }
      break;
    case 1:
      // d/dx x·σ(2u) = σ(2u) + 2x·σ(2u)(1 − σ(2u))·u'(x), u' = k(1 + 3c·x²).
      for (int64_t i = 0; i < n; i++) {
        const float v = x[i];
        const float u = kGeluK * (v + kGeluC * v * v * v);
        const float s = Sigmoid(2.f * u);
        const float du = kGeluK * (1.f + 3.f * kGeluC * v * v);
        dx[i] = dy[i] * (s + 2.f * v * s * (1.f - s) * du);
      }
      break;
    case 2:
      // Φ(x) + x·φ(x)
      for (int64_t i = 0; i < n; i++) {
        const float v = x[i];
        float phi;
        const float q = GeluTail(v, &phi);
        dx[i] = dy[i] * ((v < 0.f ? q : 1.f - q) + v * phi);
      }
      break;
    default:
      for (int64_t i = 0; i < n; i++) {
        const float d = dy[i];  // loaded unconditionally so the select vectorizes
        dx[i] = x[i] > 0.f ? d : 0.f;
      }
      break;
  }
}
MULTIVERSION(act_bwd, (int kind, const float* x, const float* dy, float* dx, int64_t n), (kind, x, dy, dx, n))

DPO_INLINE void swiglu_fwd_impl(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    const float g = gate[i];
    out[i] = g * Sigmoid(g) * up[i];
  }
}
MULTIVERSION(swiglu_fwd, (const float* gate, const float* up, float* out, int64_t n), (gate, up, out, n))

DPO_INLINE void swiglu_bwd_impl(const float* gate, const float* up, const float* dy, float* dgate, float* dup,
                                int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    const float g = gate[i], u = up[i], d = dy[i];
    const float s = Sigmoid(g);
    dgate[i] = d * u * (s * (1.f + g * (1.f - s)));
    dup[i] = d * g * s;
  }
}
MULTIVERSION(swiglu_bwd, (const float* gate, const float* up, const float* dy, float* dgate, float* dup, int64_t n),
             (gate, up, dy, dgate, dup, n))

// ---------------------------------------------------------------------------------------------
// Softmax.

DPO_INLINE void softmax_fwd_impl(const float* x, float* out, int64_t r0, int64_t r1, int64_t cols) {
  for (int64_t r = r0; r < r1; r++) {
    const float* xr = x + r * cols;
    float* yr = out + r * cols;
    const float m = MaxF(xr, cols);
    if (m == -kInf) {  // all −inf (or empty): no mass, zeros rather than NaN
      for (int64_t j = 0; j < cols; j++) yr[j] = 0.f;
      continue;
    }
    // Exponentials first, then their sum from out: one pointer per loop, so out == x is safe.
    for (int64_t j = 0; j < cols; j++) yr[j] = FastExpBounded(xr[j] - m);
    const float inv = static_cast<float>(1.0 / SumF64(yr, cols));
    for (int64_t j = 0; j < cols; j++) yr[j] *= inv;
  }
}
MULTIVERSION(softmax_fwd, (const float* x, float* out, int64_t r0, int64_t r1, int64_t cols), (x, out, r0, r1, cols))

DPO_INLINE void softmax_bwd_impl(const float* y, const float* dy, float* dx, int64_t r0, int64_t r1, int64_t cols) {
  for (int64_t r = r0; r < r1; r++) {
    const float* yr = y + r * cols;
    const float* dyr = dy + r * cols;
    float* dxr = dx + r * cols;
    const float dot = static_cast<float>(DotF64(dyr, yr, cols));
    for (int64_t j = 0; j < cols; j++) dxr[j] = yr[j] * (dyr[j] - dot);
  }
}
MULTIVERSION(softmax_bwd, (const float* y, const float* dy, float* dx, int64_t r0, int64_t r1, int64_t cols),
             (y, dy, dx, r0, r1, cols))

// ---------------------------------------------------------------------------------------------
// Fused log-softmax + gather. One pass over each row in L1-sized blocks: the block's max, then
// (rescaling the running sum when the max grows) the sum of exp(x − max) while the block is hot.

constexpr int64_t kLseBlock = 2048;  // 8 KB

DPO_INLINE void lsg_fwd_impl(const float* logits, const int32_t* targets, float* logp, float* lse,
                             int64_t r0, int64_t r1, int64_t vocab) {
  for (int64_t r = r0; r < r1; r++) {
    const float* xr = logits + r * vocab;
    float m = -kInf;
    double acc[L] = {};
    double tail = 0;
    bool nan = false;  // a NaN logit makes lse NaN (a block skipped below must not hide it)
    for (int64_t b0 = 0; b0 < vocab; b0 += kLseBlock) {
      const int64_t len = vocab - b0 < kLseBlock ? vocab - b0 : kLseBlock;
      const float* xb = xr + b0;
      const float bm = MaxF(xb, len);
      nan = nan || bm != bm;
      if (bm > m) {
        if (m != -kInf) {
          const double sc = std::exp(static_cast<double>(m) - static_cast<double>(bm));
          for (int l = 0; l < L; l++) acc[l] *= sc;
          tail *= sc;
        }
        m = bm;
      }
      if (m == -kInf) continue;  // everything so far is −inf: contributes nothing
      int64_t j = 0;
      for (; j + L <= len; j += L)
        for (int l = 0; l < L; l++) acc[l] += static_cast<double>(FastExpBounded(xb[j + l] - m));
      for (; j < len; j++) tail += static_cast<double>(FastExpBounded(xb[j] - m));
    }
    const double l = nan ? std::numeric_limits<double>::quiet_NaN()
                   : m == -kInf ? -std::numeric_limits<double>::infinity()
                                : static_cast<double>(m) + std::log(LaneSum(acc) + tail);
    lse[r] = static_cast<float>(l);
    const int32_t t = targets[r];
    if (t < 0) logp[r] = 0.f;
    else logp[r] = m == -kInf ? -kInf : static_cast<float>(static_cast<double>(xr[t]) - l);
  }
}
MULTIVERSION(lsg_fwd,
             (const float* logits, const int32_t* targets, float* logp, float* lse, int64_t r0, int64_t r1,
              int64_t vocab),
             (logits, targets, logp, lse, r0, r1, vocab))

// dlogits = dlogp·(onehot(t) − exp(x − lse)), written in one pass (plus the target's entry).
DPO_INLINE void lsg_bwd_impl(const float* logits, const int32_t* targets, const float* lse, const float* dlogp,
                             float* dlogits, int64_t r0, int64_t r1, int64_t vocab) {
  for (int64_t r = r0; r < r1; r++) {
    const float* xr = logits + r * vocab;
    float* dr = dlogits + r * vocab;
    const int32_t t = targets[r];
    const float l = lse[r];
    if (t < 0 || l == -kInf) {
      for (int64_t j = 0; j < vocab; j++) dr[j] = 0.f;
      if (t >= 0) dr[t] = dlogp[r];  // all −inf row: softmax is taken as 0
      continue;
    }
    const float ng = -dlogp[r];
    for (int64_t j = 0; j < vocab; j++) dr[j] = ng * FastExpBounded(xr[j] - l);  // x − lse ≤ ~0
    dr[t] += dlogp[r];
  }
}
MULTIVERSION(lsg_bwd,
             (const float* logits, const int32_t* targets, const float* lse, const float* dlogp, float* dlogits,
              int64_t r0, int64_t r1, int64_t vocab),
             (logits, targets, lse, dlogp, dlogits, r0, r1, vocab))

// ---------------------------------------------------------------------------------------------
// Embedding backward over the column block [c0, c1): rows added in order of i (deterministic;
// repeated ids accumulate in that order). Blocks of columns are independent, so they thread.

DPO_INLINE void embed_bwd_impl(const int32_t* ids, const float* dy, float* dtable, int64_t n, int64_t dim,
                               int64_t c0, int64_t c1) {
  for (int64_t i = 0; i < n; i++) {
    const float* __restrict src = dy + i * dim;
    float* __restrict dst = dtable + static_cast<int64_t>(ids[i]) * dim;
    for (int64_t j = c0; j < c1; j++) dst[j] += src[j];
  }
}
MULTIVERSION(embed_bwd, (const int32_t* ids, const float* dy, float* dtable, int64_t n, int64_t dim, int64_t c0, int64_t c1),
             (ids, dy, dtable, n, dim, c0, c1))

// ---------------------------------------------------------------------------------------------
// AdamW and vector helpers.

struct AdamConsts {
  float b1, c1, b2, c2, ibc1, ibc2, lr, wd, eps;
};

DPO_INLINE void adamw_range_impl(float* param, const float* grad, float* m, float* v, int64_t i0, int64_t i1,
                           AdamConsts k) {
  for (int64_t i = i0; i < i1; i++) {
    const float g = grad[i];
    const float mi = k.b1 * m[i] + k.c1 * g;
    const float vi = k.b2 * v[i] + k.c2 * g * g;
    m[i] = mi;
    v[i] = vi;
    const float p = param[i];
    // __builtin_sqrtf, not std::sqrt: the latter is a call defined before the optimize pragma
    // above, which GCC will not inline here, and a call blocks vectorization.
    param[i] = p - k.lr * ((mi * k.ibc1) / (__builtin_sqrtf(vi * k.ibc2) + k.eps) + k.wd * p);
  }
}
MULTIVERSION(adamw_range, (float* param, const float* grad, float* m, float* v, int64_t i0, int64_t i1, AdamConsts k),
             (param, grad, m, v, i0, i1, k))

DPO_INLINE void sumsq_range_impl(const float* x, int64_t n, double* result) { *result = SumSqF64(x, n); }
MULTIVERSION(sumsq_range, (const float* x, int64_t n, double* result), (x, n, result))

DPO_INLINE void scale_range_impl(float* x, int64_t n, float s) {
  for (int64_t i = 0; i < n; i++) x[i] *= s;
}
MULTIVERSION(scale_range, (float* x, int64_t n, float s), (x, n, s))

DPO_INLINE void add_range_impl(const float* a, const float* b, float* out, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}
MULTIVERSION(add_range, (const float* a, const float* b, float* out, int64_t n), (a, b, out, n))

DPO_INLINE void mul_range_impl(const float* a, const float* b, float* out, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = a[i] * b[i];
}
MULTIVERSION(mul_range, (const float* a, const float* b, float* out, int64_t n), (a, b, out, n))

DPO_INLINE void axpy_range_impl(float alpha, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] += alpha * x[i];
}
MULTIVERSION(axpy_range, (float alpha, const float* x, float* y, int64_t n), (alpha, x, y, n))

// Bias add and its gradient (row sums): rows [r0, r1) of a rows × n matrix.
DPO_INLINE void add_rows_impl(const float* x, const float* b, float* out, int64_t r0, int64_t r1, int64_t n) {
  for (int64_t r = r0; r < r1; r++) {
    const float* xr = x + r * n;
    float* yr = out + r * n;
    for (int64_t j = 0; j < n; j++) yr[j] = xr[j] + b[j];
  }
}
MULTIVERSION(add_rows, (const float* x, const float* b, float* out, int64_t r0, int64_t r1, int64_t n),
             (x, b, out, r0, r1, n))

DPO_INLINE void sum_rows_impl(const float* x, double* partial, int64_t r0, int64_t r1, int64_t n) {
  for (int64_t r = r0; r < r1; r++) {
    const float* xr = x + r * n;
    for (int64_t j = 0; j < n; j++) partial[j] += static_cast<double>(xr[j]);
  }
}
MULTIVERSION(sum_rows, (const float* x, double* partial, int64_t r0, int64_t r1, int64_t n), (x, partial, r0, r1, n))

}  // namespace
}  // namespace dpo

// ---------------------------------------------------------------------------------------------
// C ABI (abi.h): argument order exactly as in the Kernels interface. Every entry point checks
// its arguments with a Check before touching memory.

using namespace dpo;

namespace {

bool CheckTargets(Check& a, const int32_t* targets, int64_t rows, int64_t vocab) {
  if (!a.ok()) return false;
  for (int64_t r = 0; r < rows; r++) {
    if (targets[r] >= vocab) {
      a.RangeFail("targets[" + std::to_string(r) + "] = " + std::to_string(targets[r]) +
                  " is out of range for vocab " + std::to_string(vocab));
      return false;
    }
  }
  return true;
}

bool CheckIds(Check& a, const int32_t* ids, int64_t n, int64_t tableRows) {
  if (!a.ok()) return false;
  for (int64_t i = 0; i < n; i++) {
    if (ids[i] < 0 || ids[i] >= tableRows) {
      a.RangeFail("ids[" + std::to_string(i) + "] = " + std::to_string(ids[i]) + " is outside the table's " +
                  std::to_string(tableRows) + " rows");
      return false;
    }
  }
  return true;
}

int ActKind(Check& a, double kindArg) {
  const int64_t kind = a.Count(kindArg, "kind");
  if (a.ok() && kind > 3) a.RangeFail("unknown activation kind " + std::to_string(kind));
  return static_cast<int>(kind);
}

}  // namespace

extern "C" {

int dpo_rmsnorm_forward(const float* x_, size_t x_len, const float* w_, size_t w_len, float* out_, size_t out_len,
                        float* rstd_, size_t rstd_len, double rowsArg, double dimArg, double eps) {
  Check a("rmsnormForward");
  const int64_t rows = a.Count(rowsArg, "rows"), dim = a.Count(dimArg, "dim");
  const int64_t n = SatMul(rows, dim);
  const std::string rd = Dims("rows*dim", {rows, dim});
  const float* x = a.F32(x_, x_len, "x", n, rd);
  const float* w = a.F32(w_, w_len, "weight", dim, Dims("dim", {dim}));
  float* out = a.F32(out_, out_len, "out", n, rd);
  float* rstd = a.F32(rstd_, rstd_len, "rstd", rows, Dims("rows", {rows}));
  if (!a.ok()) return a.status();
  RunRows(rows, dim, [&](int64_t r0, int64_t r1) { rmsnorm_fwd(x, w, out, rstd, r0, r1, dim, eps); });
  return DPO_OK;
}

int dpo_rmsnorm_backward(const float* dy_, size_t dy_len, const float* x_, size_t x_len, const float* w_,
                         size_t w_len, const float* rstd_, size_t rstd_len, float* dx_, size_t dx_len, float* dw_,
                         size_t dw_len, double rowsArg, double dimArg) {
  Check a("rmsnormBackward");
  const int64_t rows = a.Count(rowsArg, "rows"), dim = a.Count(dimArg, "dim");
  const int64_t n = SatMul(rows, dim);
  const std::string rd = Dims("rows*dim", {rows, dim});
  const float* dy = a.F32(dy_, dy_len, "dy", n, rd);
  const float* x = a.F32(x_, x_len, "x", n, rd);
  const float* w = a.F32(w_, w_len, "weight", dim, Dims("dim", {dim}));
  const float* rstd = a.F32(rstd_, rstd_len, "rstd", rows, Dims("rows", {rows}));
  float* dx = a.F32(dx_, dx_len, "dx", n, rd);
  float* dw = a.F32(dw_, dw_len, "dweight", dim, Dims("dim", {dim}));
  if (!a.ok()) return a.status();
  const int64_t chunks = CeilDiv(rows, kRowsPerPartial);
  std::vector<double> partials(static_cast<size_t>(chunks * dim), 0.0);
  Run(chunks, n, [&](int64_t c) {
    const int64_t r0 = c * kRowsPerPartial;
    rmsnorm_bwd(dy, x, w, rstd, dx, partials.data() + c * dim, r0, std::min(rows, r0 + kRowsPerPartial), dim);
  });
  ReducePartials(partials, chunks, dim, dw);
  return DPO_OK;
}

int dpo_layernorm_forward(const float* x_, size_t x_len, const float* w_, size_t w_len, const float* b_,
                          size_t b_len, float* out_, size_t out_len, float* mean_, size_t mean_len, float* rstd_,
                          size_t rstd_len, double rowsArg, double dimArg, double eps) {
  Check a("layernormForward");
  const int64_t rows = a.Count(rowsArg, "rows"), dim = a.Count(dimArg, "dim");
  const int64_t n = SatMul(rows, dim);
  const std::string rd = Dims("rows*dim", {rows, dim});
  const float* x = a.F32(x_, x_len, "x", n, rd);
  const float* w = a.F32(w_, w_len, "weight", dim, Dims("dim", {dim}));
  const float* b = a.F32(b_, b_len, "bias", dim, Dims("dim", {dim}));
  float* out = a.F32(out_, out_len, "out", n, rd);
  float* mean = a.F32(mean_, mean_len, "mean", rows, Dims("rows", {rows}));
  float* rstd = a.F32(rstd_, rstd_len, "rstd", rows, Dims("rows", {rows}));
  if (!a.ok()) return a.status();
  RunRows(rows, dim, [&](int64_t r0, int64_t r1) { layernorm_fwd(x, w, b, out, mean, rstd, r0, r1, dim, eps); });
  return DPO_OK;
}

int dpo_layernorm_backward(const float* dy_, size_t dy_len, const float* x_, size_t x_len, const float* w_,
                           size_t w_len, const float* mean_, size_t mean_len, const float* rstd_, size_t rstd_len,
                           float* dx_, size_t dx_len, float* dw_, size_t dw_len, float* db_, size_t db_len,
                           double rowsArg, double dimArg) {
  Check a("layernormBackward");
  const int64_t rows = a.Count(rowsArg, "rows"), dim = a.Count(dimArg, "dim");
  const int64_t n = SatMul(rows, dim);
  const std::string rd = Dims("rows*dim", {rows, dim});
  const float* dy = a.F32(dy_, dy_len, "dy", n, rd);
  const float* x = a.F32(x_, x_len, "x", n, rd);
  const float* w = a.F32(w_, w_len, "weight", dim, Dims("dim", {dim}));
  const float* mean = a.F32(mean_, mean_len, "mean", rows, Dims("rows", {rows}));
  const float* rstd = a.F32(rstd_, rstd_len, "rstd", rows, Dims("rows", {rows}));
  float* dx = a.F32(dx_, dx_len, "dx", n, rd);
  float* dw = a.F32(dw_, dw_len, "dweight", dim, Dims("dim", {dim}));
  float* db = a.F32(db_, db_len, "dbias", dim, Dims("dim", {dim}));
  if (!a.ok()) return a.status();
  const int64_t chunks = CeilDiv(rows, kRowsPerPartial);
  std::vector<double> pw(static_cast<size_t>(chunks * dim), 0.0), pb(static_cast<size_t>(chunks * dim), 0.0);
  Run(chunks, n, [&](int64_t c) {
    const int64_t r0 = c * kRowsPerPartial;
    layernorm_bwd(dy, x, w, mean, rstd, dx, pw.data() + c * dim, pb.data() + c * dim, r0,
                  std::min(rows, r0 + kRowsPerPartial), dim);
  });
  ReducePartials(pw, chunks, dim, dw);
  ReducePartials(pb, chunks, dim, db);
  return DPO_OK;
}

int dpo_rope(const float* x_, size_t x_len, float* out_, size_t out_len, const float* cos_, size_t cos_len,
             const float* sin_, size_t sin_len, const int32_t* pos_, size_t pos_len, double batchArg,
             double seqArg, double headsArg, double headDimArg, int inverse) {
  Check a("rope");
  const int64_t batch = a.Count(batchArg, "batch"), seq = a.Count(seqArg, "seq"), heads = a.Count(headsArg, "heads"),
                headDim = a.Count(headDimArg, "headDim");
  if (a.ok() && headDim % 2 != 0) a.RangeFail("headDim must be even, got " + std::to_string(headDim));
  const int64_t half = headDim / 2;
  const int64_t bt = SatMul(batch, seq);
  const int64_t n = SatMul(SatMul(bt, heads), headDim);
  const std::string what = Dims("batch*seq*heads*headDim", {batch, seq, heads, headDim});
  const float* x = a.F32(x_, x_len, "x", n, what);
  float* out = a.F32(out_, out_len, "out", n, what);
  const float* cosT = a.F32(cos_, cos_len, "cos", 0, "");
  const float* sinT = a.F32(sin_, sin_len, "sin", 0, "");
  const int32_t* pos = a.I32(pos_, pos_len, "positions", bt, Dims("batch*seq", {batch, seq}));
  if (a.ok() && cos_len != sin_len) {
    a.RangeFail("cos has " + std::to_string(cos_len) + " elements but sin has " + std::to_string(sin_len));
  }
  if (!a.ok()) return a.status();
  const int64_t maxPos = half > 0 ? static_cast<int64_t>(cos_len) / half : 0;
  if (half > 0) {
    for (int64_t i = 0; i < bt; i++) {
      if (pos[i] < 0 || pos[i] >= maxPos) {
        a.RangeFail("positions[" + std::to_string(i) + "] = " + std::to_string(pos[i]) +
                    " is outside the cos/sin table [0, " + std::to_string(maxPos) + ")");
        return a.status();
      }
    }
  }
  const float sign = inverse ? -1.f : 1.f;
  RunRows(bt, heads * headDim,
          [&](int64_t r0, int64_t r1) { rope_rows(x, out, cosT, sinT, pos, r0, r1, heads, headDim, sign); });
  return DPO_OK;
}

int dpo_activation_forward(double kindArg, const float* x_, size_t x_len, float* out_, size_t out_len,
                           double nArg) {
  Check a("activationForward");
  const int kind = ActKind(a, kindArg);
  const int64_t n = a.Count(nArg, "n");
  const float* x = a.F32(x_, x_len, "x", n, Dims("n", {n}));
  float* out = a.F32(out_, out_len, "out", n, Dims("n", {n}));
  if (!a.ok()) return a.status();
  RunElementwise(n, [&](int64_t i0, int64_t i1) { act_fwd(kind, x + i0, out + i0, i1 - i0); });
  return DPO_OK;
}

int dpo_activation_backward(double kindArg, const float* x_, size_t x_len, const float* dy_, size_t dy_len,
                            float* dx_, size_t dx_len, double nArg) {
  Check a("activationBackward");
  const int kind = ActKind(a, kindArg);
  const int64_t n = a.Count(nArg, "n");
  const float* x = a.F32(x_, x_len, "x", n, Dims("n", {n}));
  const float* dy = a.F32(dy_, dy_len, "dy", n, Dims("n", {n}));
  float* dx = a.F32(dx_, dx_len, "dx", n, Dims("n", {n}));
  if (!a.ok()) return a.status();
  RunElementwise(n, [&](int64_t i0, int64_t i1) { act_bwd(kind, x + i0, dy + i0, dx + i0, i1 - i0); });
  return DPO_OK;
}

int dpo_swiglu_forward(const float* gate_, size_t gate_len, const float* up_, size_t up_len, float* out_,
                       size_t out_len, double nArg) {
  Check a("swigluForward");
  const int64_t n = a.Count(nArg, "n");
  const float* gate = a.F32(gate_, gate_len, "gate", n, Dims("n", {n}));
  const float* up = a.F32(up_, up_len, "up", n, Dims("n", {n}));
  float* out = a.F32(out_, out_len, "out", n, Dims("n", {n}));
  if (!a.ok()) return a.status();
  RunElementwise(n, [&](int64_t i0, int64_t i1) { swiglu_fwd(gate + i0, up + i0, out + i0, i1 - i0); });
  return DPO_OK;
}

int dpo_swiglu_backward(const float* gate_, size_t gate_len, const float* up_, size_t up_len, const float* dy_,
                        size_t dy_len, float* dgate_, size_t dgate_len, float* dup_, size_t dup_len, double nArg) {
  Check a("swigluBackward");
  const int64_t n = a.Count(nArg, "n");
  const float* gate = a.F32(gate_, gate_len, "gate", n, Dims("n", {n}));
  const float* up = a.F32(up_, up_len, "up", n, Dims("n", {n}));
  const float* dy = a.F32(dy_, dy_len, "dy", n, Dims("n", {n}));
  float* dgate = a.F32(dgate_, dgate_len, "dgate", n, Dims("n", {n}));
  float* dup = a.F32(dup_, dup_len, "dup", n, Dims("n", {n}));
  if (!a.ok()) return a.status();
  RunElementwise(n, [&](int64_t i0, int64_t i1) {
    swiglu_bwd(gate + i0, up + i0, dy + i0, dgate + i0, dup + i0, i1 - i0);
  });
  return DPO_OK;
}

int dpo_softmax_forward(const float* x_, size_t x_len, float* out_, size_t out_len, double rowsArg,
                        double colsArg) {
  Check a("softmaxForward");
  const int64_t rows = a.Count(rowsArg, "rows"), cols = a.Count(colsArg, "cols");
  const int64_t n = SatMul(rows, cols);
  const std::string rc = Dims("rows*cols", {rows, cols});
  const float* x = a.F32(x_, x_len, "x", n, rc);
  float* out = a.F32(out_, out_len, "out", n, rc);
  if (!a.ok()) return a.status();
  RunRows(rows, cols, [&](int64_t r0, int64_t r1) { softmax_fwd(x, out, r0, r1, cols); });
  return DPO_OK;
}

int dpo_softmax_backward(const float* y_, size_t y_len, const float* dy_, size_t dy_len, float* dx_, size_t dx_len,
                         double rowsArg, double colsArg) {
  Check a("softmaxBackward");
  const int64_t rows = a.Count(rowsArg, "rows"), cols = a.Count(colsArg, "cols");
  const int64_t n = SatMul(rows, cols);
  const std::string rc = Dims("rows*cols", {rows, cols});
  const float* y = a.F32(y_, y_len, "y", n, rc);
  const float* dy = a.F32(dy_, dy_len, "dy", n, rc);
  float* dx = a.F32(dx_, dx_len, "dx", n, rc);
  if (!a.ok()) return a.status();
  RunRows(rows, cols, [&](int64_t r0, int64_t r1) { softmax_bwd(y, dy, dx, r0, r1, cols); });
  return DPO_OK;
}

int dpo_log_softmax_gather(const float* logits_, size_t logits_len, const int32_t* targets_, size_t targets_len,
                           float* logp_, size_t logp_len, float* lse_, size_t lse_len, double rowsArg,
                           double vocabArg) {
  Check a("logSoftmaxGather");
  const int64_t rows = a.Count(rowsArg, "rows"), vocab = a.Count(vocabArg, "vocab");
  const int64_t n = SatMul(rows, vocab);
  const std::string r1 = Dims("rows", {rows});
  const float* logits = a.F32(logits_, logits_len, "logits", n, Dims("rows*vocab", {rows, vocab}));
  const int32_t* targets = a.I32(targets_, targets_len, "targets", rows, r1);
  float* logp = a.F32(logp_, logp_len, "logp", rows, r1);
  float* lse = a.F32(lse_, lse_len, "lse", rows, r1);
  if (!CheckTargets(a, targets, rows, vocab)) return a.status();
  RunRows(rows, vocab, [&](int64_t r0, int64_t rEnd) { lsg_fwd(logits, targets, logp, lse, r0, rEnd, vocab); });
  return DPO_OK;
}

int dpo_log_softmax_gather_backward(const float* logits_, size_t logits_len, const int32_t* targets_,
                                    size_t targets_len, const float* lse_, size_t lse_len, const float* dlogp_,
                                    size_t dlogp_len, float* dlogits_, size_t dlogits_len, double rowsArg,
                                    double vocabArg) {
  Check a("logSoftmaxGatherBackward");
  const int64_t rows = a.Count(rowsArg, "rows"), vocab = a.Count(vocabArg, "vocab");
  const int64_t n = SatMul(rows, vocab);
  const std::string r1 = Dims("rows", {rows});
  const std::string rv = Dims("rows*vocab", {rows, vocab});
  const float* logits = a.F32(logits_, logits_len, "logits", n, rv);
  const int32_t* targets = a.I32(targets_, targets_len, "targets", rows, r1);
  const float* lse = a.F32(lse_, lse_len, "lse", rows, r1);
  const float* dlogp = a.F32(dlogp_, dlogp_len, "dlogp", rows, r1);
  float* dlogits = a.F32(dlogits_, dlogits_len, "dlogits", n, rv);
  if (!CheckTargets(a, targets, rows, vocab)) return a.status();
  RunRows(rows, vocab,
          [&](int64_t r0, int64_t rEnd) { lsg_bwd(logits, targets, lse, dlogp, dlogits, r0, rEnd, vocab); });
  return DPO_OK;
}

int dpo_embedding_forward(const int32_t* ids_, size_t ids_len, const float* table_, size_t table_len, float* out_,
                          size_t out_len, double nArg, double dimArg) {
  Check a("embeddingForward");
  const int64_t n = a.Count(nArg, "n"), dim = a.Count(dimArg, "dim");
  const int32_t* ids = a.I32(ids_, ids_len, "ids", n, Dims("n", {n}));
  const float* table = a.F32(table_, table_len, "table", 0, "");
  float* out = a.F32(out_, out_len, "out", SatMul(n, dim), Dims("n*dim", {n, dim}));
  const int64_t tableRows = dim > 0 && a.ok() ? static_cast<int64_t>(table_len) / dim : 0;
  if (!CheckIds(a, ids, n, tableRows)) return a.status();
  RunRows(n, dim, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) {
      std::memcpy(out + i * dim, table + static_cast<int64_t>(ids[i]) * dim, static_cast<size_t>(dim) * sizeof(float));
    }
  });
  return DPO_OK;
}

int dpo_embedding_backward(const int32_t* ids_, size_t ids_len, const float* dy_, size_t dy_len, float* dtable_,
                           size_t dtable_len, double nArg, double dimArg) {
  Check a("embeddingBackward");
  const int64_t n = a.Count(nArg, "n"), dim = a.Count(dimArg, "dim");
  const int32_t* ids = a.I32(ids_, ids_len, "ids", n, Dims("n", {n}));
  const float* dy = a.F32(dy_, dy_len, "dy", SatMul(n, dim), Dims("n*dim", {n, dim}));
  float* dtable = a.F32(dtable_, dtable_len, "dtable", 0, "");
  const int64_t tableRows = dim > 0 && a.ok() ? static_cast<int64_t>(dtable_len) / dim : 0;
  if (!CheckIds(a, ids, n, tableRows)) return a.status();
  // Column blocks of 64 floats (whole cache lines) are independent tasks.
  constexpr int64_t kCols = 64;
  const int64_t blocks = CeilDiv(dim, kCols);
  Run(blocks, SatMul(n, dim), [&](int64_t b) {
    const int64_t c0 = b * kCols;
    embed_bwd(ids, dy, dtable, n, dim, c0, std::min(dim, c0 + kCols));
  });
  return DPO_OK;
}

int dpo_adamw(float* param_, size_t param_len, const float* grad_, size_t grad_len, float* m_, size_t m_len,
              float* v_, size_t v_len, double nArg, double lr, double b1, double b2, double eps, double wd,
              double bc1, double bc2) {
  Check a("adamw");
  const int64_t n = a.Count(nArg, "n");
  float* param = a.F32(param_, param_len, "param", n, Dims("n", {n}));
  const float* grad = a.F32(grad_, grad_len, "grad", n, Dims("n", {n}));
  float* m = a.F32(m_, m_len, "m", n, Dims("n", {n}));
  float* v = a.F32(v_, v_len, "v", n, Dims("n", {n}));
  if (!a.ok()) return a.status();
  // Constants rounded once from float64 (1 − β and 1/bc computed before rounding).
  AdamConsts k;
  k.b1 = static_cast<float>(b1);
  k.c1 = static_cast<float>(1.0 - b1);
  k.b2 = static_cast<float>(b2);
  k.c2 = static_cast<float>(1.0 - b2);
  k.ibc1 = static_cast<float>(1.0 / bc1);
  k.ibc2 = static_cast<float>(1.0 / bc2);
  k.lr = static_cast<float>(lr);
  k.wd = static_cast<float>(wd);
  k.eps = static_cast<float>(eps);
  RunElementwise(n, [&](int64_t i0, int64_t i1) { adamw_range(param, grad, m, v, i0, i1, k); });
  return DPO_OK;
}

int dpo_sum_squares(const float* x_, size_t x_len, double nArg, double* result) {
  Check a("sumSquares");
  const int64_t n = a.Count(nArg, "n");
  const float* x = a.F32(x_, x_len, "x", n, Dims("n", {n}));
  if (!a.ok()) return a.status();
  const int64_t chunks = CeilDiv(n, kSumChunk);
  std::vector<double> partials(static_cast<size_t>(chunks), 0.0);
  Run(chunks, n, [&](int64_t c) {
    const int64_t i0 = c * kSumChunk;
    sumsq_range(x + i0, std::min(n, i0 + kSumChunk) - i0, &partials[c]);
  });
  double s = 0;
  for (int64_t c = 0; c < chunks; c++) s += partials[c];
  *result = s;
  return DPO_OK;
}

int dpo_scale(float* x_, size_t x_len, double nArg, double sArg) {
  Check a("scale");
  const int64_t n = a.Count(nArg, "n");
  const float s = static_cast<float>(sArg);
  float* x = a.F32(x_, x_len, "x", n, Dims("n", {n}));
  if (!a.ok()) return a.status();
  RunElementwise(n, [&](int64_t i0, int64_t i1) { scale_range(x + i0, i1 - i0, s); });
  return DPO_OK;
}

int dpo_add(const float* a_, size_t a_len, const float* b_, size_t b_len, float* out_, size_t out_len, double nArg) {
  Check a("add");
  const int64_t n = a.Count(nArg, "n");
  const float* pa = a.F32(a_, a_len, "a", n, Dims("n", {n}));
  const float* pb = a.F32(b_, b_len, "b", n, Dims("n", {n}));
  float* out = a.F32(out_, out_len, "out", n, Dims("n", {n}));
  if (!a.ok()) return a.status();
  RunElementwise(n, [&](int64_t i0, int64_t i1) { add_range(pa + i0, pb + i0, out + i0, i1 - i0); });
  return DPO_OK;
}

int dpo_mul(const float* a_, size_t a_len, const float* b_, size_t b_len, float* out_, size_t out_len, double nArg) {
  Check a("mul");
  const int64_t n = a.Count(nArg, "n");
  const float* pa = a.F32(a_, a_len, "a", n, Dims("n", {n}));
  const float* pb = a.F32(b_, b_len, "b", n, Dims("n", {n}));
  float* out = a.F32(out_, out_len, "out", n, Dims("n", {n}));
  if (!a.ok()) return a.status();
  RunElementwise(n, [&](int64_t i0, int64_t i1) { mul_range(pa + i0, pb + i0, out + i0, i1 - i0); });
  return DPO_OK;
}

int dpo_axpy(double alphaArg, const float* x_, size_t x_len, float* y_, size_t y_len, double nArg) {
  Check a("axpy");
  const float alpha = static_cast<float>(alphaArg);
  const int64_t n = a.Count(nArg, "n");
  const float* x = a.F32(x_, x_len, "x", n, Dims("n", {n}));
  float* y = a.F32(y_, y_len, "y", n, Dims("n", {n}));
  if (!a.ok()) return a.status();
  RunElementwise(n, [&](int64_t i0, int64_t i1) { axpy_range(alpha, x + i0, y + i0, i1 - i0); });
  return DPO_OK;
}

int dpo_add_row_vector(const float* x_, size_t x_len, const float* b_, size_t b_len, float* out_, size_t out_len,
                       double rowsArg, double nArg) {
  Check a("addRowVector");
  const int64_t rows = a.Count(rowsArg, "rows"), n = a.Count(nArg, "n");
  const int64_t total = SatMul(rows, n);
  const std::string rn = Dims("rows*n", {rows, n});
  const float* x = a.F32(x_, x_len, "x", total, rn);
  const float* b = a.F32(b_, b_len, "b", n, Dims("n", {n}));
  float* out = a.F32(out_, out_len, "out", total, rn);
  if (!a.ok()) return a.status();
  RunRows(rows, n, [&](int64_t r0, int64_t r1) { add_rows(x, b, out, r0, r1, n); });
  return DPO_OK;
}

// One float64 partial per fixed chunk of rows, added in chunk order.
int dpo_sum_rows(const float* x_, size_t x_len, float* out_, size_t out_len, double rowsArg, double nArg) {
  Check a("sumRows");
  const int64_t rows = a.Count(rowsArg, "rows"), n = a.Count(nArg, "n");
  const int64_t total = SatMul(rows, n);
  const float* x = a.F32(x_, x_len, "x", total, Dims("rows*n", {rows, n}));
  float* out = a.F32(out_, out_len, "out", n, Dims("n", {n}));
  if (!a.ok()) return a.status();
  const int64_t chunks = CeilDiv(rows, kRowsPerPartial);
  std::vector<double> partials(static_cast<size_t>(chunks * n), 0.0);
  Run(chunks, total, [&](int64_t c) {
    const int64_t r0 = c * kRowsPerPartial;
    sum_rows(x, partials.data() + c * n, r0, std::min(rows, r0 + kRowsPerPartial), n);
  });
  ReducePartials(partials, chunks, n, out);
  return DPO_OK;
}

int dpo_copy2d(const float* src_, size_t src_len, double srcStrideArg, float* dst_, size_t dst_len,
               double dstStrideArg, double rowsArg, double colsArg, int accumulate) {
  Check a("copy2d");
  const int64_t srcStride = a.Count(srcStrideArg, "srcStride"), dstStride = a.Count(dstStrideArg, "dstStride");
  const int64_t rows = a.Count(rowsArg, "rows"), cols = a.Count(colsArg, "cols");
  const bool empty = rows == 0 || cols == 0;
  const int64_t srcNeed = empty ? 0 : SatAdd(SatMul(rows - 1, srcStride), cols);
  const int64_t dstNeed = empty ? 0 : SatAdd(SatMul(rows - 1, dstStride), cols);
  const auto need = [&](int64_t stride) {
    return "(rows-1)*stride+cols = (" + std::to_string(rows) + "-1)*" + std::to_string(stride) + "+" +
           std::to_string(cols);
  };
  const float* src = a.F32(src_, src_len, "src", srcNeed, need(srcStride));
  float* dst = a.F32(dst_, dst_len, "dst", dstNeed, need(dstStride));
  if (!a.ok()) return a.status();
  if (empty) return DPO_OK;
  RunRows(rows, cols, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* s = src + r * srcStride;
      float* d = dst + r * dstStride;
      if (accumulate) add_range(d, s, d, cols);
      else std::memmove(d, s, cols * sizeof(float));
    }
  });
  return DPO_OK;
}

}  // extern "C"
