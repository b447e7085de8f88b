// kQ4Group with AVX512_BF16 (Isa::kAvx512Bf16): the activations are rounded to bf16 once per
// call (like the engine's BF16 matrix-matrix kernel; QMETER_ISA=avx512 keeps the exact f32
// path) and VDPBF16PS does two multiply-adds per lane. A 4-bit code q becomes the bf16 of
// 128 + q without arithmetic: bf16(128 + q) = 0x4300 | q for q < 16 (exponent 7, the code in
// the low mantissa bits), exact. So
//   sum_c s_g (q_c - z_g) x_c = s_g * [ sum_c bf16(128 + q_c) x_c  -  (128 + z_g) * sum_c x_c ]
// where the x sums are of the same bf16-rounded activations (computed in prepare, per 32-column
// block). Per 64 columns: one 32-byte load, one byte->word widening, one shift and two ternary
// logic ops make 64 bf16 weights, then two VDPBF16PS per batch row: about half the instructions
// of the exact path, which is what the batch-1 decode is bound by.
//
// Prepared activations, per batch row: 64-column spans of 64 bf16 words in the order the codes
// unpack to (low nibbles of both 32-column blocks: columns 0-15 and 32-47; then the high
// nibbles: 16-31 and 48-63), zero past `cols`; then f32 sums per 32-column block.
#include "kernels_target.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels_quant.h"
#include "qmeter/engine/packed_formats.h"

namespace qmeter::engine::kernels {

namespace {

int span_cols(int cols) { return (cols + 63) / 64 * 64; }

}  // namespace

std::size_t prepared_bytes_q4_bf16(int batch, int cols) {
  const std::size_t sc = static_cast<std::size_t>(span_cols(cols));
  return static_cast<std::size_t>(batch) * (sc * 2 + sc / 32 * 4);
}

void prepare_q4_bf16(const float* x, int batch, int cols, void* out) {
  const int sc = span_cols(cols);
  auto* words = static_cast<std::uint16_t*>(out);
  auto* sums = reinterpret_cast<float*>(static_cast<std::byte*>(out) + static_cast<std::size_t>(batch) * sc * 2);
  for (int b = 0; b < batch; ++b) {
    const float* xb = x + static_cast<std::size_t>(b) * cols;
    std::uint16_t* wb = words + static_cast<std::size_t>(b) * sc;
    float* sb = sums + static_cast<std::size_t>(b) * (sc / 32);
    for (int blk = 0; blk < sc / 32; ++blk) sb[blk] = 0.0f;
    for (int c = 0; c < sc; ++c) {
      const std::uint16_t h = c < cols ? f32_to_bf16(xb[c]) : 0;
      const int span = c / 64, k = c % 64;
      // k in [0,16) -> slot k; [16,32) -> 32 + k-16; [32,48) -> 16 + k-32; [48,64) -> 48 + k-48
      const int slot = (k / 16 == 0) ? k : (k / 16 == 1) ? 32 + (k - 16) : (k / 16 == 2) ? 16 + (k - 32) : k;
      wb[64 * span + slot] = h;
      sb[c / 32] += bf16_to_f32(h);
    }
  }
}

QMETER_KERNELS_BEGIN_AVX512_BF16

namespace avx512bf16 {
namespace {

constexpr int kBatchTile = 8;

// Group g's f16 scale of a row, widened and broadcast (read straight from the row: staging the
// widened scales in a buffer and reading them back one float at a time cost a store-forwarding
// stall per group).
inline __m512 q4_group_scale(const std::uint8_t* scales, int g) {
  std::uint16_t bits;
  std::memcpy(&bits, scales + 2 * g, 2);
  return _mm512_cvtph_ps(_mm256_set1_epi16(static_cast<short>(bits)));
}
constexpr long kPrefetchAhead = 8192;

struct Q4View {
  const std::uint8_t* base;
  const PackedHeader* h;
  const std::uint16_t* xw;  // prepared words
  const float* gsum;        // [batch][n_groups] sums of the rounded activations per group
  const int* block_group;   // [sc / 32]: the group of each 32-column block (padding: the last)
  int sc;
};

template <int NB>
void rows_tile(const Matrix& w, const Q4View& v, int b0, float* y, int r0, int r1) {
  const PackedHeader& h = *v.h;
  const int gs = static_cast<int>(h.group_size), ng = static_cast<int>(h.n_groups), cols = w.cols;
  const bool aligned_groups = gs % 64 == 0;
  const __m512i m0f = _mm512_set1_epi16(0x0F), e43 = _mm512_set1_epi16(0x4300);
  // Per row, the correction sum_g s_g (128 + z_g) sum_x_g is one vector dot product over the
  // groups (16 at a time).
  for (int r = r0; r < r1; ++r) {
    const std::uint8_t* row = v.base + static_cast<std::size_t>(r) * h.row_stride;
    const std::uint8_t* scales = row + h.codes_bytes;
    const std::uint8_t* zeros = scales + 2 * ng;
    __m512 corr[NB];
#pragma GCC unroll 8
    for (int b = 0; b < NB; ++b) corr[b] = _mm512_setzero_ps();
    for (int g = 0; g < ng; g += 16) {
      const __mmask16 m = ng - g >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (ng - g)) - 1u);
      const __m512 s = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, scales + 2 * g));
      const __m512 z = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, zeros + g)));
      const __m512 sz = _mm512_mul_ps(s, _mm512_add_ps(z, _mm512_set1_ps(128.0f)));
