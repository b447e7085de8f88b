// llama2.c checkpoints, legacy (version 0) layout: seven int32 header fields
//   dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
// then f32 tensors in a fixed order; vocab_size > 0 means the classifier is the token embedding,
// a negative vocab_size means a separate classifier follows the (unused) RoPE tables.
#include <fmt/format.h>

#include <cstring>
#include <filesystem>

#include "loader_common.h"
#include "mmap_file.h"
#include "qmeter/core/error.h"

namespace qmeter::engine {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t kHeaderBytes = 7 * sizeof(std::int32_t);

// Walks the file's tensors in order, checking each lies within the file.
class Llama2cReader {
 public:
  explicit Llama2cReader(const MappedFile& file) : file_(file) {}
  const std::byte* take(const std::string& tensor, std::size_t n_floats) {
    const std::size_t bytes = n_floats * sizeof(float);
    if (offset_ > file_.size() || bytes > file_.size() - offset_)
      throw Error(fmt::format("'{}': truncated llama2.c checkpoint: tensor '{}' needs bytes [{}, {}) but the file has {}",
                              file_.path(), tensor, offset_, offset_ + bytes, file_.size()));
    const std::byte* p = file_.data() + offset_;
    offset_ += bytes;
    return p;
  }
  std::size_t offset() const { return offset_; }
  void seek(std::size_t o) { offset_ = o; }

 private:
  const MappedFile& file_;
  std::size_t offset_ = kHeaderBytes;
};

std::string find_llama2c_tokenizer(const std::string& model_path, int vocab) {
  const fs::path dir = fs::path(model_path).parent_path();
  for (const std::string name : {fmt::format("tok{}.bin", vocab), std::string("tokenizer.bin")}) {
    const fs::path p = dir / name;
    if (fs::exists(p)) return p.string();
  }
  return {};
}

}  // namespace

std::unique_ptr<Model> load_llama2c_model(const std::string& path, const LoadOptions& options) {
  auto file = MappedFile::open(path);
  if (file->size() < kHeaderBytes)
    throw Error(fmt::format("'{}': truncated llama2.c header: {} bytes, need {}", path, file->size(), kHeaderBytes));
  std::int32_t h[7];
  std::memcpy(h, file->data(), sizeof(h));
  if (std::memcmp(file->data(), "ak42", 4) == 0 || std::memcmp(file->data(), "24ka", 4) == 0)
    throw Error(fmt::format("'{}': llama2.c version-1/2 checkpoint (magic 'ak42'); only the legacy v0 layout is supported",
                            path));
  const char* names[7] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};
  for (int i = 0; i < 7; ++i) {
    const std::int64_t v = i == 5 ? std::abs(static_cast<std::int64_t>(h[i])) : h[i];
    if (v <= 0 || v > (1 << 24))
      throw Error(fmt::format("'{}': not a llama2.c checkpoint: header field {} = {} is out of range", path, names[i], h[i]));
  }

  auto model = std::make_unique<Model>();
  model->format = "llama2c";
  model->source = path;
  ModelConfig& c = model->config;
  c.architecture = "llama";
  c.dim = h[0];
  c.hidden_dim = h[1];
  c.n_layers = h[2];
  c.n_heads = h[3];
  c.n_kv_heads = h[4];
  c.vocab_size = std::abs(h[5]);
  c.tied_embeddings = h[5] > 0;
  c.max_seq_len = h[6];
  c.rope_style = RopeStyle::kInterleaved;
  c.norm_eps = 1e-5f;
  c.rope_theta = 10000.0f;
  if (c.dim % c.n_heads != 0)
    throw Error(fmt::format("'{}': invalid llama2.c header: dim {} is not a multiple of n_heads {}", path, c.dim, c.n_heads));
  c.head_dim = c.dim / c.n_heads;
  c.validate(path);

  const std::size_t dim = c.dim, hidden = c.hidden_dim, kv = c.kv_dim(), qd = c.q_dim(), vocab = c.vocab_size;
  const std::size_t L = c.n_layers;
  Llama2cReader rd(*file);
  WeightBuilder wb(*model, options);
  ModelWeights& w = model->weights;
  w.layers.resize(L);
  w.token_embedding = wb.matrix(DType::kF32, rd.take("token_embedding", vocab * dim), c.vocab_size, c.dim);
  // Per-kind tensors are stacked over layers: [L][...].
  auto stacked = [&](const char* name, std::size_t per_layer) {
    return std::pair{rd.take(name, per_layer * L), per_layer * sizeof(float)};
  };
  auto [att_norm, att_norm_stride] = stacked("rms_att_weight", dim);
  auto [wq, wq_stride] = stacked("wq", qd * dim);
  auto [wk, wk_stride] = stacked("wk", kv * dim);
  auto [wv, wv_stride] = stacked("wv", kv * dim);
  auto [wo, wo_stride] = stacked("wo", dim * qd);
  auto [ffn_norm, ffn_norm_stride] = stacked("rms_ffn_weight", dim);
  auto [w1, w1_stride] = stacked("w1", hidden * dim);
  auto [w2, w2_stride] = stacked("w2", dim * hidden);
  auto [w3, w3_stride] = stacked("w3", hidden * dim);
  for (std::size_t l = 0; l < L; ++l) {
    LayerWeights& lw = w.layers[l];
    lw.attn_norm = wb.vector(DType::kF32, att_norm + l * att_norm_stride, dim);
    lw.wq = wb.matrix(DType::kF32, wq + l * wq_stride, static_cast<int>(qd), c.dim);
    lw.wk = wb.matrix(DType::kF32, wk + l * wk_stride, static_cast<int>(kv), c.dim);
    lw.wv = wb.matrix(DType::kF32, wv + l * wv_stride, static_cast<int>(kv), c.dim);
    lw.wo = wb.matrix(DType::kF32, wo + l * wo_stride, c.dim, static_cast<int>(qd));
    lw.ffn_norm = wb.vector(DType::kF32, ffn_norm + l * ffn_norm_stride, dim);
    lw.w_gate = wb.matrix(DType::kF32, w1 + l * w1_stride, c.hidden_dim, c.dim);
    lw.w_down = wb.matrix(DType::kF32, w2 + l * w2_stride, c.dim, c.hidden_dim);
    lw.w_up = wb.matrix(DType::kF32, w3 + l * w3_stride, c.hidden_dim, c.dim);
  }
  w.final_norm = wb.vector(DType::kF32, rd.take("rms_final_weight", dim), dim);
  // Precomputed RoPE tables of old llama2.c exports: skipped (frequencies are computed).
  rd.take("freq_cis_real", static_cast<std::size_t>(c.max_seq_len) * c.head_dim / 2);
  rd.take("freq_cis_imag", static_cast<std::size_t>(c.max_seq_len) * c.head_dim / 2);
  if (!c.tied_embeddings) w.classifier = wb.matrix(DType::kF32, rd.take("wcls", vocab * dim), c.vocab_size, c.dim);
  if (rd.offset() != file->size())
    throw Error(fmt::format("'{}': llama2.c checkpoint has {} bytes but its header (dim {}, hidden {}, {} layers, "
                            "{} heads, {} kv heads, vocab {}, seq_len {}) implies {}: wrong sizes",
                            path, file->size(), c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, h[5],
                            c.max_seq_len, rd.offset()));
  model->storage.push_back(file);
  finalize_model(*model, path);
  const std::string tok = find_llama2c_tokenizer(path, c.vocab_size);
  if (!tok.empty() && options.tokenizer_path.empty()) model->tokenizer = load_llama2c_tokenizer(tok, c.vocab_size);
  return model;
}

}  // namespace qmeter::engine
