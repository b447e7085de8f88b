// Shared model plumbing: matrix helpers, config validation, RoPE frequencies, the load_model
// dispatcher and WeightBuilder (views in place or converted copies).
#include <fmt/format.h>
#include <sys/mman.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numbers>

#include "loader_common.h"
#include "qmeter/core/error.h"
#include "qmeter/engine/kv_cache.h"
#include "qmeter/engine/packed_formats.h"

namespace qmeter::engine {

namespace fs = std::filesystem;

std::size_t dense_bytes(DType dtype, std::size_t n) { return n * dtype_size(dtype); }

std::size_t matrix_bytes(const Matrix& m) {
  if (is_packed(m.dtype)) return packed_matrix_bytes(m);  // quantized layouts (packed_formats.h)
  return dense_bytes(m.dtype, static_cast<std::size_t>(m.rows) * static_cast<std::size_t>(m.cols));
}

void matrix_row_to_f32(const Matrix& m, int row, float* out) {
  if (is_packed(m.dtype)) return packed_row_to_f32(m, row, out);  // quantized layouts (packed_formats.h)
  const std::size_t cols = static_cast<std::size_t>(m.cols);
  convert_to_f32(m.dtype, static_cast<const std::byte*>(m.data) + dense_bytes(m.dtype, static_cast<std::size_t>(row) * cols),
                 cols, out);
}

DType parse_dtype(const std::string& name, const std::string& what) {
  const std::string n = lowercase(name);
  if (n == "f32" || n == "fp32" || n == "float32") return DType::kF32;
  if (n == "bf16" || n == "bfloat16") return DType::kBF16;
  if (n == "f16" || n == "fp16" || n == "float16") return DType::kF16;
  throw UsageError(fmt::format("{}: unknown weight dtype '{}' (expected f32, bf16 or f16)", what, name));
}

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

void ModelConfig::validate(const std::string& source) const {
  auto fail = [&](const std::string& what) {
    throw Error(fmt::format("{}: invalid model configuration: {}", source, what));
  };
  constexpr int kMaxDim = 1 << 20;
  auto check_range = [&](const char* name, int v, int lo, int hi) {
    if (v < lo || v > hi) fail(fmt::format("{} = {} (expected {}..{})", name, v, lo, hi));
  };
  check_range("dim", dim, 1, kMaxDim);
  check_range("hidden_dim", hidden_dim, 1, kMaxDim);
  check_range("n_layers", n_layers, 1, 4096);
  check_range("n_heads", n_heads, 1, 4096);
  check_range("n_kv_heads", n_kv_heads, 1, n_heads);
  check_range("head_dim", head_dim, 2, 4096);
  check_range("vocab_size", vocab_size, 1, 1 << 24);
  check_range("max_seq_len", max_seq_len, 1, 1 << 24);
  if (n_heads % n_kv_heads != 0) fail(fmt::format("n_heads {} is not a multiple of n_kv_heads {}", n_heads, n_kv_heads));
  if (head_dim % 2 != 0) fail(fmt::format("head_dim {} is odd (RoPE rotates pairs)", head_dim));
  if (!(norm_eps > 0.0f) || !(rope_theta > 0.0f)) fail("norm_eps and rope_theta must be positive");
  if (rope_scaling.factor != 0.0f &&
      (!(rope_scaling.factor > 0.0f) || !(rope_scaling.high_freq_factor > rope_scaling.low_freq_factor) ||
       rope_scaling.original_max_position <= 0))
    fail("rope_scaling needs factor > 0, high_freq_factor > low_freq_factor, original_max_position > 0");
}

namespace {

std::vector<float> rope_inverse_frequencies(const ModelConfig& c) {
  const int half = c.head_dim / 2;
  std::vector<float> inv(static_cast<std::size_t>(half));
  const RopeScaling& s = c.rope_scaling;
  const double low_wavelen = s.original_max_position / static_cast<double>(s.low_freq_factor);
  const double high_wavelen = s.original_max_position / static_cast<double>(s.high_freq_factor);
  for (int i = 0; i < half; ++i) {
    double f = 1.0 / std::pow(static_cast<double>(c.rope_theta), (2.0 * i) / c.head_dim);
    if (s.factor > 0.0f) {  // LLaMA-3 "llama3" scaling
      const double wavelen = 2.0 * std::numbers::pi / f;
      if (wavelen > low_wavelen) {
        f /= s.factor;
      } else if (wavelen >= high_wavelen) {
        const double smooth = (s.original_max_position / wavelen - s.low_freq_factor) /
                              (s.high_freq_factor - s.low_freq_factor);
        f = (1.0 - smooth) * f / s.factor + smooth * f;
      }
    }
    inv[static_cast<std::size_t>(i)] = static_cast<float>(f);
  }
  return inv;
}

std::size_t count_params(const Model& m) {
  std::size_t n = static_cast<std::size_t>(m.weights.token_embedding.rows) * m.weights.token_embedding.cols;
  for (const auto& l : m.weights.layers) {
    for (const Matrix* w : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down})
      n += static_cast<std::size_t>(w->rows) * w->cols;
    n += l.attn_norm.size() + l.ffn_norm.size() + l.bq.size() + l.bk.size() + l.bv.size();
  }
  n += m.weights.final_norm.size();
  if (!m.config.tied_embeddings) n += static_cast<std::size_t>(m.weights.classifier.rows) * m.weights.classifier.cols;
  return n;
}

std::unique_ptr<Tokenizer> load_tokenizer_file(const std::string& path, int vocab_size) {
  if (!fs::exists(path)) throw UsageError(fmt::format("tokenizer '{}' not found", path));
  if (ends_with(path, ".json")) return load_hf_tokenizer(path);
  if (ends_with(path, ".model")) return load_sentencepiece_tokenizer(path);
  return load_llama2c_tokenizer(path, vocab_size);
}

}  // namespace

