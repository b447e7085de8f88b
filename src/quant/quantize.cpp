// The method registry, calibration text, and the per-model drivers of
// RTN / w8a16 / GPTQ / AWQ (see quantize.h).
#include "qmeter/quant/quantize.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "awq.h"
#include "smoothquant.h"
#include "calibration.h"
#include "layer_access.h"
#include "qmeter/core/error.h"
#include "qmeter/engine/gguf_blocks.h"
#include "qmeter/core/paths.h"
#include "qmeter/engine/packed_formats.h"
#include "qmeter/quant/float_quant.h"
#include "qmeter/quant/gguf_quant.h"
#include "qmeter/quant/linear_quant.h"

namespace qmeter::quant {

using engine::DType;

const std::vector<MethodInfo>& methods() {
  static const std::vector<MethodInfo> table = {
      {"fp32", 32, {32}, false, DType::kF32, "f32 weights (the reference)"},
      {"bf16", 16, {16}, false, DType::kBF16, "bf16 weights"},
      {"fp16", 16, {16}, false, DType::kF16, "f16 weights"},
      {"w8a16", 8, {8}, false, DType::kQ8Row, "int8 weights, per-output-channel symmetric RTN", "rtn-w8"},
      {"w4a16-rtn", 4, {4}, false, DType::kQ4Group, "4-bit group-wise round-to-nearest", "rtn-w{bits}g{group_size}"},
      {"w3a16-rtn", 3, {3}, false, DType::kQ4Group, "3-bit group-wise round-to-nearest (4-bit container)", "rtn-w{bits}g{group_size}"},
      {"gptq", 4, {4, 3}, true, DType::kQ4Group, "GPTQ: Hessian-aware error compensation, lazy 128-column blocks",
       "gptq-w{bits}g{group_size}"},
      {"awq", 4, {4}, true, DType::kQ4Group, "AWQ: activation-aware scales + clipping search, then RTN", "awq-w{bits}g{group_size}"},
      {"nf4", 4, {4}, false, DType::kNf4, "bitsandbytes NormalFloat4, absmax per 64 weights (--double-quant: 8-bit absmax)"},
      {"fp8-w8a16", 8, {8}, false, DType::kFp8Row, "FP8 E4M3 weights, per-output-channel scale", "fp8"},
      {"fp8-w8a8", 8, {8}, false, DType::kFp8RowA8, "FP8 E4M3 weights and per-token dynamic E4M3 activations", "fp8-w8a8"},
      {"smoothquant-w8a8", 8, {8}, true, DType::kQ8RowA8,
       "SmoothQuant: alpha migration into the RMSNorms, int8 per-channel weights x per-token int8 activations", "sq-w8a8"},
      // llama.cpp's block formats (gguf_quant.h), bit-compatible: `qmeter quantize` writes a GGUF file.
      {"q8_0", 8, {8}, false, DType::kGgufQ8_0,
       "GGUF preset Q8_0: q8_0 (int8, one f16 scale per 32) for every matrix incl. embedding and classifier; widths "
       "not a multiple of 32 f16"},
      {"q4_0", 4, {4}, false, DType::kGgufQ4_0,
       "GGUF preset Q4_0: q4_0 (4-bit, one f16 scale per 32), classifier (tied embedding) q6_K, or q8_0 when its width "
       "is not a multiple of 256; widths not a multiple of 32 f16"},
      {"q4_k", 4, {4}, false, DType::kGgufQ4K,
       "GGUF q4_K on every linear layer, embedding and classifier bf16 (qmeter's pure variant, not a llama-quantize "
       "preset); rows not a multiple of 256 fall back to q5_0, not of 32 to f16"},
      // llama-quantize's presets (gguf_quant.h): llama.cpp's per-tensor mixture and its reference
      // quantizers; in every one the classifier (the tied embedding) is q6_K, and a width that is
      // not whole blocks falls back per tensor (q2_K / q3_K to q4_0, q4_K / q5_K / q6_K to q5_0 / q5_1 / q8_0,
      // iq4_xs to iq4_nl, then f16; gguf_quant.h).
      {"q4_1", 4, {4}, false, DType::kGgufQ4_1,
       "GGUF preset Q4_1: q4_1 (scale + min per 32), classifier q6_K; widths not a multiple of 32 f16"},
      {"q5_0", 5, {5}, false, DType::kGgufQ5_0,
       "GGUF preset Q5_0: q5_0 (5-bit, scale per 32), classifier q6_K; widths not a multiple of 32 f16"},
      {"q5_1", 5, {5}, false, DType::kGgufQ5_1,
       "GGUF preset Q5_1: q5_1 (5-bit, scale + min per 32), classifier q6_K; widths not a multiple of 32 f16"},
      {"q2_k", 2, {2}, false, DType::kGgufQ2K,
       "GGUF preset Q2_K: q2_K, attn_v q4_K (n_heads/n_kv_heads >= 4) or q3_K, ffn_down and attn_output q3_K, "
       "classifier q6_K; widths not a multiple of 256: q4_0 (q3_K: q4_0, q4_K: q5_0)"},
      {"q3_k_m", 3, {3}, false, DType::kGgufQ3K,
       "GGUF preset Q3_K_M: q3_K, attn_v q5_K (layers 0-1) / q4_K, ffn_down q5_K (first 1/16) / q4_K, attn_output "
       "q4_K, classifier q6_K; widths not a multiple of 256: q4_0 / q5_0 / q5_1 / q8_0"},
      {"q4_k_m", 4, {4}, false, DType::kGgufQ4K,
       "GGUF preset Q4_K_M: q4_K, attn_v and ffn_down q6_K in the use_more_bits layers (first and last eighth, "
       "every third between), classifier q6_K; widths not a multiple of 256: q5_0 (q6_K: q8_0)"},
      {"q5_k_m", 5, {5}, false, DType::kGgufQ5K,
       "GGUF preset Q5_K_M: q5_K, attn_v and ffn_down q6_K in the use_more_bits layers, classifier q6_K; widths not "
       "a multiple of 256: q5_1 (q6_K: q8_0)"},
      {"q6_k", 6, {6}, false, DType::kGgufQ6K,
       "GGUF preset Q6_K: q6_K everywhere; widths not a multiple of 256: q8_0"},
      {"iq4_nl", 4, {4}, false, DType::kGgufIQ4NL,
       "GGUF preset IQ4_NL: 16-level non-linear 4-bit per 32, attn_v q5_K (n_heads/n_kv_heads >= 4), ffn_down q5_K "
       "(first eighth), classifier q6_K; q5_K widths not a multiple of 256: q5_1"},
      {"iq4_xs", 4, {4}, false, DType::kGgufIQ4XS,
       "GGUF preset IQ4_XS: iq4_nl levels in 256-weight super-blocks with 6-bit scales, otherwise as iq4_nl; "
       "widths not a multiple of 256: iq4_nl"},
  };
  return table;
}

std::vector<std::string> method_names() {
  std::vector<std::string> out;
  for (const MethodInfo& m : methods()) out.push_back(m.name);
  return out;
}

const MethodInfo& method_info(const std::string& name) {
  for (const MethodInfo& m : methods())
    if (m.name == name) return m;
  std::string known;
  for (const MethodInfo& m : methods()) known += (known.empty() ? "" : ", ") + m.name;
  throw UsageError(fmt::format("unknown quantization method '{}' (known: {})", name, known));
}

std::vector<std::vector<int>> calibration_tokens(const engine::Model& model, const std::string& calib_path,
                                                 int samples, int seq_len) {
  if (!model.tokenizer) throw UsageError(fmt::format("{}: calibration needs a tokenizer and the model has none", model.source));
  std::string text;
  if (calib_path.empty()) {
    // Built-in default: the first half of the shared TinyStories validation slice.
    const std::string path = shared_data_dir() + "/eval/tinystories_val.txt";
    if (!std::filesystem::exists(path)) throw UsageError("calibration: no --calib file given and " + path + " does not exist");
    text = read_file(path);
    text.resize(text.size() / 2);
  } else {
    if (!std::filesystem::exists(calib_path)) throw UsageError("--calib: " + calib_path + " does not exist");
    text = read_file(calib_path);
  }
  std::vector<int> stream;
  std::size_t pos = 0;
  while (pos < text.size() && stream.size() < static_cast<std::size_t>(samples) * seq_len) {
    std::size_t end = text.find("\n\n", pos);
    if (end == std::string::npos) end = text.size();
    const std::string para = text.substr(pos, end - pos);
    pos = end + 2;
    if (para.find_first_not_of(" \n\r\t") == std::string::npos) continue;
    const std::vector<int> ids = model.tokenizer->encode(para, true);
    stream.insert(stream.end(), ids.begin(), ids.end());
  }
  const int len = std::min(seq_len, model.config.max_seq_len);
  std::vector<std::vector<int>> out;
  for (std::size_t s = 0; s + len <= stream.size() && static_cast<int>(out.size()) < samples; s += len)
    out.emplace_back(stream.begin() + s, stream.begin() + s + len);
  if (out.empty()) throw UsageError(fmt::format("calibration text '{}' has fewer than {} tokens", calib_path, len));
  return out;
}

std::vector<LinearRef> layer_linears(engine::LayerWeights& lw) {
  return {{"wq", &lw.wq}, {"wk", &lw.wk}, {"wv", &lw.wv}, {"wo", &lw.wo},
          {"w_gate", &lw.w_gate}, {"w_up", &lw.w_up}, {"w_down", &lw.w_down}};
}

float* make_owned_f32(engine::Model& model, engine::Matrix& m) {
  auto buf = std::make_shared<std::vector<float>>(static_cast<std::size_t>(m.rows) * m.cols);
  for (int r = 0; r < m.rows; ++r) engine::matrix_row_to_f32(m, r, buf->data() + static_cast<std::size_t>(r) * m.cols);
  m = engine::Matrix{DType::kF32, m.rows, m.cols, buf->data()};
  model.storage.push_back(buf);
  return buf->data();
}

namespace {
// A quantized blob copied into the model's weight memory (huge pages, see
// Model::allocate_weights): decode streams it every token.
std::byte* copy_to_weights(engine::Model& model, const std::vector<std::byte>& blob) {
  std::byte* data = model.allocate_weights(blob.size());
  std::memcpy(data, blob.data(), blob.size());
  return data;
}
}  // namespace

void install_packed(engine::Model& model, engine::Matrix& m, DType dtype, std::vector<std::byte> blob) {
  m = engine::packed_matrix(dtype, m.rows, m.cols, copy_to_weights(model, blob));
}

int effective_group_size(int group_size, int cols) { return group_size <= cols ? group_size : (cols + 31) / 32 * 32; }

namespace {

// Embedding and classifier in bf16 (one shared buffer when tied).
void embeddings_to_bf16(engine::Model& model) {
  auto convert = [&](engine::Matrix& m) {
    auto* buf = reinterpret_cast<std::uint16_t*>(
        model.allocate_weights(sizeof(std::uint16_t) * static_cast<std::size_t>(m.rows) * m.cols));
    std::vector<float> row(m.cols);
    for (int r = 0; r < m.rows; ++r) {
      engine::matrix_row_to_f32(m, r, row.data());
      for (int c = 0; c < m.cols; ++c) buf[static_cast<std::size_t>(r) * m.cols + c] = engine::f32_to_bf16(row[c]);
    }
    m = engine::Matrix{DType::kBF16, m.rows, m.cols, buf};
  };
  const bool tied = model.weights.classifier.data == model.weights.token_embedding.data;
  convert(model.weights.token_embedding);
  if (tied) model.weights.classifier = model.weights.token_embedding;
  else convert(model.weights.classifier);
}

// One matrix quantized round-to-nearest into the method's packed format (the RTN methods' layers,
// and the classifier of --quantize-lm-head for every method).
void quantize_matrix_rtn(engine::Model& model, engine::Matrix& m, const MethodInfo& info, const QuantOptions& o) {
  std::vector<float> w(static_cast<std::size_t>(m.rows) * m.cols);
  for (int r = 0; r < m.rows; ++r) engine::matrix_row_to_f32(m, r, w.data() + static_cast<std::size_t>(r) * m.cols);
  switch (info.packed_dtype) {
    case DType::kQ8Row: install_packed(model, m, DType::kQ8Row, quantize_rtn_rows8(w.data(), m.rows, m.cols).pack()); break;
    case DType::kQ8RowA8:
      install_packed(model, m, DType::kQ8RowA8, quantize_rtn_rows8(w.data(), m.rows, m.cols).pack_a8());
      break;
    case DType::kNf4:
      install_packed(model, m, DType::kNf4, quantize_nf4(w.data(), m.rows, m.cols, o.double_quant).pack());
      break;
    case DType::kFp8Row:
    case DType::kFp8RowA8:
      install_packed(model, m, info.packed_dtype, quantize_fp8_rows(w.data(), m.rows, m.cols).pack(info.packed_dtype));
      break;
    default: {
      if (engine::is_gguf_block(info.packed_dtype)) {  // llama.cpp blocks, or gguf_storage_dtype()'s fallback
        GgufQuantized q = quantize_gguf_matrix(info.packed_dtype, w.data(), m.rows, m.cols);
        m = engine::Matrix{q.dtype, m.rows, m.cols, copy_to_weights(model, q.data)};  // headerless blocks
        break;
      }
      const int gs = effective_group_size(o.group_size, m.cols);
      install_packed(model, m, DType::kQ4Group, quantize_rtn_groups(w.data(), m.rows, m.cols, o.bits, gs, o.symmetric).pack());
    }
  }
}

void quantize_layer_rtn(engine::Model& model, engine::LayerWeights& lw, const MethodInfo& info, const QuantOptions& o) {
  for (LinearRef ref : layer_linears(lw)) quantize_matrix_rtn(model, *ref.matrix, info, o);
}

// --quantize-lm-head: the classifier in the method's format (once, shared with the embedding
// when tied: the embedding lookup then dequantizes one row per token).
void quantize_lm_head(engine::Model& model, const MethodInfo& info, const QuantOptions& o) {
  engine::ModelWeights& w = model.weights;
  const bool tied = w.classifier.data == w.token_embedding.data;
  quantize_matrix_rtn(model, w.classifier, info, o);
  if (tied) w.token_embedding = w.classifier;
}

void quantize_layer_gptq(engine::Model& model, int l, const CalibState& st, const QuantOptions& o, engine::ThreadPool* pool) {
  engine::LayerWeights& lw = model.weights.layers[l];
  const std::pair<Stage, std::vector<engine::Matrix*>> stages[] = {
      {Stage::kAttnIn, {&lw.wq, &lw.wk, &lw.wv}},
      {Stage::kAttnOut, {&lw.wo}},
      {Stage::kFfnIn, {&lw.w_gate, &lw.w_up}},
      {Stage::kDownIn, {&lw.w_down}},
  };
  for (const auto& [stage, mats] : stages) {
    const std::vector<float> x = layer_forward(model, l, st, stage, pool);  // already-quantized earlier stages
    const int cols = mats[0]->cols;
    const std::vector<double> h = hessian_from_inputs(x.data(), static_cast<int>(x.size() / cols), cols, pool);
    for (engine::Matrix* m : mats) {
      std::vector<float> w(static_cast<std::size_t>(m->rows) * m->cols);
      for (int r = 0; r < m->rows; ++r) engine::matrix_row_to_f32(*m, r, w.data() + static_cast<std::size_t>(r) * m->cols);
      GptqOptions g;
      g.bits = o.bits;
      g.group_size = effective_group_size(o.group_size, cols);
      g.symmetric = o.symmetric;
      g.act_order = o.act_order;
      g.damp = o.damp;
      install_packed(model, *m, DType::kQ4Group, gptq_quantize(w.data(), m->rows, m->cols, h, g, pool).pack());
    }
  }
}

}  // namespace

void quantize_model(engine::Model& model, const std::string& method, const QuantOptions& o,
                    const std::vector<std::vector<int>>& calib, engine::ThreadPool* pool) {
  const MethodInfo& info = method_info(method);
  if (!engine::is_packed(info.packed_dtype)) return;  // plain dtypes: chosen at load
  if (model.weights.layers.empty()) return;
  if (o.group_size_given && info.packed_dtype == DType::kQ4Group) {
    for (LinearRef ref : layer_linears(model.weights.layers[0]))
      if (o.group_size > ref.matrix->cols)
        throw UsageError(fmt::format("--group-size {} is larger than layer {} ({} input columns) of {}", o.group_size,
                                     ref.name, ref.matrix->cols, model.source));
  }
  const GgufPreset* preset = gguf_preset(method);
  const bool mixture = preset && preset->mixture;  // a llama-quantize preset: every matrix, embeddings included
  if (!mixture) embeddings_to_bf16(model);
  if (mixture) {
    apply_gguf_preset(model, *preset);
  } else if (!info.needs_calibration) {
    for (engine::LayerWeights& lw : model.weights.layers) quantize_layer_rtn(model, lw, info, o);
  } else {
    if (calib.empty()) throw UsageError(fmt::format("method {} needs calibration data", method));
    CalibState st = calibration_start(model, calib);
    for (int l = 0; l < model.config.n_layers; ++l) {
      if (method == "gptq") quantize_layer_gptq(model, l, st, o, pool);
      else if (method == "awq") awq_quantize_layer(model, l, st, o.bits, o.group_size, pool);
      else smoothquant_layer(model, l, st, o.alpha, pool);
      st.hidden = layer_forward(model, l, st, Stage::kOutput, pool);  // from the quantized layer
    }
  }
  if (o.quantize_lm_head) quantize_lm_head(model, info, o);
  model.weight_dtype = info.packed_dtype;
  model.description += fmt::format(" | quantized: {} ({}-bit{}{})", method, o.bits,
                                   info.packed_dtype == DType::kQ4Group ? fmt::format(", group {}", o.group_size) : "",
                                   o.quantize_lm_head ? ", lm_head too" : "");
}

std::shared_ptr<engine::Model> load_quantized(const std::string& model_spec, const std::string& method,
                                              const std::map<std::string, std::string>& options,
                                              const std::string& calib_path) {
  const MethodInfo& info = method_info(method);
  const QuantOptions o = parse_options(method, options);
  engine::LoadOptions lo;
  lo.weight_dtype = engine::is_packed(info.packed_dtype) ? DType::kF32 : info.packed_dtype;
  lo.kv_cache_dtype = o.kv_cache_dtype;
  std::shared_ptr<engine::Model> model = engine::load_model(model_spec, lo);
  std::vector<std::vector<int>> calib;
  std::unique_ptr<engine::ThreadPool> pool;
  if (info.needs_calibration) {
    calib = calibration_tokens(*model, calib_path, o.calib_samples, o.calib_seq_len);
    pool = std::make_unique<engine::ThreadPool>(2);
  }
  quantize_model(*model, method, o, calib, pool.get());
  return model;
}

std::shared_ptr<engine::Model> load_quantized_from_options(const std::string& model_spec, const std::string& method,
                                                           std::map<std::string, std::string> options) {
  method_info(method);  // unknown names fail before the load, listing the known ones
  std::string calib;
  if (auto it = options.find("calib"); it != options.end()) {
    calib = it->second;
    options.erase(it);
  }
  parse_options(method, options);  // bad options too
  return load_quantized(model_spec, method, options, calib);
}

}  // namespace qmeter::quant
