// AVX-512 kernels of the NF4 and FP8 (E4M3) formats; weights are dequantized in registers only.
// NF4: the 16 NormalFloat values sit in one register and VPERMPS maps 16 nibbles to values at
// once; the block absmax multiplies a block's partial sum. FP8: an E4M3 byte becomes the f16
// with the same sign, exponent and mantissa bits ((b & 0x80) << 8 | (b & 0x7F) << 7, exactly the
// E4M3 value / 2^8, subnormals included) and VCVTPH2PS widens it; the 2^8 goes into the row scale.
// Up to 8 batch rows share each widened weight vector.
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

template <int NB>
void nf4_rows(const Matrix& w, const PackedHeader& h, const float* x, float* y, int r0, int r1) {
  const auto* base = static_cast<const std::uint8_t*>(w.data) + sizeof(PackedHeader);
  const int cols = w.cols, nb = static_cast<int>(h.n_groups);
  const __m128i low4 = _mm_set1_epi8(0x0F);
  const __m512 table = _mm512_loadu_ps(kNf4Values);
  thread_local std::vector<float> absmax;
  absmax.resize(static_cast<std::size_t>(nb));
  for (int r = r0; r < r1; ++r) {
    const std::uint8_t* row = base + static_cast<std::size_t>(r) * h.row_stride;
    nf4_row_absmax(w, r, absmax.data());
    __m512 total[NB];
    for (int b = 0; b < NB; ++b) total[b] = _mm512_setzero_ps();
    for (int blk = 0; blk < nb; ++blk) {
      const int c0 = blk * kNf4Block, c1 = std::min(cols, c0 + kNf4Block);
      __m512 acc[NB];
      for (int b = 0; b < NB; ++b) acc[b] = _mm512_setzero_ps();
      for (int c = c0; c < c1; c += 32) {
        if ((c & 127) == 0) prefetch_row_ahead(row + c / 2);  // one 64-byte line per 128 columns
        const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + c / 2));
        const __m512 lo = _mm512_permutexvar_ps(_mm512_cvtepu8_epi32(_mm_and_si128(bytes, low4)), table);
        const __m512 hi = _mm512_permutexvar_ps(_mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(bytes, 4), low4)), table);
        if (c + 32 <= c1) {
          for (int b = 0; b < NB; ++b) {
            const float* xb = x + static_cast<std::size_t>(b) * cols + c;
            acc[b] = _mm512_fmadd_ps(lo, _mm512_loadu_ps(xb), acc[b]);
            acc[b] = _mm512_fmadd_ps(hi, _mm512_loadu_ps(xb + 16), acc[b]);
          }
        } else {  // short last chunk: padding codes decode to -1, so the activations are masked to 0
          const __mmask16 m0 = mask_of(c1 - c), m1 = mask_of(c1 - c - 16);
          for (int b = 0; b < NB; ++b) {
            const float* xb = x + static_cast<std::size_t>(b) * cols + c;
            acc[b] = _mm512_fmadd_ps(lo, _mm512_maskz_loadu_ps(m0, xb), acc[b]);
            if (m1) acc[b] = _mm512_fmadd_ps(hi, _mm512_maskz_loadu_ps(m1, xb + 16), acc[b]);
          }
        }
      }
      const __m512 a = _mm512_set1_ps(absmax[static_cast<std::size_t>(blk)]);
      for (int b = 0; b < NB; ++b) total[b] = _mm512_fmadd_ps(acc[b], a, total[b]);
    }
    for (int b = 0; b < NB; ++b) y[static_cast<std::size_t>(b) * w.rows + r] = _mm512_reduce_add_ps(total[b]);
  }
}

// 32 E4M3 codes -> two vectors of f32 values / 2^8.
inline void fp8_widen(const std::uint8_t* q, __m512& w0, __m512& w1) {
  const __m512i v = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q)));
  const __m512i sign = _mm512_and_si512(_mm512_slli_epi16(v, 8), _mm512_set1_epi16(static_cast<short>(0x8000)));
  const __m512i mag = _mm512_slli_epi16(_mm512_and_si512(v, _mm512_set1_epi16(0x7F)), 7);
  const __m512i f16 = _mm512_or_si512(sign, mag);
  w0 = _mm512_cvtph_ps(_mm512_castsi512_si256(f16));
  w1 = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(f16, 1));
}

