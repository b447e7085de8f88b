// Scalar reference kernels: the ground truth every SIMD variant is tested against, and the
// fallback on CPUs without AVX2. Sums are accumulated in double (f32 x f32 products are exact in
// double), so the reference is more accurate than any f32 SIMD kernel; test bounds are the SIMD
// kernels' own rounding error.
#include <cmath>
#include <cstdint>

#include "kernels_dispatch.h"

namespace qmeter::engine::kernels::scalar {
namespace {

template <typename LoadWeight>
void matmul_rows(const Matrix& w, const float* x, int batch, float* y, int row_begin, int row_end,
                 LoadWeight load) {
  const long cols = w.cols;
  for (int r = row_begin; r < row_end; ++r) {
    for (int b = 0; b < batch; ++b) {
      const float* xb = x + b * cols;
      double acc = 0.0;
      for (long c = 0; c < cols; ++c) acc += static_cast<double>(load(r * cols + c)) * xb[c];
      y[static_cast<long>(b) * w.rows + r] = static_cast<float>(acc);
    }
  }
}

}  // namespace

void matmul_f32(const Matrix& w, const float* x, const void*, int batch, float* y, int row_begin,
                int row_end) {
  const auto* data = static_cast<const float*>(w.data);
  matmul_rows(w, x, batch, y, row_begin, row_end, [data](long i) { return data[i]; });
}

void matmul_bf16(const Matrix& w, const float* x, const void*, int batch, float* y, int row_begin,
                 int row_end) {
  const auto* data = static_cast<const std::uint16_t*>(w.data);
  matmul_rows(w, x, batch, y, row_begin, row_end, [data](long i) { return bf16_to_f32(data[i]); });
}

void matmul_f16(const Matrix& w, const float* x, const void*, int batch, float* y, int row_begin,
                int row_end) {
  const auto* data = static_cast<const std::uint16_t*>(w.data);
  matmul_rows(w, x, batch, y, row_begin, row_end, [data](long i) { return f16_to_f32(data[i]); });
}

namespace {

float dot(const float* a, const float* b, int n) {
  double acc = 0.0;
  for (int i = 0; i < n; ++i) acc += static_cast<double>(a[i]) * b[i];
  return static_cast<float>(acc);
}

void axpy(float alpha, const float* x, float* y, int n) {
  for (int i = 0; i < n; ++i) y[i] = static_cast<float>(y[i] + static_cast<double>(alpha) * x[i]);
}

void rmsnorm(const float* x, const float* weight, int n, float eps, float* out) {
  double ss = 0.0;
  for (int i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const double scale = 1.0 / std::sqrt(ss / n + eps);
  for (int i = 0; i < n; ++i) out[i] = static_cast<float>(x[i] * scale * weight[i]);
}

void softmax(float* x, int n) {
  if (n <= 0) return;
  float max = x[0];
  for (int i = 1; i < n; ++i) max = std::fmax(max, x[i]);
  double sum = 0.0;
  for (int i = 0; i < n; ++i) sum += std::exp(static_cast<double>(x[i]) - max);
  for (int i = 0; i < n; ++i) x[i] = static_cast<float>(std::exp(static_cast<double>(x[i]) - max) / sum);
}

void silu_mul(const float* gate, const float* up, int n, float* out) {
  for (int i = 0; i < n; ++i) {
    const double g = gate[i];
    out[i] = static_cast<float>(g / (1.0 + std::exp(-g)) * up[i]);
  }
}

}  // namespace

const VectorOps kVectorOps = {dot, axpy, rmsnorm, softmax, silu_mul};

}  // namespace qmeter::engine::kernels::scalar