#pragma GCC unroll 8
      for (int b = 0; b < NB; ++b)
        corr[b] = _mm512_fmadd_ps(sz, _mm512_maskz_loadu_ps(m, v.gsum + static_cast<std::size_t>(b0 + b) * ng + g), corr[b]);
    }
    // Two accumulator chains per batch row (low / high nibbles), each folded into its own total.
    __m512 total[NB], total2[NB];
#pragma GCC unroll 8
    for (int b = 0; b < NB; ++b) total[b] = total2[b] = _mm512_setzero_ps();
    const int spans = (cols + 63) / 64;
    // Groups of whole 64-column spans share one scale; otherwise (groups of an odd number of
    // 32-column blocks) each span gets a scale vector: lanes 0-7 hold block A, 8-15 block B.
    const int spans_per_group = aligned_groups ? gs / 64 : 1;
    for (int s0 = 0, g = 0; s0 < spans; s0 += spans_per_group, ++g) {
      const int s1 = std::min(spans, s0 + spans_per_group);
      __m512 acc[NB], acc2[NB];
#pragma GCC unroll 8
      for (int b = 0; b < NB; ++b) acc[b] = acc2[b] = _mm512_setzero_ps();
      for (int s = s0; s < s1; ++s) {
        // The rows are read one after another: request the codes ~2 rows ahead into L2 (the
        // hardware prefetcher alone left the batch-1 loop waiting on memory at ~12 GB/s).
        if ((s & 1) == 0) _mm_prefetch(reinterpret_cast<const char*>(row + 32 * s + kPrefetchAhead), _MM_HINT_T1);
        const __m512i codes = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 32 * s)));
        // (A & B) | C: imm 0xEA
        const __m512bh lo = (__m512bh)_mm512_ternarylogic_epi32(codes, m0f, e43, 0xEA);
        const __m512bh hi = (__m512bh)_mm512_ternarylogic_epi32(_mm512_srli_epi16(codes, 4), m0f, e43, 0xEA);
        const std::uint16_t* xs = v.xw + static_cast<std::size_t>(b0) * v.sc + 64 * s;
