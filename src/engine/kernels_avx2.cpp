// AVX2 + FMA + F16C kernels: exact-f32 matmul for F32 / BF16 / F16 weights and the vector
// helpers, for x86-64 CPUs without AVX-512. Compiled for AVX2 through the target pragma below
// (only this file's functions); called only after isa_supported(kAvx2).
#include "kernels_target.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels_dispatch.h"

QMETER_KERNELS_BEGIN_AVX2

namespace qmeter::engine::kernels::avx2 {
namespace {

// Lanes i < n all ones: the mask of a partial vector for VMASKMOVPS.
__m256i lane_mask(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

template <DType D>
struct Weights;

template <>
struct Weights<DType::kF32> {
  using Elem = float;
  static __m256 load(const Elem* p) { return _mm256_loadu_ps(p); }
};

template <>
struct Weights<DType::kBF16> {
  using Elem = std::uint16_t;
  static __m256 load(const Elem* p) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
};

template <>
struct Weights<DType::kF16> {
  using Elem = std::uint16_t;
  static __m256 load(const Elem* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
};

// Loads the last n < 8 weights of a row through a zero-padded copy (AVX2 has no masked 16-bit
// load; the copy also keeps the read inside the row).
template <DType D>
__m256 load_weight_tail(const typename Weights<D>::Elem* p, int n) {
  typename Weights<D>::Elem buf[8] = {};
  std::memcpy(buf, p, n * sizeof(buf[0]));
  return Weights<D>::load(buf);
}

// Horizontal sum in a fixed order (so results do not depend on the caller).
float reduce_add(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// R rows x B activations; one 8-lane accumulator per (row, activation), the same operations
// whatever R and B are (see the AVX-512 file). 16 YMM registers: R*B + B + 1 <= 11.
template <DType D, int R, int B>
void tile(const typename Weights<D>::Elem* w, long cols, const float* x, float* y, long y_stride) {
  using W = Weights<D>;
  __m256 acc[R][B];
#pragma GCC unroll 4
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < B; ++j) acc[i][j] = _mm256_setzero_ps();
  // One 64-byte line per row per step (2 or 4 chunks of 8 columns), prefetching ahead; the
  // chunks still enter each accumulator in column order.
  constexpr long kLine = 64 / sizeof(typename W::Elem);
  auto chunk = [&](long col) __attribute__((always_inline)) {
    __m256 xv[B];
#pragma GCC unroll 4
    for (int j = 0; j < B; ++j) xv[j] = _mm256_loadu_ps(x + j * cols + col);
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i) {
      const __m256 wv = W::load(w + i * cols + col);
#pragma GCC unroll 4
      for (int j = 0; j < B; ++j) acc[i][j] = _mm256_fmadd_ps(wv, xv[j], acc[i][j]);
    }
  };
  long c = 0;
  for (; c + kLine <= cols; c += kLine) {
    prefetch_tile_rows(w, cols * sizeof(w[0]), R, c * sizeof(w[0]));
#pragma GCC unroll 4
    for (long k = 0; k < kLine; k += 8) chunk(c + k);
  }
  for (; c + 8 <= cols; c += 8) chunk(c);
  if (c < cols) {
    const int n = static_cast<int>(cols - c);
    const __m256i m = lane_mask(n);
    __m256 xv[B];
#pragma GCC unroll 4
    for (int j = 0; j < B; ++j) xv[j] = _mm256_maskload_ps(x + j * cols + c, m);
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i) {
      const __m256 wv = load_weight_tail<D>(w + i * cols + c, n);
#pragma GCC unroll 4
      for (int j = 0; j < B; ++j) acc[i][j] = _mm256_fmadd_ps(wv, xv[j], acc[i][j]);
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < B; ++j) y[j * y_stride + i] = reduce_add(acc[i][j]);
}

constexpr int kTileRows = 4;
constexpr int kTileBatch = 2;
constexpr long kBatchBlockBytes = 256 * 1024;

template <DType D>
using TileFn = void (*)(const typename Weights<D>::Elem*, long, const float*, float*, long);

template <DType D, int R>
constexpr TileFn<D> kRowTiles[kTileBatch] = {tile<D, R, 1>, tile<D, R, 2>};

template <DType D>
void matmul_rows(const Matrix& w, const float* x, int batch, float* y, int row_begin, int row_end) {
  static constexpr const TileFn<D>* kTiles[kTileRows] = {kRowTiles<D, 1>, kRowTiles<D, 2>,
                                                          kRowTiles<D, 3>, kRowTiles<D, 4>};
  const auto* data = static_cast<const typename Weights<D>::Elem*>(w.data);
  const long cols = w.cols;
  const long rows = w.rows;
  const int block = std::max<long>(kTileBatch, kBatchBlockBytes / (cols * 4) / kTileBatch * kTileBatch);
  for (int b0 = 0; b0 < batch; b0 += block) {
    const int b1 = std::min(batch, b0 + block);
    for (int r = row_begin; r < row_end; r += kTileRows) {
      const int nr = std::min(kTileRows, row_end - r);
      for (int b = b0; b < b1; b += kTileBatch) {
        const int nb = std::min(kTileBatch, b1 - b);
        kTiles[nr - 1][nb - 1](data + r * cols, cols, x + b * cols, y + b * rows + r, rows);
      }
    }
  }
}

}  // namespace

void matmul_f32(const Matrix& w, const float* x, const void*, int batch, float* y, int row_begin,
                int row_end) {
  matmul_rows<DType::kF32>(w, x, batch, y, row_begin, row_end);
}
void matmul_bf16(const Matrix& w, const float* x, const void*, int batch, float* y, int row_begin,
                 int row_end) {
  matmul_rows<DType::kBF16>(w, x, batch, y, row_begin, row_end);
}
void matmul_f16(const Matrix& w, const float* x, const void*, int batch, float* y, int row_begin,
                int row_end) {
  matmul_rows<DType::kF16>(w, x, batch, y, row_begin, row_end);
}

// ---- vector helpers ----
namespace {

// e^x as in the AVX-512 file (degree-7 Taylor on |r| <= ln2/2), with 2^n built in the exponent
// field; inputs below -87.33 (results below the smallest normal f32) give 0.
__m256 exp8(__m256 x) {
  const __m256 underflow = _mm256_cmp_ps(x, _mm256_set1_ps(-87.33654f), _CMP_LT_OQ);
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.33654f)), _mm256_set1_ps(88.3762626647949f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.0f / 5040);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  // n is in [-126, 127] here, so 2^n is a normal f32.
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_andnot_ps(underflow, _mm256_mul_ps(p, _mm256_castsi256_ps(bits)));
}

float dot(const float* a, const float* b, int n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  for (; i < n; i += 8) {
    const __m256i m = lane_mask(n - i);
    acc0 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m), acc0);
  }
  return reduce_add(_mm256_add_ps(acc0, acc1));
}

