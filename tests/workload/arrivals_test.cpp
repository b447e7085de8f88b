// Arrival processes: determinism from the seed, exact constant spacing, Poisson and gamma gap
// statistics, the linear ramp against its integrated rate, trace replay, closed loop.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "qmeter/workload/registry.h"
#include "qmeter/workload/schedule.h"
#include "workload_test_util.h"

using namespace qmeter::workload;
using qmeter::workload::testing::gaps_seconds;

namespace {

DatasetOptions small_random(int n, std::uint64_t seed = 0) {
  DatasetOptions d;
  d.num_prompts = n;
  d.input_len = 4;
  d.output_len = 4;
  d.seed = seed;
  return d;
}

ArrivalOptions arrivals(const std::string& kind, double rate, std::uint64_t seed = 0) {
  ArrivalOptions a;
  a.kind = kind;
  a.request_rate = rate;
  a.seed = seed;
  return a;
}

double mean_of(const std::vector<double>& xs) {
  double s = 0;
  for (double x : xs) s += x;
  return s / static_cast<double>(xs.size());
}
double cv_of(const std::vector<double>& xs) {
  const double m = mean_of(xs);
  double v = 0;
  for (double x : xs) v += (x - m) * (x - m);
  return std::sqrt(v / static_cast<double>(xs.size())) / m;
}
// Kolmogorov-Smirnov distance between the sample and a CDF.
double ks_distance(std::vector<double> xs, const std::function<double(double)>& cdf) {
  std::sort(xs.begin(), xs.end());
  const double n = static_cast<double>(xs.size());
  double d = 0;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const double f = cdf(xs[i]);
    d = std::max({d, (static_cast<double>(i) + 1) / n - f, f - static_cast<double>(i) / n});
  }
  return d;
}
// KS critical value at alpha = 0.001 for large n.
double ks_critical(std::size_t n) { return 1.949 / std::sqrt(static_cast<double>(n)); }

// Relative standard error of the sample CV of Gamma(shape) gaps, by the delta method:
// Var(log CV) ~ [Var(s^2)/(4 sigma^4) + Var(m)/mu^2 - Cov(m, s^2)/(sigma^2 mu)] = (1/2 + 1/(2k)) / n.
double cv_rel_stderr(double shape, std::size_t n) { return std::sqrt((0.5 + 0.5 / shape) / static_cast<double>(n)); }

}  // namespace

TEST(Arrivals, SameSeedGivesIdenticalSchedule) {
  for (const char* kind : {"poisson", "gamma", "constant", "ramp"}) {
    SCOPED_TRACE(kind);
    ArrivalOptions a = arrivals(kind, 25, 42);
    a.burstiness = std::string(kind) == "gamma" ? 0.5 : 1.0;
    a.ramp_start_rate = 1;
    a.ramp_end_rate = 20;
    DatasetOptions d = small_random(300, 42);
    d.range_ratio = 0.5;
    const Schedule s1 = build_schedule(d, a), s2 = build_schedule(d, a);
    ASSERT_EQ(s1.requests.size(), 300u);
    ASSERT_EQ(s2.requests.size(), 300u);
    for (std::size_t i = 0; i < s1.requests.size(); ++i) {
      EXPECT_EQ(s1.requests[i].index, static_cast<std::int64_t>(i));
      EXPECT_EQ(s1.requests[i].offset_ns, s2.requests[i].offset_ns);
      EXPECT_EQ(s1.requests[i].prompt.text, s2.requests[i].prompt.text);
      EXPECT_EQ(s1.requests[i].prompt.max_tokens, s2.requests[i].prompt.max_tokens);
    }
    EXPECT_EQ(s1.description, s2.description);
  }
}

TEST(Arrivals, DifferentSeedGivesDifferentSchedule) {
  const Schedule s1 = build_schedule(small_random(200, 1), arrivals("poisson", 10, 1));
  const Schedule s2 = build_schedule(small_random(200, 2), arrivals("poisson", 10, 2));
  int same_offsets = 0, same_prompts = 0;
  for (std::size_t i = 1; i < 200; ++i) {
    same_offsets += s1.requests[i].offset_ns == s2.requests[i].offset_ns;
    same_prompts += s1.requests[i].prompt.text == s2.requests[i].prompt.text;
  }
  EXPECT_EQ(same_offsets, 0);
  EXPECT_LT(same_prompts, 5);  // 4-word prompts from 128 words: a collision is ~1e-8 likely
}

