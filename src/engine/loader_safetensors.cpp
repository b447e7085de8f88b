// Hugging Face model folders: config.json + model.safetensors (or shards listed in
// model.safetensors.index.json), F32 / F16 / BF16 tensors, memory-mapped; tokenizer.json or
// tokenizer.model beside them. HF stores q/k projections permuted for its rotate-half RoPE; like
// llama.cpp's converter, the loader un-permutes their rows (a copy of q/k only) and runs the
// interleaved RoPE, so an HF checkpoint computes exactly what the original layout computes.
// AutoGPTQ / AutoAWQ folders (quantization_config) import their quantized linears as kQ4Group
// matrices (loader_hf_quantized.cpp).
#include <fmt/format.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "loader_common.h"
#include "loader_hf_quantized.h"
#include "mmap_file.h"
#include "qmeter/core/error.h"
#include "qmeter/core/paths.h"
#include "qmeter/engine/packed_formats.h"

namespace qmeter::engine {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Parses one .safetensors file: u64 header length, JSON header, then the data block.
void index_safetensors(const MappedFile& file, std::map<std::string, StoredTensor>& out) {
  const std::string& path = file.path();
  if (file.size() < 8) throw Error(fmt::format("'{}': truncated safetensors header ({} bytes)", path, file.size()));
  std::uint64_t header_len = 0;
  std::memcpy(&header_len, file.data(), 8);
  if (header_len < 2 || header_len > file.size() - 8 || header_len > (std::uint64_t{100} << 20))
    throw Error(fmt::format("'{}': bad safetensors header length {} (file has {} bytes): not a safetensors file or truncated",
                            path, header_len, file.size()));
  const char* hp = reinterpret_cast<const char*>(file.data() + 8);
  if (hp[0] != '{')
    throw Error(fmt::format("'{}': bad safetensors header: does not start with a JSON object", path));
  json header;
  try {
    header = json::parse(hp, hp + header_len);
  } catch (const json::exception& e) {
    throw Error(fmt::format("'{}': malformed safetensors JSON header: {}", path, e.what()));
  }
  if (!header.is_object()) throw Error(fmt::format("'{}': safetensors header is not a JSON object", path));
  const std::byte* data = file.data() + 8 + header_len;
  const std::uint64_t data_size = file.size() - 8 - header_len;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") continue;
    try {
      const std::string dt = info.at("dtype").get<std::string>();
      DType dtype;
      if (dt == "F32") dtype = DType::kF32;
      else if (dt == "F16") dtype = DType::kF16;
      else if (dt == "BF16") dtype = DType::kBF16;
      else if (dt == "U8" && ends_with(name, ".qmeter_packed")) dtype = DType::kQ8Row;  // any packed type: its header says
      else if (dt == "I32") dtype = DType::kF32;  // AutoGPTQ / AutoAWQ integers (4 bytes each; see int32)
      else throw Error(fmt::format("'{}': tensor '{}' has unsupported dtype {} (F32, F16, BF16 are)", path, name, dt));
      StoredTensor t;
      t.file = &file;
      t.dtype = dtype;
      t.shape = info.at("shape").get<std::vector<std::int64_t>>();
      const auto offsets = info.at("data_offsets").get<std::vector<std::uint64_t>>();
      if (offsets.size() != 2 || offsets[0] > offsets[1] || offsets[1] > data_size)
        throw Error(fmt::format("'{}': tensor '{}' has data_offsets outside the file's {} data bytes (truncated?)",
                                path, name, data_size));
      std::uint64_t numel = 1;
      for (auto d : t.shape) {
        if (d < 0 || d > (std::int64_t{1} << 32)) throw Error(fmt::format("'{}': tensor '{}' has a bad shape", path, name));
        numel *= static_cast<std::uint64_t>(d);
      }
      t.packed = dt == "U8";
      t.int32 = dt == "I32";
      t.bytes = offsets[1] - offsets[0];
      if (!t.packed && offsets[1] - offsets[0] != dense_bytes(dtype, numel))
        throw Error(fmt::format("'{}': tensor '{}' of shape {} {} needs {} bytes but data_offsets span {}", path, name,
                                shape_str(t.shape), dt, dense_bytes(dtype, numel), offsets[1] - offsets[0]));
      t.data = data + offsets[0];
      out[name] = std::move(t);
    } catch (const json::exception& e) {
      throw Error(fmt::format("'{}': malformed safetensors entry for tensor '{}': {}", path, name, e.what()));
    }
  }
}

