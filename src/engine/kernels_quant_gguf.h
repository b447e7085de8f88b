#pragma once
// Private: matmul kernels of llama.cpp's block formats (gguf_blocks.h). Activations stay f32 and
// the weights are dequantized in registers to exactly the reference values (d * q, d * (q - 8),
// (d * sc) * q - dmin * m are all exact or rounded once, as gguf_row_to_f32 does), so a SIMD
// kernel differs from the scalar reference only in the order of the f32 sums. They serve every
// batch where the CPU has no AVX-512 VNNI; with it, the int8-activation path (kernels_gguf_int8.h)
// serves every batch (these were compute-bound even at batch 1: 14-26% of the read roofline).
#include <span>

#include "kernels_dispatch.h"

namespace qmeter::engine::kernels {

namespace scalar {
// Any block type: the row dequantized by gguf_row_to_f32, then a dot product in column order.
void matmul_gguf(const Matrix&, const float*, const void*, int, float*, int, int);
}  // namespace scalar
// Per type, f32 activations: matmul_gguf_<type> for every type of the traits table, in
// kernels_quant_gguf.cpp (AVX-512) and kernels_gguf_avx2.cpp (AVX2).
#define QMETER_GGUF_DECLARE_KERNELS(f)                                                                        \
  void f##q8_0(const Matrix&, const float*, const void*, int, float*, int, int);                            \
  void f##q4_0(const Matrix&, const float*, const void*, int, float*, int, int);                            \
  void f##q4_1(const Matrix&, const float*, const void*, int, float*, int, int);                            \
  void f##q5_0(const Matrix&, const float*, const void*, int, float*, int, int);                            \
  void f##q5_1(const Matrix&, const float*, const void*, int, float*, int, int);                            \
  void f##iq4_nl(const Matrix&, const float*, const void*, int, float*, int, int);                          \
  void f##q2_k(const Matrix&, const float*, const void*, int, float*, int, int);                            \
  void f##q3_k(const Matrix&, const float*, const void*, int, float*, int, int);                            \
  void f##q4_k(const Matrix&, const float*, const void*, int, float*, int, int);                            \
  void f##q5_k(const Matrix&, const float*, const void*, int, float*, int, int);                            \
  void f##q6_k(const Matrix&, const float*, const void*, int, float*, int, int);                            \
  void f##iq4_xs(const Matrix&, const float*, const void*, int, float*, int, int);
namespace avx2 {
QMETER_GGUF_DECLARE_KERNELS(matmul_gguf_)
}  // namespace avx2
namespace avx512 {
QMETER_GGUF_DECLARE_KERNELS(matmul_gguf_)
}  // namespace avx512

// The GGUF rows of the kernel table, built once from the traits table (gguf_blocks.h): one row per
// (ISA, block type) that has a kernel. find_matmul_kernel() looks GGUF types up here only, so
// this is the one place a GGUF matmul is dispatched (a batched int8-activation kernel joins as a
// row with min_batch 2 and a prepare function).
std::span<const MatmulKernel> gguf_matmul_kernels();

}  // namespace qmeter::engine::kernels
