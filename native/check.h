// The one argument style of the C ABI (abi.h): every kernel entry point checks its arguments with
// a Check before any work starts. The first failure records its kind (TypeError for a wrong type,
// RangeError for a bad size) and a message "<kernel>: <what>"; later checks are no-ops, and the
// entry point returns the status (the bindings turn it into a JavaScript exception).
//
// Buffers arrive as (pointer, element count). A binding passes (nullptr, kWrongType) for an
// argument of the wrong type and (nullptr, 0) for null/undefined; an empty typed array has a
// non-null pointer.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <limits>
#include <string>

#include "abi.h"

namespace dpo {

constexpr size_t kWrongType = static_cast<size_t>(-1);

// a·b and a + b, saturating so an absurd size fails the length check instead of wrapping around.
inline int64_t SatMul(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) return std::numeric_limits<int64_t>::max();
  return r;
}
inline int64_t SatAdd(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) return std::numeric_limits<int64_t>::max();
  return r;
}

// "rows*dim = 2*3"
inline std::string Dims(const char* names, std::initializer_list<int64_t> values) {
  std::string s = std::string(names) + " = ";
  bool first = true;
  for (int64_t v : values) {
    if (!first) s += "*";
    s += std::to_string(v);
    first = false;
  }
  return s;
}

inline std::string NumStr(double d) {
  if (d == std::floor(d) && std::fabs(d) < 9e15) return std::to_string(static_cast<int64_t>(d));
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", d);
  return buf;
}

// Records the message for dpo_last_error() (thread-local) and returns the status.
int SetError(int status, const std::string& msg);

class Check {
 public:
  explicit Check(const char* kernel) : kernel_(kernel) {}
  bool ok() const { return status_ == DPO_OK; }
  int status() const { return status_; }
  const char* kernel() const { return kernel_; }

  // A non-negative integer count (numbers cross the ABI as doubles).
  int64_t Count(double d, const char* name) {
    if (!ok()) return 0;
    if (!(d >= 0) || d != std::floor(d) || d > 9007199254740991.0) {
      RangeFail(std::string(name) + " must be a non-negative integer, got " + NumStr(d));
      return 0;
    }
    return static_cast<int64_t>(d);
  }

  // A buffer with at least `need` elements (`what` explains need).
  template <class T>
  T* Buf(T* p, size_t len, const char* name, int64_t need, const std::string& what) {
    if (!ok()) return nullptr;
    if (p == nullptr) {
      TypeFail(std::string(name) + " must be a" + TypeName(static_cast<T*>(nullptr)));
      return nullptr;
    }
    if (static_cast<int64_t>(len) < need) {
      RangeFail(std::string(name) + " has " + std::to_string(len) + " elements, needs " + std::to_string(need) +
                " (" + what + ")");
      return nullptr;
    }
    return p;
  }
  const float* F32(const float* p, size_t len, const char* name, int64_t need, const std::string& what) {
    return Buf(p, len, name, need, what);
  }
  float* F32(float* p, size_t len, const char* name, int64_t need, const std::string& what) {
    return Buf(p, len, name, need, what);
  }
  const int32_t* I32(const int32_t* p, size_t len, const char* name, int64_t need, const std::string& what) {
    return Buf(p, len, name, need, what);
  }
  uint16_t* U16(uint16_t* p, size_t len, const char* name, int64_t need, const std::string& what) {
    return Buf(p, len, name, need, what);
  }
  // A union operand: a Float32Array or a Uint16Array of bf16 bit patterns, `need` elements of either.
  const void* F32OrBf16(const void* p, size_t len, dpo_dtype dtype, const char* name, int64_t need,
                        const std::string& what) {
    if (ok() && p != nullptr && dtype != DPO_F32 && dtype != DPO_BF16) {
      TypeFail(std::string(name) + " has an unknown dtype " + std::to_string(static_cast<int>(dtype)));
      return nullptr;
    }
    return Buf(p, len, name, need, what);
  }
  // An optional Int32Array: null/undefined gives nullptr without failing.
  const int32_t* OptI32(const int32_t* p, size_t len, const char* name, int64_t need, const std::string& what) {
    if (p == nullptr && len == 0) return nullptr;
    return Buf(p, len, name, need, what);
  }

  // Fails (RangeError) when bad; returns ok().
  bool Require(bool good, const std::string& msg) {
    if (ok() && !good) RangeFail(msg);
    return ok();
  }
  void RangeFail(const std::string& msg) { Fail(DPO_RANGE_ERROR, msg); }
  void TypeFail(const std::string& msg) { Fail(DPO_TYPE_ERROR, msg); }

 private:
  static const char* TypeName(const float*) { return " Float32Array"; }
  static const char* TypeName(const int32_t*) { return "n Int32Array"; }
  static const char* TypeName(const uint16_t*) { return " Uint16Array"; }
  static const char* TypeName(const void*) { return " Float32Array or a Uint16Array of bf16 values"; }
  void Fail(int status, const std::string& msg) {
    if (!ok()) return;
    status_ = SetError(status, std::string(kernel_) + ": " + msg);
  }

  const char* kernel_;
  int status_ = DPO_OK;
};

}  // namespace dpo
