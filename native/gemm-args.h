// The argument checks of the GEMM entry points (gemm.cc: dpo_gemm, gemm_bf16.cc: dpo_gemm_bf16),
// which take the same arguments but for the type of A and B: counts, operand types, the path
// choice, the elements each operand spans, and non-overlapping batch outputs — in that order,
// with the same messages (the first failure wins, check.h).
#pragma once
#include <cstdint>
#include <string>

#include "check.h"

namespace dpo {

struct GemmArgs {
  bool ta = false, tb = false;
  int64_t M = 0, N = 0, K = 0, sA = 0, sB = 0, sC = 0, batch = 0;
  float alpha = 0, beta = 0;
};

// `operandA(need, what)` / `operandB(need, what)` check A and B with the caller's Check method
// (a.F32 or a.F32OrBf16); need = 0 checks the type only. `kernelError` is the path choice's
// error (nullptr when a path is chosen). True when the product has work to do; otherwise the
// caller returns a.status() (DPO_OK for an empty product).
template <class OperandA, class OperandB>
bool CheckGemmArgs(Check& a, GemmArgs& g, int transA, int transB, double M, double N, double K, double strideA,
                   double strideB, double strideC, double batch, double alpha, double beta, OperandA operandA,
                   OperandB operandB, float* C, size_t C_len, const std::string* kernelError) {
  g.ta = transA != 0;
  g.tb = transB != 0;
  g.M = a.Count(M, "M");
  g.N = a.Count(N, "N");
  g.K = a.Count(K, "K");
  g.sA = a.Count(strideA, "strideA");
  g.sB = a.Count(strideB, "strideB");
  g.sC = a.Count(strideC, "strideC");
  g.batch = a.Count(batch, "batch");
  g.alpha = static_cast<float>(alpha);
  g.beta = static_cast<float>(beta);
  operandA(0, std::string());
  operandB(0, std::string());
  a.F32(C, C_len, "C", 0, "");
  if (a.ok() && kernelError != nullptr) a.TypeFail(*kernelError);
  if (!a.ok() || g.batch == 0 || g.M == 0 || g.N == 0) return false;

  // Elements a batched operand spans: (batch − 1)·stride + rows·cols.
  const auto span = [&](int64_t stride, int64_t rows, int64_t cols) {
    return SatAdd(SatMul(g.batch - 1, stride), SatMul(rows, cols));
  };
  const std::string dims = "M=" + std::to_string(g.M) + " N=" + std::to_string(g.N) + " K=" + std::to_string(g.K) +
                           " batch=" + std::to_string(g.batch);
  operandA(span(g.sA, g.M, g.K),
           std::string(g.ta ? "A is K×M" : "A is M×K") + ", strideA=" + std::to_string(g.sA) + ", " + dims);
  operandB(span(g.sB, g.K, g.N),
           std::string(g.tb ? "B is N×K" : "B is K×N") + ", strideB=" + std::to_string(g.sB) + ", " + dims);
  a.F32(C, C_len, "C", span(g.sC, g.M, g.N), "C is M×N, strideC=" + std::to_string(g.sC) + ", " + dims);
  // Batch items writing overlapping C would race (and the result would depend on timing).
  a.Require(!(g.batch > 1 && g.sC < g.M * g.N),
            "strideC=" + std::to_string(g.sC) + " is smaller than M·N=" + std::to_string(g.M * g.N) +
                " with batch=" + std::to_string(g.batch) + ": outputs of batch items would overlap");
  return a.ok();
}

}  // namespace dpo
