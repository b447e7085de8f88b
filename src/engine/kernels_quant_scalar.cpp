// Scalar reference kernels of the packed formats: dequantize one weight at a time (exactly:
// scale * (q - zero) is exact in f32 for f16 scales and small integer codes) and accumulate in f32
// in column order. The ground truth of the SIMD kernels' tests. Also the activation conversions
// of the w8a8 formats, shared by every variant (so they see the same quantized activations).
#include <algorithm>
#include <cmath>
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
    q4_group_stored_row_to_f32(w, r, row.data());  // stored column order: matmul gathered x to match
    for (int b = 0; b < batch; ++b) {
      const float* xb = x + static_cast<std::size_t>(b) * w.cols;
      float acc = 0.0f;
      for (int c = 0; c < w.cols; ++c) acc += row[static_cast<std::size_t>(c)] * xb[c];
      y[static_cast<std::size_t>(b) * w.rows + r] = acc;
    }
  }
}

}  // namespace qmeter::engine::kernels::scalar

namespace qmeter::engine::kernels {

namespace {

float token_amax(const float* x, int cols) {
  float amax = 0.0f;
  for (int c = 0; c < cols; ++c) amax = std::max(amax, std::fabs(x[c]));
  return amax;
}

}  // namespace

std::size_t prepared_bytes_fp8(int batch, int cols) {
  return prepared_scales_bytes(batch) + sizeof(float) * static_cast<std::size_t>(batch) * cols;
}

void prepare_fp8(const float* x, int batch, int cols, void* out) {
  auto* scales = static_cast<float*>(out);
  auto* values = reinterpret_cast<float*>(static_cast<std::byte*>(out) + prepared_scales_bytes(batch));
  for (int b = 0; b < batch; ++b) {
    const float* xb = x + static_cast<std::size_t>(b) * cols;
    const float amax = token_amax(xb, cols);
    const float s = amax > 0.0f ? amax / kE4m3Max : 1.0f;
    scales[b] = s;
    float* vb = values + static_cast<std::size_t>(b) * cols;
    for (int c = 0; c < cols; ++c) vb[c] = round_to_e4m3(xb[c] / s);
  }
}

std::size_t prepared_bytes_int8(int batch, int cols) {
  return prepared_scales_bytes(batch) + static_cast<std::size_t>(batch) * int8_prepared_stride(cols);
}

void prepare_int8(const float* x, int batch, int cols, void* out) {
  auto* scales = static_cast<float*>(out);
  auto* values = reinterpret_cast<std::uint8_t*>(out) + prepared_scales_bytes(batch);
  const int stride = int8_prepared_stride(cols);
  for (int b = 0; b < batch; ++b) {
    const float* xb = x + static_cast<std::size_t>(b) * cols;
    const float amax = token_amax(xb, cols);
    const float s = amax > 0.0f ? amax / 127.0f : 1.0f;
    scales[b] = s;
    std::uint8_t* vb = values + static_cast<std::size_t>(b) * stride;
    for (int c = 0; c < cols; ++c) {
      const long q = std::clamp(std::lround(xb[c] / s), -127L, 127L);
      vb[c] = static_cast<std::uint8_t>(q + 128);
    }
    std::memset(vb + cols, 128, static_cast<std::size_t>(stride - cols));  // padding is the value 0
  }
}

namespace scalar {

namespace {

// Dequantize-and-dot over rows through packed_row_to_f32 (the formats' definition); `xs` and
// `xscale` select prepared activations.
void dot_rows(const Matrix& w, const float* x, const float* xscale, int batch, float* y, int row_begin, int row_end) {
  std::vector<float> row(static_cast<std::size_t>(w.cols));
  for (int r = row_begin; r < row_end; ++r) {
    packed_row_to_f32(w, r, row.data());
    for (int b = 0; b < batch; ++b) {
      const float* xb = x + static_cast<std::size_t>(b) * w.cols;
      float acc = 0.0f;
      for (int c = 0; c < w.cols; ++c) acc += row[static_cast<std::size_t>(c)] * xb[c];
      y[static_cast<std::size_t>(b) * w.rows + r] = xscale ? acc * xscale[b] : acc;
    }
  }
}

}  // namespace

void matmul_nf4(const Matrix& w, const float* x, const void*, int batch, float* y, int row_begin, int row_end) {
  dot_rows(w, x, nullptr, batch, y, row_begin, row_end);
}

void matmul_fp8_row(const Matrix& w, const float* x, const void*, int batch, float* y, int row_begin, int row_end) {
  dot_rows(w, x, nullptr, batch, y, row_begin, row_end);
}

void matmul_fp8_row_a8(const Matrix& w, const float*, const void* prepared, int batch, float* y, int row_begin, int row_end) {
  const auto* values = reinterpret_cast<const float*>(static_cast<const std::byte*>(prepared) + prepared_scales_bytes(batch));
  dot_rows(w, values, prepared_scales(prepared), batch, y, row_begin, row_end);
}

void matmul_q8_row_a8(const Matrix& w, const float*, const void* prepared, int batch, float* y, int row_begin, int row_end) {
  const PackedHeader& h = packed_header(w);
  const auto* base = static_cast<const std::uint8_t*>(w.data) + sizeof(PackedHeader);
  const auto* scales = reinterpret_cast<const float*>(base + static_cast<std::size_t>(w.rows) * h.row_stride);
  const float* xscale = prepared_scales(prepared);
  const auto* xq = static_cast<const std::uint8_t*>(prepared) + prepared_scales_bytes(batch);
  const int stride = int8_prepared_stride(w.cols);
  for (int r = row_begin; r < row_end; ++r) {
    const auto* q = reinterpret_cast<const std::int8_t*>(base + static_cast<std::size_t>(r) * h.row_stride);
    float s;
    std::memcpy(&s, scales + r, sizeof s);
    for (int b = 0; b < batch; ++b) {
      const std::uint8_t* xb = xq + static_cast<std::size_t>(b) * stride;
      std::int32_t acc = 0;
      for (int c = 0; c < w.cols; ++c) acc += static_cast<std::int32_t>(q[c]) * (static_cast<std::int32_t>(xb[c]) - 128);
      y[static_cast<std::size_t>(b) * w.rows + r] = (s * xscale[b]) * static_cast<float>(acc);
    }
  }
}

}  // namespace scalar
}  // namespace qmeter::engine::kernels
