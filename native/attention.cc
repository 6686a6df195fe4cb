// PLACEHOLDER (replaced by the compute-core work).
#include "common.h"
namespace dpo { void RegisterAttention(Napi::Env, Napi::Object) {} }
