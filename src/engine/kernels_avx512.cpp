// AVX-512 (F/BW/VL/DQ) kernels: exact-f32 matmul for F32 / BF16 / F16 weights and the vector
// helpers. Compiled for AVX-512 through the target pragma below (only this file's functions);
// called only after isa_supported(kAvx512).
#include "kernels_target.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels_dispatch.h"

QMETER_KERNELS_BEGIN_AVX512

namespace qmeter::engine::kernels::avx512 {
namespace {

// Weights of one row, 16 at a time, widened to f32 (exactly: bf16 and f16 are subsets of f32).
template <DType D>
struct Weights;

template <>
struct Weights<DType::kF32> {
  using Elem = float;
  static __m512 load(const Elem* p) { return _mm512_loadu_ps(p); }
  static __m512 load_tail(const Elem* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
};

template <>
struct Weights<DType::kBF16> {
  using Elem = std::uint16_t;
  // bf16 is the upper half of an f32: zero-extend to 32 bits and shift into place.
  static __m512 widen(__m256i h) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  static __m512 load(const Elem* p) { return widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
  static __m512 load_tail(const Elem* p, __mmask16 m) { return widen(_mm256_maskz_loadu_epi16(m, p)); }
};

template <>
struct Weights<DType::kF16> {
  using Elem = std::uint16_t;
  static __m512 load(const Elem* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
  static __m512 load_tail(const Elem* p, __mmask16 m) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)); }
};

// R rows x B activations. Every (row, activation) pair has one 16-lane accumulator fed in
// column order and reduced the same way, whatever R and B are: the result of an element does
// not depend on the tile it was computed in (so not on the thread split or the batch size).
template <DType D, int R, int B>
void tile(const typename Weights<D>::Elem* w, long cols, const float* x, float* y, long y_stride) {
  using W = Weights<D>;
  __m512 acc[R][B];
#pragma GCC unroll 4
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < B; ++j) acc[i][j] = _mm512_setzero_ps();
  // One 64-byte line per row per step (two 16-column chunks for 16-bit weights), prefetching
  // ahead; the chunks still enter each accumulator in column order.
  constexpr long kLine = 64 / sizeof(typename W::Elem);
  long c = 0;
  auto chunk = [&](long col) __attribute__((always_inline)) {
    __m512 xv[B];
#pragma GCC unroll 4
    for (int j = 0; j < B; ++j) xv[j] = _mm512_loadu_ps(x + j * cols + col);
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i) {
      const __m512 wv = W::load(w + i * cols + col);
#pragma GCC unroll 4
      for (int j = 0; j < B; ++j) acc[i][j] = _mm512_fmadd_ps(wv, xv[j], acc[i][j]);
    }
  };
  for (; c + kLine <= cols; c += kLine) {
    prefetch_tile_rows(w, cols * sizeof(w[0]), R, c * sizeof(w[0]));
#pragma GCC unroll 2
    for (long k = 0; k < kLine; k += 16) chunk(c + k);
  }
  for (; c + 16 <= cols; c += 16) chunk(c);
  if (c < cols) {
    const __mmask16 m = static_cast<__mmask16>((1u << (cols - c)) - 1u);
    __m512 xv[B];
#pragma GCC unroll 4
    for (int j = 0; j < B; ++j) xv[j] = _mm512_maskz_loadu_ps(m, x + j * cols + c);
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i) {
      const __m512 wv = W::load_tail(w + i * cols + c, m);
#pragma GCC unroll 4
      for (int j = 0; j < B; ++j) acc[i][j] = _mm512_fmadd_ps(wv, xv[j], acc[i][j]);
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < B; ++j) y[j * y_stride + i] = _mm512_reduce_add_ps(acc[i][j]);
}

constexpr int kTileRows = 4;
constexpr int kTileBatch = 4;
// Activations of one batch block stay in L2 while every row tile of the range streams past.
constexpr long kBatchBlockBytes = 256 * 1024;

template <DType D>
using TileFn = void (*)(const typename Weights<D>::Elem*, long, const float*, float*, long);

template <DType D, int R>
constexpr TileFn<D> kRowTiles[kTileBatch] = {tile<D, R, 1>, tile<D, R, 2>, tile<D, R, 3>, tile<D, R, 4>};

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

__mmask16 tail_mask(int n) { return static_cast<__mmask16>((1u << n) - 1u); }

// e^x: x = n*ln2 + r with |r| <= ln2/2, e^r by its degree-7 Taylor polynomial (truncation
// < 6e-9 relative), then scaled by 2^n with VSCALEFPS, which also rounds correctly into the
// subnormal range. Relative error a few f32 ulps; inputs are clamped to [-110, 88.376]
// (e^-110 * 1.5 is below half the smallest subnormal, so it rounds to 0 as e^x does for any
// x < -103.98, and -inf gives 0; 88.376 keeps 2^n finite).
__m512 exp16(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-110.0f)), _mm512_set1_ps(88.3762626647949f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);  // ln2 split: hi part exact
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.0f / 5040);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

float dot(const float* a, const float* b, int n) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int i = 0;
  for (; i + 32 <= n; i += 32) {
    acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
    acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
  }
  for (; i < n; i += 16) {
    const __mmask16 m = tail_mask(std::min(16, n - i));
    acc0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc0);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

void axpy(float alpha, const float* x, float* y, int n) {
  const __m512 a = _mm512_set1_ps(alpha);
  for (int i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(std::min(16, n - i));
    const __m512 r = _mm512_fmadd_ps(a, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i));
    _mm512_mask_storeu_ps(y + i, m, r);
  }
}

void rmsnorm(const float* x, const float* weight, int n, float eps, float* out) {
  __m512 ss = _mm512_setzero_ps();
  for (int i = 0; i < n; i += 16) {
    const __m512 v = _mm512_maskz_loadu_ps(tail_mask(std::min(16, n - i)), x + i);
    ss = _mm512_fmadd_ps(v, v, ss);
  }
  const float scale = 1.0f / std::sqrt(_mm512_reduce_add_ps(ss) / static_cast<float>(n) + eps);
  const __m512 s = _mm512_set1_ps(scale);
  for (int i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(std::min(16, n - i));
    const __m512 v = _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), s),
                                   _mm512_maskz_loadu_ps(m, weight + i));
    _mm512_mask_storeu_ps(out + i, m, v);
  }
}

void softmax(float* x, int n) {
  if (n <= 0) return;
  __m512 mx = _mm512_set1_ps(-INFINITY);
  for (int i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(std::min(16, n - i));
    mx = _mm512_mask_max_ps(mx, m, mx, _mm512_maskz_loadu_ps(m, x + i));
  }
  const __m512 max = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
  __m512 sum = _mm512_setzero_ps();
  for (int i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(std::min(16, n - i));
    const __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), max));
    sum = _mm512_mask_add_ps(sum, m, sum, e);
    _mm512_mask_storeu_ps(x + i, m, e);
  }
  const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
  for (int i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(std::min(16, n - i));
    _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv));
  }
}

void silu_mul(const float* gate, const float* up, int n, float* out) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(std::min(16, n - i));
    const __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
    const __m512 u = _mm512_maskz_loadu_ps(m, up + i);
    const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), g));
    _mm512_mask_storeu_ps(out + i, m, _mm512_div_ps(_mm512_mul_ps(g, u), _mm512_add_ps(one, e)));
  }
}

}  // namespace

const VectorOps kVectorOps = {dot, axpy, rmsnorm, softmax, silu_mul};

}  // namespace qmeter::engine::kernels::avx512

QMETER_KERNELS_END
