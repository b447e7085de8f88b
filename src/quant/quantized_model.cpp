// Writing a quantized model folder (see quantized_model.h).
#include "qmeter/quant/quantized_model.h"

#include <fmt/format.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <nlohmann/json.hpp>

#include "qmeter/core/error.h"
#include "qmeter/engine/gguf_blocks.h"
#include "qmeter/engine/gguf_writer.h"
#include "qmeter/engine/packed_formats.h"
#include "qmeter/quant/gguf_quant.h"
#include "qmeter/quant/quantize.h"

namespace qmeter::quant {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct Tensor {
  std::string name, dtype;
  std::vector<std::int64_t> shape;
  std::vector<std::byte> bytes;
};

const char* st_dtype(engine::DType d) {
  switch (d) {
    case engine::DType::kF32: return "F32";
    case engine::DType::kBF16: return "BF16";
    case engine::DType::kF16: return "F16";
    default: return "U8";
  }
}

// Engine row order -> HF order of a q/k projection: HF row (h, j * half + i) is engine row
// (h, 2i + j) (the inverse of the loader's un-permutation).
std::vector<int> hf_row_sources(int heads, int head_dim) {
  std::vector<int> src(static_cast<std::size_t>(heads) * head_dim);
  const int half = head_dim / 2;
  for (int h = 0; h < heads; ++h)
    for (int i = 0; i < half; ++i)
      for (int j = 0; j < 2; ++j) src[static_cast<std::size_t>(h * head_dim + j * half + i)] = h * head_dim + 2 * i + j;
  return src;
}

Tensor matrix_tensor(const std::string& weight_name, const engine::Matrix& m, const std::vector<int>& hf_rows) {
  const std::size_t bytes = engine::matrix_bytes(m);
  const auto* data = static_cast<const std::byte*>(m.data);
  if (engine::is_packed(m.dtype)) {  // the blob as is: its rows stay in the engine's order
    const std::string base = weight_name.substr(0, weight_name.size() - std::string(".weight").size());
    return {base + ".qmeter_packed", "U8", {static_cast<std::int64_t>(bytes)}, std::vector<std::byte>(data, data + bytes)};
  }
  Tensor t{weight_name, st_dtype(m.dtype), {m.rows, m.cols}, std::vector<std::byte>(bytes)};
  const std::size_t row_bytes = bytes / static_cast<std::size_t>(m.rows);
  for (int r = 0; r < m.rows; ++r) {
    const int src = hf_rows.empty() ? r : hf_rows[static_cast<std::size_t>(r)];
    std::memcpy(t.bytes.data() + row_bytes * r, data + row_bytes * src, row_bytes);
  }
  return t;
}

Tensor vector_tensor(const std::string& name, const std::vector<float>& v, const std::vector<int>& hf_rows = {}) {
  Tensor t{name, "F32", {static_cast<std::int64_t>(v.size())}, std::vector<std::byte>(v.size() * sizeof(float))};
  for (std::size_t i = 0; i < v.size(); ++i) {
    const float x = hf_rows.empty() ? v[i] : v[static_cast<std::size_t>(hf_rows[i])];
    std::memcpy(t.bytes.data() + i * sizeof(float), &x, sizeof x);
  }
  return t;
}

void write_safetensors(const std::string& path, const std::vector<Tensor>& tensors, const json& metadata) {
  json header = json::object();
  header["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  for (const Tensor& t : tensors) {
    header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
  }
  std::string text = header.dump();
  text.append((64 - (8 + text.size()) % 64) % 64, ' ');  // the data block starts 64-byte aligned
  std::ofstream out(path, std::ios::binary);
  const std::uint64_t len = text.size();
  out.write(reinterpret_cast<const char*>(&len), 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const Tensor& t : tensors) out.write(reinterpret_cast<const char*>(t.bytes.data()), static_cast<std::streamsize>(t.bytes.size()));
  if (!out) throw Error(fmt::format("'{}': cannot write the quantized weights", path));
}

json config_json(const engine::Model& model, const std::string& method, const std::map<std::string, std::string>& options) {
  const engine::ModelConfig& c = model.config;
  const std::string arch = c.architecture == "qwen2" ? "Qwen2ForCausalLM" : c.architecture == "mistral" ? "MistralForCausalLM" : "LlamaForCausalLM";
  json j = {{"architectures", {arch}},
            {"model_type", c.architecture},
            {"hidden_size", c.dim},
            {"intermediate_size", c.hidden_dim},
            {"num_hidden_layers", c.n_layers},
            {"num_attention_heads", c.n_heads},
            {"num_key_value_heads", c.n_kv_heads},
            {"head_dim", c.head_dim},
            {"vocab_size", c.vocab_size},
            {"max_position_embeddings", c.max_seq_len},
            {"rms_norm_eps", c.norm_eps},
            {"rope_theta", c.rope_theta},
            {"tie_word_embeddings", c.tied_embeddings},
            {"attention_bias", c.attention_bias}};
  if (c.rope_scaling.factor > 0.0f)
    j["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", c.rope_scaling.factor},
                         {"low_freq_factor", c.rope_scaling.low_freq_factor},
                         {"high_freq_factor", c.rope_scaling.high_freq_factor},
                         {"original_max_position_embeddings", c.rope_scaling.original_max_position}};
  std::string desc = "quantized: " + method;
  for (const auto& [k, v] : options) desc += fmt::format(" {}={}", k, v);
  j["quantization_config"] = {{"quant_method", "qmeter"}, {"method", method}, {"options", options}, {"description", desc}};
  return j;
}

