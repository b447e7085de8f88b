#include "qmeter/engine/sampling.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "qmeter/core/error.h"

namespace qmeter::engine {

int argmax(std::span<const float> logits) {
  if (logits.empty()) throw Error("argmax of an empty logits vector");
  int best = 0;
  for (std::size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[static_cast<std::size_t>(best)]) best = static_cast<int>(i);
  return best;
}

namespace {
double log_sum_exp(std::span<const float> logits) {
  float mx = -INFINITY;
  for (float l : logits) mx = std::max(mx, l);
  double sum = 0.0;
  for (float l : logits) sum += std::exp(static_cast<double>(l) - mx);
  return mx + std::log(sum);
}
}  // namespace

void log_softmax(std::span<const float> logits, std::span<float> out) {
  if (out.size() != logits.size()) throw Error("log_softmax: output size differs from input size");
  const double lse = log_sum_exp(logits);
  for (std::size_t i = 0; i < logits.size(); ++i) out[i] = static_cast<float>(logits[i] - lse);
}

double token_logprob(std::span<const float> logits, int token) {
  if (token < 0 || static_cast<std::size_t>(token) >= logits.size())
    throw Error(fmt::format("token_logprob: token {} out of range [0, {})", token, logits.size()));
  return static_cast<double>(logits[static_cast<std::size_t>(token)]) - log_sum_exp(logits);
}

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed ^ 0x5DEECE66Dull) {
  if (!(params.top_p > 0.0f) || params.top_p > 1.0f)
    throw UsageError(fmt::format("top_p must be in (0, 1], got {}", params.top_p));
  if (params.top_k < 0) throw UsageError(fmt::format("top_k must be >= 0, got {}", params.top_k));
}


int Sampler::sample(std::span<const float> logits) {
  if (params_.temperature <= 0.0f) return argmax(logits);
  const std::size_t V = logits.size();
  if (V == 0) throw Error("sample from an empty logits vector");
  candidates_.resize(V);
  for (std::size_t i = 0; i < V; ++i) candidates_[i] = {logits[i] / params_.temperature, static_cast<int>(i)};
  auto by_logit = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
  std::size_t n = V;
  if (params_.top_k > 0 && static_cast<std::size_t>(params_.top_k) < V) {
    n = static_cast<std::size_t>(params_.top_k);
    std::partial_sort(candidates_.begin(), candidates_.begin() + static_cast<std::ptrdiff_t>(n), candidates_.end(), by_logit);
  } else if (params_.top_p < 1.0f) {
    std::sort(candidates_.begin(), candidates_.end(), by_logit);
  }
  // Softmax over the kept candidates (max-subtracted).
  float mx = -INFINITY;
  for (std::size_t i = 0; i < n; ++i) mx = std::max(mx, candidates_[i].first);
  double total = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    const double p = std::exp(static_cast<double>(candidates_[i].first) - mx);
    candidates_[i].first = static_cast<float>(p);
    total += p;
  }
  if (params_.top_p < 1.0f) {  // candidates are sorted: keep the smallest prefix reaching top_p
    double cum = 0.0;
    std::size_t keep = n;
    for (std::size_t i = 0; i < n; ++i) {
      cum += candidates_[i].first;
      if (cum >= params_.top_p * total) {
        keep = i + 1;
        break;
      }
    }
    n = keep;
    total = cum;
  }
  const double r = rng_.uniform() * total;
  double cum = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    cum += candidates_[i].first;
    if (r < cum) return candidates_[i].second;
  }
  return candidates_[n - 1].second;  // rounding at the very top
}

}  // namespace qmeter::engine
