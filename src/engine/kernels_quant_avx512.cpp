// AVX-512 kernels of the packed formats. Weights are dequantized in registers only (codes are
// widened to f32 16 at a time; scales are applied once per group / row), never to a full copy.
// Up to 8 batch rows share each widened weight vector (matrix-matrix); batch 1 is the decode path.
#include "kernels_target.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels_quant.h"
#include "qmeter/engine/packed_formats.h"

QMETER_KERNELS_BEGIN_AVX512

namespace qmeter::engine::kernels::avx512 {
namespace {

constexpr int kBatchTile = 8;

__mmask16 mask_of(int n) { return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << std::max(n, 0)) - 1u); }

// y = scale[r] * sum_c q[r][c] * x[c]
template <int NB>
void q8_rows(const Matrix& w, const PackedHeader& h, const float* x, float* y, int r0, int r1) {
  const auto* base = static_cast<const std::uint8_t*>(w.data) + sizeof(PackedHeader);
  const auto* scales = reinterpret_cast<const float*>(base + static_cast<std::size_t>(w.rows) * h.row_stride);
  const int cols = w.cols;
  for (int r = r0; r < r1; ++r) {
    const std::uint8_t* q = base + static_cast<std::size_t>(r) * h.row_stride;
    __m512 acc0[NB], acc1[NB];
    for (int b = 0; b < NB; ++b) acc0[b] = acc1[b] = _mm512_setzero_ps();
    int c = 0;
    for (; c + 32 <= cols; c += 32) {
      if ((c & 63) == 0) prefetch_row_ahead(q + c);
      const __m512 w0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + c))));
      const __m512 w1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + c + 16))));
      for (int b = 0; b < NB; ++b) {
        const float* xb = x + static_cast<std::size_t>(b) * cols + c;
        acc0[b] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xb), acc0[b]);
        acc1[b] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xb + 16), acc1[b]);
      }
    }
    for (; c < cols; c += 16) {  // codes are padded to 64 bytes per row: the full load stays in the row
      const __mmask16 m = mask_of(cols - c);
      const __m512 w0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + c))));
      for (int b = 0; b < NB; ++b)
        acc0[b] = _mm512_fmadd_ps(w0, _mm512_maskz_loadu_ps(m, x + static_cast<std::size_t>(b) * cols + c), acc0[b]);
    }
    float s;
    std::memcpy(&s, scales + r, sizeof s);
    for (int b = 0; b < NB; ++b)
      y[static_cast<std::size_t>(b) * w.rows + r] = s * _mm512_reduce_add_ps(_mm512_add_ps(acc0[b], acc1[b]));
  }
}

// y = sum_g scale_g * (sum_{c in g} q_c x_c - zero_g * sum_{c in g} x_c); the x sums per group are
// computed once per call (xsum: [NB][n_groups]).
template <int NB>
void q4_rows(const Matrix& w, const PackedHeader& h, const float* x, const float* xsum, float* y, int r0, int r1) {
  const auto* base = static_cast<const std::uint8_t*>(w.data) + sizeof(PackedHeader);
  const int cols = w.cols, gs = static_cast<int>(h.group_size), ng = static_cast<int>(h.n_groups);
  const __m128i low4 = _mm_set1_epi8(0x0F);
  for (int r = r0; r < r1; ++r) {
    const std::uint8_t* row = base + static_cast<std::size_t>(r) * h.row_stride;
    const std::uint8_t* scales = row + h.codes_bytes;
    const std::uint8_t* zeros = scales + 2 * ng;
    __m512 total[NB];
    float corr[NB];
    for (int b = 0; b < NB; ++b) {
      total[b] = _mm512_setzero_ps();
      corr[b] = 0.0f;
    }
    for (int g = 0; g < ng; ++g) {
      std::uint16_t s16;
      std::memcpy(&s16, scales + 2 * g, 2);
      const float s = _cvtsh_ss(s16);
      const float sz = s * static_cast<float>(zeros[g]);
      const int c0 = g * gs, c1 = std::min(cols, c0 + gs);
      __m512 lo_acc[NB], hi_acc[NB];
      for (int b = 0; b < NB; ++b) lo_acc[b] = hi_acc[b] = _mm512_setzero_ps();
      for (int c = c0; c < c1; c += 32) {
        const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + c / 2));
        const __m512 lo = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(bytes, low4)));
        const __m512 hi = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(bytes, 4), low4)));
        if (c + 32 <= c1) {
          for (int b = 0; b < NB; ++b) {
            const float* xb = x + static_cast<std::size_t>(b) * cols + c;
            lo_acc[b] = _mm512_fmadd_ps(lo, _mm512_loadu_ps(xb), lo_acc[b]);
            hi_acc[b] = _mm512_fmadd_ps(hi, _mm512_loadu_ps(xb + 16), hi_acc[b]);
          }
        } else {  // the short last block: masked activations (padding codes are zero anyway)
          const __mmask16 m0 = mask_of(c1 - c), m1 = mask_of(c1 - c - 16);
          for (int b = 0; b < NB; ++b) {
            const float* xb = x + static_cast<std::size_t>(b) * cols + c;
            lo_acc[b] = _mm512_fmadd_ps(lo, _mm512_maskz_loadu_ps(m0, xb), lo_acc[b]);
            if (m1) hi_acc[b] = _mm512_fmadd_ps(hi, _mm512_maskz_loadu_ps(m1, xb + 16), hi_acc[b]);
          }
        }
      }
      const __m512 sv = _mm512_set1_ps(s);
      for (int b = 0; b < NB; ++b) {
        total[b] = _mm512_fmadd_ps(_mm512_add_ps(lo_acc[b], hi_acc[b]), sv, total[b]);
        corr[b] += sz * xsum[static_cast<std::size_t>(b) * ng + g];
      }
    }
    for (int b = 0; b < NB; ++b) y[static_cast<std::size_t>(b) * w.rows + r] = _mm512_reduce_add_ps(total[b]) - corr[b];
  }
}

