// AVX2 kernels of llama.cpp's block formats (kernels_quant_gguf.h), for CPUs without AVX-512:
// the same decoders as the AVX-512 kernels (kernels_gguf_decode.h), each 32-weight group widened
// to four registers of 8 exact f32 weights; up to 4 batch rows share each decoded group (16 ymm
// registers: 4 weights + 2 accumulators per batch row).
#include "kernels_target.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels_quant_gguf.h"
#include "qmeter/engine/gguf_blocks.h"

QMETER_KERNELS_BEGIN_AVX2

#include "kernels_gguf_decode.h"

namespace qmeter::engine::kernels::avx2 {
namespace {

constexpr int kBatchTile = 4;

__attribute__((always_inline)) inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// 8 int8 codes (the low 8 bytes) to f32, scaled: d * q - m (rounded once, as the reference), or
// the exact d * q for types without a min.
template <bool kMin>
__attribute__((always_inline)) inline __m256 weights8(__m128i codes, __m256 d, __m256 m) {
  const __m256 q = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(codes));
  if constexpr (kMin) return _mm256_fmsub_ps(d, q, m);
  return _mm256_mul_ps(d, q);
}

template <int NB, typename Decoder>
void block_rows(const Matrix& w, const float* x, float* y, int r0, int r1) {
  const std::size_t rb = gguf_row_bytes(w.dtype, w.cols);
  const int blocks = w.cols / Decoder::kElems;
  constexpr int kGroupBytes = Decoder::kBytes / Decoder::kGroups;
  constexpr bool kMin = Decoder::kMin;
  for (int r = r0; r < r1; ++r) {
    const auto* row = static_cast<const std::uint8_t*>(w.data) + rb * static_cast<std::size_t>(r);
    __m256 acc0[NB], acc1[NB];
    for (int b = 0; b < NB; ++b) acc0[b] = acc1[b] = _mm256_setzero_ps();
    for (int k = 0; k < blocks; ++k) {
      const std::uint8_t* blk = row + static_cast<std::size_t>(k) * Decoder::kBytes;
      alignas(32) float ds[16], ms[16];
      Decoder::scales(blk, ds, ms);
      // Unrolled: each group's bit positions become constants (immediate shifts and masks).
#pragma GCC unroll 8
      for (int j = 0; j < Decoder::kGroups; ++j) {
        __builtin_prefetch(blk + j * kGroupBytes + kPrefetchBytes, 0, 2);
        __m128i c0, c1;
        Decoder::codes(blk, j, c0, c1);
        const __m256 d0 = _mm256_set1_ps(ds[2 * j]);
        const __m256 d1 = Decoder::kSplitScale ? _mm256_set1_ps(ds[2 * j + 1]) : d0;
        __m256 m0 = _mm256_setzero_ps(), m1 = m0;
        if constexpr (kMin) {
          m0 = _mm256_set1_ps(ms[2 * j]);
          m1 = Decoder::kSplitScale ? _mm256_set1_ps(ms[2 * j + 1]) : m0;
        }
        const __m256 w0 = weights8<kMin>(c0, d0, m0), w1 = weights8<kMin>(_mm_unpackhi_epi64(c0, c0), d0, m0);
        const __m256 w2 = weights8<kMin>(c1, d1, m1), w3 = weights8<kMin>(_mm_unpackhi_epi64(c1, c1), d1, m1);
        const std::size_t col = static_cast<std::size_t>(k * Decoder::kGroups + j) * 32;
        for (int b = 0; b < NB; ++b) {
          const float* xb = x + static_cast<std::size_t>(b) * w.cols + col;
          acc0[b] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xb), acc0[b]);
          acc1[b] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xb + 8), acc1[b]);
          acc0[b] = _mm256_fmadd_ps(w2, _mm256_loadu_ps(xb + 16), acc0[b]);
          acc1[b] = _mm256_fmadd_ps(w3, _mm256_loadu_ps(xb + 24), acc1[b]);
        }
      }
    }
    for (int b = 0; b < NB; ++b) y[static_cast<std::size_t>(b) * w.rows + r] = hsum(_mm256_add_ps(acc0[b], acc1[b]));
  }
}

template <typename Decoder>
void run_tiles(const Matrix& w, const float* x, int batch, float* y, int row_begin, int row_end) {
  static constexpr GgufTileFn kFns[kBatchTile] = {block_rows<1, Decoder>, block_rows<2, Decoder>, block_rows<3, Decoder>,
                                                  block_rows<4, Decoder>};
  gguf_run_tiles(kFns, w, x, batch, y, row_begin, row_end);
}

}  // namespace

QMETER_GGUF_DECODERS(QMETER_GGUF_DEFINE_ENTRY)

}  // namespace qmeter::engine::kernels::avx2

QMETER_KERNELS_END