void axpy(float alpha, const float* x, float* y, int n) {
  const __m256 a = _mm256_set1_ps(alpha);
  for (int i = 0; i < n; i += 8) {
    const __m256i m = lane_mask(n - i);
    _mm256_maskstore_ps(y + i, m, _mm256_fmadd_ps(a, _mm256_maskload_ps(x + i, m), _mm256_maskload_ps(y + i, m)));
  }
}

void rmsnorm(const float* x, const float* weight, int n, float eps, float* out) {
  __m256 ss = _mm256_setzero_ps();
  for (int i = 0; i < n; i += 8) {
    const __m256 v = _mm256_maskload_ps(x + i, lane_mask(n - i));
    ss = _mm256_fmadd_ps(v, v, ss);
  }
  const __m256 s = _mm256_set1_ps(1.0f / std::sqrt(reduce_add(ss) / static_cast<float>(n) + eps));
  for (int i = 0; i < n; i += 8) {
    const __m256i m = lane_mask(n - i);
    _mm256_maskstore_ps(out + i, m, _mm256_mul_ps(_mm256_mul_ps(_mm256_maskload_ps(x + i, m), s),
                                                  _mm256_maskload_ps(weight + i, m)));
  }
}

void softmax(float* x, int n) {
  if (n <= 0) return;
  float max = x[0];
  for (int i = 1; i < n; ++i) max = std::fmax(max, x[i]);
  const __m256 mx = _mm256_set1_ps(max);
  __m256 sum = _mm256_setzero_ps();
  for (int i = 0; i < n; i += 8) {
    const __m256i m = lane_mask(n - i);
    const __m256 e = _mm256_and_ps(exp8(_mm256_sub_ps(_mm256_maskload_ps(x + i, m), mx)), _mm256_castsi256_ps(m));
    sum = _mm256_add_ps(sum, e);
    _mm256_maskstore_ps(x + i, m, e);
  }
  const __m256 inv = _mm256_set1_ps(1.0f / reduce_add(sum));
  for (int i = 0; i < n; i += 8) {
    const __m256i m = lane_mask(n - i);
    _mm256_maskstore_ps(x + i, m, _mm256_mul_ps(_mm256_maskload_ps(x + i, m), inv));
  }
}

void silu_mul(const float* gate, const float* up, int n, float* out) {
  const __m256 one = _mm256_set1_ps(1.0f);
  for (int i = 0; i < n; i += 8) {
    const __m256i m = lane_mask(n - i);
    const __m256 g = _mm256_maskload_ps(gate + i, m);
    const __m256 u = _mm256_maskload_ps(up + i, m);
    const __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
    _mm256_maskstore_ps(out + i, m, _mm256_div_ps(_mm256_mul_ps(g, u), _mm256_add_ps(one, e)));
  }
}

}  // namespace

const VectorOps kVectorOps = {dot, axpy, rmsnorm, softmax, silu_mul};

}  // namespace qmeter::engine::kernels::avx2

QMETER_KERNELS_END