bool copy_tokenizer(const std::string& source, const engine::Model& model, const fs::path& dir, std::vector<std::string>& files) {
  const fs::path src(source);
  bool copied = false;
  auto copy = [&](const fs::path& from, const std::string& to) {
    fs::copy_file(from, dir / to, fs::copy_options::overwrite_existing);
    fs::permissions(dir / to, fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::add);  // sources may be read-only
    files.push_back(to);
    copied = true;
  };
  if (fs::is_directory(src)) {
    for (const char* name : {"tokenizer.json", "tokenizer.model", "tokenizer_config.json", "tokenizer.bin"})
      if (fs::exists(src / name)) copy(src / name, name);
  } else if (model.format == "llama2c") {
    for (const std::string& name : {fmt::format("tok{}.bin", model.config.vocab_size), std::string("tokenizer.bin")})
      if (fs::exists(src.parent_path() / name)) {
        copy(src.parent_path() / name, "tokenizer.bin");
        break;
      }
  }
  return copied;
}

// The GGUF methods: one GGUF file, `dir` itself when it ends in .gguf, else dir/model.gguf; the
// source's tokenizer is embedded as GGUF metadata (engine::gguf_vocab_for_source).
WrittenModel write_gguf_file(const engine::Model& model, const std::string& source_spec, const std::string& dir,
                             const std::string& method, const std::map<std::string, std::string>& options) {
  const bool file = dir.size() > 5 && dir.substr(dir.size() - 5) == ".gguf";
  const fs::path folder = file ? fs::path(dir).parent_path() : fs::path(dir);
  std::error_code ec;
  if (!folder.empty()) fs::create_directories(folder, ec);
  if (ec || (!folder.empty() && !fs::is_directory(folder)))
    throw Error(fmt::format("--out '{}': cannot create the folder: {}", folder.string(), ec.message()));
  const fs::path path = file ? fs::path(dir) : folder / "model.gguf";
  WrittenModel out;
  const std::optional<engine::TokenizerVocab> vocab = engine::gguf_vocab_for_source(model, source_spec, &out.tokenizer_note);
  engine::GgufWriteOptions o;
  o.name = fs::path(source_spec).filename().string() + " " + method;
  o.vocab = vocab ? &*vocab : nullptr;
  o.extra["qmeter.method"] = method;
  if (const GgufPreset* p = gguf_preset(method)) o.file_type = static_cast<int>(p->file_type);
  for (const auto& [k, v] : options) o.extra["qmeter.option." + k] = v;
  engine::write_gguf_model(model, path.string(), o);
  out.files.push_back(file ? path.filename().string() : "model.gguf");
  out.tokenizer = vocab.has_value();
  return out;
}

}  // namespace

