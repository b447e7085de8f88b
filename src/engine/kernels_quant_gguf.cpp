// Kernels of llama.cpp's block formats (kernels_quant_gguf.h): the scalar reference, the GGUF rows
// of the kernel table, and AVX-512 kernels that decode each 32-weight group to int8 codes
// (kernels_gguf_decode.h), widen them to f32 in registers, scale them to the exact reference
// weights and accumulate with FMAs; up to 8 batch rows share each decoded group (matrix-matrix),
// batch 1 is the decode path. Never a dequantized copy of the matrix.
#include "kernels_target.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels_quant.h"
#include "kernels_gguf_int8.h"
#include "kernels_quant_gguf.h"
#include "qmeter/engine/gguf_blocks.h"

namespace qmeter::engine::kernels::scalar {

// The generic dequantize-and-dot of the packed formats (packed_row_to_f32, which decodes the GGUF
// blocks through gguf_row_to_f32, then a dot product in column order).
void matmul_gguf(const Matrix& w, const float* x, const void*, int batch, float* y, int row_begin, int row_end) {
  matmul_nf4(w, x, nullptr, batch, y, row_begin, row_end);
}

}  // namespace qmeter::engine::kernels::scalar

namespace qmeter::engine::kernels {

std::span<const MatmulKernel> gguf_matmul_kernels() {
  static const std::vector<MatmulKernel> rows = [] {
    std::vector<MatmulKernel> out;
    for (const GgufBlockTraits& t : gguf_block_types()) {
      out.push_back({Isa::kScalar, t.dtype, 1, t.matmul_scalar});
      if (t.matmul_avx2) out.push_back({Isa::kAvx2, t.dtype, 1, t.matmul_avx2});
      // With a batch-1 int8 kernel, the int8 row serves batch 1 at this level (its f32 kernel is
      // the fallback where the CPU has no VNNI).
      const Int8WeightType* i8 = int8_weight_type(t.dtype);
      if (t.matmul_avx512 && !(i8 && i8->dot_vnni)) out.push_back({Isa::kAvx512, t.dtype, 1, t.matmul_avx512});
    }
    // Int8 activations where the type has that path (kernels_gguf_int8.h): batch >= 2, and batch 1
    // where it has a batch-1 kernel.
    for (const MatmulKernel& k : gguf_int8_act_kernel_rows()) out.push_back(k);
    return out;
  }();
  return rows;
}

}  // namespace qmeter::engine::kernels

QMETER_KERNELS_BEGIN_AVX512

#include "kernels_gguf_decode.h"

namespace qmeter::engine::kernels::avx512 {
namespace {

constexpr int kBatchTile = 8;

// Rows [r0, r1) of w for NB batch rows of x (x and y already offset to the tile): each 32-weight
// group is decoded once (kernels_gguf_decode.h) into two registers of exact weights, used by all
// NB rows of x.
template <int NB, typename Decoder>
void block_rows(const Matrix& w, const float* x, float* y, int r0, int r1) {
  const std::size_t rb = gguf_row_bytes(w.dtype, w.cols);
  const int blocks = w.cols / Decoder::kElems;
  constexpr int kGroupBytes = Decoder::kBytes / Decoder::kGroups;  // prefetch step (q4_K: 144 / 8)
  for (int r = r0; r < r1; ++r) {
    const auto* row = static_cast<const std::uint8_t*>(w.data) + rb * static_cast<std::size_t>(r);
    __m512 acc0[NB], acc1[NB];
    for (int b = 0; b < NB; ++b) acc0[b] = acc1[b] = _mm512_setzero_ps();
    for (int k = 0; k < blocks; ++k) {
      const std::uint8_t* blk = row + static_cast<std::size_t>(k) * Decoder::kBytes;
      alignas(64) float ds[16], ms[16];
      Decoder::scales(blk, ds, ms);
      // Unrolled: each group's bit positions become constants (immediate shifts and masks).
#pragma GCC unroll 8
      for (int j = 0; j < Decoder::kGroups; ++j) {
        // Software prefetch kPrefetchBytes ahead (rows are contiguous, so past the row end is the
        // next row): the hardware prefetcher stops at every 4 KiB page (kernels_dispatch.h).
        __builtin_prefetch(blk + j * kGroupBytes + kPrefetchBytes, 0, 2);
        __m128i c0, c1;
        Decoder::codes(blk, j, c0, c1);
        const __m512 d0 = _mm512_set1_ps(ds[2 * j]);
        const __m512 d1 = Decoder::kSplitScale ? _mm512_set1_ps(ds[2 * j + 1]) : d0;
        const __m512 q0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(c0));
        const __m512 q1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(c1));
        __m512 w0, w1;
        if constexpr (Decoder::kMin) {
          const __m512 m0 = _mm512_set1_ps(ms[2 * j]);
          const __m512 m1 = Decoder::kSplitScale ? _mm512_set1_ps(ms[2 * j + 1]) : m0;
          w0 = _mm512_fmsub_ps(d0, q0, m0);
          w1 = _mm512_fmsub_ps(d1, q1, m1);
        } else {
          w0 = _mm512_mul_ps(d0, q0);
          w1 = _mm512_mul_ps(d1, q1);
        }
        const std::size_t col = static_cast<std::size_t>(k * Decoder::kGroups + j) * 32;
        for (int b = 0; b < NB; ++b) {
          const float* xb = x + static_cast<std::size_t>(b) * w.cols + col;
          acc0[b] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xb), acc0[b]);
          acc1[b] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xb + 16), acc1[b]);
        }
      }
    }
    for (int b = 0; b < NB; ++b) y[static_cast<std::size_t>(b) * w.rows + r] = _mm512_reduce_add_ps(_mm512_add_ps(acc0[b], acc1[b]));
  }
}

template <typename Decoder>
void run_tiles(const Matrix& w, const float* x, int batch, float* y, int row_begin, int row_end) {
  static constexpr GgufTileFn kFns[kBatchTile] = {block_rows<1, Decoder>, block_rows<2, Decoder>, block_rows<3, Decoder>,
                                                  block_rows<4, Decoder>, block_rows<5, Decoder>, block_rows<6, Decoder>,
                                                  block_rows<7, Decoder>, block_rows<8, Decoder>};
  gguf_run_tiles(kFns, w, x, batch, y, row_begin, row_end);
}

}  // namespace

QMETER_GGUF_DECODERS(QMETER_GGUF_DEFINE_ENTRY)

}  // namespace qmeter::engine::kernels::avx512

QMETER_KERNELS_END