json read_json(const fs::path& p) { return read_json_file(p.string()); }

ModelConfig parse_hf_config(const json& j, const std::string& path) {
  ModelConfig c;
  // Every field read is inside the try: a field of the wrong type (found by fuzz_hf_folder:
  // "model_type": 10000.0) is an Error naming the file, not a bare nlohmann type_error.
  try {
    std::string arch = j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty()
                           ? j["architectures"][0].get<std::string>()
                           : std::string();
    const std::string model_type = j.value("model_type", std::string());
    static const std::map<std::string, std::string> kArchs = {
        {"LlamaForCausalLM", "llama"}, {"MistralForCausalLM", "mistral"}, {"Qwen2ForCausalLM", "qwen2"}};
    if (auto it = kArchs.find(arch); it != kArchs.end()) c.architecture = it->second;
    else if (arch.empty() && (model_type == "llama" || model_type == "mistral" || model_type == "qwen2")) c.architecture = model_type;
    else
      throw Error(fmt::format("'{}': unsupported architecture '{}' (model_type '{}'); supported: LlamaForCausalLM, "
                              "MistralForCausalLM, Qwen2ForCausalLM", path, arch, model_type));
    auto get_int = [&](const char* key) -> int {
      if (!j.contains(key) || !j[key].is_number_integer())
        throw Error(fmt::format("'{}': field '{}' missing or not an integer", path, key));
      return j[key].get<int>();
    };
    c.dim = get_int("hidden_size");
    c.hidden_dim = get_int("intermediate_size");
    c.n_layers = get_int("num_hidden_layers");
    c.n_heads = get_int("num_attention_heads");
    c.n_kv_heads = j.contains("num_key_value_heads") && !j["num_key_value_heads"].is_null() ? get_int("num_key_value_heads") : c.n_heads;
    c.vocab_size = get_int("vocab_size");
    c.max_seq_len = j.contains("max_position_embeddings") ? get_int("max_position_embeddings") : 2048;
    if (c.n_heads <= 0) throw Error(fmt::format("'{}': num_attention_heads must be positive", path));
    c.head_dim = j.contains("head_dim") && !j["head_dim"].is_null() ? get_int("head_dim") : c.dim / c.n_heads;
    c.norm_eps = j.value("rms_norm_eps", 1e-6f);
    c.rope_theta = j.value("rope_theta", 10000.0f);
    c.tied_embeddings = j.value("tie_word_embeddings", false);
    c.attention_bias = c.architecture == "qwen2" || j.value("attention_bias", false);
    if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
      const json& s = j["rope_scaling"];
      const std::string type = s.value("rope_type", s.value("type", std::string()));
      if (type != "llama3")
        throw Error(fmt::format("'{}': field 'rope_scaling': unsupported rope_type '{}' (only llama3)", path, type));
      c.rope_scaling.factor = s.value("factor", 8.0f);
      c.rope_scaling.low_freq_factor = s.value("low_freq_factor", 1.0f);
      c.rope_scaling.high_freq_factor = s.value("high_freq_factor", 4.0f);
      c.rope_scaling.original_max_position = s.value("original_max_position_embeddings", 8192);
    }
  } catch (const json::exception& e) {
    throw Error(fmt::format("'{}': bad field type: {}", path, e.what()));
  }
  c.rope_style = RopeStyle::kInterleaved;  // after the q/k un-permutation below
  return c;
}

}  // namespace

