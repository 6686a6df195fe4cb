// PLACEHOLDER (replaced by the compute-core work): serial pool.
#include "threadpool.h"
#include "common.h"
namespace dpo {
void ParallelFor(int64_t n, const std::function<void(int64_t)>& fn) { for (int64_t i = 0; i < n; i++) fn(i); }
int NumThreads() { return 1; }
void SetNumThreads(int) {}
void RegisterThreadPool(Napi::Env, Napi::Object) {}
}
