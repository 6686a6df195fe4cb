// The N-API binding (Node addon dpo_native.node), generated from the kernel tables in abi.h: one
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
// napi-memory.cc: freeArrayBuffer, the C allocator's settings and adviseHugePages.
void RegisterMemory(Napi::Env env, Napi::Object exports);
}  // namespace dpo

namespace {

struct Reader {
  const Napi::CallbackInfo& info;
  const char* kernel;
  std::vector<std::string> names;
  size_t j = 0;          // next JavaScript argument
  size_t lastLen = 0;    // element count of the last typed array read
  dpo_dtype lastDtype = DPO_F32;  // element type of the last union operand read
  double result = 0;
  bool typeError = false;
  std::string message;

  Napi::Value Next() { return j < info.Length() ? info[j++] : (j++, info.Env().Undefined()); }
  Napi::Value Peek() const { return j < info.Length() ? info[j] : info.Env().Undefined(); }
  void Fail(const std::string& msg) {
    if (typeError) return;
    typeError = true;
    message = std::string(kernel) + ": " + msg;
  }
};

float g_empty_f32;
int32_t g_empty_i32;
uint16_t g_empty_u16;

template <class T> T* EmptyStorage();
template <> float* EmptyStorage<float>() { return &g_empty_f32; }
template <> int32_t* EmptyStorage<int32_t>() { return &g_empty_i32; }
template <> uint16_t* EmptyStorage<uint16_t>() { return &g_empty_u16; }

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
  if (r.lastLen == 0) return EmptyStorage<T>();
  return arr.Data();
}

// A union operand: a Float32Array (DPO_F32) or a Uint16Array of bf16 bits (DPO_BF16).
const void* F32OrBf16Arg(Reader& r) {
  Napi::Value v = r.Peek();
  const bool bf16 = v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_uint16_array;
  r.lastDtype = bf16 ? DPO_BF16 : DPO_F32;
  return bf16 ? static_cast<const void*>(TypedArrayArg<uint16_t, napi_uint16_array>(r))
              : static_cast<const void*>(TypedArrayArg<float, napi_float32_array>(r));
}

template <class T> T Read(Reader& r);
template <> const float* Read<const float*>(Reader& r) { return TypedArrayArg<float, napi_float32_array>(r); }
template <> float* Read<float*>(Reader& r) { return TypedArrayArg<float, napi_float32_array>(r); }
template <> const int32_t* Read<const int32_t*>(Reader& r) { return TypedArrayArg<int32_t, napi_int32_array>(r); }
template <> uint16_t* Read<uint16_t*>(Reader& r) { return TypedArrayArg<uint16_t, napi_uint16_array>(r); }
template <> const void* Read<const void*>(Reader& r) { return F32OrBf16Arg(r); }
template <> size_t Read<size_t>(Reader& r) { return r.lastLen; }
template <> dpo_dtype Read<dpo_dtype>(Reader& r) { return r.lastDtype; }
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
    Reader r{info, Name, Split(ArgNames), 0, 0, DPO_F32, 0, false, std::string()};
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
DPO_ADDON_TABLE(DPO_NAMES)
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

// A kernel family's path choice (float32 GEMM, bf16 GEMM): the active name, switch by name, and
// the names this CPU supports (the C function returns them comma-separated, best first).
template <const char* (*Fn)()>
Napi::Value KernelNameJs(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), Fn()); }

template <int (*Fn)(const char*), const char* Name>
Napi::Value SetKernelJs(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsString())
    return Throw(info.Env(), DPO_TYPE_ERROR, std::string(Name) + ": expected a kernel name");
  const int status = Fn(info[0].As<Napi::String>().Utf8Value().c_str());
  if (status != DPO_OK) return Throw(info.Env(), status, dpo_last_error());
  return info.Env().Undefined();
}

template <const char* (*Fn)()>
Napi::Value KernelsSupportedJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array out = Napi::Array::New(env);
  uint32_t n = 0;
  std::string cur;
  for (const char* p = Fn();; p++) {
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

constexpr char kGemmSetKernel[] = "gemmSetKernel";
constexpr char kGemmBf16SetKernel[] = "gemmBf16SetKernel";

Napi::Object Init(Napi::Env env, Napi::Object exports) {
#define DPO_EXPORT(js, fn, args)                                                                   \
  exports.Set(#js, Napi::Function::New(env, Binding<decltype(&fn)>::Call<fn, js##_name, js##_args>, #js));
  DPO_KERNEL_TABLE(DPO_EXPORT)
  DPO_ADDON_TABLE(DPO_EXPORT)
#undef DPO_EXPORT
  exports.Set("numThreads", Napi::Function::New(env, NumThreadsJs, "numThreads"));
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreadsJs, "setNumThreads"));
  exports.Set("gemmKernel", Napi::Function::New(env, KernelNameJs<dpo_gemm_kernel>, "gemmKernel"));
  exports.Set("gemmSetKernel", Napi::Function::New(env, SetKernelJs<dpo_gemm_set_kernel, kGemmSetKernel>, "gemmSetKernel"));
  exports.Set("gemmKernelsSupported",
              Napi::Function::New(env, KernelsSupportedJs<dpo_gemm_kernels_supported>, "gemmKernelsSupported"));
  exports.Set("gemmBf16Kernel", Napi::Function::New(env, KernelNameJs<dpo_gemm_bf16_kernel>, "gemmBf16Kernel"));
  exports.Set("gemmBf16SetKernel",
              Napi::Function::New(env, SetKernelJs<dpo_gemm_bf16_set_kernel, kGemmBf16SetKernel>, "gemmBf16SetKernel"));
  exports.Set("gemmBf16KernelsSupported",
              Napi::Function::New(env, KernelsSupportedJs<dpo_gemm_bf16_kernels_supported>, "gemmBf16KernelsSupported"));
  dpo::RegisterMemory(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(dpo_native, Init)
