#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "qmeter/analysis/knee.h"
#include "qmeter/analysis/pareto.h"

using namespace qmeter::analysis;

TEST(Pareto, KnownFrontWithMixedDirections) {
  // objectives: latency (min), energy (min), accuracy (max)
  std::vector<Objective> obj{{"lat", false}, {"energy", false}, {"acc", true}};
  std::vector<std::vector<double>> p = {
      {10, 5, 0.9},   // 0 front
      {12, 6, 0.8},   // 1 dominated by 0
      {8, 7, 0.7},    // 2 front (fastest)
      {10, 5, 0.95},  // 3 front, and dominates 0
      {20, 1, 0.5},   // 4 front (cheapest)
      {10, 5, 0.95},  // 5 equal to 3: neither dominates, both on the front
      {NAN, 1, 1},    // 6 unmeasured: never on the front
  };
  auto r = pareto_front(p, obj);
  EXPECT_EQ(r.front, (std::vector<int>{2, 3, 4, 5}));
  EXPECT_EQ(r.dominated_by[0], 3);
  EXPECT_TRUE(r.dominated_by[1] == 0 || r.dominated_by[1] == 3 || r.dominated_by[1] == 5);
  EXPECT_EQ(r.dominated_by[6], -2);
}

TEST(Pareto, MatchesBruteForceOnRandomPoints) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<Objective> obj{{"a", false}, {"b", true}};
  std::vector<std::vector<double>> p(300);
  for (auto& x : p) x = {std::round(u(rng) * 20), std::round(u(rng) * 20)};
  auto r = pareto_front(p, obj);
  for (std::size_t i = 0; i < p.size(); ++i) {
    bool dominated = false;
    for (std::size_t j = 0; j < p.size(); ++j) {
      if (p[j][0] <= p[i][0] && p[j][1] >= p[i][1] && (p[j][0] < p[i][0] || p[j][1] > p[i][1])) dominated = true;
    }
    EXPECT_EQ(dominated, r.dominated_by[i] >= 0) << i;
  }
}

TEST(Pareto, Hypervolume2d) {
  std::vector<Objective> obj{{"x", false}, {"y", false}};
  // Front (1,3), (2,2), (3,1) with reference (4,4): 3 + 2 + 1 = 6 unit squares.
  EXPECT_DOUBLE_EQ(hypervolume_2d({{1, 3}, {2, 2}, {3, 1}, {3, 3}}, obj, {4, 4}), 6.0);
  EXPECT_DOUBLE_EQ(hypervolume_2d({}, obj, {4, 4}), 0.0);
}

TEST(Knee, InterpolatesBetweenTheBracketingPoints) {
  auto k = slo_knee({{4, 0.80}, {1, 1.0}, {2, 0.99}}, 0.9);
  EXPECT_EQ(k.kind, KneeResult::Kind::kBracketed);
  EXPECT_EQ(k.bracket_lo, 2);
  EXPECT_EQ(k.bracket_hi, 4);
  EXPECT_NEAR(k.load, 2 + 2 * (0.99 - 0.9) / (0.99 - 0.80), 1e-12);
  EXPECT_EQ(slo_knee({{1, 0.5}, {2, 0.4}}, 0.9).kind, KneeResult::Kind::kNone);
  auto all = slo_knee({{1, 1}, {8, 0.95}}, 0.9);
  EXPECT_EQ(all.kind, KneeResult::Kind::kAtLeastMax);
  EXPECT_EQ(all.load, 8);
  // Non-monotone: a miss at 4 stops the knee even though 8 happens to pass.
  auto nm = slo_knee({{1, 1}, {4, 0.5}, {8, 0.95}}, 0.9);
  EXPECT_EQ(nm.bracket_hi, 4);
  EXPECT_LT(nm.load, 4);
}
