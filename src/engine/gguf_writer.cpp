// GGUF v3 writer for whole models (see gguf_writer.h).
#include "qmeter/engine/gguf_writer.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include "loader_common.h"
#include "qmeter/core/error.h"
#include "qmeter/engine/gguf_blocks.h"

namespace qmeter::engine {

namespace {

constexpr std::uint64_t kAlignment = 32;
enum : std::uint32_t { kU32 = 4, kF32 = 6, kBool = 7, kString = 8, kArray = 9, kI32 = 5 };

// Metadata and tensor infos are built in memory; tensor data is streamed from the matrices.
class Builder {
 public:
  void str(const std::string& key, const std::string& v) { kv(key, kString), put_str(v); }
  void u32(const std::string& key, std::uint32_t v) { kv(key, kU32), put(v); }
  void f32(const std::string& key, float v) { kv(key, kF32), put(v); }
  void boolean(const std::string& key, bool v) { kv(key, kBool), put(static_cast<std::uint8_t>(v)); }
  void strings(const std::string& key, const std::vector<std::string>& v) {
    array(key, kString, v.size());
    for (const std::string& s : v) put_str(s);
  }
  void f32s(const std::string& key, const std::vector<float>& v) {
    array(key, kF32, v.size());
    for (float f : v) put(f);
  }
  void i32s(const std::string& key, const std::vector<int>& v) {
    array(key, kI32, v.size());
    for (int i : v) put(static_cast<std::int32_t>(i));
  }

  struct Tensor {
    std::string name;
    std::vector<std::uint64_t> dims;
    std::uint32_t type;
    std::vector<std::byte> bytes;
  };
  void tensor(Tensor t) { tensors_.push_back(std::move(t)); }

  void write(const std::string& path) const {
    std::string head = "GGUF";
    append(head, std::uint32_t{3});
    append(head, static_cast<std::uint64_t>(tensors_.size()));
    append(head, n_kv_);
    head += meta_;
    std::uint64_t offset = 0;
    for (const Tensor& t : tensors_) {
      append(head, static_cast<std::uint64_t>(t.name.size()));
      head += t.name;
      append(head, static_cast<std::uint32_t>(t.dims.size()));
      for (std::uint64_t d : t.dims) append(head, d);
      append(head, t.type);
      append(head, offset);
      offset = (offset + t.bytes.size() + kAlignment - 1) / kAlignment * kAlignment;
    }
    head.append((kAlignment - head.size() % kAlignment) % kAlignment, '\0');
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(head.data(), static_cast<std::streamsize>(head.size()));
    const char zeros[kAlignment] = {};
    for (const Tensor& t : tensors_) {
      out.write(reinterpret_cast<const char*>(t.bytes.data()), static_cast<std::streamsize>(t.bytes.size()));
      out.write(zeros, static_cast<std::streamsize>((kAlignment - t.bytes.size() % kAlignment) % kAlignment));
    }
    if (!out) throw Error(fmt::format("'{}': cannot write the GGUF file", path));
  }

