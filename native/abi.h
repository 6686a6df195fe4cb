// The C ABI of the kernels: plain functions on pointers and element counts, shared by both
// bindings — the N-API addon (napi.cc, Node) and the WebAssembly build (wasm.cc, browsers and
// Node). The contract of each kernel is src/tensor/kernels.ts (same names, same argument order).
//
// Conventions:
// - A typed-array argument is two C parameters: the pointer and its length in elements.
// - An operand that may be a Float32Array or a Uint16Array of bf16 bit patterns (a union
//   operand) is three: `const void*`, its length in elements, and its dpo_dtype.
// - Numbers (counts, strides, scalars) are doubles: the entry point validates counts itself
//   (Check::Count), so both bindings pass the JavaScript number through unchanged.
// - Booleans are ints (0 / non-zero).
// - A kernel that returns a number writes it through a trailing `double* result`.
// - Return value: DPO_OK, DPO_TYPE_ERROR or DPO_RANGE_ERROR; dpo_last_error() then holds the
//   message ("<kernel>: <what>"), which the binding throws as TypeError / RangeError.
//
// DPO_KERNEL_TABLE lists every kernel once: its JavaScript name, its C function, and the names
// of its JavaScript arguments. Both bindings are generated from it (the C parameter types say
// how each argument is passed; see napi.cc and wasm.cc). Adding a kernel = its C function in a
// native/*.cc file (with a Check), its declaration and one table line here, its TypeScript
// contract in src/tensor/kernels.ts and reference in src/tensor/reference/.
#pragma once
#include <stddef.h>
#include <stdint.h>

#define DPO_OK 0
#define DPO_TYPE_ERROR 1
#define DPO_RANGE_ERROR 2

