#pragma once
// Next-token selection from logits: greedy, temperature, top-k, top-p (nucleus), seeded; and the
// log-softmax quality evaluation needs.
#include <cstdint>
#include <span>
#include <vector>

#include "qmeter/core/random.h"

namespace qmeter::engine {

struct SamplingParams {
  float temperature = 0.0f;  // <= 0: greedy (argmax)
  int top_k = 0;             // 0: no top-k cut
  float top_p = 1.0f;        // 1: no nucleus cut
  std::uint64_t seed = 0;
};

// Index of the largest logit (the lowest index among ties).
int argmax(std::span<const float> logits);
// out[i] = logits[i] - logsumexp(logits), computed in double for the normalizer.
void log_softmax(std::span<const float> logits, std::span<float> out);
// log p(token) under softmax(logits).
double token_logprob(std::span<const float> logits, int token);

// Draws tokens with its own seeded generator (core SplitMix64), so a seed gives the same tokens on
// every platform and standard library.
class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);
  int sample(std::span<const float> logits);
  const SamplingParams& params() const { return params_; }

 private:
  SamplingParams params_;
  SplitMix64 rng_;
  std::vector<std::pair<float, int>> candidates_;
};

}  // namespace qmeter::engine
