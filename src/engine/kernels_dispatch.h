#pragma once
// Private: the kernel table behind matmul() and vector_ops(). Each instruction-set variant lives
// in its own translation unit (kernels_<isa>.cpp) compiled with GCC target attributes, so only
// that file's functions use the wider instructions and the binary runs on any x86-64.
//
// Adding a weight format (e.g. the quantization issue's int8 / int4-group / GGUF blocks):
//   1. a scalar reference kernel in kernels_scalar.cpp (the ground truth of its tests),
//   2. SIMD kernels in the ISA files, 3. one row per (ISA, format) in kMatmulKernels
// (kernels.cpp). Lookup falls back to the next lower ISA, so a scalar row alone already works
// everywhere.
#include <cstddef>
#include <cstdint>

#include "qmeter/engine/kernels.h"

namespace qmeter::engine::kernels {

// Computes y[b * w.rows + r] for r in [row_begin, row_end) and every b < batch.
// x is batch x w.cols f32; `prepared` is what the row's PrepareFn made of x (nullptr if none).
// A kernel must compute each y element with the same operations whatever the range, so results
// do not depend on how rows are split across threads.
using MatmulRowsFn = void (*)(const Matrix& w, const float* x, const void* prepared, int batch,
                              float* y, int row_begin, int row_end);
// Size in bytes of the converted activations, and the conversion (done once per matmul call).
using PreparedBytesFn = std::size_t (*)(int batch, int cols);
using PrepareFn = void (*)(const float* x, int batch, int cols, void* out);

struct MatmulKernel {
  Isa isa;
  DType weights;
  int min_batch;  // serves batch >= min_batch (lets matrix-matrix use another kernel than decode)
  MatmulRowsFn rows;
  PreparedBytesFn prepared_bytes = nullptr;  // nullptr: the kernel reads the f32 x directly
  PrepareFn prepare = nullptr;
};

// The row for (isa, dtype, batch): the largest min_batch <= batch in the highest ISA <= isa that
// has a row for dtype. Never null for the formats of DType.
const MatmulKernel* find_matmul_kernel(Isa isa, DType dtype, int batch);

// Software prefetch for the weight streams of a row tile (`rows` rows of `row_bytes` from w),
// called once per 64-byte step at byte `offset` of the rows. The hardware prefetcher stops at
// every 4 KiB page, and a bf16 row of 2048 weights is exactly one page, so each tile would
// restart it cold: each row's line kPrefetchBytes ahead is requested into L2, and near the end
// of the rows the same offset into the next tile's rows instead. (Measured on the matvec
// benchmark, 512 B..4 KiB ahead into L1 or L2: 2 KiB into L2 was best, +5..10% for bf16.)
// A prefetch past the matrix is harmless: it never faults. always_inline: GCC treats a
// prefetch as free of side effects, so an out-of-line wrapper would be deemed `const` and its
// calls deleted as dead code (seen with GCC 12 across the target-pragma boundary).
constexpr long kPrefetchBytes = 2048;

__attribute__((always_inline)) inline void prefetch_tile_rows(const void* w, long row_bytes, int rows, long offset) {
  const auto base = reinterpret_cast<std::uintptr_t>(w);
  const long ahead = offset + kPrefetchBytes;
  const long next = ahead >= row_bytes ? (rows - 1) * row_bytes : 0;
  for (int i = 0; i < rows; ++i) {
    __builtin_prefetch(reinterpret_cast<const void*>(base + i * row_bytes + next + ahead), 0, 2);
  }
}

// The one-row-at-a-time packed kernels (8-bit codes) read a single stream; without software
// prefetch they waited on memory at under 30% of the read roofline (measured for 4-bit codes,
// bench/engine/packed_matvec_bench), best with the line 4-8 KiB ahead requested into L2.
constexpr long kRowPrefetchBytes = 4096;
__attribute__((always_inline)) inline void prefetch_row_ahead(const void* p) {
  __builtin_prefetch(static_cast<const char*>(p) + kRowPrefetchBytes, 0, 2);
}

// ---- variants (defined in kernels_<isa>.cpp) ----
namespace scalar {
void matmul_f32(const Matrix&, const float*, const void*, int, float*, int, int);
void matmul_bf16(const Matrix&, const float*, const void*, int, float*, int, int);
void matmul_f16(const Matrix&, const float*, const void*, int, float*, int, int);
extern const VectorOps kVectorOps;
}  // namespace scalar

namespace avx2 {
void matmul_f32(const Matrix&, const float*, const void*, int, float*, int, int);
void matmul_bf16(const Matrix&, const float*, const void*, int, float*, int, int);
void matmul_f16(const Matrix&, const float*, const void*, int, float*, int, int);
extern const VectorOps kVectorOps;
}  // namespace avx2

namespace avx512 {
void matmul_f32(const Matrix&, const float*, const void*, int, float*, int, int);
void matmul_bf16(const Matrix&, const float*, const void*, int, float*, int, int);
void matmul_f16(const Matrix&, const float*, const void*, int, float*, int, int);
extern const VectorOps kVectorOps;
}  // namespace avx512

namespace avx512bf16 {
// BF16 weights x bf16-rounded activations with VDPBF16PS (matrix-matrix).
void matmul_bf16_dp(const Matrix&, const float*, const void*, int, float*, int, int);
std::size_t prepared_bytes_bf16(int batch, int cols);
void prepare_bf16(const float* x, int batch, int cols, void* out);
}  // namespace avx512bf16

namespace amx {
// BF16 weights x bf16-rounded activations on AMX tiles (matrix-matrix, kernels_amx.cpp).
void matmul_bf16(const Matrix&, const float*, const void*, int, float*, int, int);
std::size_t prepared_bytes_bf16(int batch, int cols);
void prepare_bf16(const float* x, int batch, int cols, void* out);
}  // namespace amx

}  // namespace qmeter::engine::kernels