std::unique_ptr<Model> load_hf_model(const std::string& folder, const LoadOptions& options) {
  const fs::path dir(folder);
  const fs::path config_path = dir / "config.json";
  if (!fs::exists(config_path))
    throw UsageError(fmt::format("'{}': not a Hugging Face model folder (no config.json)", folder));
  auto model = std::make_unique<Model>();
  model->format = "hf";
  model->source = folder;
  ModelConfig& c = model->config;
  const json config_json = read_json(config_path);
  c = parse_hf_config(config_json, config_path.string());
  c.validate(config_path.string());
  const std::optional<HfQuantConfig> quant = read_hf_quant_config(folder, config_json);  // AutoGPTQ / AutoAWQ

  // Weight files: one model.safetensors, or the shards an index names.
  std::vector<std::string> files;
  const fs::path single = dir / "model.safetensors", index = dir / "model.safetensors.index.json";
  if (fs::exists(single)) {
    files.push_back(single.string());
  } else if (fs::exists(index)) {
    const json idx = read_json(index);
    if (!idx.contains("weight_map") || !idx["weight_map"].is_object())
      throw Error(fmt::format("'{}': no 'weight_map' object", index.string()));
    std::set<std::string> shards;
    for (const auto& [name, shard] : idx["weight_map"].items()) {
      if (!shard.is_string()) throw Error(fmt::format("'{}': weight_map['{}'] is not a file name", index.string(), name));
      const std::string s = shard.get<std::string>();
      if (s.find('/') != std::string::npos || s.find("..") != std::string::npos)
        throw Error(fmt::format("'{}': weight_map['{}'] = '{}' is not a file in the folder", index.string(), name, s));
      shards.insert(s);
    }
    for (const auto& s : shards) files.push_back((dir / s).string());
  } else if (quant && !quant->weights_file.empty() && fs::exists(dir / quant->weights_file)) {
    files.push_back((dir / quant->weights_file).string());  // AutoGPTQ's model_file_base_name
  } else {
    throw Error(fmt::format("'{}': no model.safetensors or model.safetensors.index.json", folder));
  }
  std::map<std::string, StoredTensor> tensors;
  for (const auto& f : files) {
    auto mapped = MappedFile::open(f);
    index_safetensors(*mapped, tensors);
    model->storage.push_back(mapped);
  }

  WeightBuilder wb(*model, options);
  auto find = [&](const std::string& name, std::vector<std::int64_t> shape) -> const StoredTensor& {
    auto it = tensors.find(name);
    if (it == tensors.end()) throw Error(fmt::format("'{}': tensor '{}' not found in {}", folder, name, files.front()));
    if (it->second.shape != shape)
      throw Error(fmt::format("'{}': tensor '{}' has shape {}, expected {}", it->second.file->path(), name,
                              shape_str(it->second.shape), shape_str(shape)));
    if (it->second.int32) throw Error(fmt::format("'{}': tensor '{}' has dtype I32, not a float weight", it->second.file->path(), name));
    return it->second;
  };
  // qmeter quantize's folders: a linear "<x>.weight" stored as "<x>.qmeter_packed", rows already
  // in the engine's order (no q/k un-permutation); copied when the file leaves it misaligned.
  auto packed = [&](const std::string& name, int rows, int cols) -> std::optional<Matrix> {
    auto it = ends_with(name, ".weight") ? tensors.find(name.substr(0, name.size() - 7) + ".qmeter_packed") : tensors.end();
    if (it == tensors.end()) return std::nullopt;
    const std::byte* data = it->second.data;
    if (reinterpret_cast<std::uintptr_t>(data) % 64 != 0) {
      std::byte* copy = wb.allocate(it->second.bytes);
      std::memcpy(copy, data, it->second.bytes);
      data = copy;
    }
    return packed_matrix_from_blob(data, it->second.bytes, rows, cols, fmt::format("'{}': tensor '{}'", it->second.file->path(), it->first));
  };
  // AutoGPTQ / AutoAWQ: a linear "<x>.weight" stored as "<x>.qweight" + qzeros, scales (g_idx).
  auto imported = [&](const std::string& name, int rows, int cols, const std::vector<int>& src) -> std::optional<Matrix> {
    if (!quant || !ends_with(name, ".weight")) return std::nullopt;
    return import_quantized_linear(*quant, tensors, name.substr(0, name.size() - 7), rows, cols, src, wb);
  };
  auto mat = [&](const std::string& name, int rows, int cols) {
    if (auto p = packed(name, rows, cols)) return *p;
    if (auto p = imported(name, rows, cols, {})) return *p;
    const StoredTensor& t = find(name, {rows, cols});
    return wb.matrix(t.dtype, t.data, rows, cols);
  };
  auto vec = [&](const std::string& name, int n) {
    const StoredTensor& t = find(name, {n});
    return wb.vector(t.dtype, t.data, static_cast<std::size_t>(n));
  };
  // Interleaved row (h, 2i + j) is HF row (h, j * head_dim/2 + i).
  auto unpermute_rows = [&](int heads) {
    std::vector<int> src(static_cast<std::size_t>(heads) * c.head_dim);
    const int half = c.head_dim / 2;
    for (int h = 0; h < heads; ++h)
      for (int i = 0; i < half; ++i)
        for (int j = 0; j < 2; ++j)
          src[static_cast<std::size_t>(h * c.head_dim + 2 * i + j)] = h * c.head_dim + j * half + i;
    return src;
  };
  const std::vector<int> q_rows = unpermute_rows(c.n_heads), k_rows = unpermute_rows(c.n_kv_heads);
  auto rope_mat = [&](const std::string& name, int rows, const std::vector<int>& src) {
    if (auto p = packed(name, rows, c.dim)) return *p;
    if (auto p = imported(name, rows, c.dim, src)) return *p;
    const StoredTensor& t = find(name, {rows, c.dim});
    return wb.matrix_permuted_rows(t.dtype, t.data, rows, c.dim, src);
  };
  auto rope_vec = [&](const std::string& name, const std::vector<int>& src) {
    std::vector<float> stored = vec(name, static_cast<int>(src.size())), out(src.size());
    for (std::size_t i = 0; i < src.size(); ++i) out[i] = stored[static_cast<std::size_t>(src[i])];
    return out;
  };
  ModelWeights& w = model->weights;
  w.token_embedding = mat("model.embed_tokens.weight", c.vocab_size, c.dim);
  w.layers.resize(static_cast<std::size_t>(c.n_layers));
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    LayerWeights& lw = w.layers[static_cast<std::size_t>(l)];
    lw.attn_norm = vec(p + "input_layernorm.weight", c.dim);
    lw.wq = rope_mat(p + "self_attn.q_proj.weight", c.q_dim(), q_rows);
    lw.wk = rope_mat(p + "self_attn.k_proj.weight", c.kv_dim(), k_rows);
    lw.wv = mat(p + "self_attn.v_proj.weight", c.kv_dim(), c.dim);
    lw.wo = mat(p + "self_attn.o_proj.weight", c.dim, c.q_dim());
    if (c.attention_bias) {
      lw.bq = rope_vec(p + "self_attn.q_proj.bias", q_rows);
      lw.bk = rope_vec(p + "self_attn.k_proj.bias", k_rows);
      lw.bv = vec(p + "self_attn.v_proj.bias", c.kv_dim());
    }
    lw.ffn_norm = vec(p + "post_attention_layernorm.weight", c.dim);
    lw.w_gate = mat(p + "mlp.gate_proj.weight", c.hidden_dim, c.dim);
    lw.w_up = mat(p + "mlp.up_proj.weight", c.hidden_dim, c.dim);
    lw.w_down = mat(p + "mlp.down_proj.weight", c.dim, c.hidden_dim);
  }
  w.final_norm = vec("model.norm.weight", c.dim);
  if (!tensors.count("lm_head.weight")) c.tied_embeddings = true;  // tied checkpoints may omit it
  if (!c.tied_embeddings) w.classifier = mat("lm_head.weight", c.vocab_size, c.dim);
  finalize_model(*model, folder);
  if (quant) model->description += " | " + quant->label();
  if (config_json.contains("quantization_config") && config_json["quantization_config"].is_object()) {
    const json& q = config_json["quantization_config"];  // written by qmeter quantize (or another tool)
    if (q.contains("description") && q["description"].is_string()) model->description += " | " + q["description"].get<std::string>();
  }

  if (options.tokenizer_path.empty()) {
    if (fs::exists(dir / "tokenizer.json")) model->tokenizer = load_hf_tokenizer((dir / "tokenizer.json").string());
    else if (fs::exists(dir / "tokenizer.model")) model->tokenizer = load_sentencepiece_tokenizer((dir / "tokenizer.model").string());
    else if (fs::exists(dir / "tokenizer.bin")) model->tokenizer = load_llama2c_tokenizer((dir / "tokenizer.bin").string(), c.vocab_size);
  }
  return model;
}

}  // namespace qmeter::engine
