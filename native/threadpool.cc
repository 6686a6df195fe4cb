// Persistent worker pool shared by all kernels.
//
// nthreads − 1 std::thread workers plus the calling thread. A ParallelFor publishes a Job (task
// count, function, atomic counters) and bumps a generation number; workers spin briefly on that
// number (kernels often come back to back) and then sleep on a condition variable. Tasks are
// claimed one at a time from an atomic counter, so a slow or late thread never holds up the rest.
//
// Safety rules the kernels rely on:
// - ntasks <= 0 is a no-op; ntasks == 1 or a 1-thread pool runs inline (no wake-ups).
// - A ParallelFor issued from inside a task (nested) runs serially on the calling thread.
// - A ParallelFor issued from a second outside thread while the pool is busy runs serially.
// - Each Job lives in a shared_ptr: a worker that wakes up late holds its own reference, finds
//   the task counter exhausted and never calls the (by then returned) caller's function.
#include "threadpool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "abi.h"
#include "check.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif
#if defined(__linux__)
#include <sched.h>
#endif

namespace dpo {

constexpr int kMaxThreads = 256;

namespace {

// How long an idle worker (and a waiting caller) spins before sleeping / yielding.
constexpr auto kSpin = std::chrono::microseconds(50);

inline void CpuRelax() {
#if defined(__x86_64__) || defined(_M_X64)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

struct Job {
  const std::function<void(int64_t)>* fn = nullptr;
  int64_t ntasks = 0;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
};

// True on pool workers always, and on a caller thread while it runs tasks: nested calls go serial.
thread_local bool tl_in_parallel = false;

void RunTasks(Job& job) {
  for (;;) {
    const int64_t i = job.next.fetch_add(1, std::memory_order_relaxed);
    if (i >= job.ntasks) return;
    (*job.fn)(i);
    job.done.fetch_add(1, std::memory_order_release);
  }
}

int HardwareThreads() {
#if defined(__linux__)
  // The affinity mask respects taskset/cgroup cpusets, which hardware_concurrency() ignores.
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
#endif
  const unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? static_cast<int>(n) : 1;
}

// WebAssembly: one thread without pthreads; with them the JavaScript loader sets the count
// (createWasmKernels' threads option; the pool of workers is created at load time).
#if defined(__EMSCRIPTEN__)
constexpr bool kFixedThreads = true;
#else
constexpr bool kFixedThreads = false;
#endif
#if defined(__EMSCRIPTEN__) && !defined(__EMSCRIPTEN_PTHREADS__)
constexpr int kThreadLimit = 1;
#else
constexpr int kThreadLimit = kMaxThreads;
#endif

int DefaultThreads() {
  if (kFixedThreads) return 1;
  if (const char* env = std::getenv("DPO_NUM_THREADS")) {
    char* end = nullptr;
    const long n = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && n >= 1) return static_cast<int>(std::min<long>(n, kMaxThreads));
  }
  return std::min(HardwareThreads(), kMaxThreads);
}

class Pool {
 public:
  explicit Pool(int n) { Start(n); }

  int Size() const { return nthreads_.load(std::memory_order_relaxed); }

