// synthetic:SHAPE[:DTYPE[:SEED]] - seeded random weights at real model shapes, for performance
// work where no real checkpoint of that size is at hand. Weights are uniform with variance
// 1/fan_in so activations keep a sane scale; the text they produce is meaningless, and the
// description says SYNTHETIC so no figure can be mistaken for a real model's.
#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <map>

#include "loader_common.h"
#include "qmeter/core/error.h"

namespace qmeter::engine {

namespace {


ModelConfig shape_config(int dim, int hidden, int layers, int heads, int kv_heads, int vocab, int seq, float theta,
                         bool tied, float llama3_factor) {
  ModelConfig c;
  c.architecture = "llama";
  c.dim = dim;
  c.hidden_dim = hidden;
  c.n_layers = layers;
  c.n_heads = heads;
  c.n_kv_heads = kv_heads;
  c.head_dim = dim / heads;
  c.vocab_size = vocab;
  c.max_seq_len = seq;
  c.rope_theta = theta;
  c.tied_embeddings = tied;
  c.rope_scaling.factor = llama3_factor;
  c.rope_style = RopeStyle::kHalf;
  return c;
}

const std::map<std::string, ModelConfig>& shapes() {
  static const std::map<std::string, ModelConfig> kShapes = {
      // stories260K's shape
      {"tiny", shape_config(64, 172, 5, 8, 4, 512, 512, 10000.0f, true, 0.0f)},
      {"small", shape_config(512, 1376, 8, 8, 8, 32000, 2048, 10000.0f, false, 0.0f)},
      // LLaMA-3.2-1B / 3B and LLaMA-3.1-8B (context capped to bound KV memory)
      {"llama-1b", shape_config(2048, 8192, 16, 32, 8, 128256, 8192, 500000.0f, true, 32.0f)},
      {"llama-3b", shape_config(3072, 8192, 28, 24, 8, 128256, 8192, 500000.0f, true, 32.0f)},
      {"llama-8b", shape_config(4096, 14336, 32, 32, 8, 128256, 8192, 500000.0f, false, 8.0f)},
  };
  return kShapes;
}

std::uint64_t splitmix64(std::uint64_t& s) {
  std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Fills a rows x cols matrix of `dtype` with uniform(-a, a); each row has its own generator
// stream, so the weights do not depend on the thread count.
Matrix random_matrix(WeightBuilder& wb, DType dtype, int rows, int cols, std::uint64_t seed, std::uint64_t tensor_id) {
  std::byte* data = wb.allocate(dense_bytes(dtype, static_cast<std::size_t>(rows) * cols));
  const float a = std::sqrt(3.0f / static_cast<float>(cols));
#pragma omp parallel for schedule(static)
  for (int r = 0; r < rows; ++r) {
    std::uint64_t s = seed * 0x100000001B3ull ^ (tensor_id << 32) ^ static_cast<std::uint64_t>(r);
    for (int k = 0; k < 4; ++k) splitmix64(s);
    for (int c = 0; c < cols; ++c) {
      const float u = static_cast<float>(splitmix64(s) >> 40) * (1.0f / 16777216.0f);  // [0, 1)
      const float v = (2.0f * u - 1.0f) * a;
      const std::size_t i = static_cast<std::size_t>(r) * cols + c;
      switch (dtype) {
        case DType::kF32: reinterpret_cast<float*>(data)[i] = v; break;
        case DType::kBF16: reinterpret_cast<std::uint16_t*>(data)[i] = f32_to_bf16(v); break;
        case DType::kF16: reinterpret_cast<std::uint16_t*>(data)[i] = f32_to_f16(v); break;
      }
    }
  }
  return Matrix{dtype, rows, cols, data};
}

// A byte-fallback vocabulary (the 256 bytes + filler pieces) so that text can be encoded and
// generated ids decoded; the filler pieces are labelled as synthetic.
std::unique_ptr<Tokenizer> synthetic_tokenizer(int vocab_size) {
  TokenizerVocab v;
  v.model = "llama";
  v.tokens = {"<unk>", "<s>", "</s>"};
  v.token_types = {2, 3, 3};
  for (int b = 0; b < 256; ++b) {
    v.tokens.push_back(fmt::format("<0x{:02X}>", b));
    v.token_types.push_back(6);
  }
  for (int id = static_cast<int>(v.tokens.size()); id < vocab_size; ++id) {
    v.tokens.push_back(fmt::format("\xE2\x96\x81syn{}", id));
    v.token_types.push_back(1);
  }
  v.scores.assign(v.tokens.size(), 0.0f);
  for (std::size_t i = 259; i < v.scores.size(); ++i) v.scores[i] = -static_cast<float>(i);
  v.unk_id = 0;
  v.bos_id = 1;
  v.eos_id = 2;
  v.add_bos = true;
  return make_vocab_tokenizer(std::move(v));
}

}  // namespace

std::unique_ptr<Model> make_synthetic_model(const std::string& spec, const LoadOptions& options) {
  // synthetic:SHAPE[:DTYPE[:SEED]]
  std::vector<std::string> parts;
  for (std::size_t start = 0;;) {
    const std::size_t colon = spec.find(':', start);
    parts.push_back(spec.substr(start, colon == std::string::npos ? std::string::npos : colon - start));
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  if (parts.size() < 2 || parts.size() > 4 || parts[0] != "synthetic")
    throw UsageError(fmt::format("model '{}': expected synthetic:SHAPE[:DTYPE[:SEED]]", spec));
  auto it = shapes().find(parts[1]);
  if (it == shapes().end()) {
    std::string names;
    for (const auto& [name, c] : shapes()) names += (names.empty() ? "" : ", ") + name;
    throw UsageError(fmt::format("model '{}': unknown synthetic shape '{}' (known: {})", spec, parts[1], names));
  }
  const DType dtype = parts.size() >= 3 ? parse_dtype(parts[2], "model '" + spec + "'")
                                        : options.weight_dtype.value_or(DType::kBF16);
  std::uint64_t seed = 1;
  if (parts.size() == 4) {
    try {
      std::size_t used = 0;
      seed = std::stoull(parts[3], &used);
      if (used != parts[3].size()) throw std::invalid_argument("trailing");
    } catch (const std::exception&) {
      throw UsageError(fmt::format("model '{}': seed '{}' is not a non-negative integer", spec, parts[3]));
    }
  }
  auto model = std::make_unique<Model>();
  model->format = "synthetic";
  model->source = spec;
  model->synthetic = true;
  model->config = it->second;
  const ModelConfig& c = model->config;
  LoadOptions no_conversion;  // weights are generated in the target dtype directly
  WeightBuilder wb(*model, no_conversion);
  ModelWeights& w = model->weights;
  std::uint64_t id = 0;
  w.token_embedding = random_matrix(wb, dtype, c.vocab_size, c.dim, seed, id++);
  w.layers.resize(static_cast<std::size_t>(c.n_layers));
  for (auto& l : w.layers) {
    l.attn_norm.assign(static_cast<std::size_t>(c.dim), 1.0f);
    l.ffn_norm.assign(static_cast<std::size_t>(c.dim), 1.0f);
    l.wq = random_matrix(wb, dtype, c.q_dim(), c.dim, seed, id++);
    l.wk = random_matrix(wb, dtype, c.kv_dim(), c.dim, seed, id++);
    l.wv = random_matrix(wb, dtype, c.kv_dim(), c.dim, seed, id++);
    l.wo = random_matrix(wb, dtype, c.dim, c.q_dim(), seed, id++);
    l.w_gate = random_matrix(wb, dtype, c.hidden_dim, c.dim, seed, id++);
    l.w_up = random_matrix(wb, dtype, c.hidden_dim, c.dim, seed, id++);
    l.w_down = random_matrix(wb, dtype, c.dim, c.hidden_dim, seed, id++);
  }
  w.final_norm.assign(static_cast<std::size_t>(c.dim), 1.0f);
  if (!c.tied_embeddings) w.classifier = random_matrix(wb, dtype, c.vocab_size, c.dim, seed, id++);
  finalize_model(*model, spec);
  model->description += fmt::format(" (seed {})", seed);
  model->tokenizer = synthetic_tokenizer(c.vocab_size);
  return model;
}

}  // namespace qmeter::engine
