#pragma once
// The hyper-parameters of a LLaMA-family decoder (LLaMA 1/2/3, Mistral, Qwen2, SmolLM,
// TinyLlama, llama2.c): RMSNorm, RoPE, grouped-query attention, SwiGLU MLP.
#include <string>

namespace qmeter::engine {

// Which pairs of a head's dimensions RoPE rotates together.
//  kInterleaved: (2i, 2i+1)      - Meta's original layout, llama2.c, GGUF "llama" (llama.cpp permutes
//                                   Hugging Face q/k weights back to it when converting);
//  kHalf:        (i, i + d/2)    - Hugging Face "rotate_half" / GPT-NeoX, whose q/k weights are
//                                   stored permuted so both give the same model.
enum class RopeStyle : unsigned char { kInterleaved, kHalf };

// LLaMA-3 "llama3" rope scaling (factor 0 = none): low frequencies divided by `factor`, high
// frequencies kept, a smooth blend in between.
struct RopeScaling {
  float factor = 0.0f;
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int original_max_position = 8192;
};

struct ModelConfig {
  std::string architecture = "llama";  // "llama", "mistral", "qwen2" (all run by the same forward)
  int dim = 0;         // hidden size
  int hidden_dim = 0;  // MLP intermediate size
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;  // < n_heads: grouped-query attention
  int head_dim = 0;    // usually dim / n_heads
  int vocab_size = 0;
  int max_seq_len = 0;  // positions a KV cache holds at most
  float norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  RopeScaling rope_scaling;
  RopeStyle rope_style = RopeStyle::kInterleaved;
  bool attention_bias = false;   // q/k/v projections carry a bias (Qwen2)
  bool tied_embeddings = false;  // the classifier is the token embedding matrix

  int q_dim() const { return n_heads * head_dim; }
  int kv_dim() const { return n_kv_heads * head_dim; }
  // Throws qmeter::Error naming `source` when the shape is inconsistent or out of range.
  void validate(const std::string& source) const;
};

}  // namespace qmeter::engine
