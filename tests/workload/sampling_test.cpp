// The seeded samplers: the engine is the standard's mt19937_64, and each distribution matches its
// textbook moments. Tolerances are 5 standard errors of the estimate at the sample size used.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "qmeter/workload/sampling.h"

using qmeter::workload::derive_seed;
using qmeter::workload::SeededRng;

namespace {

struct Moments {
  double mean = 0, var = 0;
};
template <class Draw>
Moments moments(int n, Draw draw) {
  double sum = 0, sum2 = 0;
  for (int i = 0; i < n; ++i) {
    const double x = draw();
    sum += x;
    sum2 += x * x;
  }
  Moments m;
  m.mean = sum / n;
  m.var = sum2 / n - m.mean * m.mean;
  return m;
}

}  // namespace

TEST(SeededRng, EngineIsTheStandardMt19937_64) {
  // [rand.predef]: the 10000th output of a default-constructed mt19937_64 (seed 5489) is fixed
  // by the C++ standard, so schedules are the same under every standard library.
  SeededRng rng(5489);
  std::uint64_t x = 0;
  for (int i = 0; i < 10000; ++i) x = rng.next_u64();
  EXPECT_EQ(x, 9981545732273789042ULL);
}

TEST(SeededRng, DerivedSeedsDifferPerStreamAndAreStable) {
  EXPECT_EQ(derive_seed(7, 1), derive_seed(7, 1));
  EXPECT_NE(derive_seed(7, 1), derive_seed(7, 2));
  EXPECT_NE(derive_seed(7, 1), derive_seed(8, 1));
}

TEST(SeededRng, Uniform01InUnitIntervalWithUniformMoments) {
  SeededRng rng(1);
  const int n = 200000;
  double lo = 1, hi = 0;
  Moments m = moments(n, [&] {
    const double u = rng.uniform01();
    lo = std::min(lo, u);
    hi = std::max(hi, u);
    return u;
  });
  EXPECT_GE(lo, 0.0);
  EXPECT_LT(hi, 1.0);
  // U(0,1): mean 1/2 (sd 0.289/sqrt(n)), variance 1/12.
  EXPECT_NEAR(m.mean, 0.5, 5 * 0.2887 / std::sqrt(n));
  EXPECT_NEAR(m.var, 1.0 / 12, 0.002);
}

TEST(SeededRng, UniformIntCoversTheRangeEvenly) {
  SeededRng rng(2);
  const int n = 70000;
  std::vector<int> counts(7, 0);
  for (int i = 0; i < n; ++i) {
    const auto v = rng.uniform_int(-3, 3);
    ASSERT_GE(v, -3);
    ASSERT_LE(v, 3);
    ++counts[static_cast<std::size_t>(v + 3)];
  }
  // Each count ~ Binomial(n, 1/7): sd = sqrt(n p (1-p)) ~ 92.6.
  for (int c : counts) EXPECT_NEAR(c, n / 7.0, 5 * std::sqrt(n * (1.0 / 7) * (6.0 / 7)));
  EXPECT_EQ(rng.uniform_int(5, 5), 5);
}

TEST(SeededRng, ExponentialHasMeanAndVarianceOfItsRate) {
  SeededRng rng(3);
  const int n = 200000;
  const double rate = 4.0;
  Moments m = moments(n, [&] { return rng.exponential(rate); });
  EXPECT_NEAR(m.mean, 1 / rate, 5 * (1 / rate) / std::sqrt(n));
  // Var(s^2) of an exponential = (mu4 - sigma^4)/n = 8 sigma^4 / n.
  EXPECT_NEAR(m.var, 1 / (rate * rate), 5 * std::sqrt(8.0 / n) / (rate * rate));
}

TEST(SeededRng, StandardNormalMoments) {
  SeededRng rng(4);
  const int n = 200000;
  Moments m = moments(n, [&] { return rng.standard_normal(); });
  EXPECT_NEAR(m.mean, 0.0, 5 / std::sqrt(n));
  EXPECT_NEAR(m.var, 1.0, 5 * std::sqrt(2.0 / n));
}

TEST(SeededRng, GammaMomentsForShapesBelowAndAboveOne) {
  // Gamma(k, theta): mean k theta, variance k theta^2; Var(s^2) = (mu4 - sigma^4)/n with
  // mu4 = 3k^2 theta^4 + 6k theta^4, i.e. relative sd of s^2 = sqrt((2 + 6/k)/n).
  for (double shape : {0.25, 0.5, 1.0, 2.5, 9.0}) {
    SCOPED_TRACE(shape);
    SeededRng rng(10 + static_cast<std::uint64_t>(shape * 100));
    const double scale = 0.3;
    const int n = 200000;
    double lo = 1e300;
    Moments m = moments(n, [&] {
      const double x = rng.gamma(shape, scale);
      lo = std::min(lo, x);
      return x;
    });
    const double mean = shape * scale, var = shape * scale * scale;
    EXPECT_GT(lo, 0.0);
    EXPECT_NEAR(m.mean, mean, 5 * std::sqrt(var / n));
    EXPECT_NEAR(m.var, var, 5 * var * std::sqrt((2 + 6 / shape) / n));
  }
}