WrittenModel write_quantized_model(const engine::Model& model, const std::string& source_spec, const std::string& dir,
                                   const std::string& method, const std::map<std::string, std::string>& options) {
  if (engine::is_gguf_block(method_info(method).packed_dtype)) return write_gguf_file(model, source_spec, dir, method, options);
  const engine::ModelConfig& c = model.config;
  if (c.rope_style != engine::RopeStyle::kInterleaved)
    throw Error(fmt::format("{}: its q/k rows use the rotate-half order (GGUF qwen2 or synthetic), which a quantized "
                            "folder cannot record; quantize it at load time instead (qmeter serve --quantization)",
                            model.source));
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) throw Error(fmt::format("--out '{}': cannot create the folder: {}", dir, ec.message()));
  const std::vector<int> q_rows = hf_row_sources(c.n_heads, c.head_dim), k_rows = hf_row_sources(c.n_kv_heads, c.head_dim);
  const engine::ModelWeights& w = model.weights;
  std::vector<Tensor> tensors;
  tensors.push_back(matrix_tensor("model.embed_tokens.weight", w.token_embedding, {}));
  for (int l = 0; l < c.n_layers; ++l) {
    const engine::LayerWeights& lw = w.layers[static_cast<std::size_t>(l)];
    const std::string p = fmt::format("model.layers.{}.", l);
    tensors.push_back(vector_tensor(p + "input_layernorm.weight", lw.attn_norm));
    tensors.push_back(matrix_tensor(p + "self_attn.q_proj.weight", lw.wq, q_rows));
    tensors.push_back(matrix_tensor(p + "self_attn.k_proj.weight", lw.wk, k_rows));
    tensors.push_back(matrix_tensor(p + "self_attn.v_proj.weight", lw.wv, {}));
    tensors.push_back(matrix_tensor(p + "self_attn.o_proj.weight", lw.wo, {}));
    if (c.attention_bias) {
      tensors.push_back(vector_tensor(p + "self_attn.q_proj.bias", lw.bq, q_rows));
      tensors.push_back(vector_tensor(p + "self_attn.k_proj.bias", lw.bk, k_rows));
      tensors.push_back(vector_tensor(p + "self_attn.v_proj.bias", lw.bv));
    }
    tensors.push_back(vector_tensor(p + "post_attention_layernorm.weight", lw.ffn_norm));
    tensors.push_back(matrix_tensor(p + "mlp.gate_proj.weight", lw.w_gate, {}));
    tensors.push_back(matrix_tensor(p + "mlp.up_proj.weight", lw.w_up, {}));
    tensors.push_back(matrix_tensor(p + "mlp.down_proj.weight", lw.w_down, {}));
  }
  tensors.push_back(vector_tensor("model.norm.weight", w.final_norm));
  if (!c.tied_embeddings) tensors.push_back(matrix_tensor("lm_head.weight", w.classifier, {}));

  WrittenModel out;
  json meta = {{"format", "pt"}, {"qmeter.method", method}};
  for (const auto& [k, v] : options) meta["qmeter.option." + k] = v;
  write_safetensors((fs::path(dir) / "model.safetensors").string(), tensors, meta);
  out.files.push_back("model.safetensors");
  const std::string config_path = (fs::path(dir) / "config.json").string();
  std::ofstream(config_path) << config_json(model, method, options).dump(2) << "\n";
  if (!fs::exists(config_path)) throw Error(fmt::format("'{}': cannot write", config_path));
  out.files.push_back("config.json");
  out.tokenizer = copy_tokenizer(source_spec, model, dir, out.files);
  return out;
}

}  // namespace qmeter::quant
