// Per-thread GEMM packing buffers (gemm.cc: float panels, gemm_bf16.cc: bf16-pair words): 64-byte
// aligned, grown on demand and kept for the thread's life. Allocation failure throws std::bad_alloc
// (fatal inside a pool task).
#pragma once
#include <cstddef>
#include <cstdlib>
#include <new>

namespace dpo {

template <typename T>
struct PackBuffers {
  T* a = nullptr;
  size_t a_len = 0;
  T* b = nullptr;
  size_t b_len = 0;
  ~PackBuffers() {
    std::free(a);
    std::free(b);
  }
  static T* Grow(T*& p, size_t& len, size_t need) {
    if (need > len) {
      std::free(p);
      const size_t bytes = ((need * sizeof(T) + 63) / 64) * 64;
      p = static_cast<T*>(std::aligned_alloc(64, bytes));
      if (!p) throw std::bad_alloc();
      len = need;
    }
    return p;
  }
};

}  // namespace dpo
