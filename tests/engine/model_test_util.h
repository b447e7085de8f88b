#pragma once
// Test helpers for the engine's model tests: exporters that write a loaded model into a Hugging
// Face folder (safetensors + config.json) and into GGUF, written here independently of the
// loaders, plus small helpers to run models and the qmeter binary.
#include <fmt/format.h>

#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "qmeter/engine/kernels.h"
#include "qmeter/engine/model.h"
#include "qmeter/engine/session.h"

namespace qmeter::engine::testing {

inline std::vector<float> matrix_f32(const Matrix& m) {
  std::vector<float> out(static_cast<std::size_t>(m.rows) * m.cols);
  for (int r = 0; r < m.rows; ++r) matrix_row_to_f32(m, r, out.data() + static_cast<std::size_t>(r) * m.cols);
  return out;
}

// HF's converter permutes q/k rows of each head so that its rotate-half RoPE equals Meta's
// interleaved RoPE: row (h, 2i + j) moves to (h, j * head_dim/2 + i).
inline std::vector<float> permute_for_rotate_half(const std::vector<float>& w, int n_heads, int head_dim, int cols) {
  std::vector<float> out(w.size());
  const int half = head_dim / 2;
  for (int h = 0; h < n_heads; ++h)
    for (int i = 0; i < half; ++i)
      for (int j = 0; j < 2; ++j) {
        const std::size_t src = static_cast<std::size_t>(h * head_dim + 2 * i + j) * cols;
        const std::size_t dst = static_cast<std::size_t>(h * head_dim + j * half + i) * cols;
        std::memcpy(&out[dst], &w[src], sizeof(float) * cols);
      }
  return out;
}

struct NamedTensor {
  std::string name;
  std::vector<std::int64_t> shape;  // outermost first (HF order)
  std::vector<float> values;
};

// The model's tensors under HF names (q/k permuted for rotate-half RoPE).
inline std::vector<NamedTensor> hf_tensors(const Model& m) {
  const ModelConfig& c = m.config;
  std::vector<NamedTensor> t;
  auto mat = [&](std::string name, const Matrix& w) {
    t.push_back({std::move(name), {w.rows, w.cols}, matrix_f32(w)});
  };
  auto vec = [&](std::string name, const std::vector<float>& v) {
    t.push_back({std::move(name), {static_cast<std::int64_t>(v.size())}, v});
  };
  mat("model.embed_tokens.weight", m.weights.token_embedding);
  for (int l = 0; l < c.n_layers; ++l) {
    const LayerWeights& lw = m.weights.layers[static_cast<std::size_t>(l)];
    const std::string p = fmt::format("model.layers.{}.", l);
    vec(p + "input_layernorm.weight", lw.attn_norm);
    t.push_back({p + "self_attn.q_proj.weight", {lw.wq.rows, lw.wq.cols},
                 permute_for_rotate_half(matrix_f32(lw.wq), c.n_heads, c.head_dim, c.dim)});
    t.push_back({p + "self_attn.k_proj.weight", {lw.wk.rows, lw.wk.cols},
                 permute_for_rotate_half(matrix_f32(lw.wk), c.n_kv_heads, c.head_dim, c.dim)});
    mat(p + "self_attn.v_proj.weight", lw.wv);
    mat(p + "self_attn.o_proj.weight", lw.wo);
    vec(p + "post_attention_layernorm.weight", lw.ffn_norm);
    mat(p + "mlp.gate_proj.weight", lw.w_gate);
    mat(p + "mlp.up_proj.weight", lw.w_up);
    mat(p + "mlp.down_proj.weight", lw.w_down);
  }
  vec("model.norm.weight", m.weights.final_norm);
  if (!c.tied_embeddings) mat("lm_head.weight", m.weights.classifier);
  return t;
}

// Writes one .safetensors file; dtype "F32" or "BF16" (for matrices: 1-D tensors, the norms,
// stay F32 as the engine keeps them).
inline void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                              const std::string& dtype = "F32") {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  header["__metadata__"] = {{"format", "pt"}};
  std::string data;
  for (const auto& t : tensors) {
    const std::size_t begin = data.size();
    for (float v : t.values) {
      if (dtype == "F32" || t.shape.size() == 1) {
        data.append(reinterpret_cast<const char*>(&v), 4);
      } else {
        const std::uint16_t h = f32_to_bf16(v);
        data.append(reinterpret_cast<const char*>(&h), 2);
      }
    }
    header[t.name] = {{"dtype", t.shape.size() == 1 ? std::string("F32") : dtype}, {"shape", t.shape}, {"data_offsets", {begin, data.size()}}};
  }
  std::string h = header.dump();
  while ((8 + h.size()) % 8 != 0) h.push_back(' ');
  const std::uint64_t n = h.size();
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << h << data;
}

