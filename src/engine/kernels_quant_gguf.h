#pragma once
// Private: matmul kernels of llama.cpp's block formats (gguf_blocks.h). Activations stay f32 and
// the weights are dequantized in registers to exactly the reference values (d * q, d * (q - 8),
// (d * sc) * q - dmin * m are all exact or rounded once, as gguf_row_to_f32 does), so a SIMD
// kernel differs from the scalar reference only in the order of the f32 sums. (llama.cpp instead
// quantizes each activation row to q8 and uses int8 dot products; keeping f32 activations is
// more exact, and decode is bound by the weight bytes either way.)
#include "kernels_dispatch.h"

namespace qmeter::engine::kernels {

namespace scalar {
// Any of the three: the row dequantized by gguf_row_to_f32, then a dot product in column order.
void matmul_gguf(const Matrix&, const float*, const void*, int, float*, int, int);
}  // namespace scalar
namespace avx512 {
void matmul_gguf_q8_0(const Matrix&, const float*, const void*, int, float*, int, int);
void matmul_gguf_q4_0(const Matrix&, const float*, const void*, int, float*, int, int);
void matmul_gguf_q4_k(const Matrix&, const float*, const void*, int, float*, int, int);
}  // namespace avx512

#define QMETER_GGUF_KERNEL_ROWS                                        \
  {Isa::kScalar, DType::kGgufQ8_0, 1, scalar::matmul_gguf},            \
      {Isa::kScalar, DType::kGgufQ4_0, 1, scalar::matmul_gguf},        \
      {Isa::kScalar, DType::kGgufQ4K, 1, scalar::matmul_gguf},         \
      {Isa::kAvx512, DType::kGgufQ8_0, 1, avx512::matmul_gguf_q8_0},   \
      {Isa::kAvx512, DType::kGgufQ4_0, 1, avx512::matmul_gguf_q4_0},   \
      {Isa::kAvx512, DType::kGgufQ4K, 1, avx512::matmul_gguf_q4_k},

}  // namespace qmeter::engine::kernels
