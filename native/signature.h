// How each C parameter type of the kernel ABI (abi.h) maps to JavaScript arguments, derived from
// the C function's type so the table in abi.h needs no type column:
//   const float* + size_t  'f'  Float32Array, read
//   float* + size_t        'F'  Float32Array, written (or read and written)
//   const int32_t* + size_t 'i' Int32Array (null allowed where the kernel says so)
//   uint16_t* + size_t     'H'  Uint16Array, written
//   const void* + size_t + dpo_dtype
//                          'u'  a union operand: Float32Array (DPO_F32) or Uint16Array of bf16
//                               bit patterns (DPO_BF16), read
//   double                 'd'  number
//   int                    'b'  boolean
//   double* (last)         'r'  the kernel's numeric result (no JavaScript argument)
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "abi.h"

namespace dpo {

template <class T> struct ParamCode;
template <> struct ParamCode<const float*> { static constexpr char c = 'f'; };
template <> struct ParamCode<float*> { static constexpr char c = 'F'; };
template <> struct ParamCode<const int32_t*> { static constexpr char c = 'i'; };
template <> struct ParamCode<uint16_t*> { static constexpr char c = 'H'; };
template <> struct ParamCode<const void*> { static constexpr char c = 'u'; };
template <> struct ParamCode<size_t> { static constexpr char c = 0; };     // length of the previous pointer
template <> struct ParamCode<dpo_dtype> { static constexpr char c = 0; };  // dtype of the previous union operand
template <> struct ParamCode<double> { static constexpr char c = 'd'; };
template <> struct ParamCode<int> { static constexpr char c = 'b'; };
template <> struct ParamCode<double*> { static constexpr char c = 'r'; };

template <class... Ps>
std::string SignatureCodes(int (*)(Ps...)) {
  std::string s;
  for (char c : {ParamCode<Ps>::c...})
    if (c) s += c;
  return s;
}

}  // namespace dpo