TEST(Arrivals, ArrivalTimesDoNotDependOnTheDataset) {
  DatasetOptions d1 = small_random(100, 5), d2 = small_random(100, 5);
  d2.input_len = 50;
  d2.range_ratio = 0.3;
  const Schedule s1 = build_schedule(d1, arrivals("poisson", 10, 5));
  const Schedule s2 = build_schedule(d2, arrivals("poisson", 10, 5));
  for (std::size_t i = 0; i < 100; ++i) EXPECT_EQ(s1.requests[i].offset_ns, s2.requests[i].offset_ns);
}

TEST(Arrivals, ConstantRateIsExactlyEvenlySpaced) {
  const Schedule s = build_schedule(small_random(1000), arrivals("constant", 7.0));
  for (std::size_t i = 0; i < s.requests.size(); ++i)
    ASSERT_EQ(s.requests[i].offset_ns, std::llround(static_cast<double>(i) * 1e9 / 7.0)) << i;
  EXPECT_EQ(s.requests.back().offset_ns, 142'714'285'714);  // 999 / 7 s, rounded to ns
  EXPECT_EQ(s.description, "constant 7 req/s, random in=4 out=4, seed 0");
}

TEST(Arrivals, PoissonGapsHaveMeanOneOverRateCvOneAndExponentialShape) {
  const double rate = 50;
  const std::size_t n = 20001;
  const Schedule s = build_schedule(small_random(static_cast<int>(n), 3), arrivals("poisson", rate, 3));
  EXPECT_EQ(s.requests.front().offset_ns, 0);
  const auto gaps = gaps_seconds(s);
  ASSERT_EQ(gaps.size(), n - 1);
  // Exponential gaps: the mean has relative standard error 1/sqrt(n) (0.71% at n = 20000) and
  // the CV 1/sqrt(n) too (delta method, shape 1); 5 standard errors each.
  EXPECT_NEAR(mean_of(gaps), 1 / rate, 5 * (1 / rate) / std::sqrt(gaps.size()));
  EXPECT_NEAR(cv_of(gaps), 1.0, 5 * cv_rel_stderr(1.0, gaps.size()));
  EXPECT_LT(ks_distance(gaps, [&](double x) { return 1 - std::exp(-rate * x); }), ks_critical(gaps.size()));
  EXPECT_EQ(s.description, "poisson 50 req/s, random in=4 out=4, seed 3");
}

TEST(Arrivals, DefaultKindWithRateIsPoissonAndWithoutRateIsAllAtOnce) {
  ArrivalOptions a = arrivals("", 10, 9);
  const Schedule implicit = build_schedule(small_random(50, 9), a);
  const Schedule explicit_poisson = build_schedule(small_random(50, 9), arrivals("poisson", 10, 9));
  for (std::size_t i = 0; i < 50; ++i) EXPECT_EQ(implicit.requests[i].offset_ns, explicit_poisson.requests[i].offset_ns);
  EXPECT_EQ(implicit.arrival_kind, "poisson");
  for (double rate : {-1.0, 0.0, std::numeric_limits<double>::infinity()}) {
    const Schedule inf = build_schedule(small_random(50), arrivals("", rate));
    for (const auto& r : inf.requests) EXPECT_EQ(r.offset_ns, 0);
    EXPECT_EQ(inf.description.rfind("inf (all at once)", 0), 0u) << inf.description;
    EXPECT_EQ(inf.arrival_kind, "inf");
  }
}

TEST(Arrivals, GammaGapsHaveMeanOneOverRateAndCvOneOverSqrtBurstiness) {
  const double rate = 20;
  const std::size_t n = 20001;
  for (double burstiness : {0.25, 0.5, 2.0, 4.0}) {
    SCOPED_TRACE(burstiness);
    ArrivalOptions a = arrivals("gamma", rate, 11);
    a.burstiness = burstiness;
    const auto gaps = gaps_seconds(build_schedule(small_random(static_cast<int>(n), 11), a));
    // Mean of Gamma(k, 1/(rate k)) gaps: relative standard error 1/sqrt(k n).
    EXPECT_NEAR(mean_of(gaps), 1 / rate, 5 * (1 / rate) / std::sqrt(burstiness * static_cast<double>(gaps.size())));
    const double cv = 1 / std::sqrt(burstiness);
    EXPECT_NEAR(cv_of(gaps), cv, 5 * cv * cv_rel_stderr(burstiness, gaps.size()));
    const double theta = 1 / (rate * burstiness);
    if (burstiness == 0.5) {  // chi-square with 1 degree of freedom, scaled: CDF erf(sqrt(x / theta))
      EXPECT_LT(ks_distance(gaps, [&](double x) { return std::erf(std::sqrt(x / theta)); }), ks_critical(gaps.size()));
    }
    if (burstiness == 2.0) {  // Erlang-2: CDF 1 - e^(-x/theta) (1 + x/theta)
      EXPECT_LT(ks_distance(gaps, [&](double x) { return 1 - std::exp(-x / theta) * (1 + x / theta); }),
                ks_critical(gaps.size()));
    }
  }
}

TEST(Arrivals, BurstinessWithoutKindMeansGamma) {
  ArrivalOptions a = arrivals("", 20, 4);
  a.burstiness = 0.5;
  ArrivalOptions g = a;
  g.kind = "gamma";
  const Schedule s1 = build_schedule(small_random(100, 4), a), s2 = build_schedule(small_random(100, 4), g);
  for (std::size_t i = 0; i < 100; ++i) EXPECT_EQ(s1.requests[i].offset_ns, s2.requests[i].offset_ns);
  EXPECT_EQ(s1.arrival_kind, "gamma");
}

TEST(Arrivals, InfAndClosedLoopReleaseEverythingAtZero) {
  const Schedule inf = build_schedule(small_random(20), arrivals("inf", 10));
  for (const auto& r : inf.requests) EXPECT_EQ(r.offset_ns, 0);
  EXPECT_EQ(inf.max_concurrency, 0);

  ArrivalOptions closed = arrivals("closed", -1);
  closed.max_concurrency = 4;
  const Schedule c = build_schedule(small_random(20), closed);
  for (const auto& r : c.requests) EXPECT_EQ(r.offset_ns, 0);
  EXPECT_EQ(c.max_concurrency, 4);
  EXPECT_EQ(c.description, "closed loop, 4 in flight, random in=4 out=4, seed 0");

  // --max-concurrency also caps an open-loop process (vLLM's combination of the two).
  ArrivalOptions capped = arrivals("poisson", 10);
  capped.max_concurrency = 3;
  const Schedule p = build_schedule(small_random(20), capped);
  EXPECT_EQ(p.max_concurrency, 3);
  EXPECT_NE(p.requests.back().offset_ns, 0);
  EXPECT_NE(p.description.find("max concurrency 3"), std::string::npos);
}

namespace {
// The ramp's integrated rate L(t) = r0 t + (r1 - r0) t^2 / (2T), T = 2N / (r0 + r1).
double ramp_integral(double t, double r0, double r1, double n) {
  const double total = 2 * n / (r0 + r1);
  return r0 * t + (r1 - r0) * t * t / (2 * total);
}
std::size_t count_in(const Schedule& s, double from_s, double to_s) {
  std::size_t c = 0;
  for (const auto& r : s.requests) {
    const double t = static_cast<double>(r.offset_ns) / 1e9;
    c += t >= from_s && t < to_s;
  }
  return c;
}
}  // namespace

TEST(Arrivals, ConstantBaseRampMatchesTheIntegratedRateInEachQuarter) {
  const double r0 = 10, r1 = 31, n = 1000;
  ArrivalOptions a = arrivals("ramp", -1);
  a.ramp_start_rate = r0;
  a.ramp_end_rate = r1;
  a.ramp_base = "constant";
  const Schedule s = build_schedule(small_random(static_cast<int>(n)), a);
  const double total = 2 * n / (r0 + r1);  // 48.78 s
  // Request i is sent at L^-1(i), so [t0, t1) holds the integers i in [L(t0), L(t1)).
  double sum = 0;
  for (int q = 0; q < 4; ++q) {
    const double t0 = total * q / 4, t1 = total * (q + 1) / 4;
    const double expected = std::ceil(ramp_integral(t1, r0, r1, n)) - std::ceil(ramp_integral(t0, r0, r1, n));
    EXPECT_EQ(static_cast<double>(count_in(s, t0, q == 3 ? 1e9 : t1)), q == 3 ? n - sum : expected) << "quarter " << q;
    sum += expected;
  }
  // Halves: L(T/2) = T (3 r0 + r1) / 8 = 371.95 -> 372 requests in the first half.
  EXPECT_EQ(count_in(s, 0, total / 2), 372u);
  EXPECT_EQ(count_in(s, total / 2, 1e9), 628u);
  // The instantaneous rate at both ends: the first gap ~ 1/r0, the last ~ 1/r1.
  const auto gaps = gaps_seconds(s);
  EXPECT_NEAR(gaps.front(), 1 / r0, 0.01 / r0);
  EXPECT_NEAR(gaps.back(), 1 / r1, 0.01 / r1);
  EXPECT_LT(static_cast<double>(s.requests.back().offset_ns) / 1e9, total);
  EXPECT_EQ(s.description, "ramp 10 -> 31 req/s (constant), random in=4 out=4, seed 0");
}

TEST(Arrivals, PoissonRampMatchesTheIntegratedRateWithinPoissonNoise) {
  const double r0 = 2, r1 = 40, n = 4000;
  ArrivalOptions a = arrivals("ramp", -1, 8);
  a.ramp_start_rate = r0;
  a.ramp_end_rate = r1;
  const Schedule s = build_schedule(small_random(static_cast<int>(n), 8), a);
  const double total = 2 * n / (r0 + r1);
  const double first_half = ramp_integral(total / 2, r0, r1, n);  // T (3 r0 + r1) / 8 = 1095.2
  // A count of a Poisson process with mean L has sd sqrt(L): 5 sd.
  EXPECT_NEAR(static_cast<double>(count_in(s, 0, total / 2)), first_half, 5 * std::sqrt(first_half));
  EXPECT_NEAR(static_cast<double>(count_in(s, total / 2, total)), n - first_half, 5 * std::sqrt(n - first_half));
}

TEST(Arrivals, RampDownIsTheMirrorOfRampUp) {
  ArrivalOptions up = arrivals("ramp", -1), down = arrivals("ramp", -1);
  up.ramp_base = down.ramp_base = "constant";
  up.ramp_start_rate = down.ramp_end_rate = 5;
  up.ramp_end_rate = down.ramp_start_rate = 15;
  const Schedule su = build_schedule(small_random(201), up), sd = build_schedule(small_random(201), down);
  // Under a linear rate, L_down(t) = N - L_up(T - t). T = 2 * 201 / 20 = 20.1 s; the first-half
  // counts are ceil(T (3 r0 + r1) / 8): ceil(75.375) = 76 up, ceil(125.625) = 126 down.
  const double total = 2 * 201 / 20.0;
  EXPECT_EQ(count_in(su, 0, total / 2), static_cast<std::size_t>(std::ceil(ramp_integral(total / 2, 5, 15, 201))));
  EXPECT_EQ(count_in(sd, 0, total / 2), static_cast<std::size_t>(std::ceil(ramp_integral(total / 2, 15, 5, 201))));
  EXPECT_EQ(count_in(su, 0, total / 2), 76u);
  EXPECT_EQ(count_in(sd, 0, total / 2), 126u);
}

TEST(Arrivals, TheTablesListEveryKind) {
  std::vector<std::string> arrivals_named, datasets_named;
  for (const auto& a : arrival_table()) arrivals_named.emplace_back(a.name);
  for (const auto& d : dataset_table()) datasets_named.emplace_back(d.name);
  EXPECT_EQ(arrivals_named, (std::vector<std::string>{"constant", "poisson", "gamma", "inf", "closed", "trace", "ramp"}));
  EXPECT_EQ(datasets_named, (std::vector<std::string>{"random", "sharegpt", "jsonl", "azure", "gsm8k", "mooncake", "burstgpt", "trace",
                                      "sharegpt-multiturn", "multiturn", "prefix", "longdoc"}));
}
