#pragma once
// The trainer's LLaMA-family transformer: token embedding (tied with the output projection),
// n_layers x [RMSNorm, grouped-query attention with rotate-half RoPE, residual, RMSNorm, SwiGLU
// MLP, residual], final RMSNorm. Parameters live in one flat array in the order of `ParamLayout`
// and carry Hugging Face LlamaForCausalLM tensor names, so export is a straight copy.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "qmeter/core/random.h"

namespace qmeter::train {

struct ModelConfig {
  int vocab_size = 1024;
  int dim = 256;
  int n_layers = 4;
  int n_heads = 8;
  int n_kv_heads = 4;
  int ffn_dim = 688;
  int max_seq_len = 128;
  double rope_theta = 10000.0;
  double norm_eps = 1e-5;

  int head_dim() const { return dim / n_heads; }
  // Throws qmeter::UsageError naming the field that is inconsistent.
  void validate() const;
};

struct ParamTensor {
  std::string name;           // Hugging Face name, e.g. model.layers.0.self_attn.q_proj.weight
  std::vector<int> shape;     // [out, in] for projections (y = x W^T), [dim] for norms
  std::size_t offset = 0;     // into the flat parameter array
  std::size_t size = 0;
  bool weight_decay = false;  // AdamW decays matrices and the embedding, not norm gains
};

class ParamLayout {
 public:
  explicit ParamLayout(const ModelConfig& config);
  const std::vector<ParamTensor>& tensors() const { return tensors_; }
  std::size_t total() const { return total_; }
  const ParamTensor& find(const std::string& name) const;  // throws Error when absent

  // Indices into tensors() (the layer's nine tensors follow the embedding in this order).
  enum LayerTensor { kAttnNorm, kWq, kWk, kWv, kWo, kMlpNorm, kWGate, kWUp, kWDown, kPerLayer };
  std::size_t embed_index() const { return 0; }
  std::size_t layer_index(int layer, LayerTensor t) const { return 1 + static_cast<std::size_t>(layer) * kPerLayer + t; }
  std::size_t final_norm_index() const { return tensors_.size() - 1; }

 private:
  std::vector<ParamTensor> tensors_;
  std::size_t total_ = 0;
};

// Forward and backward on a batch of `batch` sequences of `seq_len` tokens (row-major
// batch x seq_len ids). T is float for training and double for gradient checks.
template <typename T>
class Transformer {
 public:
  explicit Transformer(const ModelConfig& config);
  ~Transformer();
  Transformer(Transformer&&) noexcept;

  const ModelConfig& config() const { return config_; }
  const ParamLayout& layout() const { return layout_; }
  std::vector<T>& params() { return params_; }
  const std::vector<T>& params() const { return params_; }
  std::vector<T>& grads() { return grads_; }
  T* tensor(std::size_t index) { return params_.data() + layout_.tensors()[index].offset; }

  // Normal(0, 0.02) matrices and embedding (residual-output projections scaled down by
  // 1/sqrt(2 n_layers)), unit norm gains; reproducible from the seed on any platform.
  void init_random(std::uint64_t seed);

  // Summed NLL of `targets` (-1 = not scored) and their count; the logits (batch*seq_len x vocab)
  // stay readable through logits() afterwards.
  double forward(const std::int32_t* inputs, const std::int32_t* targets, int batch, int seq_len, std::int64_t* counted);
  const std::vector<T>& logits() const;
  // forward() then gradients of the MEAN loss into grads() (overwritten). Returns the summed NLL.
  double forward_backward(const std::int32_t* inputs, const std::int32_t* targets, int batch, int seq_len,
                          std::int64_t* counted);

 private:
  struct Activations;
  double run_forward(const std::int32_t* inputs, const std::int32_t* targets, int batch, int seq_len,
                     std::int64_t* counted, bool gradient);
  void run_backward(const std::int32_t* inputs, int batch, int seq_len);

  ModelConfig config_;
  ParamLayout layout_;
  std::vector<T> params_, grads_;
  std::unique_ptr<Activations> acts_;
};

// Deterministic, platform-independent random numbers (core SplitMix64 + Box-Muller), so that a
// seed means the same weights and batches everywhere.
using SplitMix64 = qmeter::SplitMix64;

}  // namespace qmeter::train
