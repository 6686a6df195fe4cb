// The one CPU-feature detector (see cpu.h).
#include "cpu.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif
#if (defined(__x86_64__) || defined(_M_X64)) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace dpo {

const CpuFeatures& Cpu() {
  static const CpuFeatures f = [] {
    CpuFeatures c;
#if defined(__x86_64__) || defined(_M_X64)
    __builtin_cpu_init();
    c.avx2fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    c.avx512 = c.avx2fma && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
#if defined(__GNUC__) || defined(__clang__)
    unsigned a = 0, b = 0, cx = 0, d = 0;
    const bool osxsave = __get_cpuid(1, &a, &b, &cx, &d) && (cx >> 27 & 1u);
    if (osxsave && __get_cpuid_count(7, 0, &a, &b, &cx, &d)) {
      const bool tile = d >> 24 & 1u, bf16 = d >> 22 & 1u;
      uint32_t lo = 0, hi = 0;
      __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
      const bool xtile = (lo >> 17 & 1u) && (lo >> 18 & 1u);
      c.amxBf16 = tile && bf16 && xtile;
    }
#endif
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

bool AmxTilesUsable() {
  static const bool usable = [] {
    if (!Cpu().amxBf16) return false;
#if (defined(__x86_64__) || defined(_M_X64)) && defined(__linux__)
    constexpr long kArchGetXcompPerm = 0x1022, kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0) return false;
    unsigned long mask = 0;
    if (syscall(SYS_arch_prctl, kArchGetXcompPerm, &mask) != 0) return false;
    return (mask >> kXfeatureXtiledata & 1ul) != 0;
#else
    return false;  // the AMX kernel is built for x86-64 Linux only
#endif
  }();
  return usable;
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