void finalize_model(Model& model, const std::string& source, const std::vector<float>& rope_freq_factors) {
  ModelConfig& c = model.config;
  c.validate(source);
  ModelWeights& w = model.weights;
  if (c.tied_embeddings) w.classifier = w.token_embedding;
  w.rope_inv_freq = rope_inverse_frequencies(c);
  if (!rope_freq_factors.empty()) {
    if (rope_freq_factors.size() != w.rope_inv_freq.size())
      throw Error(fmt::format("{}: rope_freqs has {} values, expected head_dim/2 = {}", source,
                              rope_freq_factors.size(), w.rope_inv_freq.size()));
    for (std::size_t i = 0; i < rope_freq_factors.size(); ++i) {
      if (!(rope_freq_factors[i] > 0.0f)) throw Error(fmt::format("{}: rope_freqs[{}] is not positive", source, i));
      w.rope_inv_freq[i] /= rope_freq_factors[i];
    }
  }
  model.weight_dtype = w.layers.empty() ? w.token_embedding.dtype : w.layers[0].wq.dtype;
  const double params_m = static_cast<double>(count_params(model)) / 1e6;
  model.description = fmt::format(
      "{}{} '{}': {} dim {}, hidden {}, {} layers, {} heads ({} kv), vocab {}, {:.2f}M params, {} weights{}",
      model.synthetic ? "SYNTHETIC (random weights) " : "", model.format, source, c.architecture, c.dim,
      c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, params_m, dtype_name(model.weight_dtype),
      c.tied_embeddings ? ", tied classifier" : "");
}

std::size_t Model::weight_bytes() const {
  std::size_t n = matrix_bytes(weights.token_embedding);
  for (const auto& l : weights.layers) {
    for (const Matrix* w : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) n += matrix_bytes(*w);
    n += sizeof(float) * (l.attn_norm.size() + l.ffn_norm.size() + l.bq.size() + l.bk.size() + l.bv.size());
  }
  n += sizeof(float) * weights.final_norm.size();
  if (!config.tied_embeddings) n += matrix_bytes(weights.classifier);
  return n;
}

std::size_t Model::decode_weight_bytes() const {
  std::size_t n = matrix_bytes(weights.classifier);
  for (const auto& l : weights.layers)
    for (const Matrix* w : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) n += matrix_bytes(*w);
  return n;
}

std::byte* Model::allocate_weights(std::size_t bytes) {
  // Decode streams every weight once per token: with 4 KiB pages that is a TLB miss every 4 KiB
  // (measured: a synthetic LLaMA-1B bf16 decode at 62% of the read roofline, against 88% for the
  // same matrix-vector kernel over huge-page memory). Large matrices therefore get 2 MiB alignment
  // and MADV_HUGEPAGE (honoured when transparent huge pages are in "madvise" or "always" mode;
  // a no-op otherwise), before the memset touches them so the pages are huge from the start.
  constexpr std::size_t kHuge = std::size_t{2} << 20;
  const bool huge = bytes >= kHuge;
  const std::size_t align = huge ? kHuge : 64;
  const std::size_t rounded = bytes == 0 ? 64 : (bytes + align - 1) / align * align;
  void* p = std::aligned_alloc(align, rounded);
  if (p == nullptr) throw Error(fmt::format("out of memory allocating {} bytes of weights", bytes));
  if (huge) madvise(p, rounded, MADV_HUGEPAGE);
  std::memset(p, 0, rounded);
  storage.emplace_back(p, [](const void* q) { std::free(const_cast<void*>(q)); });
  return static_cast<std::byte*>(p);
}

