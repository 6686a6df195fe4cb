// The start-up choice of a kernel family's path (gemm.cc: DPO_GEMM_KERNEL, gemm_bf16.cc:
// DPO_GEMM_BF16_KERNEL): the best the CPU supports, or the one the environment variable names.
// A name that is unknown or unsupported yields nullptr and an error every call then reports.
#pragma once
#include <cstdlib>
#include <string>

namespace dpo {

template <typename Desc, typename ByNameFn, typename SupportedFn, typename BestFn>
const Desc* ChooseKernelFromEnv(const char* var, const std::string& prefix, const std::string& names, ByNameFn by_name,
                                SupportedFn supported, BestFn best, std::string* error) {
  const char* env = std::getenv(var);
  if (!env || !*env) return best();
  const std::string name(env);
  if (!by_name(name)) {
    *error = prefix + var + "='" + name + "' is not one of " + names;
    return nullptr;
  }
  if (!supported(name)) {
    *error = prefix + var + "='" + name + "' is not supported by this CPU";
    return nullptr;
  }
  return by_name(name);
}

}  // namespace dpo