  void Run(int64_t ntasks, const std::function<void(int64_t)>& fn) {
    std::unique_lock<std::mutex> submit(submit_mu_, std::try_to_lock);
    if (!submit.owns_lock() || workers_.empty()) {
      RunSerial(ntasks, fn);
      return;
    }
    auto job = std::make_shared<Job>();
    job->fn = &fn;
    job->ntasks = ntasks;
    {
      std::lock_guard<std::mutex> lk(mu_);
      job_ = job;
      gen_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    tl_in_parallel = true;
    RunTasks(*job);
    tl_in_parallel = false;
    // Our share is done; wait for tasks still running on workers.
    const auto t0 = std::chrono::steady_clock::now();
    for (int it = 0; job->done.load(std::memory_order_acquire) < ntasks; it++) {
      if (it < 64 || std::chrono::steady_clock::now() - t0 < kSpin) {
        CpuRelax();
      } else {
        std::this_thread::yield();
      }
    }
  }

  void Resize(int n) {
    std::lock_guard<std::mutex> submit(submit_mu_);
    if (n == Size()) return;
    Stop();
    Start(n);
  }

  static void RunSerial(int64_t ntasks, const std::function<void(int64_t)>& fn) {
    const bool was = tl_in_parallel;
    tl_in_parallel = true;
    for (int64_t i = 0; i < ntasks; i++) fn(i);
    tl_in_parallel = was;
  }

 private:
  void Start(int n) {
    const uint64_t gen = gen_.load(std::memory_order_acquire);
    for (int i = 1; i < n; i++) {
      try {
        workers_.emplace_back([this, gen] { WorkerLoop(gen); });
      } catch (const std::system_error&) {
        break;  // the OS refused more threads: run with what we have
      }
    }
    nthreads_.store(static_cast<int>(workers_.size()) + 1, std::memory_order_relaxed);
  }

  void Stop() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    stopping_.store(true, std::memory_order_relaxed);
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
    stop_ = false;
    stopping_.store(false, std::memory_order_relaxed);
  }

  void WorkerLoop(uint64_t seen) {
    tl_in_parallel = true;
    for (;;) {
      // Spin first: a new job usually follows within microseconds during a forward/backward.
      const auto t0 = std::chrono::steady_clock::now();
      for (int it = 1; gen_.load(std::memory_order_acquire) == seen; it++) {
        if (stopping_.load(std::memory_order_relaxed)) break;
        CpuRelax();
        if ((it & 63) == 0 && std::chrono::steady_clock::now() - t0 > kSpin) break;
      }
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return stop_ || gen_.load(std::memory_order_relaxed) != seen; });
        if (stop_) return;
        seen = gen_.load(std::memory_order_relaxed);
        job = job_;
      }
      if (job) RunTasks(*job);
    }
  }

  std::mutex submit_mu_;  // one outside caller at a time; also serializes Resize
  std::atomic<int> nthreads_{1};
  std::vector<std::thread> workers_;
  std::mutex mu_;  // guards job_, stop_ and the generation/job pairing
  std::condition_variable cv_;
  std::shared_ptr<Job> job_;
  std::atomic<uint64_t> gen_{0};
  bool stop_ = false;
  std::atomic<bool> stopping_{false};
};

// Never destroyed: joining threads from static destructors at process exit is fragile
// (Node may exit from another thread); the OS reclaims the workers.
Pool& GetPool() {
  static Pool* pool = new Pool(DefaultThreads());
  return *pool;
}

}  // namespace

void ParallelFor(int64_t ntasks, const std::function<void(int64_t)>& fn) {
  if (ntasks <= 0) return;
  if (ntasks == 1 || tl_in_parallel) {
    Pool::RunSerial(ntasks, fn);
    return;
  }
  Pool& pool = GetPool();
  if (pool.Size() <= 1) {
    Pool::RunSerial(ntasks, fn);
    return;
  }
  pool.Run(ntasks, fn);
}

int NumThreads() { return GetPool().Size(); }

void SetNumThreads(int n) {
  // Resizing from inside a task would join the thread running it.
  if (tl_in_parallel) return;
  GetPool().Resize(std::max(1, std::min(n, kThreadLimit)));
}

}  // namespace dpo

// C ABI (abi.h).
extern "C" int dpo_num_threads(void) { return dpo::NumThreads(); }

extern "C" int dpo_set_num_threads(double n) {
  if (!(n >= 1 && n <= dpo::kMaxThreads) || n != static_cast<double>(static_cast<int>(n))) {
    return dpo::SetError(DPO_RANGE_ERROR, "setNumThreads: n must be an integer in [1, " +
                                              std::to_string(dpo::kMaxThreads) + "], got " + dpo::NumStr(n));
  }
  dpo::SetNumThreads(static_cast<int>(n));
  return DPO_OK;
}
