// The choice of a kernel family's path (gemm.cc: DPO_GEMM_KERNEL, gemm_bf16.cc:
// DPO_GEMM_BF16_KERNEL): at start-up the best the CPU supports, or the one the environment
// variable names (a name that is unknown or unsupported yields nullptr and an error every call
// then reports); later a switch by name (tests exercise every path in one process) and the list
// of names the CPU supports.
#pragma once
#include <atomic>
#include <cstdlib>
#include <initializer_list>
#include <string>

#include "check.h"

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

// Switches the path to `name` (C ABI dpo_*_set_kernel; `fn` is the JavaScript name): a RangeError
// for a name that is unknown or that this CPU lacks. `active` settles the start-up choice first so
// it cannot override this one.
template <typename Desc, typename ByNameFn, typename SupportedFn, typename ActiveFn>
int SetKernelByName(const char* fn, const char* name, const std::string& names, ByNameFn by_name, SupportedFn supported,
                    ActiveFn active, std::atomic<const Desc*>* current) {
  const std::string n(name ? name : "");
  if (!by_name(n)) return SetError(DPO_RANGE_ERROR, std::string(fn) + ": unknown kernel '" + n + "' (" + names + ")");
  if (!supported(n)) return SetError(DPO_RANGE_ERROR, std::string(fn) + ": kernel '" + n + "' is not supported by this CPU");
  active();
  *current = by_name(n);
  return DPO_OK;
}

// The names in `all` (best first) this CPU supports, comma-separated.
template <typename SupportedFn>
std::string SupportedKernelNames(std::initializer_list<const char*> all, SupportedFn supported) {
  std::string s;
  for (const char* name : all) {
    if (!supported(name)) continue;
    if (!s.empty()) s += ",";
    s += name;
  }
  return s;
}

}  // namespace dpo
