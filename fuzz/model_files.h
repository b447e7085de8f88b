#pragma once
// Loads a model from fuzzed files written into the scratch folder, the way `load_model` meets
// them on disk, then touches what a loaded model promises (every matrix row dequantizes, the
// tokenizer round-trips a short text) so a header that lies about the data is caught too.
#include <string>

#include "fuzz_support.h"
#include "qmeter/engine/model.h"

namespace qmeter::fuzz {

inline engine::LoadOptions fuzz_load_options() {
  engine::LoadOptions o;
  o.max_seq_len = 64;  // the KV cache is not allocated at load, but keep every size small
  return o;
}

inline void touch_model(const engine::Model& m) {
  std::vector<float> row;
  auto touch = [&](const engine::Matrix& w) {
    if (w.rows <= 0 || w.cols <= 0) return;
    row.resize(static_cast<std::size_t>(w.cols));
    engine::matrix_row_to_f32(w, 0, row.data());
    engine::matrix_row_to_f32(w, w.rows - 1, row.data());
  };
  touch(m.weights.token_embedding);
  touch(m.weights.classifier);
  for (const auto& l : m.weights.layers)
    for (const auto* w : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) touch(*w);
  if (m.tokenizer) {
    const auto ids = m.tokenizer->encode("Hello world, 12 \xC3\xA9t\xC3\xA9!", m.tokenizer->bos_id() >= 0);
    (void)m.tokenizer->decode(ids);
  }
}

}  // namespace qmeter::fuzz
