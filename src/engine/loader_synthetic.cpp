// synthetic:SHAPE[:DTYPE[:SEED]] - seeded random weights at real model shapes, for performance
// work where no real checkpoint of that size is at hand. Weights are uniform with variance
// 1/fan_in so activations keep a sane scale; the text they produce is meaningless, and the
// description says SYNTHETIC so no figure can be mistaken for a real model's.
//
// DTYPE is a dense type (f32, bf16, f16) or a quantized one, built directly in that format so
// that a 1B model never exists in f32 (4.4 GB) on the way: random codes and scales chosen so the
// weights span about the same +-a as the dense ones (the kernels' speed does not depend on the
// values, only the activations' scale must stay sane):
//   q8_0, q4_0, q4_k, q6_k  llama.cpp blocks for every matrix, embedding and classifier included (what
//                     llama-quantize --pure writes);
//   w8a16, w4a16      qmeter's int8 per-row and 4-bit group-128 formats for the layer matrices,
//                     embedding and classifier bf16 (what `qmeter quantize` keeps by default).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <vector>

#include "loader_common.h"
#include "qmeter/core/error.h"
#include "qmeter/core/parse_number.h"
#include "qmeter/core/random.h"
#include "qmeter/engine/gguf_blocks.h"
#include "qmeter/engine/packed_formats.h"

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
      // TinyLlama-1.1B (the LLaMA-1.1B shape of llama.cpp's published CPU figures)
      {"tinyllama-1.1b", shape_config(2048, 5632, 22, 32, 4, 32000, 2048, 10000.0f, false, 0.0f)},
      // LLaMA-3.2-1B / 3B and LLaMA-3.1-8B (context capped to bound KV memory)
      {"llama-1b", shape_config(2048, 8192, 16, 32, 8, 128256, 8192, 500000.0f, true, 32.0f)},
      {"llama-3b", shape_config(3072, 8192, 28, 24, 8, 128256, 8192, 500000.0f, true, 32.0f)},
      {"llama-8b", shape_config(4096, 14336, 32, 32, 8, 128256, 8192, 500000.0f, false, 8.0f)},
  };
  return kShapes;
}

// Row r of tensor `tensor_id`: its own generator stream, so the weights do not depend on the
// thread count.
SplitMix64 row_stream(std::uint64_t seed, std::uint64_t tensor_id, int r) {
  SplitMix64 rng(seed * 0x100000001B3ull ^ (tensor_id << 32) ^ static_cast<std::uint64_t>(r));
  for (int k = 0; k < 4; ++k) rng.next();
  return rng;
}

void random_bytes(SplitMix64& rng, std::uint8_t* p, std::size_t n) {
  for (std::size_t i = 0; i < n; i += 8) {
    const std::uint64_t v = rng.next();
    std::memcpy(p + i, &v, std::min<std::size_t>(8, n - i));
  }
}

void put_f16(std::uint8_t* p, float v) {
  const std::uint16_t h = f32_to_f16(v);
  std::memcpy(p, &h, 2);
}

bool has_gguf_generator(DType d) {
  return d == DType::kGgufQ8_0 || d == DType::kGgufQ4_0 || d == DType::kGgufQ4K || d == DType::kGgufQ6K;
}

// One row of llama.cpp blocks with weights in about [-a, a] (gguf_blocks.h for the layouts); a
// type without a case here is refused by has_gguf_generator before any thread runs this.
void random_gguf_row(DType dtype, float a, SplitMix64& rng, int cols, std::uint8_t* out) {
  const int blocks = cols / gguf_block_elems(dtype);
  const int bytes = gguf_block_bytes(dtype);
  for (int b = 0; b < blocks; ++b) {
    std::uint8_t* blk = out + static_cast<std::size_t>(b) * bytes;
    random_bytes(rng, blk, static_cast<std::size_t>(bytes));  // codes (and q4_K's packed scales)
    switch (dtype) {
      case DType::kGgufQ8_0:  // d * q, q in [-127, 127]
        put_f16(blk, a / 127.0f);
        for (int i = 2; i < bytes; ++i) blk[i] = blk[i] == 0x80 ? 0x81 : blk[i];
        break;
      case DType::kGgufQ4_0:  // d * (q - 8)
        put_f16(blk, a / 8.0f);
        break;
      case DType::kGgufQ4K:  // (d * sc) * q - dmin * m, random 6-bit sc and m: mean about 0, |w| <= 2a
        put_f16(blk, 2.0f * a / (15.0f * 63.0f));
        put_f16(blk + 2, a / 63.0f);
        break;
      case DType::kGgufQ6K:  // (d * sc) * (q - 32), random int8 sc: |w| <= 2a
        put_f16(blk + 208, a / 2048.0f);
        break;
      default: break;
    }
  }
}

