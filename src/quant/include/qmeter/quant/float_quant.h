#pragma once
// Quantizers of one linear layer W [rows = out][cols = in] to the floating-point code books:
// NF4 (bitsandbytes / QLoRA) and FP8 E4M3 per output channel, and the int8 weights of W8A8.
#include <cstdint>
#include <vector>

#include "qmeter/engine/kernels.h"

namespace qmeter::quant {

// NF4, blocks of 64 input columns per row (a shorter last block): absmax = max |w| of the block,
// code = nearest kNf4Values entry of w / absmax. With double quantization the absmax vector
// (flattened [rows][nblocks]) loses its mean (offset) and is quantized in blocks of 256 with the
// dynamic 8-bit map and one f32 absmax2 per block (bitsandbytes' compress_statistics). The codes
// are chosen against the exact absmax (as bitsandbytes does), then the absmax is compressed.
struct Nf4Quantized {
  int rows = 0, cols = 0, n_blocks = 0;
  bool double_quant = false;
  std::vector<std::uint8_t> codes;        // [rows][cols]
  std::vector<float> absmax;              // exact [rows][n_blocks]
  std::vector<std::uint8_t> absmax_codes; // double_quant: [rows][n_blocks]
  std::vector<float> absmax2;             // double_quant: [ceil(rows * n_blocks / 256)]
  float offset = 0.0f;                    // double_quant: mean of absmax
  std::vector<float> stored_absmax() const;  // what dequantization uses, [rows][n_blocks]
  std::vector<float> dequantized() const;
  std::vector<std::byte> pack() const;
};
std::uint8_t nf4_code(float normalized);  // nearest NF4 value (ties to the lower code)
Nf4Quantized quantize_nf4(const float* w, int rows, int cols, bool double_quant);

// FP8 E4M3 per output channel: scale = max |w| / 448, code = E4M3 rounding of w / scale.
struct Fp8Quantized {
  int rows = 0, cols = 0;
  std::vector<std::uint8_t> codes;  // E4M3 bytes [rows][cols]
  std::vector<float> scales;        // [rows]
  std::vector<float> dequantized() const;
  std::vector<std::byte> pack(engine::DType dtype) const;  // kFp8Row or kFp8RowA8
};
Fp8Quantized quantize_fp8_rows(const float* w, int rows, int cols);

}  // namespace qmeter::quant