#ifdef __cplusplus
extern "C" {
#endif

// The element type of a union operand (the binding sets it from the typed array it was given).
typedef enum dpo_dtype { DPO_F32 = 0, DPO_BF16 = 1 } dpo_dtype;

const char* dpo_last_error(void);

// Thread pool.
int dpo_num_threads(void);
int dpo_set_num_threads(double n);

// GEMM micro-kernel selection: the active name, switch by name, names this CPU supports
// (comma-separated, best first).
const char* dpo_gemm_kernel(void);
int dpo_gemm_set_kernel(const char* name);
const char* dpo_gemm_kernels_supported(void);

int dpo_gemm(int transA, int transB, double M, double N, double K, const float* A, size_t A_len, double strideA,
             const float* B, size_t B_len, double strideB, float* C, size_t C_len, double strideC, double batch,
             double alpha, double beta);

// bf16 GEMM (gemm_bf16.cc): A and B are union operands (float32 rounded to bf16 while packing, or
// bf16 bits); C is float32. Its path selection mirrors the float32 GEMM's.
int dpo_gemm_bf16(int transA, int transB, double M, double N, double K, const void* A, size_t A_len,
                  dpo_dtype A_dtype, double strideA, const void* B, size_t B_len, dpo_dtype B_dtype, double strideB,
                  float* C, size_t C_len, double strideC, double batch, double alpha, double beta);
const char* dpo_gemm_bf16_kernel(void);
int dpo_gemm_bf16_set_kernel(const char* name);
const char* dpo_gemm_bf16_kernels_supported(void);
// float32 → bf16 bits, round-to-nearest-even (n = src_len); not a contract kernel (DPO_ADDON_TABLE).
int dpo_f32_to_bf16(const float* src, size_t src_len, uint16_t* dst, size_t dst_len);

int dpo_rmsnorm_forward(const float* x, size_t x_len, const float* w, size_t w_len, float* out, size_t out_len,
                        float* rstd, size_t rstd_len, double rows, double dim, double eps);
int dpo_rmsnorm_backward(const float* dy, size_t dy_len, const float* x, size_t x_len, const float* w,
                         size_t w_len, const float* rstd, size_t rstd_len, float* dx, size_t dx_len, float* dw,
                         size_t dw_len, double rows, double dim);
int dpo_layernorm_forward(const float* x, size_t x_len, const float* w, size_t w_len, const float* b,
                          size_t b_len, float* out, size_t out_len, float* mean, size_t mean_len, float* rstd,
                          size_t rstd_len, double rows, double dim, double eps);
int dpo_layernorm_backward(const float* dy, size_t dy_len, const float* x, size_t x_len, const float* w,
                           size_t w_len, const float* mean, size_t mean_len, const float* rstd, size_t rstd_len,
                           float* dx, size_t dx_len, float* dw, size_t dw_len, float* db, size_t db_len,
                           double rows, double dim);
int dpo_rope(const float* x, size_t x_len, float* out, size_t out_len, const float* cosT, size_t cos_len,
             const float* sinT, size_t sin_len, const int32_t* pos, size_t pos_len, double batch, double seq,
             double heads, double headDim, int inverse);
int dpo_attention_forward(const float* q, size_t q_len, const float* k, size_t k_len, const float* v,
                          size_t v_len, float* out, size_t out_len, float* lse, size_t lse_len, double batch,
                          double Tq, double Tk, double H, double Hkv, double D, double scale, double kvBatchStride,
                          const int32_t* kvStart, size_t kvStart_len);
int dpo_attention_backward(const float* dout, size_t dout_len, const float* q, size_t q_len, const float* k,
                           size_t k_len, const float* v, size_t v_len, const float* out, size_t out_len,
                           const float* lse, size_t lse_len, float* dq, size_t dq_len, float* dk, size_t dk_len,
                           float* dv, size_t dv_len, double batch, double T, double H, double Hkv, double D,
                           double scale, const int32_t* kvStart, size_t kvStart_len);
int dpo_activation_forward(double kind, const float* x, size_t x_len, float* out, size_t out_len, double n);
int dpo_activation_backward(double kind, const float* x, size_t x_len, const float* dy, size_t dy_len, float* dx,
                            size_t dx_len, double n);
int dpo_swiglu_forward(const float* gate, size_t gate_len, const float* up, size_t up_len, float* out,
                       size_t out_len, double n);
int dpo_swiglu_backward(const float* gate, size_t gate_len, const float* up, size_t up_len, const float* dy,
                        size_t dy_len, float* dgate, size_t dgate_len, float* dup, size_t dup_len, double n);
int dpo_softmax_forward(const float* x, size_t x_len, float* out, size_t out_len, double rows, double cols);
int dpo_softmax_backward(const float* y, size_t y_len, const float* dy, size_t dy_len, float* dx, size_t dx_len,
                         double rows, double cols);
int dpo_log_softmax_gather(const float* logits, size_t logits_len, const int32_t* targets, size_t targets_len,
                           float* logp, size_t logp_len, float* lse, size_t lse_len, double rows, double vocab);
int dpo_log_softmax_gather_backward(const float* logits, size_t logits_len, const int32_t* targets,
                                    size_t targets_len, const float* lse, size_t lse_len, const float* dlogp,
                                    size_t dlogp_len, float* dlogits, size_t dlogits_len, double rows,
                                    double vocab);
int dpo_embedding_forward(const int32_t* ids, size_t ids_len, const float* table, size_t table_len, float* out,
                          size_t out_len, double n, double dim);
int dpo_embedding_backward(const int32_t* ids, size_t ids_len, const float* dy, size_t dy_len, float* dtable,
                           size_t dtable_len, double n, double dim);
int dpo_adamw(float* param, size_t param_len, const float* grad, size_t grad_len, float* m, size_t m_len,
              float* v, size_t v_len, double n, double lr, double beta1, double beta2, double eps,
              double weightDecay, double bc1, double bc2);
int dpo_sum_squares(const float* x, size_t x_len, double n, double* result);
int dpo_scale(float* x, size_t x_len, double n, double s);
int dpo_add(const float* a, size_t a_len, const float* b, size_t b_len, float* out, size_t out_len, double n);
int dpo_mul(const float* a, size_t a_len, const float* b, size_t b_len, float* out, size_t out_len, double n);
int dpo_axpy(double alpha, const float* x, size_t x_len, float* y, size_t y_len, double n);
int dpo_add_row_vector(const float* x, size_t x_len, const float* b, size_t b_len, float* out, size_t out_len,
                       double rows, double n);
int dpo_sum_rows(const float* x, size_t x_len, float* out, size_t out_len, double rows, double n);
int dpo_copy2d(const float* src, size_t src_len, double srcStride, float* dst, size_t dst_len, double dstStride,
               double rows, double cols, int accumulate);

#ifdef __cplusplus
}
#endif