inline nlohmann::json hf_config(const Model& m) {
  const ModelConfig& c = m.config;
  return {{"architectures", {"LlamaForCausalLM"}},
          {"model_type", "llama"},
          {"hidden_size", c.dim},
          {"intermediate_size", c.hidden_dim},
          {"num_hidden_layers", c.n_layers},
          {"num_attention_heads", c.n_heads},
          {"num_key_value_heads", c.n_kv_heads},
          {"vocab_size", c.vocab_size},
          {"max_position_embeddings", c.max_seq_len},
          {"rms_norm_eps", c.norm_eps},
          {"rope_theta", c.rope_theta},
          {"tie_word_embeddings", c.tied_embeddings},
          {"torch_dtype", "float32"}};
}

// Exports `m` as a HF folder; shards > 1 splits the tensors over files named in an index.
inline void export_hf(const Model& m, const std::string& dir, const std::string& dtype = "F32", int shards = 1) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/config.json") << hf_config(m).dump(2);
  auto tensors = hf_tensors(m);
  if (shards == 1) {
    write_safetensors(dir + "/model.safetensors", tensors, dtype);
    return;
  }
  nlohmann::json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", nlohmann::json::object()}};
  for (int s = 0; s < shards; ++s) {
    std::vector<NamedTensor> part;
    const std::string file = fmt::format("model-{:05d}-of-{:05d}.safetensors", s + 1, shards);
    for (std::size_t i = static_cast<std::size_t>(s); i < tensors.size(); i += static_cast<std::size_t>(shards)) {
      part.push_back(tensors[i]);
      index["weight_map"][tensors[i].name] = file;
    }
    write_safetensors(dir + "/" + file, part, dtype);
  }
  std::ofstream(dir + "/model.safetensors.index.json") << index.dump(2);
}

// --- GGUF writer (v3, F32 tensors, llama architecture) ---------------------------------------
class GgufWriter {
 public:
  void kv_string(const std::string& key, const std::string& v) {
    key_(key, 8);
    str_(meta_, v);
    ++n_kv_;
  }
  void kv_u32(const std::string& key, std::uint32_t v) {
    key_(key, 4);
    pod_(meta_, v);
    ++n_kv_;
  }
  void kv_f32(const std::string& key, float v) {
    key_(key, 6);
    pod_(meta_, v);
    ++n_kv_;
  }
  void kv_bool(const std::string& key, bool v) {
    key_(key, 7);
    pod_(meta_, static_cast<std::uint8_t>(v));
    ++n_kv_;
  }
  void kv_strings(const std::string& key, const std::vector<std::string>& v) {
    key_(key, 9);
    pod_(meta_, std::uint32_t{8});
    pod_(meta_, static_cast<std::uint64_t>(v.size()));
    for (const auto& s : v) str_(meta_, s);
    ++n_kv_;
  }
  void kv_f32s(const std::string& key, const std::vector<float>& v) {
    key_(key, 9);
    pod_(meta_, std::uint32_t{6});
    pod_(meta_, static_cast<std::uint64_t>(v.size()));
    for (float f : v) pod_(meta_, f);
    ++n_kv_;
  }
  void kv_i32s(const std::string& key, const std::vector<std::int32_t>& v) {
    key_(key, 9);
    pod_(meta_, std::uint32_t{5});
    pod_(meta_, static_cast<std::uint64_t>(v.size()));
    for (auto i : v) pod_(meta_, i);
    ++n_kv_;
  }
  // dims innermost first (ggml ne[]); ggml_type 0 = F32 (values written as f32), others as
  // raw bytes of `raw` when given.
  void tensor(const std::string& name, std::vector<std::uint64_t> dims, const std::vector<float>& values,
              std::uint32_t ggml_type = 0) {
    while (data_.size() % 32 != 0) data_.push_back('\0');
    str_(infos_, name);
    pod_(infos_, static_cast<std::uint32_t>(dims.size()));
    for (auto d : dims) pod_(infos_, d);
    pod_(infos_, ggml_type);
    pod_(infos_, static_cast<std::uint64_t>(data_.size()));
    data_.append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
    ++n_tensors_;
  }
  std::string bytes() const {
    std::string out = "GGUF";
    pod_(out, std::uint32_t{3});
    pod_(out, n_tensors_);
    pod_(out, n_kv_);
    out += meta_;
    out += infos_;
    while (out.size() % 32 != 0) out.push_back('\0');
    return out + data_;
  }
  void write(const std::string& path) const { std::ofstream(path, std::ios::binary) << bytes(); }