template <template <int> class Fn, typename... Args>
void by_tile(int nb, Args... args) {
  switch (nb) {
    case 1: Fn<1>::run(args...); break;
    case 2: Fn<2>::run(args...); break;
    case 3: Fn<3>::run(args...); break;
    case 4: Fn<4>::run(args...); break;
    case 5: Fn<5>::run(args...); break;
    case 6: Fn<6>::run(args...); break;
    case 7: Fn<7>::run(args...); break;
    default: Fn<8>::run(args...); break;
  }
}

template <int NB>
struct Q8 {
  static void run(const Matrix& w, const PackedHeader& h, const float* x, float* y, int r0, int r1) {
    q8_rows<NB>(w, h, x, y, r0, r1);
  }
};
template <int NB>
struct Q4 {
  static void run(const Matrix& w, const PackedHeader& h, const float* x, const float* xs, float* y, int r0, int r1) {
    q4_rows<NB>(w, h, x, xs, y, r0, r1);
  }
};

}  // namespace

void matmul_q8_row(const Matrix& w, const float* x, const void*, int batch, float* y, int row_begin, int row_end) {
  const PackedHeader& h = packed_header(w);
  for (int b0 = 0; b0 < batch; b0 += kBatchTile) {
    const int nb = std::min(kBatchTile, batch - b0);
    by_tile<Q8>(nb, w, h, x + static_cast<std::size_t>(b0) * w.cols, y + static_cast<std::size_t>(b0) * w.rows,
                row_begin, row_end);
  }
}

void matmul_q4_group(const Matrix& w, const float* x, const void*, int batch, float* y, int row_begin, int row_end) {
  const PackedHeader& h = packed_header(w);
  const int ng = static_cast<int>(h.n_groups), gs = static_cast<int>(h.group_size);
  thread_local std::vector<float> xsum;
  xsum.assign(static_cast<std::size_t>(batch) * ng, 0.0f);
  for (int b = 0; b < batch; ++b)
    for (int c = 0; c < w.cols; ++c) xsum[static_cast<std::size_t>(b) * ng + c / gs] += x[static_cast<std::size_t>(b) * w.cols + c];
  for (int b0 = 0; b0 < batch; b0 += kBatchTile) {
    const int nb = std::min(kBatchTile, batch - b0);
    by_tile<Q4>(nb, w, h, x + static_cast<std::size_t>(b0) * w.cols, xsum.data() + static_cast<std::size_t>(b0) * ng,
                y + static_cast<std::size_t>(b0) * w.rows, row_begin, row_end);
  }
}

}  // namespace qmeter::engine::kernels::avx512

QMETER_KERNELS_END
