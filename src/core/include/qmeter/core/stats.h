#pragma once
// Descriptive statistics used by every module: percentiles (linear interpolation between order
// statistics, numpy's default, so figures match vLLM's bench serve), mean/std, and bootstrap CIs.
#include <cstdint>
#include <span>
#include <vector>

namespace qmeter::stats {

double mean(std::span<const double> xs);
// Population standard deviation (numpy's default ddof=0, as vLLM reports std_*).
double stddev(std::span<const double> xs);
// p in [0, 100]. Returns NaN for an empty input.
double percentile(std::span<const double> xs, double p);
double percentile_sorted(std::span<const double> sorted, double p);
double median(std::span<const double> xs);

struct Summary {
  std::size_t n = 0;
  double mean = 0, stddev = 0, median = 0, min = 0, max = 0;
  std::vector<std::pair<double, double>> percentiles;  // (p, value)
};
Summary summarize(std::span<const double> xs, std::span<const double> ps);

// Percentile bootstrap confidence interval of the mean (seeded, so reproducible).
struct Interval {
  double lo = 0, hi = 0;
};
Interval bootstrap_mean_ci(std::span<const double> xs, double confidence, int resamples, std::uint64_t seed);
// Bootstrap standard error of the mean.
double bootstrap_mean_stderr(std::span<const double> xs, int resamples, std::uint64_t seed);

}  // namespace qmeter::stats
