// The GEMM drivers' shared pieces (native/gemm.cc: float32 panels; native/gemm_bf16.cc: bf16 pair
// panels): running a micro-kernel over one block of C, with partial tiles computed into a scratch
// tile and merged (alpha·tile + beta·C), and running a driver's tasks inline or on the pool.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>

#include "threadpool.h"

namespace dpo {

// x rounded up to a multiple of m (panel widths, packed depths).
constexpr int64_t RoundUp(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Rows of op(A) per task of the shared-slab scheduler: `rows` (the driver's row block), except
// under WebAssembly: two MR panels. Its pools are small (2-8 threads) and the tasks of a K block end
// together at a barrier, so the tail is what counts: 48-row tasks made 11 of them for M = 512, one
// thread running 6 while the other waited (512-row GEMMs scaled 1.79-1.86× on 2 threads, a
// 1024-row one, 22 tasks, 1.98×). The task size changes no sum, and no cache use: each task
// streams the packed slab from L2 once per MR panel whatever the number of panels.
constexpr int64_t SlabRowBlock(int mr, int64_t rows) {
#if defined(__wasm__)
  return rows > 2 * mr ? 2 * mr : rows;
#else
  static_cast<void>(mr);
  return rows;
#endif
}

// C[0:h, 0:w] (row stride ldc) = alpha·T + beta·C for a tile T computed with alpha 1, beta 0 (row
// stride ldt): the micro-kernels' own epilogue, two roundings (alpha·t, then + beta·c); beta == 0
// overwrites C (NaN included).
inline void MergeTile(float* C, int64_t ldc, const float* T, int64_t ldt, int64_t h, int64_t w, float alpha, float beta) {
  for (int64_t r = 0; r < h; r++) {
    float* cr = C + r * ldc;
    const float* tr = T + r * ldt;
    if (beta == 0.0f) {
      for (int64_t q = 0; q < w; q++) cr[q] = alpha * tr[q];
    } else {
      for (int64_t q = 0; q < w; q++) cr[q] = alpha * tr[q] + beta * cr[q];
    }
  }
}

// Runs kd.micro over C[m0:m0+rows, n0:n0+cols] (row stride N) of one K block: Ap holds the rows as
// MR micro-panels and Bp the columns as NR micro-panels, each `depth` packed elements deep per
// row/column (K for float32, padded K pairs for bf16). beta is the K block's: the first block
// applies the caller's beta, later ones accumulate (beta = 1). Full tiles go straight to C
// (Prefetch: C's lines are started on their way first); partial tiles are computed in a
// kMaxTile-float scratch tile with alpha 1, beta 0, then merged — the same two roundings
// (alpha·t, then + beta·c) as the micro-kernels' own epilogue.
template <int kMaxTile, bool Prefetch, typename KernelDesc, typename Panel>
inline void KernelBlockT(const KernelDesc& kd, int64_t N, float alpha, float* C, const Panel* Ap, const Panel* Bp,
                         int64_t m0, int64_t rows, int64_t n0, int64_t cols, int64_t depth, float beta) {
  const int mr = kd.mr, nr = kd.nr;
  alignas(64) float edge[kMaxTile];
  for (int64_t i = 0; i < rows; i += mr) {
    const int64_t h = std::min<int64_t>(mr, rows - i);
    const Panel* ap = Ap + (i / mr) * depth * mr;
    for (int64_t j = 0; j < cols; j += nr) {
      const int64_t w = std::min<int64_t>(nr, cols - j);
      float* c = C + (m0 + i) * N + n0 + j;
      const Panel* bp = Bp + (j / nr) * depth * nr;
      if (h == mr && w == nr) {
        if constexpr (Prefetch) {
          // Start the C tile's lines on their way; the kernel reads/writes them only at the end.
          for (int r = 0; r < mr; r++) {
            __builtin_prefetch(c + r * N);
            __builtin_prefetch(c + r * N + nr - 1);
          }
        }
        kd.micro(depth, ap, bp, c, N, alpha, beta);
        continue;
      }
      kd.micro(depth, ap, bp, edge, nr, 1.0f, 0.0f);
      MergeTile(c, N, edge, nr, h, w, alpha, beta);
    }
  }
}

// A driver's tasks: inline when the product is too small to pay for waking the pool.
inline void RunTasksOn(int64_t ntasks, bool parallel, const std::function<void(int64_t)>& fn) {
  if (!parallel) {
    for (int64_t t = 0; t < ntasks; t++) fn(t);
  } else {
    ParallelFor(ntasks, fn);
  }
}

// No products (K = 0 or alpha = 0): C = beta·C for every batch item; beta == 0 overwrites (NaN
// included), beta == 1 leaves C as it is.
inline void ScaleOnly(float* C, int64_t sC, int64_t batch, int64_t n, float beta, bool parallel) {
  RunTasksOn(batch, parallel, [&](int64_t bi) {
    float* c = C + bi * sC;
    if (beta == 0.0f) {
      std::fill(c, c + n, 0.0f);
    } else if (beta != 1.0f) {
      for (int64_t t = 0; t < n; t++) c[t] *= beta;
    }
  });
}

}  // namespace dpo
