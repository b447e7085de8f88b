#pragma once
// One sequence over a model: its KV cache and a forward pass, with the generate loop that
// `qmeter generate` (and simple callers) use. Servers batch many sequences with ForwardPass.
#include <functional>
#include <span>
#include <string_view>
#include <vector>

#include "qmeter/engine/forward.h"
#include "qmeter/engine/sampling.h"

namespace qmeter::engine {

class Session {
 public:
  // max_positions 0: the model's max_seq_len.
  Session(const Model& model, ThreadPool* pool, int max_positions = 0);

  // Appends tokens; returns the next-token logits after the last one.
  std::span<const float> feed(std::span<const int> tokens);
  // Appends tokens; returns tokens.size() rows of logits, row i = distribution after tokens[i].
  std::span<const float> feed_all(std::span<const int> tokens);
  int position() const { return kv_.length(); }
  void reset() { kv_.truncate(0); }
  const Model& model() const { return *model_; }
  KvCache& kv() { return kv_; }

 private:
  const Model* model_;
  KvCache kv_;
  ForwardPass pass_;
};

struct GenerateOptions {
  int max_tokens = 256;
  SamplingParams sampling;
  bool stop_at_eos = true;  // stop on the tokenizer's stop ids (and BOS, which llama2.c uses
                            // as a story separator)
};

struct GenerateResult {
  std::vector<int> tokens;  // generated tokens (excluding the prompt)
  int prompt_tokens = 0;
  double prefill_seconds = 0;
  double decode_seconds = 0;  // from the first generated token to the last
  int decode_steps = 0;       // forward passes in decode_seconds (decode tokens/s = steps / seconds)
  bool stopped_at_eos = false;
};

// Prefills `prompt`, then samples up to max_tokens tokens, calling on_token for each (the stop
// token is not reported). `stop_ids` empty: none.
GenerateResult generate(Session& session, std::span<const int> prompt, const GenerateOptions& options,
                        std::span<const int> stop_ids, const std::function<void(int token)>& on_token);

}  // namespace qmeter::engine
