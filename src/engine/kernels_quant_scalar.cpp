// Scalar reference kernels of the packed formats: dequantize one weight at a time (exactly:
// scale * (q - zero) is exact in f32 for f16 scales and small integer codes) and accumulate in f32
// in column order. The ground truth of the SIMD kernels' tests.
#include <cstring>
#include <vector>

#include "kernels_quant.h"
#include "qmeter/engine/packed_formats.h"

namespace qmeter::engine::kernels::scalar {

void matmul_q8_row(const Matrix& w, const float* x, const void*, int batch, float* y, int row_begin, int row_end) {
  const PackedHeader& h = packed_header(w);
  const auto* base = static_cast<const std::uint8_t*>(w.data) + sizeof(PackedHeader);
  const auto* scales = reinterpret_cast<const float*>(base + static_cast<std::size_t>(w.rows) * h.row_stride);
  for (int r = row_begin; r < row_end; ++r) {
    const auto* q = reinterpret_cast<const std::int8_t*>(base + static_cast<std::size_t>(r) * h.row_stride);
    float s;
    std::memcpy(&s, scales + r, sizeof s);
    for (int b = 0; b < batch; ++b) {
      const float* xb = x + static_cast<std::size_t>(b) * w.cols;
      float acc = 0.0f;
      for (int c = 0; c < w.cols; ++c) acc += static_cast<float>(q[c]) * xb[c];
      y[static_cast<std::size_t>(b) * w.rows + r] = s * acc;
    }
  }
}

void matmul_q4_group(const Matrix& w, const float* x, const void*, int batch, float* y, int row_begin, int row_end) {
  std::vector<float> row(static_cast<std::size_t>(w.cols));
  for (int r = row_begin; r < row_end; ++r) {
    packed_row_to_f32(w, r, row.data());
    for (int b = 0; b < batch; ++b) {
      const float* xb = x + static_cast<std::size_t>(b) * w.cols;
      float acc = 0.0f;
      for (int c = 0; c < w.cols; ++c) acc += row[static_cast<std::size_t>(c)] * xb[c];
      y[static_cast<std::size_t>(b) * w.rows + r] = acc;
    }
  }
}

}  // namespace qmeter::engine::kernels::scalar
