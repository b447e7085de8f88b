#pragma once
// A loaded model: configuration, weights (typed matrix views, memory-mapped where the file layout
// allows), tokenizer, and a description that says where it came from.
//
// Model specs accepted by load_model():
//   path/to/model.bin            llama2.c checkpoint (legacy v0 layout); tokenizer: --tokenizer, or
//                                tok<vocab>.bin / tokenizer.bin beside it
//   path/to/hf-folder            Hugging Face folder: config.json + model.safetensors (or sharded
//                                with model.safetensors.index.json); tokenizer.json or tokenizer.model
//   path/to/model.gguf           GGUF v3, llama / qwen2 architecture, tokenizer from its metadata
//   synthetic:SHAPE[:DTYPE[:SEED]]  seeded random weights at a real shape (tiny, small, llama-1b,
//                                llama-3b, llama-8b), for performance work only; always labelled
//                                "SYNTHETIC" in the description.
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "qmeter/engine/kernels.h"
#include "qmeter/engine/model_config.h"
#include "qmeter/engine/tokenizer.h"

namespace qmeter::engine {

// Weights are held as `Matrix` (kernels.h): a typed, non-owning view that the matmul dispatch
// receives as is. A packed / quantized type is one more DType value plus its kernels; the loaders
// and the forward pass only go through matrix_bytes() and matrix_row_to_f32() below.
std::size_t matrix_bytes(const Matrix& m);
// Dequantizes / widens row `row` of `m` into `out` (m.cols floats). Used for embedding lookups.
void matrix_row_to_f32(const Matrix& m, int row, float* out);

struct LayerWeights {
  std::vector<float> attn_norm;  // [dim]
  std::vector<float> ffn_norm;   // [dim]
  Matrix wq, wk, wv, wo;         // [q_dim][dim], [kv_dim][dim], [kv_dim][dim], [dim][q_dim]
  Matrix w_gate, w_up, w_down;   // [hidden][dim], [hidden][dim], [dim][hidden]
  std::vector<float> bq, bk, bv; // empty unless config.attention_bias
};

struct ModelWeights {
  Matrix token_embedding;  // [vocab][dim]
  std::vector<LayerWeights> layers;
  std::vector<float> final_norm;  // [dim]
  Matrix classifier;              // [vocab][dim]; the same data as token_embedding when tied
  // RoPE inverse frequencies per rotated pair [head_dim / 2], scaling already applied.
  std::vector<float> rope_inv_freq;
};

struct Model {
  ModelConfig config;
  ModelWeights weights;
  std::unique_ptr<Tokenizer> tokenizer;  // null when the model folder/file carries none
  std::string format;                    // "llama2c", "hf", "gguf", "synthetic"
  std::string source;                    // the spec it was loaded from
  std::string description;               // one line for logs and reports
  bool synthetic = false;
  DType weight_dtype = DType::kF32;  // dtype of the big matrices after any conversion

  // Bytes of every weight (matrices + norms), i.e. the resident footprint.
  std::size_t weight_bytes() const;
  // Bytes a decode step reads from memory: every layer matrix + the classifier (the embedding
  // lookup reads a single row). The roofline figure of the benchmarks divides by this.
  std::size_t decode_weight_bytes() const;

  // Memory maps and owned buffers the Matrix views point into.
  std::vector<std::shared_ptr<const void>> storage;
  // A zero-filled buffer of `bytes` kept in `storage`: 64-byte aligned, and from 2 MiB up 2 MiB
  // aligned with huge pages requested (decode streams all weights; see model_common.cpp).
  std::byte* allocate_weights(std::size_t bytes);

  Model() = default;
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;
};

struct LoadOptions {
  // Convert every weight matrix to this dtype at load (copies; otherwise the stored dtype is kept
  // and mapped in place where aligned).
  std::optional<DType> weight_dtype;
  std::string tokenizer_path;  // overrides the tokenizer found beside the model
  int max_seq_len = 0;         // caps config.max_seq_len when > 0 (bounds KV-cache memory)
  KvDType kv_cache_dtype = KvDType::kF32;  // set_kv_cache_dtype() after loading (kv_cache.h)
};

// Loads any supported spec (see top of file). Errors (qmeter::Error; UsageError for a spec that
// names nothing loadable) name the file and the tensor or field at fault.
std::unique_ptr<Model> load_model(const std::string& spec, const LoadOptions& options = {});

// Parses "f32" / "bf16" / "f16" (UsageError naming `what` otherwise).
DType parse_dtype(const std::string& name, const std::string& what = "--dtype");

// The format-specific loaders behind load_model (exposed for tests).
std::unique_ptr<Model> load_llama2c_model(const std::string& path, const LoadOptions& options);
std::unique_ptr<Model> load_hf_model(const std::string& folder, const LoadOptions& options);
std::unique_ptr<Model> load_gguf_model(const std::string& path, const LoadOptions& options);
std::unique_ptr<Model> make_synthetic_model(const std::string& spec, const LoadOptions& options);

}  // namespace qmeter::engine
