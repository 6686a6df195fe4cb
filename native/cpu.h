// The one CPU-feature detector. Every kernel family asks it which instruction-set path to run.
#pragma once

namespace dpo {

// What the hardware offers (read once).
struct CpuFeatures {
  bool avx2fma = false;  // x86-64: AVX2 + FMA
  bool avx512 = false;   // x86-64: AVX-512 F, VL, BW, DQ (with AVX2 + FMA)
  bool neon = false;     // arm64: Advanced SIMD (part of the base ISA)
  bool simd128 = false;  // wasm32 built with SIMD128
  // x86-64: AMX-TILE and AMX-BF16 (CPUID.(7,0):EDX bits 24, 22) with the tile state enabled by the
  // OS in XCR0 (bits 17 XTILECFG, 18 XTILEDATA). Linux still requires a per-process permission
  // before the first tile instruction: AmxTilesUsable().
  bool amxBf16 = false;
};
const CpuFeatures& Cpu();

// AMX tiles can be used by this process: Cpu().amxBf16 and, on Linux, the kernel granted
// arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) (requested once, on the first call; a
// kernel before 5.16 or a seccomp filter refusing it means no). Without it the first tile
// instruction would kill the process with SIGILL.
bool AmxTilesUsable();

// The path the fused ops and attention run: 2 = AVX-512, 1 = AVX2+FMA, 0 = baseline (portable,
// NEON and wasm builds are always 0 here). DPO_NATIVE_ISA=avx2|generic caps it, read once, so
// tests can run the fallbacks on an AVX-512 machine. GEMM picks its micro-kernel from Cpu()
// separately (DPO_GEMM_KERNEL / gemmSetKernel).
int Isa();

// "x86-64", "arm64", "wasm32" or "other".
const char* Arch();

}  // namespace dpo
