// Module entry: each kernel family registers its own functions.
#include "common.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  dpo::RegisterThreadPool(env, exports);
  dpo::RegisterGemm(env, exports);
  dpo::RegisterGemmBf16(env, exports);
  dpo::RegisterOps(env, exports);
  dpo::RegisterAttention(env, exports);
  return exports;
}

NODE_API_MODULE(dpo_native, Init)
