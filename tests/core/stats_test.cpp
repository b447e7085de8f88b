#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "qmeter/core/stats.h"

using namespace qmeter::stats;

TEST(Stats, PercentileInterpolatesLikeNumpy) {
  // numpy.percentile([1,2,3,4], [0,25,50,90,100]) = [1, 1.75, 2.5, 3.7, 4]
  std::vector<double> xs{4, 1, 3, 2};
  EXPECT_DOUBLE_EQ(percentile(xs, 0), 1.0);
  EXPECT_DOUBLE_EQ(percentile(xs, 25), 1.75);
  EXPECT_DOUBLE_EQ(percentile(xs, 50), 2.5);
  EXPECT_NEAR(percentile(xs, 90), 3.7, 1e-12);
  EXPECT_DOUBLE_EQ(percentile(xs, 100), 4.0);
  EXPECT_TRUE(std::isnan(percentile(std::vector<double>{}, 50)));
}

TEST(Stats, MeanAndPopulationStd) {
  std::vector<double> xs{2, 4, 4, 4, 5, 5, 7, 9};
  EXPECT_DOUBLE_EQ(mean(xs), 5.0);
  EXPECT_DOUBLE_EQ(stddev(xs), 2.0);
  auto s = summarize(xs, std::vector<double>{50, 99});
  EXPECT_EQ(s.n, 8u);
  EXPECT_DOUBLE_EQ(s.min, 2);
  EXPECT_DOUBLE_EQ(s.max, 9);
  EXPECT_DOUBLE_EQ(s.median, 4.5);
  ASSERT_EQ(s.percentiles.size(), 2u);
  EXPECT_NEAR(s.percentiles[1].second, 8.86, 1e-9);
}

TEST(Stats, BootstrapStderrMatchesAnalyticForNormalSample) {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> nd(10.0, 3.0);
  std::vector<double> xs(400);
  for (auto& x : xs) x = nd(rng);
  const double analytic = stddev(xs) / std::sqrt(400.0);
  const double boot = bootstrap_mean_stderr(xs, 2000, 1);
  EXPECT_NEAR(boot, analytic, 0.1 * analytic);
  auto ci = bootstrap_mean_ci(xs, 0.95, 2000, 1);
  EXPECT_LT(ci.lo, mean(xs));
  EXPECT_GT(ci.hi, mean(xs));
  EXPECT_NEAR(ci.hi - ci.lo, 2 * 1.96 * analytic, 0.15 * 2 * 1.96 * analytic);
}
