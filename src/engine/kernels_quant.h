#pragma once
// Private: matmul kernels of the packed weight formats (packed_formats.h), one scalar reference
// and SIMD variants each; their rows are in kMatmulKernels (kernels.cpp): the first four by name,
// the later formats through QMETER_QUANT_KERNEL_ROWS below (so a new format is a row here).
#include "kernels_dispatch.h"

namespace qmeter::engine::kernels {

// Activations of the w8a8 formats, converted once per matmul call (a MatmulKernel's prepare):
// per input token b a scale xscale[b] and the token's values in units of it.
//   fp8:  xscale = amax / 448, values rounded to E4M3, as f32      [batch][cols]
//   int8: xscale = amax / 127, values round(x / xscale) + 128, u8  [batch][round_up(cols, 64)]
// Layout: f32 xscale[batch] padded to 64 bytes, then the values. An all-zero token gets scale 1.
std::size_t prepared_bytes_fp8(int batch, int cols);
void prepare_fp8(const float* x, int batch, int cols, void* out);
std::size_t prepared_bytes_int8(int batch, int cols);
void prepare_int8(const float* x, int batch, int cols, void* out);
// Views of a prepared buffer.
inline const float* prepared_scales(const void* p) { return static_cast<const float*>(p); }
inline std::size_t prepared_scales_bytes(int batch) { return (static_cast<std::size_t>(batch) * 4 + 63) / 64 * 64; }
inline int int8_prepared_stride(int cols) { return (cols + 63) / 64 * 64; }

namespace scalar {
void matmul_q8_row(const Matrix&, const float*, const void*, int, float*, int, int);
void matmul_q4_group(const Matrix&, const float*, const void*, int, float*, int, int);
void matmul_nf4(const Matrix&, const float*, const void*, int, float*, int, int);
void matmul_fp8_row(const Matrix&, const float*, const void*, int, float*, int, int);
void matmul_fp8_row_a8(const Matrix&, const float*, const void*, int, float*, int, int);
// Exact int32 accumulation: y = (scale[r] * xscale[b]) * (float)sum(q * xq), like the SIMD kernels.
void matmul_q8_row_a8(const Matrix&, const float*, const void*, int, float*, int, int);
}  // namespace scalar
namespace avx512 {
void matmul_q8_row(const Matrix&, const float*, const void*, int, float*, int, int);
void matmul_q4_group(const Matrix&, const float*, const void*, int, float*, int, int);
void matmul_nf4(const Matrix&, const float*, const void*, int, float*, int, int);
void matmul_fp8_row(const Matrix&, const float*, const void*, int, float*, int, int);
void matmul_fp8_row_a8(const Matrix&, const float*, const void*, int, float*, int, int);
// int8 x int8: VPDPBUSD when the CPU has AVX512_VNNI (checked once), else VPMADDWD on widened
// 16-bit values; both variants are exposed for the tests.
void matmul_q8_row_a8(const Matrix&, const float*, const void*, int, float*, int, int);
void matmul_q8_row_a8_bw(const Matrix&, const float*, const void*, int, float*, int, int);
void matmul_q8_row_a8_vnni(const Matrix&, const float*, const void*, int, float*, int, int);
bool has_vnni();
}  // namespace avx512
// kQ4Group with VDPBF16PS: activations rounded to bf16 once per call (kernels_quant_q4_bf16.cpp).
std::size_t prepared_bytes_q4_bf16(int batch, int cols);
void prepare_q4_bf16(const float* x, int batch, int cols, void* out);
namespace avx512bf16 {
void matmul_q4_group_dp(const Matrix&, const float*, const void*, int, float*, int, int);
}  // namespace avx512bf16

// The rows of the later packed formats in kMatmulKernels.
#define QMETER_QUANT_KERNEL_ROWS                                                                              \
  {Isa::kScalar, DType::kNf4, 1, scalar::matmul_nf4},                                                         \
      {Isa::kScalar, DType::kFp8Row, 1, scalar::matmul_fp8_row},                                              \
      {Isa::kScalar, DType::kFp8RowA8, 1, scalar::matmul_fp8_row_a8, prepared_bytes_fp8, prepare_fp8},        \
      {Isa::kScalar, DType::kQ8RowA8, 1, scalar::matmul_q8_row_a8, prepared_bytes_int8, prepare_int8},        \
      {Isa::kAvx512, DType::kNf4, 1, avx512::matmul_nf4},                                                     \
      {Isa::kAvx512, DType::kFp8Row, 1, avx512::matmul_fp8_row},                                              \
      {Isa::kAvx512, DType::kFp8RowA8, 1, avx512::matmul_fp8_row_a8, prepared_bytes_fp8, prepare_fp8},        \
      {Isa::kAvx512, DType::kQ8RowA8, 1, avx512::matmul_q8_row_a8, prepared_bytes_int8, prepare_int8},        \
      {Isa::kAvx512Bf16, DType::kQ4Group, 1, avx512bf16::matmul_q4_group_dp, prepared_bytes_q4_bf16, prepare_q4_bf16},

}  // namespace qmeter::engine::kernels
