#pragma once
// Private: matmul kernels of the packed weight formats (packed_formats.h), one scalar reference
// and one AVX-512 variant each; their rows are in kMatmulKernels (kernels.cpp).
#include "kernels_dispatch.h"

namespace qmeter::engine::kernels {
namespace scalar {
void matmul_q8_row(const Matrix&, const float*, const void*, int, float*, int, int);
void matmul_q4_group(const Matrix&, const float*, const void*, int, float*, int, int);
}  // namespace scalar
namespace avx512 {
void matmul_q8_row(const Matrix&, const float*, const void*, int, float*, int, int);
void matmul_q4_group(const Matrix&, const float*, const void*, int, float*, int, int);
}  // namespace avx512
}  // namespace qmeter::engine::kernels
