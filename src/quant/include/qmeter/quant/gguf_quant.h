#pragma once
// Quantizers to llama.cpp's block formats (engine/gguf_blocks.h), following llama.cpp's
// importance-free procedures (quantize_row_*_ref, what llama-quantize runs without an importance
// matrix), so the blocks match what llama.cpp writes for the same f32 weights:
//   q8_0:   d = amax / 127, q = round(x / d) (half away from zero).
//   q4_0 / q5_0: d = m / -8 (/ -16) with m the weight of largest magnitude (sign kept),
//           q = min(15, trunc(x / d + 8.5)) (31, 16.5).
//   q4_1 / q5_1: d = (max - min) / 15 (/ 31), m = min, q = trunc((x - min) / d + 0.5).
//   q2_K:   per 16 weights a (scale, min) fit minimizing the |x|-weighted absolute error over 16
//           candidate step counts (make_qkx2_quants, use_mad); scales and mins to 4 bits.
//   q3_K:   per 16 weights a symmetric 3-bit fit refined code by code (make_q3_quants); 6-bit
//           signed scales against the largest (d = max / -32).
//   q4_K / q5_K: per 32 weights a weighted least-squares (scale, min) search over 21 / 16
//           candidate step counts (make_qkx2_quants, weights sqrt(mean x^2) + |x|); 6-bit scales
//           and mins against the largest (d = max / 63); codes recomputed from the stored scales.
//   q6_K:   per 16 weights the best of 19 symmetric scales weighted by x^2 (make_qx_quants);
//           8-bit signed scales against the largest (d = max / -128).
//   iq4_nl / iq4_xs: per 32 weights the best of 16 scales for the 16-level table, weighted by x^2,
//           each weight on the nearest level (midpoint search); iq4_xs adds 6-bit sub-block scales
//           (d = max / -32).
// Rows whose width is not a multiple of the block cannot be stored in the format (ggml has no
// partial blocks). Rule, per matrix (gguf_storage_dtype), llama-quantize's fallback:
//   q2_K, q3_K -> q4_0, iq4_xs -> iq4_nl, q4_K -> q5_0, q5_K -> q5_1, q6_K -> q8_0 when
//   cols % 256 != 0 (llama.cpp commit 0ad4a86, which tests/llamacpp checks byte for byte);
//   then any -> f16 when cols % 32 != 0 (llama.cpp refuses such a tensor; qmeter keeps it f16).
// No padded partial block is ever written: every file stays loadable by llama.cpp.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "qmeter/engine/kernels.h"
#include "qmeter/engine/model.h"

namespace qmeter::quant {

// One row of `n` weights (n a multiple of the block) into `out` (gguf_row_bytes(dtype, n) bytes).
void quantize_row_q8_0(const float* x, int n, std::uint8_t* out);
void quantize_row_q4_0(const float* x, int n, std::uint8_t* out);
void quantize_row_q4_k(const float* x, int n, std::uint8_t* out);
void quantize_row_q4_1(const float* x, int n, std::uint8_t* out);
void quantize_row_q5_0(const float* x, int n, std::uint8_t* out);
void quantize_row_q5_1(const float* x, int n, std::uint8_t* out);
void quantize_row_q2_k(const float* x, int n, std::uint8_t* out);
void quantize_row_q3_k(const float* x, int n, std::uint8_t* out);
void quantize_row_q5_k(const float* x, int n, std::uint8_t* out);
void quantize_row_q6_k(const float* x, int n, std::uint8_t* out);
void quantize_row_iq4_nl(const float* x, int n, std::uint8_t* out);
void quantize_row_iq4_xs(const float* x, int n, std::uint8_t* out);
// Any block type (throws for others, and for n not whole blocks).
void quantize_row_gguf(engine::DType d, const float* x, int n, std::uint8_t* out);

// The dtype a matrix of `cols` input columns gets when `want` is asked for (the rule above).
engine::DType gguf_storage_dtype(engine::DType want, int cols);

struct GgufQuantized {
  engine::DType dtype = engine::DType::kF32;  // the block type, or kF16 (fallback)
  std::vector<std::byte> data;                // rows x row bytes, as a GGUF tensor stores them
};
// w [rows][cols] f32 -> the matrix in gguf_storage_dtype(want, cols).
GgufQuantized quantize_gguf_matrix(engine::DType want, const float* w, int rows, int cols);

// llama-quantize's presets (gguf_presets.cpp): the method names q8_0, q4_0, q4_1, q5_0, q5_1,
// q2_k, q3_k_m, q4_k_m, q5_k_m, q6_k, iq4_nl, iq4_xs write llama.cpp's mixture for a dense LLaMA
// model without an importance matrix (llama_tensor_get_type):
//   every preset: the classifier (the token embedding when tied) q6_K (q8_0 stays q8_0; q8_0 when
//     the base type's blocks do not fit its width); the untied token embedding the base type;
//   q2_k:   attn_v q4_K if n_heads / n_kv_heads >= 4 else q3_K; ffn_down and attn_output q3_K;
//   q3_k_m: attn_v q5_K in layers 0-1 else q4_K; ffn_down q5_K in the first n_layers/16, else
//           q4_K; attn_output q4_K;
//   q4_k_m / q5_k_m: attn_v and ffn_down q6_K in the use_more_bits layers (the first and last
//           eighth and every third layer between);
//   iq4_nl / iq4_xs: attn_v q5_K if n_heads / n_kv_heads >= 4; ffn_down q5_K in the first eighth;
//   an 80-layer model (llama.cpp's 70B type): an attn_v of q3_K or q4_K becomes q5_K;
// then gguf_storage_dtype()'s fallback per tensor. "q4_k" is qmeter's pure variant (every linear
// q4_K, embedding and classifier bf16), not a mixture.
struct GgufPreset {
  std::string_view name;
  engine::DType base;       // the preset's default type
  std::uint32_t file_type;  // llama.cpp's llama_ftype (general.file_type)
  bool mixture = true;      // false: only the linear layers, embeddings stay bf16
};
const GgufPreset* gguf_preset(std::string_view method);  // nullptr: not a GGUF method
enum class GgufTensor { kTokenEmbedding, kOutput, kAttnQ, kAttnK, kAttnV, kAttnOutput, kFfnGate, kFfnUp, kFfnDown };
// The stored type of tensor `t` (of layer `layer` < n_layers; `cols` its width), fallback included.
engine::DType gguf_preset_type(const GgufPreset& p, GgufTensor t, int layer, int n_layers, int n_gqa, bool tied, int cols);
// Replaces every matrix of `model` by its quantized form in the preset's mixture.
void apply_gguf_preset(engine::Model& model, const GgufPreset& p);

}  // namespace qmeter::quant
