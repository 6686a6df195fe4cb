// The thin AMX tile-op layer the bf16 GEMM's AMX micro-kernel (gemm_bf16.cc) is written against:
// tile configuration, tile load / store / zero, TDPBF16PS and tile release, on FIXED tile
// registers (the intrinsics take the register number as a literal). Two implementations:
//
//   AmxHwTiles   the real instructions (Intel Sapphire Rapids and later: AMX-TILE, AMX-BF16),
//                compiled with target("amx-tile,amx-bf16"); x86-64 Linux only (the OS must grant
//                the tile state first: cpu.cc AmxTilesUsable()).
//   AmxEmuTiles  a scalar software emulator of exactly those instructions, plain C++ (any CPU):
//                the test-only path `amx-emulated`, and the reference the start-up self-check
//                compares the real `amx` path with, bit for bit.
//
// Semantics emulated (Intel 64 and IA-32 Architectures Software Developer's Manual, Vol. 2,
// "TDPBF16PS — Dot Product of BF16 Tiles Accumulated into Packed Single Precision Tile",
// Operation section; mirrored at https://www.felixcloutier.com/x86/tdpbf16ps):
//   for each row m of the destination: temp1[0 .. 2·cols−1] := 0; for k over the pairs of a row
//   of tsrc1, for each column n:
//       temp1[2n]   += fp32(tsrc1[m].bf16[2k])   · fp32(tsrc2[k].bf16[2n])      (FMA, DAZ=FTZ=1, RNE)
//       temp1[2n+1] += fp32(tsrc1[m].bf16[2k+1]) · fp32(tsrc2[k].bf16[2n+1])
//   then for each n: tmp := temp1[2n] + temp1[2n+1]; dest[m][n] := dest[m][n] + tmp  (DAZ, FTZ, RNE).
//   "Output denormals are always flushed to zero and input denormals are always treated as zero.
//   MXCSR is not consulted nor updated." The even (low) and odd (high) elements of the pairs are
//   thus summed in two separate float32 chains over the instruction's K (16 pairs with our
//   64-byte rows), added together, then to the accumulator: a different order from vdpbf16ps, so
//   `amx` results differ from `avx512bf16` in the last bits (both within the same error bound).
//   The Intrinsics Guide's __tile_dpbf16ps pseudo-code shows a simplified single-chain order; we
//   follow the SDM. If the hardware rounds differently from this emulation, the start-up
//   self-check sees a mismatch and the GEMM falls back to avx512bf16 (never silently wrong).
//   The bf16·bf16 products are exact in float32 unless they under/overflow; FmaRne below gives the
//   "infinite precision, one rounding" FMA the SDM names in every case.
//   Tininess for FTZ is judged on the rounded result (a result whose magnitude is below 2⁻¹²⁶
//   after rounding becomes a zero of the same sign). NaN payloads are not specified by the SDM
//   for TDPBF16PS: the emulator produces whatever quiet NaN the C++ arithmetic does.
// Tile load: rows beyond the configured rows and bytes beyond colsb are zero (SDM: TILELOADD,
// "zero_upper_rows", "write_row_and_zero"). Configurations the hardware rejects with #UD
// (TDPBF16PS with tsrc1.colsb/4 ≠ tsrc2.rows, tsrc2.colsb ≠ tsrcdest.colsb, tsrc1.rows ≠
// tsrcdest.rows, a tile used before ldtilecfg) abort with a message: a kernel bug the emulator
// must expose, since the same code faults on real hardware.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#if (defined(__x86_64__) || defined(_M_X64)) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#define DPO_AMX_HW 1
#include <immintrin.h>
#endif