// X(jsName, cFunction, "JavaScript argument names, in order")
#define DPO_KERNEL_TABLE(X)                                                                                  \
  X(gemm, dpo_gemm, "transA transB M N K A strideA B strideB C strideC batch alpha beta")                     \
  X(gemmBf16, dpo_gemm_bf16, "transA transB M N K A strideA B strideB C strideC batch alpha beta")            \
  X(rmsnormForward, dpo_rmsnorm_forward, "x weight out rstd rows dim eps")                                   \
  X(rmsnormBackward, dpo_rmsnorm_backward, "dy x weight rstd dx dweight rows dim")                           \
  X(layernormForward, dpo_layernorm_forward, "x weight bias out mean rstd rows dim eps")                     \
  X(layernormBackward, dpo_layernorm_backward, "dy x weight mean rstd dx dweight dbias rows dim")            \
  X(rope, dpo_rope, "x out cos sin positions batch seq heads headDim inverse")                               \
  X(attentionForward, dpo_attention_forward, "q k v out lse batch Tq Tk H Hkv D scale kvBatchStride kvStart") \
  X(attentionBackward, dpo_attention_backward,                                                               \
    "dout q k v out lse dq dk dv batch T H Hkv D scale kvStart")                                             \
  X(activationForward, dpo_activation_forward, "kind x out n")                                               \
  X(activationBackward, dpo_activation_backward, "kind x dy dx n")                                           \
  X(swigluForward, dpo_swiglu_forward, "gate up out n")                                                      \
  X(swigluBackward, dpo_swiglu_backward, "gate up dy dgate dup n")                                           \
  X(softmaxForward, dpo_softmax_forward, "x out rows cols")                                                  \
  X(softmaxBackward, dpo_softmax_backward, "y dy dx rows cols")                                              \
  X(logSoftmaxGather, dpo_log_softmax_gather, "logits targets logp lse rows vocab")                          \
  X(logSoftmaxGatherBackward, dpo_log_softmax_gather_backward, "logits targets lse dlogp dlogits rows vocab") \
  X(embeddingForward, dpo_embedding_forward, "ids table out n dim")                                          \
  X(embeddingBackward, dpo_embedding_backward, "ids dy dtable n dim")                                        \
  X(adamw, dpo_adamw, "param grad m v n lr beta1 beta2 eps weightDecay bc1 bc2")                             \
  X(sumSquares, dpo_sum_squares, "x n")                                                                      \
  X(scale, dpo_scale, "x n s")                                                                               \
  X(add, dpo_add, "a b out n")                                                                               \
  X(mul, dpo_mul, "a b out n")                                                                               \
  X(axpy, dpo_axpy, "alpha x y n")                                                                           \
  X(addRowVector, dpo_add_row_vector, "x b out rows n")                                                      \
  X(sumRows, dpo_sum_rows, "x out rows n")                                                                   \
  X(copy2d, dpo_copy2d, "src srcStride dst dstStride rows cols accumulate")

// Functions of the N-API addon outside the Kernels contract, bound by the same generator.
#define DPO_ADDON_TABLE(X) X(f32ToBf16, dpo_f32_to_bf16, "src dst")
