// PLACEHOLDER (replaced by the compute-core work).
#include "common.h"
namespace dpo { void RegisterOps(Napi::Env, Napi::Object) {} }
