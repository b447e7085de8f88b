#pragma once
// Quantizers to llama.cpp's block formats q8_0, q4_0 and q4_K (engine/gguf_blocks.h), following
// llama.cpp's reference procedures (quantize_row_*_ref, what llama-quantize runs without an
// importance matrix), so the blocks match what llama.cpp writes for the same f32 weights:
//   q8_0: d = amax / 127, q = round(x / d) (half away from zero).
//   q4_0: d = m / -8 with m the weight of largest magnitude (sign kept), q = min(15, trunc(x / d + 8.5)).
//   q4_K: per 32-weight sub-block a weighted least-squares (scale, min) search over 21 candidate
//         step counts (llama.cpp's make_qkx2_quants, weights sqrt(mean x^2) + |x|); the 8 scales
//         and mins are quantized to 6 bits against the super-block's largest (d = max / 63), and
//         the codes recomputed from the stored scales.
// Rows whose width is not a multiple of the block cannot be stored in the format (ggml has no
// partial blocks, and llama.cpp refuses such tensors or falls back per tensor). Rule, per matrix:
//   q4_K  -> q4_0 when cols % 256 != 0 (llama.cpp falls back to q5_0, which qmeter does not have;
//            q4_0 keeps the 4-bit footprint),
//   any   -> f16 when cols % 32 != 0 (llama.cpp's last fallback).
// No padded partial block is ever written: every file stays loadable by llama.cpp.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "qmeter/engine/kernels.h"

namespace qmeter::quant {

// One row of `n` weights (n a multiple of the block) into `out` (gguf_row_bytes(dtype, n) bytes).
void quantize_row_q8_0(const float* x, int n, std::uint8_t* out);
void quantize_row_q4_0(const float* x, int n, std::uint8_t* out);
void quantize_row_q4_k(const float* x, int n, std::uint8_t* out);

// The dtype a matrix of `cols` input columns gets when `want` is asked for (the rule above).
engine::DType gguf_storage_dtype(engine::DType want, int cols);

struct GgufQuantized {
  engine::DType dtype = engine::DType::kF32;  // the block type, or kF16 (fallback)
  std::vector<std::byte> data;                // rows x row bytes, as a GGUF tensor stores them
};
// w [rows][cols] f32 -> the matrix in gguf_storage_dtype(want, cols).
GgufQuantized quantize_gguf_matrix(engine::DType want, const float* w, int rows, int cols);

}  // namespace qmeter::quant