#pragma GCC unroll 8
        for (int b = 0; b < NB; ++b) {
          acc[b] = _mm512_dpbf16_ps(acc[b], lo, (__m512bh)_mm512_loadu_si512(xs + static_cast<std::size_t>(b) * v.sc));
          acc2[b] = _mm512_dpbf16_ps(acc2[b], hi, (__m512bh)_mm512_loadu_si512(xs + static_cast<std::size_t>(b) * v.sc + 32));
        }
      }
      // no division in the loop: the block -> group map is made once per call
      const __m512 sv = aligned_groups ? q4_group_scale(scales, g)
                                       : _mm512_mask_blend_ps(0xFF00, q4_group_scale(scales, v.block_group[2 * s0]),
                                                              q4_group_scale(scales, v.block_group[2 * s0 + 1]));
#pragma GCC unroll 8
      for (int b = 0; b < NB; ++b) {
        total[b] = _mm512_fmadd_ps(acc[b], sv, total[b]);
        total2[b] = _mm512_fmadd_ps(acc2[b], sv, total2[b]);
      }
    }
#pragma GCC unroll 8
    for (int b = 0; b < NB; ++b)
      y[static_cast<std::size_t>(b0 + b) * w.rows + r] =
          _mm512_reduce_add_ps(_mm512_sub_ps(_mm512_add_ps(total[b], total2[b]), corr[b]));
  }
}

// Batch 1, four weight rows at a time: four code streams in flight and the activation words
// loaded once for all four (one row at a time left the loads waiting on memory: ~50% of the
// read roofline). Per row the arithmetic is exactly rows_tile<1>'s, in the same order, so a
// row's result does not depend on which of the two computed it (thread ranges, tails).
void rows4_batch1(const Matrix& w, const Q4View& v, float* y, int r) {
  constexpr int R = 4;
  const PackedHeader& h = *v.h;
  const int gs = static_cast<int>(h.group_size), ng = static_cast<int>(h.n_groups), cols = w.cols;
  const bool aligned_groups = gs % 64 == 0;
  const __m512i m0f = _mm512_set1_epi16(0x0F), e43 = _mm512_set1_epi16(0x4300);
  const std::uint8_t* row[R];
  const std::uint8_t* scales[R];
  __m512 corr[R], total[R], total2[R];
  for (int i = 0; i < R; ++i) {
    row[i] = v.base + static_cast<std::size_t>(r + i) * h.row_stride;
    scales[i] = row[i] + h.codes_bytes;
    const std::uint8_t* zeros = scales[i] + 2 * ng;
    corr[i] = _mm512_setzero_ps();
    for (int g = 0; g < ng; g += 16) {
      const __mmask16 m = ng - g >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (ng - g)) - 1u);
      const __m512 s = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, scales[i] + 2 * g));
      const __m512 z = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, zeros + g)));
      const __m512 sz = _mm512_mul_ps(s, _mm512_add_ps(z, _mm512_set1_ps(128.0f)));
      corr[i] = _mm512_fmadd_ps(sz, _mm512_maskz_loadu_ps(m, v.gsum + g), corr[i]);
    }
    total[i] = total2[i] = _mm512_setzero_ps();
  }
  const int spans = (cols + 63) / 64;
  const int spans_per_group = aligned_groups ? gs / 64 : 1;
  const long next_tile = static_cast<long>(R) * h.row_stride;  // the same place in the next tile's rows
  for (int s0 = 0, g = 0; s0 < spans; s0 += spans_per_group, ++g) {
    const int s1 = std::min(spans, s0 + spans_per_group);
    __m512 acc[R], acc2[R];
    for (int i = 0; i < R; ++i) acc[i] = acc2[i] = _mm512_setzero_ps();
    for (int s = s0; s < s1; ++s) {
      const std::uint16_t* xs = v.xw + 64 * s;
      const __m512bh xlo = (__m512bh)_mm512_loadu_si512(xs);
      const __m512bh xhi = (__m512bh)_mm512_loadu_si512(xs + 32);
#pragma GCC unroll 4
      for (int i = 0; i < R; ++i) {
        if ((s & 1) == 0) _mm_prefetch(reinterpret_cast<const char*>(row[i] + 32 * s + next_tile), _MM_HINT_T1);
        const __m512i codes = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row[i] + 32 * s)));
        const __m512bh lo = (__m512bh)_mm512_ternarylogic_epi32(codes, m0f, e43, 0xEA);
        const __m512bh hi = (__m512bh)_mm512_ternarylogic_epi32(_mm512_srli_epi16(codes, 4), m0f, e43, 0xEA);
        acc[i] = _mm512_dpbf16_ps(acc[i], lo, xlo);
        acc2[i] = _mm512_dpbf16_ps(acc2[i], hi, xhi);
      }
    }
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i) {
      const __m512 sv = aligned_groups ? q4_group_scale(scales[i], g)
                                       : _mm512_mask_blend_ps(0xFF00, q4_group_scale(scales[i], v.block_group[2 * s0]),
                                                              q4_group_scale(scales[i], v.block_group[2 * s0 + 1]));
      total[i] = _mm512_fmadd_ps(acc[i], sv, total[i]);
      total2[i] = _mm512_fmadd_ps(acc2[i], sv, total2[i]);
    }
  }
  for (int i = 0; i < R; ++i) y[r + i] = _mm512_reduce_add_ps(_mm512_sub_ps(_mm512_add_ps(total[i], total2[i]), corr[i]));
}

}  // namespace

