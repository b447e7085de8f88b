// NF4 and FP8 quantizers of one linear layer (see float_quant.h).
#include "qmeter/quant/float_quant.h"

#include <algorithm>
#include <cmath>

#include "qmeter/engine/packed_formats.h"

namespace qmeter::quant {

using engine::kNf4Block;
using engine::kNf4DoubleBlock;

std::uint8_t nf4_code(float v) {
  const float* t = engine::kNf4Values;
  std::uint8_t best = 0;
  float best_d = std::fabs(v - t[0]);
  for (std::uint8_t k = 1; k < 16; ++k) {
    const float d = std::fabs(v - t[k]);
    if (d < best_d) best = k, best_d = d;
  }
  return best;
}

Nf4Quantized quantize_nf4(const float* w, int rows, int cols, bool double_quant) {
  Nf4Quantized q;
  q.rows = rows;
  q.cols = cols;
  q.n_blocks = (cols + kNf4Block - 1) / kNf4Block;
  q.double_quant = double_quant;
  q.codes.resize(static_cast<std::size_t>(rows) * cols);
  q.absmax.resize(static_cast<std::size_t>(rows) * q.n_blocks);
  for (int r = 0; r < rows; ++r)
    for (int b = 0; b < q.n_blocks; ++b) {
      const int c0 = b * kNf4Block, c1 = std::min(cols, c0 + kNf4Block);
      const float* wr = w + static_cast<std::size_t>(r) * cols;
      float amax = 0.0f;
      for (int c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(wr[c]));
      q.absmax[static_cast<std::size_t>(r) * q.n_blocks + b] = amax;
      for (int c = c0; c < c1; ++c)
        q.codes[static_cast<std::size_t>(r) * cols + c] = amax > 0.0f ? nf4_code(wr[c] / amax) : std::uint8_t{7};  // 7: the exact 0
    }
  if (double_quant) {
    const std::size_t n = q.absmax.size();
    double sum = 0.0;
    for (float a : q.absmax) sum += a;
    q.offset = static_cast<float>(sum / static_cast<double>(n));
    q.absmax2.assign((n + kNf4DoubleBlock - 1) / kNf4DoubleBlock, 0.0f);
    q.absmax_codes.resize(n);
    for (std::size_t blk = 0; blk < q.absmax2.size(); ++blk) {
      const std::size_t i0 = blk * kNf4DoubleBlock, i1 = std::min(n, i0 + kNf4DoubleBlock);
      float amax2 = 0.0f;
      for (std::size_t i = i0; i < i1; ++i) amax2 = std::max(amax2, std::fabs(q.absmax[i] - q.offset));
      if (!(amax2 > 0.0f)) amax2 = 1.0f;
      q.absmax2[blk] = amax2;
      for (std::size_t i = i0; i < i1; ++i) q.absmax_codes[i] = engine::dynamic_map8_code((q.absmax[i] - q.offset) / amax2);
    }
  }
  return q;
}

std::vector<float> Nf4Quantized::stored_absmax() const {
  if (!double_quant) return absmax;
  std::vector<float> out(absmax.size());
  for (std::size_t i = 0; i < out.size(); ++i)
    out[i] = engine::nf4_double_absmax(absmax_codes[i], absmax2[i / kNf4DoubleBlock], offset);
  return out;
}

std::vector<float> Nf4Quantized::dequantized() const {
  const std::vector<float> a = stored_absmax();
  std::vector<float> out(static_cast<std::size_t>(rows) * cols);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) {
      const std::size_t i = static_cast<std::size_t>(r) * cols + c;
      out[i] = engine::kNf4Values[codes[i]] * a[static_cast<std::size_t>(r) * n_blocks + c / kNf4Block];
    }
  return out;
}

std::vector<std::byte> Nf4Quantized::pack() const {
  if (double_quant) return engine::pack_nf4_double(rows, cols, codes.data(), absmax_codes.data(), absmax2.data(), offset);
  return engine::pack_nf4(rows, cols, codes.data(), absmax.data());
}

Fp8Quantized quantize_fp8_rows(const float* w, int rows, int cols) {
  Fp8Quantized q;
  q.rows = rows;
  q.cols = cols;
  q.codes.resize(static_cast<std::size_t>(rows) * cols);
  q.scales.resize(rows);
  for (int r = 0; r < rows; ++r) {
    const float* wr = w + static_cast<std::size_t>(r) * cols;
    float amax = 0.0f;
    for (int c = 0; c < cols; ++c) amax = std::max(amax, std::fabs(wr[c]));
    const float s = amax > 0.0f ? amax / engine::kE4m3Max : 1.0f;
    q.scales[r] = s;
    for (int c = 0; c < cols; ++c) q.codes[static_cast<std::size_t>(r) * cols + c] = engine::f32_to_e4m3(wr[c] / s);
  }
  return q;
}

std::vector<float> Fp8Quantized::dequantized() const {
  std::vector<float> out(static_cast<std::size_t>(rows) * cols);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) {
      const std::size_t i = static_cast<std::size_t>(r) * cols + c;
      out[i] = scales[r] * engine::e4m3_to_f32(codes[i]);
    }
  return out;
}

std::vector<std::byte> Fp8Quantized::pack(engine::DType dtype) const {
  return engine::pack_fp8_row(dtype, rows, cols, codes.data(), scales.data());
}

}  // namespace qmeter::quant