namespace dpo {

// The 64-byte tile configuration of LDTILECFG, palette 1 (SDM Vol. 1, §"Intel AMX" / Vol. 2 LDTILECFG).
struct alignas(64) TileConfig {
  uint8_t palette_id;
  uint8_t start_row;
  uint8_t reserved0[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};
static_assert(sizeof(TileConfig) == 64, "LDTILECFG reads 64 bytes");

// The register roles of the 32×32 micro-kernel: C = tmm0..3 (2×2 tiles of 16×16 float32),
// A = tmm4, tmm5 (16 rows × 16 pair words), B = tmm6, tmm7 (16 pair rows × 16 column words).
inline const TileConfig& AmxGemmConfig() {
  static const TileConfig cfg = [] {
    TileConfig c;
    std::memset(&c, 0, sizeof c);
    c.palette_id = 1;
    for (int t = 0; t < 8; t++) {
      c.rows[t] = 16;
      c.colsb[t] = 64;
    }
    return c;
  }();
  return cfg;
}

// ---------------------------------------------------------------------------------------------
// The emulator.

namespace amx_emu {

struct State {
  bool configured = false;
  TileConfig cfg;
  alignas(64) uint8_t t[8][16][64];
};
inline State& S() {
  thread_local State s;
  return s;
}

[[noreturn]] inline void Fault(const char* what) {
  std::fprintf(stderr, "amx-emulated: %s (the real instruction would fault: a bug in the AMX kernel)\n", what);
  std::abort();
}

inline uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float FromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
// Denormal → zero of the same sign (DAZ on inputs, FTZ on results).
inline float Flush(float f) {
  const uint32_t u = Bits(f);
  return (u & 0x7f800000u) == 0 ? FromBits(u & 0x80000000u) : f;
}
inline float Bf16(uint16_t h) { return FromBits(uint32_t(h) << 16); }

// a·b + c rounded once to float32 (round-to-nearest-even), for a and b bf16 values: their product
// has ≤ 16 significant bits and is exact in double. The double sum with c (24 bits) is exact
// when the smaller term's leading bit is within 29 binades of the larger's (37 when c is the
// larger); otherwise the smaller is below 2⁻²⁸ of the larger, and both the exact and the
// double-rounded sum lie that close to the larger term (a float32), far from any float32
// rounding midpoint (2⁻²⁵ away at least). So rounding the double sum to float32 equals the single
// rounding of an FMA (std::fma on float32 gives the same, several times slower through libm).
inline float FmaRne(double a, double b, float c) { return static_cast<float>(a * b + static_cast<double>(c)); }

inline void Check(int t) {
  if (!S().configured) Fault("tile instruction before LDTILECFG");
  if (t < 0 || t > 7) Fault("tile register out of range");
}

inline void LoadConfig(const TileConfig* c) {
  State& s = S();
  if (c->palette_id != 1) Fault("palette other than 1");
  for (int t = 0; t < 8; t++)
    if (c->rows[t] > 16 || c->colsb[t] > 64) Fault("tile larger than 16 rows × 64 bytes");
  s.cfg = *c;
  s.configured = true;
  std::memset(s.t, 0, sizeof s.t);
}

inline void Release() {
  State& s = S();
  s.configured = false;
  std::memset(s.t, 0, sizeof s.t);
}

inline void Zero(int t) {
  Check(t);
  std::memset(S().t[t], 0, sizeof S().t[t]);
}

inline void Load(int t, const void* base, int64_t stride) {
  Check(t);
  State& s = S();
  std::memset(s.t[t], 0, sizeof s.t[t]);
  for (int r = 0; r < s.cfg.rows[t]; r++)
    std::memcpy(s.t[t][r], static_cast<const uint8_t*>(base) + r * stride, s.cfg.colsb[t]);
}

inline void Store(int t, void* base, int64_t stride) {
  Check(t);
  State& s = S();
  for (int r = 0; r < s.cfg.rows[t]; r++)
    std::memcpy(static_cast<uint8_t*>(base) + r * stride, s.t[t][r], s.cfg.colsb[t]);
}

inline void DpBf16(int dst, int src1, int src2) {
  Check(dst);
  Check(src1);
  Check(src2);
  State& s = S();
  const TileConfig& c = s.cfg;
  if (dst == src1 || dst == src2 || src1 == src2) Fault("TDPBF16PS operands must be distinct registers");
  if (c.colsb[src1] % 4 != 0 || c.colsb[src1] / 4 != c.rows[src2]) Fault("TDPBF16PS: tsrc1.colsb/4 != tsrc2.rows");
  if (c.colsb[src2] != c.colsb[dst]) Fault("TDPBF16PS: tsrc2.colsb != tsrcdest.colsb");
  if (c.rows[src1] != c.rows[dst]) Fault("TDPBF16PS: tsrc1.rows != tsrcdest.rows");
  const int K = c.colsb[src1] / 4, N = c.colsb[dst] / 4;
  // The tsrc2 elements as float32 (DAZ), low and high element of each pair apart.
  float b0[16][16], b1[16][16];
  for (int k = 0; k < K; k++) {
    for (int n = 0; n < N; n++) {
      uint16_t b[2];
      std::memcpy(b, &s.t[src2][k][4 * n], 4);
      b0[k][n] = Flush(Bf16(b[0]));
      b1[k][n] = Flush(Bf16(b[1]));
    }
  }
  for (int m = 0; m < c.rows[dst]; m++) {
    float t0[16] = {}, t1[16] = {};  // temp1[2n] and temp1[2n+1]
    for (int k = 0; k < K; k++) {
      uint16_t a[2];
      std::memcpy(a, &s.t[src1][m][4 * k], 4);
      const double a0 = Flush(Bf16(a[0])), a1 = Flush(Bf16(a[1]));
      for (int n = 0; n < N; n++) {
        t0[n] = Flush(FmaRne(a0, b0[k][n], t0[n]));
        t1[n] = Flush(FmaRne(a1, b1[k][n], t1[n]));
      }
    }
    for (int n = 0; n < N; n++) {
      float d;
      std::memcpy(&d, &s.t[dst][m][4 * n], 4);
      const float tmp = Flush(t0[n] + t1[n]);
      const float out = Flush(Flush(d) + tmp);
      std::memcpy(&s.t[dst][m][4 * n], &out, 4);
    }
  }
}

}  // namespace amx_emu

// The layer's two implementations: the same static interface, register numbers fixed by name.
struct AmxEmuTiles {
  static void Begin() { amx_emu::LoadConfig(&AmxGemmConfig()); }
  static void ZeroC() {
    for (int t = 0; t < 4; t++) amx_emu::Zero(t);
  }
  static void LoadA(const void* a0, const void* a1, int64_t stride) {
    amx_emu::Load(4, a0, stride);
    amx_emu::Load(5, a1, stride);
  }
  static void LoadB(const void* b0, const void* b1, int64_t stride) {
    amx_emu::Load(6, b0, stride);
    amx_emu::Load(7, b1, stride);
  }
  static void Dp() {
    amx_emu::DpBf16(0, 4, 6);
    amx_emu::DpBf16(1, 4, 7);
    amx_emu::DpBf16(2, 5, 6);
    amx_emu::DpBf16(3, 5, 7);
  }
  // C tile (r, c) of the 2×2 block goes to base + r·16 rows + c·16 columns.
  static void StoreC(float* base, int64_t ld) {
    amx_emu::Store(0, base, ld * 4);
    amx_emu::Store(1, base + 16, ld * 4);
    amx_emu::Store(2, base + 16 * ld, ld * 4);
    amx_emu::Store(3, base + 16 * ld + 16, ld * 4);
  }
  static void End() { amx_emu::Release(); }
};

#if DPO_AMX_HW
// GCC's and Clang's tile intrinsics are inline asm taking the register number as a literal; they
// need no target attribute (only the assembler must know the instructions: binutils ≥ 2.36), so
// ldtilecfg and tilerelease are written the same way here and the kernel needs none either.
#define DPO_AMX_TARGET __attribute__((always_inline)) inline
struct AmxHwTiles {
  // The tile loads and stores are asm without memory operands the compiler can see: compiler
  // barriers keep the packing stores before the tile loads and the tile stores before the reads.
  static DPO_AMX_TARGET void Begin() {
    __asm__ volatile("ldtilecfg %0" ::"m"(AmxGemmConfig()) : "memory");
  }
  static DPO_AMX_TARGET void ZeroC() {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
  }
  static DPO_AMX_TARGET void LoadA(const void* a0, const void* a1, int64_t stride) {
    _tile_loadd(4, a0, stride);
    _tile_loadd(5, a1, stride);
  }
  static DPO_AMX_TARGET void LoadB(const void* b0, const void* b1, int64_t stride) {
    _tile_loadd(6, b0, stride);
    _tile_loadd(7, b1, stride);
  }
  static DPO_AMX_TARGET void Dp() {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  static DPO_AMX_TARGET void StoreC(float* base, int64_t ld) {
    _tile_stored(0, base, ld * 4);
    _tile_stored(1, base + 16, ld * 4);
    _tile_stored(2, base + 16 * ld, ld * 4);
    _tile_stored(3, base + 16 * ld + 16, ld * 4);
    __asm__ volatile("" ::: "memory");
  }
  static DPO_AMX_TARGET void End() { __asm__ volatile("tilerelease" ::: "memory"); }
};
#undef DPO_AMX_TARGET
#endif

}  // namespace dpo
