// The WebAssembly binding: the C ABI (abi.h) is exported as is; this file adds the kernel table
// in a form JavaScript can read, so src/tensor/wasm.ts builds every kernel's wrapper from it
// (the same table that generates the N-API binding in napi.cc).
#include <emscripten/emscripten.h>

#include <string>

#include "abi.h"
#include "signature.h"

// "jsName cFunction codes argName argName ...\n" per kernel; codes as in signature.h.
extern "C" EMSCRIPTEN_KEEPALIVE const char* dpo_kernel_table(void) {
  static const std::string table = [] {
    std::string s;
#define DPO_ROW(js, fn, args) s += std::string(#js) + " " + #fn + " " + dpo::SignatureCodes(&fn) + " " + args + "\n";
    DPO_KERNEL_TABLE(DPO_ROW)
#undef DPO_ROW
    return s;
  }();
  return table.c_str();
}

// Features this build was compiled with, e.g. "simd128,threads,relaxed-simd". Relaxed SIMD is
// compiled into the GEMM only (scripts/build-wasm.mjs), so its kernel list tells.
extern "C" EMSCRIPTEN_KEEPALIVE const char* dpo_build_features(void) {
  static const std::string features = [] {
    std::string s = "simd128";
#if defined(__EMSCRIPTEN_PTHREADS__)
    s += ",threads";
#endif
    if (std::string(dpo_gemm_kernels_supported()).find("wasm-relaxed-simd") != std::string::npos) s += ",relaxed-simd";
    return s;
  }();
  return features.c_str();
}
