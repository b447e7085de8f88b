// AVX512_BF16 matrix-matrix kernel for BF16 weights: the activations are rounded to bf16 once
// per call (prepare_bf16) and each VDPBF16PS multiplies 32 weight / activation pairs and adds
// them into 16 f32 lanes, twice the multiply-adds per instruction of the exact path and no
// widening of the weights. Products of two bf16 are exact in f32; the error against exact
// activations is the activation rounding (<= 2^-9 relative each) plus f32 accumulation.
// Compiled for AVX512_BF16 through the target pragma below; called only after
// isa_supported(kAvx512Bf16).
#include "kernels_target.h"

#include <algorithm>
#include <cstdint>

#include "kernels_dispatch.h"

QMETER_KERNELS_BEGIN_AVX512_BF16

namespace qmeter::engine::kernels::avx512bf16 {
namespace {

// Rows of the prepared activations are padded with zeros to a multiple of 32 columns, so the
// kernel loads them at full width; only the weights need a masked tail.
long padded_cols(long cols) { return (cols + 31) / 32 * 32; }

template <int R, int B>
void tile(const std::uint16_t* w, long cols, const std::uint16_t* xq, long xq_stride, float* y,
          long y_stride) {
  __m512 acc[R][B];
#pragma GCC unroll 4
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < B; ++j) acc[i][j] = _mm512_setzero_ps();
  long c = 0;
  for (; c + 32 <= cols; c += 32) {  // one 64-byte line of each row per step
    prefetch_tile_rows(w, cols * 2, R, c * 2);
    __m512bh xv[B];
#pragma GCC unroll 4
    for (int j = 0; j < B; ++j) xv[j] = (__m512bh)_mm512_loadu_si512(xq + j * xq_stride + c);
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i) {
      const __m512bh wv = (__m512bh)_mm512_loadu_si512(w + i * cols + c);
#pragma GCC unroll 4
      for (int j = 0; j < B; ++j) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], wv, xv[j]);
    }
  }
  if (c < cols) {
    const __mmask32 m = static_cast<__mmask32>((1ull << (cols - c)) - 1u);
    __m512bh xv[B];
#pragma GCC unroll 4
    for (int j = 0; j < B; ++j) xv[j] = (__m512bh)_mm512_loadu_si512(xq + j * xq_stride + c);
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i) {
      const __m512bh wv = (__m512bh)_mm512_maskz_loadu_epi16(m, w + i * cols + c);
#pragma GCC unroll 4
      for (int j = 0; j < B; ++j) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], wv, xv[j]);
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < B; ++j) y[j * y_stride + i] = _mm512_reduce_add_ps(acc[i][j]);
}

constexpr int kTileRows = 4;
constexpr int kTileBatch = 4;
constexpr long kBatchBlockBytes = 256 * 1024;

using TileFn = void (*)(const std::uint16_t*, long, const std::uint16_t*, long, float*, long);

template <int R>
constexpr TileFn kRowTiles[kTileBatch] = {tile<R, 1>, tile<R, 2>, tile<R, 3>, tile<R, 4>};
constexpr const TileFn* kTiles[kTileRows] = {kRowTiles<1>, kRowTiles<2>, kRowTiles<3>, kRowTiles<4>};

}  // namespace

std::size_t prepared_bytes_bf16(int batch, int cols) {
  return static_cast<std::size_t>(batch) * padded_cols(cols) * sizeof(std::uint16_t);
}

void prepare_bf16(const float* x, int batch, int cols, void* out) {
  const long stride = padded_cols(cols);
  for (int b = 0; b < batch; ++b) {
    const float* src = x + static_cast<long>(b) * cols;
    auto* dst = static_cast<std::uint16_t*>(out) + b * stride;
    for (long c = 0; c < stride; c += 16) {
      const long n = std::clamp<long>(cols - c, 0, 16);
      const __mmask16 m = static_cast<__mmask16>((1u << n) - 1u);
      // VCVTNEPS2BF16: round to nearest even (subnormal inputs become zero).
      const __m256bh h = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, src + c));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + c), (__m256i)h);
    }
  }
}

void matmul_bf16_dp(const Matrix& w, const float*, const void* prepared, int batch, float* y,
                    int row_begin, int row_end) {
  const auto* data = static_cast<const std::uint16_t*>(w.data);
  const auto* xq = static_cast<const std::uint16_t*>(prepared);
  const long cols = w.cols;
  const long rows = w.rows;
  const long stride = padded_cols(cols);
  const int block = std::max<long>(kTileBatch, kBatchBlockBytes / (stride * 2) / kTileBatch * kTileBatch);
  for (int b0 = 0; b0 < batch; b0 += block) {
    const int b1 = std::min(batch, b0 + block);
    for (int r = row_begin; r < row_end; r += kTileRows) {
      const int nr = std::min(kTileRows, row_end - r);
      for (int b = b0; b < b1; b += kTileBatch) {
        const int nb = std::min(kTileBatch, b1 - b);
        kTiles[nr - 1][nb - 1](data + r * cols, cols, xq + b * stride, stride, y + b * rows + r, rows);
      }
    }
  }
}

}  // namespace qmeter::engine::kernels::avx512bf16

QMETER_KERNELS_END
