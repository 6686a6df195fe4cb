// The one CPU-feature detector (see cpu.h).
#include "cpu.h"

#include <cstdlib>
#include <cstring>

namespace dpo {

const CpuFeatures& Cpu() {
  static const CpuFeatures f = [] {
    CpuFeatures c;
#if defined(__x86_64__) || defined(_M_X64)
    __builtin_cpu_init();
    c.avx2fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    c.avx512 = c.avx2fma && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
#endif
#if defined(__aarch64__)
    c.neon = true;
#endif
#if defined(__wasm_simd128__)
    c.simd128 = true;
#endif
    return c;
  }();
  return f;
}

int Isa() {
  static const int isa = [] {
    const CpuFeatures& c = Cpu();
    int v = c.avx512 ? 2 : c.avx2fma ? 1 : 0;
    if (const char* cap = std::getenv("DPO_NATIVE_ISA")) {
      if (std::strcmp(cap, "generic") == 0) v = 0;
      else if (std::strcmp(cap, "avx2") == 0 && v > 1) v = 1;
    }
    return v;
  }();
  return isa;
}

const char* Arch() {
#if defined(__x86_64__) || defined(_M_X64)
  return "x86-64";
#elif defined(__aarch64__)
  return "arm64";
#elif defined(__wasm32__)
  return "wasm32";
#else
  return "other";
#endif
}

}  // namespace dpo
