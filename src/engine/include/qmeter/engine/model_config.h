#pragma once
// The hyper-parameters of a LLaMA-family decoder (LLaMA 1/2/3, Mistral, Qwen2, SmolLM,
// TinyLlama, llama2.c): RMSNorm, RoPE, grouped-query attention, SwiGLU MLP.
#include <string>
#include <string_view>

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

// Element type of the KV cache: f32, or int8 / E4M3 codes with one f32 scale per (position,
// kv head) (kv_cache.h). An inference setting like max_seq_len rather than a trained
// hyper-parameter; it lives in the config so every cache built from it (KvLayout::for_model)
// uses it, whoever builds the cache (Session, the serving scheduler, the quality scorer).
enum class KvDType : unsigned char { kF32, kInt8, kFp8 };
std::string_view kv_dtype_name(KvDType d);  // "f32", "int8", "fp8"
// Parses kv_dtype_name's spellings; qmeter::UsageError naming `what` otherwise.
KvDType parse_kv_dtype(std::string_view name, std::string_view what = "--kv-cache-dtype");

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
  KvDType kv_cache_dtype = KvDType::kF32;  // see KvDType

  int q_dim() const { return n_heads * head_dim; }
  int kv_dim() const { return n_kv_heads * head_dim; }
  // Throws qmeter::Error naming `source` when the shape is inconsistent or out of range.
  void validate(const std::string& source) const;
};

}  // namespace qmeter::engine
