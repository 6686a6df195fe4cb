// The N-API binding (Node addon dpo_native.node), generated from the kernel table in abi.h: one
// template turns each C entry point into a JavaScript function. JavaScript arguments are read in
// the order of the C parameters (signature.h); a TypeError/RangeError is thrown when the C entry
// point reports one. Nothing here checks sizes: the C ABI does, identically for every binding.
#include <napi.h>

#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "abi.h"
#include "check.h"
#include "signature.h"

namespace dpo {
// napi-memory.cc: freeArrayBuffer and the C allocator's settings.
void RegisterMemory(Napi::Env env, Napi::Object exports);
void RegisterGemmBf16(Napi::Env env, Napi::Object exports);
}  // namespace dpo

namespace {

struct Reader {
  const Napi::CallbackInfo& info;
  const char* kernel;
  std::vector<std::string> names;
  size_t j = 0;          // next JavaScript argument
  size_t lastLen = 0;    // element count of the last typed array read
  double result = 0;
  bool typeError = false;
  std::string message;

  Napi::Value Next() { return j < info.Length() ? info[j++] : (j++, info.Env().Undefined()); }
  void Fail(const std::string& msg) {
    if (typeError) return;
    typeError = true;
    message = std::string(kernel) + ": " + msg;
  }
};

float g_empty_f32;
int32_t g_empty_i32;

template <class T, napi_typedarray_type kType>
T* TypedArrayArg(Reader& r) {
  Napi::Value v = r.Next();
  if (v.IsNull() || v.IsUndefined()) {
    r.lastLen = 0;
    return nullptr;
  }
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != kType) {
    r.lastLen = dpo::kWrongType;
    return nullptr;
  }
  auto arr = v.As<Napi::TypedArrayOf<T>>();
  r.lastLen = arr.ElementLength();
  // An empty array may have no storage; a non-null pointer tells the kernel it is present.
  if (r.lastLen == 0) return std::is_same<T, float>::value ? reinterpret_cast<T*>(&g_empty_f32)
                                                             : reinterpret_cast<T*>(&g_empty_i32);
  return arr.Data();
}

template <class T> T Read(Reader& r);
template <> const float* Read<const float*>(Reader& r) { return TypedArrayArg<float, napi_float32_array>(r); }
template <> float* Read<float*>(Reader& r) { return TypedArrayArg<float, napi_float32_array>(r); }
template <> const int32_t* Read<const int32_t*>(Reader& r) { return TypedArrayArg<int32_t, napi_int32_array>(r); }
template <> size_t Read<size_t>(Reader& r) { return r.lastLen; }
template <> int Read<int>(Reader& r) { return r.Next().ToBoolean().Value() ? 1 : 0; }
template <> double* Read<double*>(Reader& r) { return &r.result; }
template <> double Read<double>(Reader& r) {
  const size_t at = r.j;
  Napi::Value v = r.Next();
  if (!v.IsNumber()) {
    r.Fail((at < r.names.size() ? r.names[at] : "argument " + std::to_string(at)) + " must be a number");
    return 0;
  }
  return v.As<Napi::Number>().DoubleValue();
}

std::vector<std::string> Split(const char* names) {
  std::vector<std::string> out;
  std::string cur;
  for (const char* p = names; *p; p++) {
    if (*p == ' ') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur += *p;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

Napi::Value Throw(Napi::Env env, int status, const std::string& msg) {
  if (status == DPO_TYPE_ERROR) Napi::TypeError::New(env, msg).ThrowAsJavaScriptException();
  else Napi::RangeError::New(env, msg).ThrowAsJavaScriptException();
  return env.Undefined();
}

template <class F> struct Binding;
template <class... Ps>
struct Binding<int (*)(Ps...)> {
  template <int (*Fn)(Ps...), const char* Name, const char* ArgNames>
  static Napi::Value Call(const Napi::CallbackInfo& info) {
    Reader r{info, Name, Split(ArgNames), 0, 0, 0, false, std::string()};
    if (info.Length() < r.names.size()) {
      return Throw(info.Env(), DPO_TYPE_ERROR, std::string(Name) + ": expected " + std::to_string(r.names.size()) +
                                                   " arguments, got " + std::to_string(info.Length()));
    }
    // Braced initialisation evaluates the reads left to right.
    std::tuple<Ps...> args{Read<Ps>(r)...};
    if (r.typeError) return Throw(info.Env(), DPO_TYPE_ERROR, r.message);
    const int status = std::apply(Fn, args);
    if (status != DPO_OK) return Throw(info.Env(), status, dpo_last_error());
    constexpr bool hasResult = (std::is_same<Ps, double*>::value || ...);
    if (hasResult) return Napi::Number::New(info.Env(), r.result);
    return info.Env().Undefined();
  }
};

#define DPO_NAMES(js, fn, args)            \
  constexpr char js##_name[] = #js;        \
  constexpr char js##_args[] = args;
DPO_KERNEL_TABLE(DPO_NAMES)
#undef DPO_NAMES

// Functions outside the kernel table.

Napi::Value NumThreadsJs(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), dpo_num_threads()); }

Napi::Value SetNumThreadsJs(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsNumber())
    return Throw(info.Env(), DPO_TYPE_ERROR, "setNumThreads: expected a number of threads");
  const int status = dpo_set_num_threads(info[0].As<Napi::Number>().DoubleValue());
  if (status != DPO_OK) return Throw(info.Env(), status, dpo_last_error());
  return info.Env().Undefined();
}

Napi::Value GemmKernelJs(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), dpo_gemm_kernel()); }

Napi::Value GemmSetKernelJs(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsString())
    return Throw(info.Env(), DPO_TYPE_ERROR, "gemmSetKernel: expected a kernel name");
  const int status = dpo_gemm_set_kernel(info[0].As<Napi::String>().Utf8Value().c_str());
  if (status != DPO_OK) return Throw(info.Env(), status, dpo_last_error());
  return info.Env().Undefined();
}

Napi::Value GemmKernelsSupportedJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array out = Napi::Array::New(env);
  uint32_t n = 0;
  std::string cur;
  for (const char* p = dpo_gemm_kernels_supported();; p++) {
    if (*p == ',' || *p == '\0') {
      if (!cur.empty()) out.Set(n++, Napi::String::New(env, cur));
      cur.clear();
      if (*p == '\0') break;
    } else {
      cur += *p;
    }
  }
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
#define DPO_EXPORT(js, fn, args)                                                                   \
  exports.Set(#js, Napi::Function::New(env, Binding<decltype(&fn)>::Call<fn, js##_name, js##_args>, #js));
  DPO_KERNEL_TABLE(DPO_EXPORT)
#undef DPO_EXPORT
  exports.Set("numThreads", Napi::Function::New(env, NumThreadsJs, "numThreads"));
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreadsJs, "setNumThreads"));
  exports.Set("gemmKernel", Napi::Function::New(env, GemmKernelJs, "gemmKernel"));
  exports.Set("gemmSetKernel", Napi::Function::New(env, GemmSetKernelJs, "gemmSetKernel"));
  exports.Set("gemmKernelsSupported", Napi::Function::New(env, GemmKernelsSupportedJs, "gemmKernelsSupported"));
  dpo::RegisterMemory(env, exports);
  // The bf16 GEMM registers its own functions (native/gemm_bf16.cc): its operands are Float32Array
  // or Uint16Array, which the one-type-per-parameter table cannot express yet.
  dpo::RegisterGemmBf16(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(dpo_native, Init)