// qmeter's packed w8a16 (kQ8Row) and w4a16 (kQ4Group, 4 bits, groups of 128, zero point 8).
std::vector<std::byte> random_packed(DType dtype, int rows, int cols, float a, std::uint64_t seed, std::uint64_t tensor_id) {
  std::vector<std::uint8_t> codes(static_cast<std::size_t>(rows) * cols);
#pragma omp parallel for schedule(static)
  for (int r = 0; r < rows; ++r) {
    SplitMix64 rng = row_stream(seed, tensor_id, r);
    std::uint8_t* c = codes.data() + static_cast<std::size_t>(r) * cols;
    random_bytes(rng, c, static_cast<std::size_t>(cols));
    for (int i = 0; i < cols; ++i) c[i] = dtype == DType::kQ8Row ? (c[i] == 0x80 ? 0x81 : c[i]) : (c[i] & 15);
  }
  if (dtype == DType::kQ8Row) {
    const std::vector<float> scales(static_cast<std::size_t>(rows), a / 127.0f);
    return pack_q8_row(rows, cols, reinterpret_cast<const std::int8_t*>(codes.data()), scales.data());
  }
  const std::size_t groups = static_cast<std::size_t>(rows) * q4_group_count(cols, 128);
  const std::vector<float> scales(groups, f16_to_f32(f32_to_f16(a / 8.0f)));
  const std::vector<std::uint8_t> zeros(groups, 8);
  return pack_q4_group(rows, cols, 4, 128, codes.data(), scales.data(), zeros.data());
}

// Fills a rows x cols matrix of `dtype` with uniform(-a, a) (dense), or random codes spanning
// about the same range (quantized).
Matrix random_matrix(WeightBuilder& wb, DType dtype, int rows, int cols, std::uint64_t seed, std::uint64_t tensor_id) {
  const float a = std::sqrt(3.0f / static_cast<float>(cols));
  const bool dense = dtype == DType::kF32 || dtype == DType::kBF16 || dtype == DType::kF16;
  if (!dense && !has_gguf_generator(dtype) && dtype != DType::kQ8Row && dtype != DType::kQ4Group)
    throw Error(fmt::format("synthetic weights: no generator for {}", dtype_name(dtype)));
  if (is_gguf_block(dtype)) {
    const std::size_t rb = gguf_row_bytes(dtype, cols);
    auto* data = reinterpret_cast<std::uint8_t*>(wb.allocate(rb * static_cast<std::size_t>(rows)));
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; ++r) {
      SplitMix64 rng = row_stream(seed, tensor_id, r);
      random_gguf_row(dtype, a, rng, cols, data + rb * static_cast<std::size_t>(r));
    }
    return packed_matrix(dtype, rows, cols, reinterpret_cast<std::byte*>(data));
  }
  if (dtype == DType::kQ8Row || dtype == DType::kQ4Group) {
    const std::vector<std::byte> blob = random_packed(dtype, rows, cols, a, seed, tensor_id);
    std::byte* data = wb.allocate(blob.size());
    std::memcpy(data, blob.data(), blob.size());
    return packed_matrix(dtype, rows, cols, data);
  }
  std::byte* data = wb.allocate(dense_bytes(dtype, static_cast<std::size_t>(rows) * cols));
#pragma omp parallel for schedule(static)
  for (int r = 0; r < rows; ++r) {
    SplitMix64 rng = row_stream(seed, tensor_id, r);
    for (int c = 0; c < cols; ++c) {
      const float u = static_cast<float>(rng.next() >> 40) * (1.0f / 16777216.0f);  // [0, 1)
      const float v = (2.0f * u - 1.0f) * a;
      const std::size_t i = static_cast<std::size_t>(r) * cols + c;
      switch (dtype) {
        case DType::kF32: reinterpret_cast<float*>(data)[i] = v; break;
        case DType::kBF16: reinterpret_cast<std::uint16_t*>(data)[i] = f32_to_bf16(v); break;
        default: reinterpret_cast<std::uint16_t*>(data)[i] = f32_to_f16(v); break;  // kF16
      }
    }
  }
  return Matrix{dtype, rows, cols, data};
}

// The DTYPE of a synthetic spec: a dense type (parse_dtype) or a quantized one (file comment).
DType synthetic_dtype(const std::string& name, const std::string& spec) {
  static const std::map<std::string, DType> kQuantized = {{"q8_0", DType::kGgufQ8_0}, {"q4_0", DType::kGgufQ4_0},
                                                          {"q4_k", DType::kGgufQ4K},  {"q6_k", DType::kGgufQ6K},
                                                          {"w8a16", DType::kQ8Row},
                                                          {"w4a16", DType::kQ4Group}};
  const auto it = kQuantized.find(lowercase(name));
  if (it != kQuantized.end()) return it->second;
  try {
    return parse_dtype(name, "model '" + spec + "'");
  } catch (const UsageError&) {
    throw UsageError(fmt::format("model '{}': unknown synthetic weight type '{}' (expected f32, bf16, f16, q8_0, q4_0, "
                                 "q4_k, q6_k, w8a16 or w4a16)", spec, name));
  }
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
  const DType dtype = parts.size() >= 3 ? synthetic_dtype(parts[2], spec) : options.weight_dtype.value_or(DType::kBF16);
  // Embedding and classifier: bf16 beside qmeter's packed formats (file comment).
  const DType table_dtype = dtype == DType::kQ8Row || dtype == DType::kQ4Group ? DType::kBF16 : dtype;
  std::uint64_t seed = 1;
  if (parts.size() == 4) seed = parse_uint_field(parts[3], fmt::format("model '{}': seed", spec));
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
  w.token_embedding = random_matrix(wb, table_dtype, c.vocab_size, c.dim, seed, id++);
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
  if (!c.tied_embeddings) w.classifier = random_matrix(wb, table_dtype, c.vocab_size, c.dim, seed, id++);
  finalize_model(*model, spec);
  model->description += fmt::format(" (seed {})", seed);
  model->tokenizer = synthetic_tokenizer(c.vocab_size);
  return model;
}

}  // namespace qmeter::engine