// y = scale[r] * 2^8 * xscale[b] * sum_c widened(q) * x  (xscale null: 1)
template <int NB>
void fp8_rows(const Matrix& w, const PackedHeader& h, const float* x, const float* xscale, float* y, int r0, int r1) {
  const auto* base = static_cast<const std::uint8_t*>(w.data) + sizeof(PackedHeader);
  const auto* scales = reinterpret_cast<const float*>(base + static_cast<std::size_t>(w.rows) * h.row_stride);
  const int cols = w.cols;
  for (int r = r0; r < r1; ++r) {
    const std::uint8_t* q = base + static_cast<std::size_t>(r) * h.row_stride;
    __m512 acc0[NB], acc1[NB];
    for (int b = 0; b < NB; ++b) acc0[b] = acc1[b] = _mm512_setzero_ps();
    for (int c = 0; c < cols; c += 32) {  // codes are padded to 64 bytes per row: full loads stay in the row
      if ((c & 63) == 0) prefetch_row_ahead(q + c);
      __m512 w0, w1;
      fp8_widen(q + c, w0, w1);
      if (c + 32 <= cols) {
        for (int b = 0; b < NB; ++b) {
          const float* xb = x + static_cast<std::size_t>(b) * cols + c;
          acc0[b] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xb), acc0[b]);
          acc1[b] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xb + 16), acc1[b]);
        }
      } else {
        const __mmask16 m0 = mask_of(cols - c), m1 = mask_of(cols - c - 16);
        for (int b = 0; b < NB; ++b) {
          const float* xb = x + static_cast<std::size_t>(b) * cols + c;
          acc0[b] = _mm512_fmadd_ps(w0, _mm512_maskz_loadu_ps(m0, xb), acc0[b]);
          if (m1) acc1[b] = _mm512_fmadd_ps(w1, _mm512_maskz_loadu_ps(m1, xb + 16), acc1[b]);
        }
      }
    }
    float s;
    std::memcpy(&s, scales + r, sizeof s);
    s *= 256.0f;
    for (int b = 0; b < NB; ++b) {
      const float dot = _mm512_reduce_add_ps(_mm512_add_ps(acc0[b], acc1[b]));
      y[static_cast<std::size_t>(b) * w.rows + r] = xscale ? s * dot * xscale[b] : s * dot;
    }
  }
}

template <int NB>
struct Nf4 {
  static void run(const Matrix& w, const PackedHeader& h, const float* x, const float*, float* y, int r0, int r1) {
    nf4_rows<NB>(w, h, x, y, r0, r1);
  }
};
template <int NB>
struct Fp8 {
  static void run(const Matrix& w, const PackedHeader& h, const float* x, const float* xs, float* y, int r0, int r1) {
    fp8_rows<NB>(w, h, x, xs, y, r0, r1);
  }
};

template <template <int> class Fn>
void tiled(const Matrix& w, const float* x, const float* xscale, int batch, float* y, int r0, int r1) {
  const PackedHeader& h = packed_header(w);
  for (int b0 = 0; b0 < batch; b0 += kBatchTile) {
    const int nb = std::min(kBatchTile, batch - b0);
    const float* xt = x + static_cast<std::size_t>(b0) * w.cols;
    const float* st = xscale ? xscale + b0 : nullptr;
    float* yt = y + static_cast<std::size_t>(b0) * w.rows;
    switch (nb) {
      case 1: Fn<1>::run(w, h, xt, st, yt, r0, r1); break;
      case 2: Fn<2>::run(w, h, xt, st, yt, r0, r1); break;
      case 3: Fn<3>::run(w, h, xt, st, yt, r0, r1); break;
      case 4: Fn<4>::run(w, h, xt, st, yt, r0, r1); break;
      case 5: Fn<5>::run(w, h, xt, st, yt, r0, r1); break;
      case 6: Fn<6>::run(w, h, xt, st, yt, r0, r1); break;
      case 7: Fn<7>::run(w, h, xt, st, yt, r0, r1); break;
      default: Fn<8>::run(w, h, xt, st, yt, r0, r1); break;
    }
  }
}

}  // namespace

void matmul_nf4(const Matrix& w, const float* x, const void*, int batch, float* y, int row_begin, int row_end) {
  tiled<Nf4>(w, x, nullptr, batch, y, row_begin, row_end);
}

void matmul_fp8_row(const Matrix& w, const float* x, const void*, int batch, float* y, int row_begin, int row_end) {
  tiled<Fp8>(w, x, nullptr, batch, y, row_begin, row_end);
}

void matmul_fp8_row_a8(const Matrix& w, const float*, const void* prepared, int batch, float* y, int row_begin, int row_end) {
  const auto* values = reinterpret_cast<const float*>(static_cast<const std::byte*>(prepared) + prepared_scales_bytes(batch));
  tiled<Fp8>(w, values, prepared_scales(prepared), batch, y, row_begin, row_end);
}

}  // namespace qmeter::engine::kernels::avx512

QMETER_KERNELS_END