 private:
  template <typename T>
  static void pod_(std::string& s, T v) {
    s.append(reinterpret_cast<const char*>(&v), sizeof(T));
  }
  static void str_(std::string& s, const std::string& v) {
    pod_(s, static_cast<std::uint64_t>(v.size()));
    s += v;
  }
  void key_(const std::string& key, std::uint32_t type) {
    str_(meta_, key);
    pod_(meta_, type);
  }
  std::string meta_, infos_, data_;
  std::uint64_t n_kv_ = 0, n_tensors_ = 0;
};

// A llama2.c tok.bin read as a SentencePiece-style GGUF vocab (pieces with U+2581 for spaces).
struct Llama2cVocab {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<std::int32_t> types;
};
inline Llama2cVocab read_llama2c_vocab(const std::string& path, int vocab_size) {
  std::ifstream in(path, std::ios::binary);
  std::int32_t max_len = 0;
  in.read(reinterpret_cast<char*>(&max_len), 4);
  Llama2cVocab v;
  for (int i = 0; i < vocab_size; ++i) {
    float score = 0;
    std::int32_t len = 0;
    in.read(reinterpret_cast<char*>(&score), 4);
    in.read(reinterpret_cast<char*>(&len), 4);
    std::string piece(static_cast<std::size_t>(len), '\0');
    in.read(piece.data(), len);
    std::string spm;
    for (char ch : piece) spm += ch == ' ' ? std::string("\xE2\x96\x81") : std::string(1, ch);
    int type = 1;
    if (i == 0) spm = "<unk>", type = 2;
    else if (i == 1) spm = "<s>", type = 3;
    else if (i == 2) spm = "</s>", type = 3;
    else if (i < 259) type = 6;
    v.tokens.push_back(spm);
    v.scores.push_back(score);
    v.types.push_back(type);
  }
  return v;
}

