// llama-quantize's presets (see gguf_quant.h): which tensor of a LLaMA-family model gets which
// block type. The rules are llama.cpp's llama_tensor_get_type for a dense (non-MoE) model without
// an importance matrix, written out per preset below; gguf_storage_dtype() then applies the
// per-tensor fallback for widths that are not whole blocks.
#include <fmt/format.h>

#include <array>
#include <cstring>

#include "qmeter/core/error.h"
#include "qmeter/engine/gguf_blocks.h"
#include "qmeter/quant/gguf_quant.h"

namespace qmeter::quant {

using engine::DType;

namespace {

// file_type: llama.cpp's enum llama_ftype, written as general.file_type.
const std::array<GgufPreset, 13> kPresets = {{
    {"q8_0", DType::kGgufQ8_0, 7},
    {"q4_0", DType::kGgufQ4_0, 2},
    {"q4_1", DType::kGgufQ4_1, 3},
    {"q5_0", DType::kGgufQ5_0, 8},
    {"q5_1", DType::kGgufQ5_1, 9},
    {"q2_k", DType::kGgufQ2K, 10},
    {"q3_k_m", DType::kGgufQ3K, 12},
    {"q4_k_m", DType::kGgufQ4K, 15},
    {"q5_k_m", DType::kGgufQ5K, 17},
    {"q6_k", DType::kGgufQ6K, 18},
    {"iq4_nl", DType::kGgufIQ4NL, 25},
    {"iq4_xs", DType::kGgufIQ4XS, 30},
    // Not a llama-quantize preset: every linear layer q4_K (like --pure), embedding and classifier
    // kept bf16 (qmeter's original q4_k method).
    {"q4_k", DType::kGgufQ4K, 14, /*mixture=*/false},
}};

// llama.cpp's use_more_bits: the first and last eighth of the layers and every third in between.
bool use_more_bits(int layer, int n_layers) {
  return layer < n_layers / 8 || layer >= 7 * n_layers / 8 || (layer - n_layers / 8) % 3 == 2;
}

}  // namespace

const GgufPreset* gguf_preset(std::string_view method) {
  for (const GgufPreset& p : kPresets)
    if (p.name == method) return &p;
  return nullptr;
}

DType gguf_preset_type(const GgufPreset& p, GgufTensor t, int layer, int n_layers, int n_gqa, bool tied, int cols) {
  const std::string_view f = p.name;
  DType type = p.base;
  const bool is_output = t == GgufTensor::kOutput || (tied && t == GgufTensor::kTokenEmbedding);
  if (is_output) {
    // The classifier (or a tied embedding): q8_0 when the base type's blocks do not fit the
    // width, else q6_K unless the preset is q8_0 (the "Q6_K output" rule of every preset).
    if (cols % engine::gguf_block_elems(type) != 0) type = DType::kGgufQ8_0;
    else if (type != DType::kGgufQ8_0) type = DType::kGgufQ6K;
  } else if (t == GgufTensor::kAttnV) {
    if (f == "q2_k") type = n_gqa >= 4 ? DType::kGgufQ4K : DType::kGgufQ3K;
    else if (f == "q3_k_m") type = layer < 2 ? DType::kGgufQ5K : DType::kGgufQ4K;
    else if ((f == "iq4_nl" || f == "iq4_xs") && n_gqa >= 4) type = DType::kGgufQ5K;
    else if ((f == "q4_k_m" || f == "q5_k_m") && use_more_bits(layer, n_layers)) type = DType::kGgufQ6K;
    // llama.cpp's 70B rule (its LLaMA / Qwen2 70B type is the 80-layer model): 8 query heads share
    // each kv head, so attn_v is small and gets more bits.
    if (n_layers == 80 && (type == DType::kGgufQ3K || type == DType::kGgufQ4K)) type = DType::kGgufQ5K;
  } else if (t == GgufTensor::kFfnDown) {
    if (f == "q2_k") type = DType::kGgufQ3K;
    else if (f == "q3_k_m") type = layer < n_layers / 16 ? DType::kGgufQ5K : DType::kGgufQ4K;
    else if (f == "q4_k_m" && use_more_bits(layer, n_layers)) type = DType::kGgufQ6K;
    else if ((f == "iq4_nl" || f == "iq4_xs") && layer < n_layers / 8) type = DType::kGgufQ5K;
    else if (f == "q5_k_m" && use_more_bits(layer, n_layers)) type = DType::kGgufQ6K;
  } else if (t == GgufTensor::kAttnOutput) {
    if (f == "q2_k") type = DType::kGgufQ3K;
    else if (f == "q3_k_m") type = DType::kGgufQ4K;
  }
  return gguf_storage_dtype(type, cols);
}

void apply_gguf_preset(engine::Model& model, const GgufPreset& p) {
  const engine::ModelConfig& c = model.config;
  engine::ModelWeights& w = model.weights;
  const bool tied = w.classifier.data == w.token_embedding.data;
  const int n_gqa = c.n_kv_heads > 0 ? c.n_heads / c.n_kv_heads : 1;
  auto quantize = [&](engine::Matrix& m, GgufTensor t, int layer) {
    const DType want = gguf_preset_type(p, t, layer, c.n_layers, n_gqa, tied, m.cols);
    std::vector<float> f32(static_cast<std::size_t>(m.rows) * m.cols);
    for (int r = 0; r < m.rows; ++r) engine::matrix_row_to_f32(m, r, f32.data() + static_cast<std::size_t>(r) * m.cols);
    const GgufQuantized q = quantize_gguf_matrix(want, f32.data(), m.rows, m.cols);
    std::byte* data = model.allocate_weights(q.data.size());
    std::memcpy(data, q.data.data(), q.data.size());
    m = engine::Matrix{q.dtype, m.rows, m.cols, data};  // headerless blocks (or f16)
  };
  quantize(w.token_embedding, GgufTensor::kTokenEmbedding, 0);
  if (tied) w.classifier = w.token_embedding;
  else quantize(w.classifier, GgufTensor::kOutput, 0);
  for (int l = 0; l < c.n_layers; ++l) {
    engine::LayerWeights& lw = w.layers[static_cast<std::size_t>(l)];
    quantize(lw.wq, GgufTensor::kAttnQ, l);
    quantize(lw.wk, GgufTensor::kAttnK, l);
    quantize(lw.wv, GgufTensor::kAttnV, l);
    quantize(lw.wo, GgufTensor::kAttnOutput, l);
    quantize(lw.w_gate, GgufTensor::kFfnGate, l);
    quantize(lw.w_up, GgufTensor::kFfnUp, l);
    quantize(lw.w_down, GgufTensor::kFfnDown, l);
  }
}

}  // namespace qmeter::quant
