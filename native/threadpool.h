// Persistent worker pool shared by all kernels.
// Threads = hardware cores by default; DPO_NUM_THREADS overrides; setNumThreads() at run time.
#pragma once
#include <cstdint>
#include <functional>

namespace dpo {

// Runs fn(task) for every task in [0, ntasks) on the pool (the calling thread works too) and
// returns when all are done. Tasks must write disjoint outputs. Which thread runs which task
// may vary; results must therefore never depend on it (reduce over fixed chunks, not threads).
void ParallelFor(int64_t ntasks, const std::function<void(int64_t)>& fn);

int NumThreads();
void SetNumThreads(int n);

}  // namespace dpo