// Exports `m` (llama2.c layout: interleaved RoPE, as GGUF "llama" stores it) to GGUF; the vocab
// of `tok_bin` goes into the tokenizer.ggml.* metadata when given.
// arch "qwen2": q/k stored as HF does (permuted for rotate-half RoPE) with zero q/k/v biases.
inline GgufWriter gguf_of(const Model& m, const std::string& tok_bin = "", const std::string& arch = "llama") {
  const ModelConfig& c = m.config;
  GgufWriter g;
  g.kv_string("general.architecture", arch);
  g.kv_string("general.name", "stories260K-test-export");
  g.kv_u32(arch + ".context_length", static_cast<std::uint32_t>(c.max_seq_len));
  g.kv_u32(arch + ".embedding_length", static_cast<std::uint32_t>(c.dim));
  g.kv_u32(arch + ".block_count", static_cast<std::uint32_t>(c.n_layers));
  g.kv_u32(arch + ".feed_forward_length", static_cast<std::uint32_t>(c.hidden_dim));
  g.kv_u32(arch + ".attention.head_count", static_cast<std::uint32_t>(c.n_heads));
  g.kv_u32(arch + ".attention.head_count_kv", static_cast<std::uint32_t>(c.n_kv_heads));
  g.kv_u32(arch + ".rope.dimension_count", static_cast<std::uint32_t>(c.head_dim));
  g.kv_f32(arch + ".rope.freq_base", c.rope_theta);
  g.kv_f32(arch + ".attention.layer_norm_rms_epsilon", c.norm_eps);
  g.kv_u32("general.alignment", 32);
  if (!tok_bin.empty()) {
    const Llama2cVocab v = read_llama2c_vocab(tok_bin, c.vocab_size);
    g.kv_string("tokenizer.ggml.model", "llama");
    g.kv_strings("tokenizer.ggml.tokens", v.tokens);
    g.kv_f32s("tokenizer.ggml.scores", v.scores);
    g.kv_i32s("tokenizer.ggml.token_type", v.types);
    g.kv_u32("tokenizer.ggml.bos_token_id", 1);
    g.kv_u32("tokenizer.ggml.eos_token_id", 2);
    g.kv_u32("tokenizer.ggml.unknown_token_id", 0);
    g.kv_bool("tokenizer.ggml.add_bos_token", true);
  }
  auto mat = [&](const std::string& name, const Matrix& w) {
    g.tensor(name, {static_cast<std::uint64_t>(w.cols), static_cast<std::uint64_t>(w.rows)}, matrix_f32(w));
  };
  auto vec = [&](const std::string& name, const std::vector<float>& v) { g.tensor(name, {v.size()}, v); };
  mat("token_embd.weight", m.weights.token_embedding);
  for (int l = 0; l < c.n_layers; ++l) {
    const LayerWeights& lw = m.weights.layers[static_cast<std::size_t>(l)];
    const std::string p = fmt::format("blk.{}.", l);
    vec(p + "attn_norm.weight", lw.attn_norm);
    if (arch == "qwen2") {
      g.tensor(p + "attn_q.weight", {static_cast<std::uint64_t>(c.dim), static_cast<std::uint64_t>(c.q_dim())},
               permute_for_rotate_half(matrix_f32(lw.wq), c.n_heads, c.head_dim, c.dim));
      g.tensor(p + "attn_k.weight", {static_cast<std::uint64_t>(c.dim), static_cast<std::uint64_t>(c.kv_dim())},
               permute_for_rotate_half(matrix_f32(lw.wk), c.n_kv_heads, c.head_dim, c.dim));
      vec(p + "attn_q.bias", std::vector<float>(static_cast<std::size_t>(c.q_dim())));
      vec(p + "attn_k.bias", std::vector<float>(static_cast<std::size_t>(c.kv_dim())));
      vec(p + "attn_v.bias", std::vector<float>(static_cast<std::size_t>(c.kv_dim())));
    } else {
      mat(p + "attn_q.weight", lw.wq);
      mat(p + "attn_k.weight", lw.wk);
    }
    mat(p + "attn_v.weight", lw.wv);
    mat(p + "attn_output.weight", lw.wo);
    vec(p + "ffn_norm.weight", lw.ffn_norm);
    mat(p + "ffn_gate.weight", lw.w_gate);
    mat(p + "ffn_up.weight", lw.w_up);
    mat(p + "ffn_down.weight", lw.w_down);
  }
  vec("output_norm.weight", m.weights.final_norm);
  if (!c.tied_embeddings) mat("output.weight", m.weights.classifier);
  return g;
}

// Logits of every position of `tokens` from a fresh context.
inline std::vector<float> all_logits(const Model& m, const std::vector<int>& tokens, ThreadPool* pool = nullptr) {
  Session s(m, pool);
  auto l = s.feed_all(tokens);
  return {l.begin(), l.end()};
}

// The same, fed one token per forward pass (the batch-1 decode path).
inline std::vector<float> stepwise_logits(const Model& m, const std::vector<int>& tokens) {
  Session s(m, nullptr);
  std::vector<float> out;
  for (int t : tokens) {
    const int one[1] = {t};
    auto l = s.feed(one);
    out.insert(out.end(), l.begin(), l.end());
  }
  return out;
}

inline float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  float d = 0;
  for (std::size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(a[i] - b[i]));
  return d;
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}
inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

struct CommandResult {
  int exit_code = -1;
  std::string out, err;
};
// Runs a shell command line, capturing stdout and stderr (stderr through a file).
inline CommandResult run_command(const std::string& cmd, const std::string& scratch_dir) {
  CommandResult r;
  const std::string err_file = scratch_dir + "/stderr.txt";
  FILE* p = ::popen((cmd + " 2>" + err_file).c_str(), "r");
  if (p == nullptr) return r;
  std::array<char, 4096> buf{};
  std::size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.err = read_bytes(err_file);
  return r;
}

}  // namespace qmeter::engine::testing