std::byte* WeightBuilder::allocate(std::size_t bytes) { return model_.allocate_weights(bytes); }

namespace {
// Converts one row of `cols` values from `stored` to `target` (the source may be unaligned).
void convert_row(DType stored, const std::byte* src, DType target, std::byte* dst, int cols, std::vector<float>& row,
                 std::vector<std::byte>& raw) {
  const std::size_t n = static_cast<std::size_t>(cols);
  if (stored == target) {
    std::memcpy(dst, src, dense_bytes(stored, n));
    return;
  }
  row.resize(n);
  raw.resize(dense_bytes(stored, n));
  std::memcpy(raw.data(), src, raw.size());
  convert_to_f32(stored, raw.data(), n, row.data());
  switch (target) {
    case DType::kF32: std::memcpy(dst, row.data(), sizeof(float) * n); break;
    case DType::kBF16:
      for (std::size_t c = 0; c < n; ++c) reinterpret_cast<std::uint16_t*>(dst)[c] = f32_to_bf16(row[c]);
      break;
    case DType::kF16:
      for (std::size_t c = 0; c < n; ++c) reinterpret_cast<std::uint16_t*>(dst)[c] = f32_to_f16(row[c]);
      break;
  }
}
}  // namespace

Matrix WeightBuilder::matrix(DType stored, const std::byte* data, int rows, int cols) {
  const DType target = options_.weight_dtype.value_or(stored);
  const auto addr = reinterpret_cast<std::uintptr_t>(data);
  if (target == stored && addr % dtype_size(stored) == 0) return Matrix{stored, rows, cols, data};
  return matrix_permuted_rows(stored, data, rows, cols, {});
}

Matrix WeightBuilder::matrix_permuted_rows(DType stored, const std::byte* data, int rows, int cols,
                                           const std::vector<int>& src_row) {
  const DType target = options_.weight_dtype.value_or(stored);
  const std::size_t n = static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols);
  std::byte* out = allocate(dense_bytes(target, n));
  std::vector<float> row;
  std::vector<std::byte> raw;
  for (int r = 0; r < rows; ++r) {
    const std::size_t from = src_row.empty() ? static_cast<std::size_t>(r) : static_cast<std::size_t>(src_row[static_cast<std::size_t>(r)]);
    convert_row(stored, data + dense_bytes(stored, from * static_cast<std::size_t>(cols)), target,
                out + dense_bytes(target, static_cast<std::size_t>(r) * static_cast<std::size_t>(cols)), cols, row, raw);
  }
  return Matrix{target, rows, cols, out};
}

std::vector<float> WeightBuilder::vector(DType stored, const std::byte* data, std::size_t n) {
  std::vector<std::byte> raw(dense_bytes(stored, n));
  std::memcpy(raw.data(), data, raw.size());
  std::vector<float> out(n);
  if (n > 0) matrix_row_to_f32(Matrix{stored, 1, static_cast<int>(n), raw.data()}, 0, out.data());
  return out;
}

std::unique_ptr<Model> load_model(const std::string& spec, const LoadOptions& options) {
  std::unique_ptr<Model> model;
  if (spec.rfind("synthetic:", 0) == 0) {
    model = make_synthetic_model(spec, options);
  } else if (fs::is_directory(spec)) {
    model = load_hf_model(spec, options);
  } else if (fs::exists(spec)) {
    char magic[4] = {};
    std::ifstream in(spec, std::ios::binary);
    in.read(magic, 4);
    if (ends_with(lowercase(spec), ".gguf") || (in.gcount() == 4 && std::memcmp(magic, "GGUF", 4) == 0))
      model = load_gguf_model(spec, options);
    else
      model = load_llama2c_model(spec, options);
  } else {
    throw UsageError(fmt::format(
        "model '{}' not found: expected a llama2.c .bin file, a .gguf file, a Hugging Face folder or synthetic:SHAPE",
        spec));
  }
  if (options.max_seq_len > 0 && options.max_seq_len < model->config.max_seq_len)
    model->config.max_seq_len = options.max_seq_len;
  set_kv_cache_dtype(*model, options.kv_cache_dtype);
  if (!options.tokenizer_path.empty())
    model->tokenizer = load_tokenizer_file(options.tokenizer_path, model->config.vocab_size);
  return model;
}

}  // namespace qmeter::engine
