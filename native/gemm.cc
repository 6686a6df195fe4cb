// PLACEHOLDER (replaced by the compute-core work).
#include "common.h"
namespace dpo { void RegisterGemm(Napi::Env, Napi::Object) {} }