 private:
  template <typename T>
  static void append(std::string& s, T v) {
    s.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  template <typename T>
  void put(T v) {
    append(meta_, v);
  }
  void put_str(const std::string& v) {
    put(static_cast<std::uint64_t>(v.size()));
    meta_ += v;
  }
  void kv(const std::string& key, std::uint32_t type) {
    put_str(key);
    put(type);
    ++n_kv_;
  }
  void array(const std::string& key, std::uint32_t elem, std::size_t n) {
    kv(key, kArray);
    put(elem);
    put(static_cast<std::uint64_t>(n));
  }
  std::string meta_;
  std::uint64_t n_kv_ = 0;
  std::vector<Tensor> tensors_;
};

// llama.cpp's general.file_type (enum llama_ftype) for the layers' type.
std::uint32_t file_type_of(DType d) {
  switch (d) {
    case DType::kF32: return 0;
    case DType::kF16: return 1;
    case DType::kGgufQ4_0: return 2;
    case DType::kGgufQ8_0: return 7;
    case DType::kGgufQ4K: return 14;  // Q4_K_S: every layer linear in q4_K
    case DType::kBF16: return 32;
    default: return 0;
  }
}

// Row r of the output is row src[r] of m (src empty: identity); whole rows, any row-wise format.
std::vector<std::byte> matrix_bytes_rows(const Matrix& m, const std::vector<int>& src) {
  const std::size_t total = matrix_bytes(m), row = total / static_cast<std::size_t>(m.rows);
  const auto* data = static_cast<const std::byte*>(m.data);
  if (src.empty()) return std::vector<std::byte>(data, data + total);
  std::vector<std::byte> out(total);
  for (int r = 0; r < m.rows; ++r) std::memcpy(out.data() + row * r, data + row * static_cast<std::size_t>(src[r]), row);
  return out;
}

// Engine rotate-half rows -> GGUF llama's interleaved pairs: pair i of a head is rows (2i, 2i+1)
// there and (i, i + head_dim/2) in rotate-half order.
std::vector<int> interleaved_from_half(int heads, int head_dim) {
  std::vector<int> src(static_cast<std::size_t>(heads) * head_dim);
  const int half = head_dim / 2;
  for (int h = 0; h < heads; ++h)
    for (int i = 0; i < half; ++i)
      for (int j = 0; j < 2; ++j) src[static_cast<std::size_t>(h * head_dim + 2 * i + j)] = h * head_dim + j * half + i;
  return src;
}

std::vector<std::byte> floats(const std::vector<float>& v, const std::vector<int>& src = {}) {
  std::vector<std::byte> out(v.size() * sizeof(float));
  for (std::size_t i = 0; i < v.size(); ++i) {
    const float x = src.empty() ? v[i] : v[static_cast<std::size_t>(src[i])];
    std::memcpy(out.data() + i * sizeof(float), &x, sizeof x);
  }
  return out;
}

}  // namespace

std::uint32_t ggml_type_of(DType d) {
  switch (d) {
    case DType::kF32: return 0;
    case DType::kF16: return 1;
    case DType::kBF16: return 30;
    default:
      if (is_gguf_block(d)) return gguf_ggml_type(d);
      throw Error(fmt::format("weight type {} has no GGUF tensor type (GGUF holds f32, f16, bf16, q8_0, q4_0, q4_k)", dtype_name(d)));
  }
}

void write_gguf_model(const Model& model, const std::string& path, const GgufWriteOptions& o) {
  const ModelConfig& c = model.config;
  const bool qwen2 = c.architecture == "qwen2";
  if (qwen2 && c.rope_style != RopeStyle::kHalf)
    throw Error(fmt::format("{}: a qwen2 model with interleaved RoPE cannot be written as GGUF", model.source));
  if (c.attention_bias && !qwen2)
    throw Error(fmt::format("{}: q/k/v biases need the qwen2 architecture in GGUF", model.source));
  const std::string arch = qwen2 ? "qwen2" : "llama";
  Builder g;
  g.str("general.architecture", arch);
  g.str("general.name", o.name.empty() ? model.source : o.name);
  g.u32("general.alignment", static_cast<std::uint32_t>(kAlignment));
  const DType layer_type = c.n_layers > 0 ? model.weights.layers[0].wq.dtype : model.weights.token_embedding.dtype;
  g.u32("general.file_type", o.file_type >= 0 ? static_cast<std::uint32_t>(o.file_type) : file_type_of(layer_type));
  if (is_gguf_block(layer_type)) g.u32("general.quantization_version", 2);
  g.u32(arch + ".context_length", static_cast<std::uint32_t>(c.max_seq_len));
  g.u32(arch + ".embedding_length", static_cast<std::uint32_t>(c.dim));
  g.u32(arch + ".block_count", static_cast<std::uint32_t>(c.n_layers));
  g.u32(arch + ".feed_forward_length", static_cast<std::uint32_t>(c.hidden_dim));
  g.u32(arch + ".attention.head_count", static_cast<std::uint32_t>(c.n_heads));
  g.u32(arch + ".attention.head_count_kv", static_cast<std::uint32_t>(c.n_kv_heads));
  g.u32(arch + ".rope.dimension_count", static_cast<std::uint32_t>(c.head_dim));
  g.f32(arch + ".rope.freq_base", c.rope_theta);
  g.f32(arch + ".attention.layer_norm_rms_epsilon", c.norm_eps);
  g.u32(arch + ".vocab_size", static_cast<std::uint32_t>(c.vocab_size));
  for (const auto& [k, v] : o.extra) g.str(k, v);
  if (const TokenizerVocab* v = o.vocab) {
    g.str("tokenizer.ggml.model", v->model);
    if (!v->pre.empty()) g.str("tokenizer.ggml.pre", v->pre);
    g.strings("tokenizer.ggml.tokens", v->tokens);
    if (!v->scores.empty()) g.f32s("tokenizer.ggml.scores", v->scores);
    if (!v->token_types.empty()) g.i32s("tokenizer.ggml.token_type", v->token_types);
    if (!v->merges.empty()) g.strings("tokenizer.ggml.merges", v->merges);
    if (v->bos_id >= 0) g.u32("tokenizer.ggml.bos_token_id", static_cast<std::uint32_t>(v->bos_id));
    if (v->eos_id >= 0) g.u32("tokenizer.ggml.eos_token_id", static_cast<std::uint32_t>(v->eos_id));
    if (v->unk_id >= 0) g.u32("tokenizer.ggml.unknown_token_id", static_cast<std::uint32_t>(v->unk_id));
    g.boolean("tokenizer.ggml.add_bos_token", v->add_bos);
    if (v->model == "llama") g.boolean("tokenizer.ggml.add_space_prefix", v->add_space_prefix);
  }

  auto mat = [&](const std::string& name, const Matrix& m, const std::vector<int>& src = {}) {
    std::uint32_t type;
    try {
      type = ggml_type_of(m.dtype);
    } catch (const Error& e) {
      throw Error(fmt::format("'{}': tensor '{}': {}", path, name, e.what()));
    }
    g.tensor({name, {static_cast<std::uint64_t>(m.cols), static_cast<std::uint64_t>(m.rows)}, type, matrix_bytes_rows(m, src)});
  };
  auto vec = [&](const std::string& name, const std::vector<float>& v, const std::vector<int>& src = {}) {
    g.tensor({name, {static_cast<std::uint64_t>(v.size())}, 0, floats(v, src)});
  };
  const bool permute = !qwen2 && c.rope_style == RopeStyle::kHalf;
  const std::vector<int> q_rows = permute ? interleaved_from_half(c.n_heads, c.head_dim) : std::vector<int>{};
  const std::vector<int> k_rows = permute ? interleaved_from_half(c.n_kv_heads, c.head_dim) : std::vector<int>{};
  const ModelWeights& w = model.weights;
  mat("token_embd.weight", w.token_embedding);
  for (int l = 0; l < c.n_layers; ++l) {
    const LayerWeights& lw = w.layers[static_cast<std::size_t>(l)];
    const std::string p = fmt::format("blk.{}.", l);
    vec(p + "attn_norm.weight", lw.attn_norm);
    mat(p + "attn_q.weight", lw.wq, q_rows);
    mat(p + "attn_k.weight", lw.wk, k_rows);
    mat(p + "attn_v.weight", lw.wv);
    mat(p + "attn_output.weight", lw.wo);
    if (c.attention_bias) {
      vec(p + "attn_q.bias", lw.bq);
      vec(p + "attn_k.bias", lw.bk);
      vec(p + "attn_v.bias", lw.bv);
    }
    vec(p + "ffn_norm.weight", lw.ffn_norm);
    mat(p + "ffn_gate.weight", lw.w_gate);
    mat(p + "ffn_up.weight", lw.w_up);
    mat(p + "ffn_down.weight", lw.w_down);
  }
  vec("output_norm.weight", w.final_norm);
  if (!c.tied_embeddings) mat("output.weight", w.classifier);
  if (c.rope_scaling.factor > 0.0f) {  // GGUF keeps scaled RoPE as per-pair frequency divisors
    std::vector<float> factors(w.rope_inv_freq.size());
    for (std::size_t i = 0; i < factors.size(); ++i) {
      const double base = 1.0 / std::pow(static_cast<double>(c.rope_theta), (2.0 * static_cast<double>(i)) / c.head_dim);
      factors[i] = static_cast<float>(base / w.rope_inv_freq[i]);
    }
    vec("rope_freqs.weight", factors);
  }
  g.write(path);
}

TokenizerVocab llama2c_vocab_for_gguf(const std::string& tok_bin, int vocab_size) {
  std::ifstream in(tok_bin, std::ios::binary);
  if (!in) throw Error(fmt::format("'{}': cannot open the llama2.c tokenizer", tok_bin));
  std::int32_t max_len = 0;
  in.read(reinterpret_cast<char*>(&max_len), 4);
  TokenizerVocab v;
  v.model = "llama";
  v.bos_id = 1;
  v.eos_id = 2;
  v.unk_id = 0;
  v.add_bos = true;
  v.source = tok_bin;
  for (int i = 0; i < vocab_size; ++i) {
    float score = 0;
    std::int32_t len = 0;
    in.read(reinterpret_cast<char*>(&score), 4);
    in.read(reinterpret_cast<char*>(&len), 4);
    if (!in || len < 0 || len > (1 << 20)) throw Error(fmt::format("'{}': token {} is truncated or malformed", tok_bin, i));
    std::string piece(static_cast<std::size_t>(len), '\0');
    in.read(piece.data(), len);
    if (!in) throw Error(fmt::format("'{}': token {} is truncated", tok_bin, i));
    std::string spm;
    for (char ch : piece) spm += ch == ' ' ? std::string("\xE2\x96\x81") : std::string(1, ch);
    int type = 1;  // normal
    if (i == 0) spm = "<unk>", type = 2;
    else if (i == 1) spm = "<s>", type = 3;
    else if (i == 2) spm = "</s>", type = 3;
    else if (i < 259) type = 6;  // byte fallback <0xXX>
    v.tokens.push_back(spm);
    v.scores.push_back(score);
    v.token_types.push_back(type);
  }
  return v;
}

std::optional<TokenizerVocab> gguf_vocab_for_source(const Model& model, const std::string& source_spec, std::string* why_none) {
  namespace fs = std::filesystem;
  const fs::path src(source_spec);
  using Convert = std::function<TokenizerVocab(const std::string&)>;
  const Convert llama2c = [&](const std::string& p) { return llama2c_vocab_for_gguf(p, model.config.vocab_size); };
  std::vector<std::pair<fs::path, Convert>> candidates;  // in order of preference
  if (model.format == "gguf" && model.tokenizer) {
    candidates.emplace_back(src, read_gguf_vocab);
  } else if (model.format == "llama2c") {
    candidates.emplace_back(src.parent_path() / fmt::format("tok{}.bin", model.config.vocab_size), llama2c);
    candidates.emplace_back(src.parent_path() / "tokenizer.bin", llama2c);
  } else if (model.format == "hf") {
    candidates.emplace_back(src / "tokenizer.model", sentencepiece_vocab_for_gguf);
    candidates.emplace_back(src / "tokenizer.json", hf_vocab_for_gguf);
    candidates.emplace_back(src / "tokenizer.bin", llama2c);
  }
  std::string why = fmt::format("no tokenizer file found for '{}'", source_spec);
  for (const auto& [path, convert] : candidates) {
    if (!fs::is_regular_file(path)) continue;
    try {
      return convert(path.string());
    } catch (const UsageError& e) {  // one GGUF cannot state: try the next, else write the weights alone
      why = e.what();
    }
  }
  if (why_none) *why_none = why;
  return std::nullopt;
}

}  // namespace qmeter::engine
