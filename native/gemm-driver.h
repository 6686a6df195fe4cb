// The GEMM drivers' one home (native/gemm.cc: float32 panels; native/gemm_bf16.cc: bf16 pair
// panels): the blocked driver — K blocks, the shared-slab scheduler for large items, the
// (batch item, row block) scheduler for small ones, column blocks for few row blocks — written once
// as templates over a driver's traits (panel type, packed depth, slab width, packers; the
// micro-kernel and MR/NR come from its kernel descriptor), plus running a micro-kernel over one
// block of C with partial tiles merged (alpha·tile + beta·C) and running tasks inline or on the pool.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>

#include "pack-buffers.h"
#include "threadpool.h"

namespace dpo {

// x rounded up to a multiple of m (panel widths, packed depths).
constexpr int64_t RoundUp(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Blocking shared by both drivers (shape only, never the thread count).
constexpr int64_t kRowBlock = 48;                         // rows of op(A) per task (4 float32 12-row panels)
constexpr double kSlabMinFlops = 2.0 * 192 * 192 * 192;   // items at least this big use the shared slab

// Rows per task: kRowBlock rounded down to whole MR panels (at least one).
constexpr int64_t RowBlockFor(int mr) { return std::max<int64_t>(mr, kRowBlock / mr * mr); }

// Rows per task of the shared-slab scheduler: RowBlockFor(mr), except under WebAssembly: two MR
// panels. Its pools are small (2-8 threads) and the tasks of a K block end together at a barrier,
// so the tail is what counts: 48-row tasks made 11 of them for M = 512, one thread running 6 while
// the other waited (512-row GEMMs scaled 1.79-1.86× on 2 threads, a 1024-row one, 22 tasks, 1.98×).
// The task size changes no sum, and no cache use: each task streams the packed slab from L2 once
// per MR panel whatever the number of panels.
constexpr int64_t SlabRowBlockFor(int mr) {
#if defined(__wasm__)
  return std::min<int64_t>(RowBlockFor(mr), 2 * mr);
#else
  return RowBlockFor(mr);
#endif
}

// K blocks of equal sizes ≤ kcMax (K = 768, kcMax 256 → 3 × 256; K = 1000 → 4 × 250), so the last
// block is not a sliver.
constexpr int64_t EqualKBlock(int64_t K, int64_t kcMax) {
  const int64_t nblocks = (K + kcMax - 1) / kcMax;
  return (K + nblocks - 1) / nblocks;
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

// ---------------------------------------------------------------------------------------------
// The blocked driver, one template for both GEMMs. A driver's traits object D provides:
//   using Panel                     packed element (float; uint32_t bf16 pair word)
//   kMaxTile, kPrefetch             KernelBlockT's scratch tile size and C prefetch
//   kPanelsPerPackTask              NR micro-panels of the slab of op(B) each pack task fills
//   static Buffers()                the calling thread's PackBuffers<Panel> (thread_local)
//   P, kd                           the problem (M, N, K, C, sC, batch, alpha, beta) and the
//                                   kernel descriptor (mr, nr, micro)
//   Kc()                            k values per K block
//   Depth(kc)                       packed panel depth of a block of kc values
//   SlabCols()                      columns per slab of packed op(B) (a multiple of nr)
//   PackA(bi, i0, rows, p0, kc, depth, Ap), PackB(bi, p0, kc, j0, cols, depth, Bp)
//                                   pack batch item bi's op(A) rows / op(B) columns of one K block

// Small batched products (attention heads, per-sequence matrices): one task per batch item and
// row block, each packing its own A and B (per-thread buffers).
template <typename D>
void ComputeItemRowsT(const D& d, int64_t bi, int64_t m0, int64_t rows) {
  using Panel = typename D::Panel;
  using Buffers = PackBuffers<Panel>;
  const auto& P = d.P;
  const auto& kd = d.kd;
  const int mr = kd.mr, nr = kd.nr;
  const int64_t kcMax = d.Kc(), depthMax = d.Depth(kcMax);
  Buffers& pack = D::Buffers();
  Panel* Bp = Buffers::Grow(pack.b, pack.b_len, static_cast<size_t>(depthMax * RoundUp(P.N, nr)));
  Panel* Ap = Buffers::Grow(pack.a, pack.a_len, static_cast<size_t>(depthMax * RoundUp(rows, mr)));
  float* C = P.C + bi * P.sC;
  for (int64_t p0 = 0; p0 < P.K; p0 += kcMax) {
    const int64_t kc = std::min(kcMax, P.K - p0), depth = d.Depth(kc);
    d.PackB(bi, p0, kc, 0, P.N, depth, Bp);
    d.PackA(bi, m0, rows, p0, kc, depth, Ap);
    KernelBlockT<D::kMaxTile, D::kPrefetch>(kd, P.N, P.alpha, C, Ap, Bp, m0, rows, 0, P.N, depth,
                                            p0 == 0 ? P.beta : 1.0f);
  }
}

// One large batch item, Goto-style: for each slab of columns and each K block, the pool first
// packs the slab of op(B) together (shared, read by all: packing B once per slab instead of once
// per task keeps packing a few percent of the time), then tasks over (row block, column block)
// pack their rows of op(A) and multiply them with their part of the slab. Few row blocks (small
// M): the slab's columns are split too, so there are ≥ 8 tasks.
template <typename D>
void ComputeItemSlabsT(const D& d, int64_t bi, bool parallel) {
  using Panel = typename D::Panel;
  using Buffers = PackBuffers<Panel>;
  const auto& P = d.P;
  const auto& kd = d.kd;
  const int mr = kd.mr, nr = kd.nr;
  const int64_t M = P.M, N = P.N, K = P.K;
  const int64_t kcMax = d.Kc(), depthMax = d.Depth(kcMax);
  const int64_t tnMax = d.SlabCols();
  const int64_t rowBlock = SlabRowBlockFor(mr);
  const int64_t rowBlocks = (M + rowBlock - 1) / rowBlock;
  int64_t colBlock = tnMax;
  while (rowBlocks * ((tnMax + colBlock - 1) / colBlock) < 8 && colBlock > 4 * nr) colBlock = RoundUp(colBlock / 2, nr);
  // The slab lives in the calling thread's buffer; pool workers only read it.
  Buffers& pack = D::Buffers();
  Panel* Bp = Buffers::Grow(pack.b, pack.b_len, static_cast<size_t>(depthMax * tnMax));
  float* C = P.C + bi * P.sC;
  constexpr int64_t kPanelsPerPackTask = D::kPanelsPerPackTask;
  for (int64_t n0 = 0; n0 < N; n0 += tnMax) {
    const int64_t tn = std::min(tnMax, N - n0);
    const int64_t panels = (tn + nr - 1) / nr;
    const int64_t colBlocks = (tn + colBlock - 1) / colBlock;
    for (int64_t p0 = 0; p0 < K; p0 += kcMax) {
      const int64_t kc = std::min(kcMax, K - p0), depth = d.Depth(kc);
      const float beta = p0 == 0 ? P.beta : 1.0f;
      RunTasksOn((panels + kPanelsPerPackTask - 1) / kPanelsPerPackTask, parallel, [&](int64_t t) {
        const int64_t j = t * kPanelsPerPackTask * nr;
        d.PackB(bi, p0, kc, n0 + j, std::min(kPanelsPerPackTask * nr, tn - j), depth, Bp + (j / nr) * depth * nr);
      });
      RunTasksOn(rowBlocks * colBlocks, parallel, [&](int64_t t) {
        const int64_t m0 = (t / colBlocks) * rowBlock, rows = std::min(rowBlock, M - m0);
        const int64_t j = (t % colBlocks) * colBlock, w = std::min(colBlock, tn - j);
        Buffers& own = D::Buffers();
        Panel* Ap = Buffers::Grow(own.a, own.a_len, static_cast<size_t>(depthMax * RoundUp(rowBlock, mr)));
        d.PackA(bi, m0, rows, p0, kc, depth, Ap);
        KernelBlockT<D::kMaxTile, D::kPrefetch>(kd, N, P.alpha, C, Ap, Bp + (j / nr) * depth * nr, m0, rows, n0 + j,
                                                w, depth, beta);
      });
    }
  }
}

// The packed (blocked) product of every batch item: large items one after the other, each spread
// over the pool (shared slab); small items as tasks over (batch item, row block).
template <typename D>
void BlockedGemmT(const D& d, bool parallel) {
  const auto& P = d.P;
  const int64_t M = P.M;
  if (2.0 * static_cast<double>(M) * P.N * P.K >= kSlabMinFlops) {
    for (int64_t bi = 0; bi < P.batch; bi++) ComputeItemSlabsT(d, bi, parallel);
    return;
  }
  const int64_t rowBlock = RowBlockFor(d.kd.mr);
  const int64_t rowBlocks = (M + rowBlock - 1) / rowBlock;
  RunTasksOn(P.batch * rowBlocks, parallel, [&](int64_t t) {
    const int64_t bi = t / rowBlocks, m0 = (t % rowBlocks) * rowBlock;
    ComputeItemRowsT(d, bi, m0, std::min(rowBlock, M - m0));
  });
}

}  // namespace dpo
