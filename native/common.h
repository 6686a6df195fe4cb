// Shared helpers for the N-API kernels: argument access without copies.
// Every kernel receives Float32Array views (data is read and written in place)
// and plain numbers; shapes are checked on the TypeScript side, lengths here.
#pragma once
#include <napi.h>
#include <cstddef>
#include <cstdint>
#include <string>

namespace dpo {

inline float* F32(const Napi::CallbackInfo& info, size_t i) {
  Napi::Value v = info[i];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " must be a Float32Array")
        .ThrowAsJavaScriptException();
    return nullptr;
  }
  return v.As<Napi::Float32Array>().Data();
}

inline size_t Len(const Napi::CallbackInfo& info, size_t i) {
  return info[i].As<Napi::TypedArray>().ElementLength();
}

inline int32_t* I32(const Napi::CallbackInfo& info, size_t i) {
  Napi::Value v = info[i];
  if (v.IsNull() || v.IsUndefined()) return nullptr;
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " must be an Int32Array")
        .ThrowAsJavaScriptException();
    return nullptr;
  }
  return v.As<Napi::Int32Array>().Data();
}

inline int64_t Int(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().Int64Value(); }
inline double Num(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().DoubleValue(); }
inline bool Bool(const Napi::CallbackInfo& info, size_t i) { return info[i].ToBoolean().Value(); }

// Each kernel file registers its functions on the exports object.
void RegisterThreadPool(Napi::Env env, Napi::Object exports);
void RegisterGemm(Napi::Env env, Napi::Object exports);
void RegisterGemmBf16(Napi::Env env, Napi::Object exports);
void RegisterOps(Napi::Env env, Napi::Object exports);
void RegisterAttention(Napi::Env env, Napi::Object exports);

}  // namespace dpo
