#pragma once
// A random llama model whose widths are whole 256-weight super-blocks (dim 256, ffn 512, 4 query
// heads of 64, vocabulary 96, untied), written as an f32 GGUF file: the source the GGUF
// quantization tests quantize with real K-quant blocks (stories260K's 64-wide layers only reach
// the fallback types). random_llama_model() builds such a model of any shape (tests/llamacpp uses
// it with a tokenizer's vocabulary size).
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "qmeter/engine/gguf_writer.h"
#include "qmeter/engine/model.h"

namespace qmeter::testing {

// A random f32 llama model (untied, norms 1, weights N(0, 0.05) from `seed`), head_dim dim / n_heads.
inline std::unique_ptr<engine::Model> random_llama_model(int dim, int hidden_dim, int n_layers, int n_heads, int n_kv_heads,
                                                         int vocab_size, unsigned seed) {
  auto mp = std::make_unique<engine::Model>();
  engine::Model& m = *mp;
  engine::ModelConfig& c = m.config;
  c.dim = dim, c.hidden_dim = hidden_dim, c.n_layers = n_layers, c.n_heads = n_heads, c.n_kv_heads = n_kv_heads;
  c.head_dim = dim / n_heads, c.vocab_size = vocab_size, c.max_seq_len = 64, c.tied_embeddings = false;
  m.source = "random-" + std::to_string(dim);
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, 0.05f);
  auto mat = [&](int rows, int cols) {
    auto buf = std::make_shared<std::vector<float>>(static_cast<std::size_t>(rows) * cols);
    for (float& v : *buf) v = g(rng);
    m.storage.push_back(buf);
    return engine::Matrix{engine::DType::kF32, rows, cols, buf->data()};
  };
  m.weights.token_embedding = mat(c.vocab_size, c.dim);
  m.weights.classifier = mat(c.vocab_size, c.dim);
  for (int l = 0; l < c.n_layers; ++l) {
    engine::LayerWeights lw;
    lw.attn_norm.assign(static_cast<std::size_t>(c.dim), 1.0f);
    lw.ffn_norm.assign(static_cast<std::size_t>(c.dim), 1.0f);
    lw.wq = mat(c.q_dim(), c.dim), lw.wk = mat(c.kv_dim(), c.dim), lw.wv = mat(c.kv_dim(), c.dim), lw.wo = mat(c.dim, c.q_dim());
    lw.w_gate = mat(c.hidden_dim, c.dim), lw.w_up = mat(c.hidden_dim, c.dim), lw.w_down = mat(c.dim, c.hidden_dim);
    m.weights.layers.push_back(std::move(lw));
  }
  m.weights.final_norm.assign(static_cast<std::size_t>(c.dim), 1.0f);
  return mp;
}

inline std::string random_f32_gguf(const std::string& dir, int n_layers, int n_kv_heads, unsigned seed) {
  const auto m = random_llama_model(256, 512, n_layers, 4, n_kv_heads, 96, seed);
  const std::string path = dir + "/random-f32.gguf";
  engine::write_gguf_model(*m, path, {});
  return path;
}

}  // namespace qmeter::testing
