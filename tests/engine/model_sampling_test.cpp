// Sampling and log-probabilities against hand-computed values.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "qmeter/core/error.h"
#include "qmeter/engine/sampling.h"

namespace qmeter::engine {
namespace {

TEST(Sampling, ArgmaxTakesLowestIndexAmongTies) {
  const std::vector<float> l = {0.5f, 2.0f, -1.0f, 2.0f};
  EXPECT_EQ(argmax(l), 1);
  EXPECT_THROW(argmax({}), Error);
}

TEST(Sampling, LogSoftmaxAndTokenLogprobMatchHandComputedValues) {
  // logits log(1), log(2), log(5): probabilities 1/8, 2/8, 5/8.
  const std::vector<float> l = {0.0f, std::log(2.0f), std::log(5.0f)};
  std::vector<float> out(3);
  log_softmax(l, out);
  EXPECT_NEAR(out[0], std::log(1.0 / 8), 1e-6);
  EXPECT_NEAR(out[1], std::log(2.0 / 8), 1e-6);
  EXPECT_NEAR(out[2], std::log(5.0 / 8), 1e-6);
  EXPECT_NEAR(token_logprob(l, 2), std::log(5.0 / 8), 1e-6);
  // Shift invariance, and no overflow for large logits.
  const std::vector<float> big = {1000.0f, 1000.0f + std::log(2.0f), 1000.0f + std::log(5.0f)};
  EXPECT_NEAR(token_logprob(big, 0), std::log(1.0 / 8), 1e-4);
  EXPECT_THROW(token_logprob(l, 3), Error);
}

std::map<int, double> frequencies(const SamplingParams& p, const std::vector<float>& logits, int n) {
  Sampler s(p);
  std::map<int, double> f;
  for (int i = 0; i < n; ++i) f[s.sample(logits)] += 1.0 / n;
  return f;
}

const std::vector<float> kLogits = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};

TEST(Sampling, TemperatureOneFollowsTheSoftmax) {
  auto f = frequencies({1.0f, 0, 1.0f, 7}, kLogits, 40000);
  EXPECT_NEAR(f[0], 0.5, 0.015);
  EXPECT_NEAR(f[1], 0.3, 0.015);
  EXPECT_NEAR(f[2], 0.2, 0.015);
}

TEST(Sampling, TemperatureSharpensAndFlattens) {
  // T = 0.5 squares the probabilities: 25 : 9 : 4 over 38.
  auto f = frequencies({0.5f, 0, 1.0f, 3}, kLogits, 40000);
  EXPECT_NEAR(f[0], 25.0 / 38, 0.015);
  EXPECT_NEAR(f[2], 4.0 / 38, 0.015);
  EXPECT_NEAR(frequencies({0.0f, 0, 1.0f, 3}, kLogits, 100)[0], 1.0, 1e-9);  // greedy
}

TEST(Sampling, TopKAndTopPCutTheTail) {
  auto k2 = frequencies({1.0f, 2, 1.0f, 5}, kLogits, 40000);
  EXPECT_EQ(k2.count(2), 0u);
  EXPECT_NEAR(k2[0], 0.5 / 0.8, 0.015);
  // top_p 0.6: 0.5 < 0.6, 0.5 + 0.3 >= 0.6, so {0, 1} are kept.
  auto p = frequencies({1.0f, 0, 0.6f, 5}, kLogits, 40000);
  EXPECT_EQ(p.count(2), 0u);
  EXPECT_NEAR(p[1], 0.3 / 0.8, 0.015);
  // top_p below the top probability keeps only the argmax.
  EXPECT_NEAR(frequencies({1.0f, 0, 0.4f, 5}, kLogits, 200)[0], 1.0, 1e-9);
  EXPECT_NEAR(frequencies({2.0f, 1, 1.0f, 5}, kLogits, 200)[0], 1.0, 1e-9);
}

TEST(Sampling, SeedMakesDrawsReproducible) {
  std::vector<float> logits(1000);
  for (int i = 0; i < 1000; ++i) logits[static_cast<std::size_t>(i)] = std::sin(static_cast<float>(i));
  Sampler a({1.0f, 0, 0.9f, 42}), b({1.0f, 0, 0.9f, 42}), c({1.0f, 0, 0.9f, 43});
  std::vector<int> da, db, dc;
  for (int i = 0; i < 50; ++i) {
    da.push_back(a.sample(logits));
    db.push_back(b.sample(logits));
    dc.push_back(c.sample(logits));
  }
  EXPECT_EQ(da, db);
  EXPECT_NE(da, dc);
}

TEST(Sampling, InvalidParametersAreUsageErrors) {
  EXPECT_THROW(Sampler({1.0f, 0, 0.0f, 1}), UsageError);
  EXPECT_THROW(Sampler({1.0f, 0, 1.5f, 1}), UsageError);
  EXPECT_THROW(Sampler({1.0f, -1, 1.0f, 1}), UsageError);
}

}  // namespace
}  // namespace qmeter::engine