void matmul_q4_group_dp(const Matrix& w, const float*, const void* prepared, int batch, float* y, int row_begin, int row_end) {
  const PackedHeader& h = packed_header(w);
  const int sc = span_cols(w.cols), ng = static_cast<int>(h.n_groups), gs = static_cast<int>(h.group_size);
  const auto* block_sums = reinterpret_cast<const float*>(static_cast<const std::byte*>(prepared) + static_cast<std::size_t>(batch) * sc * 2);
  thread_local std::vector<float> gsum;
  gsum.assign(static_cast<std::size_t>(batch) * ng, 0.0f);
  for (int b = 0; b < batch; ++b)
    for (int blk = 0; blk < sc / 32; ++blk)
      if (32 * blk < w.cols) gsum[static_cast<std::size_t>(b) * ng + 32 * blk / gs] += block_sums[static_cast<std::size_t>(b) * (sc / 32) + blk];
  thread_local std::vector<int> block_group;
  block_group.resize(static_cast<std::size_t>(sc / 32));
  for (int blk = 0; blk < sc / 32; ++blk) block_group[static_cast<std::size_t>(blk)] = std::min(32 * blk / gs, ng - 1);
  const Q4View v{static_cast<const std::uint8_t*>(w.data) + sizeof(PackedHeader), &h, static_cast<const std::uint16_t*>(prepared),
                 gsum.data(), block_group.data(), sc};
  for (int b0 = 0; b0 < batch; b0 += kBatchTile) {
    switch (std::min(kBatchTile, batch - b0)) {
      case 1: {
        int r = row_begin;
        // rows4_batch1 reads batch row 0 only: the last row of a larger batch (9, 17, ...) takes rows_tile<1>.
        if (b0 == 0)
          for (; r + 4 <= row_end; r += 4) rows4_batch1(w, v, y, r);
        if (r < row_end) rows_tile<1>(w, v, b0, y, r, row_end);
        break;
      }
      case 2: rows_tile<2>(w, v, b0, y, row_begin, row_end); break;
      case 3: rows_tile<3>(w, v, b0, y, row_begin, row_end); break;
      case 4: rows_tile<4>(w, v, b0, y, row_begin, row_end); break;
      case 5: rows_tile<5>(w, v, b0, y, row_begin, row_end); break;
      case 6: rows_tile<6>(w, v, b0, y, row_begin, row_end); break;
      case 7: rows_tile<7>(w, v, b0, y, row_begin, row_end); break;
      default: rows_tile<8>(w, v, b0, y, row_begin, row_end); break;
    }
  }
}

}  // namespace avx512bf16
}  // namespace qmeter::engine::kernels

QMETER_KERNELS_END
