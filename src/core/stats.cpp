#include "qmeter/core/stats.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

namespace qmeter::stats {

double mean(std::span<const double> xs) {
  if (xs.empty()) return std::numeric_limits<double>::quiet_NaN();
  return std::accumulate(xs.begin(), xs.end(), 0.0) / static_cast<double>(xs.size());
}

double stddev(std::span<const double> xs) {
  if (xs.empty()) return std::numeric_limits<double>::quiet_NaN();
  const double m = mean(xs);
  double acc = 0;
  for (double x : xs) acc += (x - m) * (x - m);
  return std::sqrt(acc / static_cast<double>(xs.size()));
}

double percentile_sorted(std::span<const double> s, double p) {
  if (s.empty()) return std::numeric_limits<double>::quiet_NaN();
  p = std::clamp(p, 0.0, 100.0);
  const double rank = p / 100.0 * static_cast<double>(s.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(rank));
  const auto hi = static_cast<std::size_t>(std::ceil(rank));
  const double frac = rank - static_cast<double>(lo);
  return s[lo] + (s[hi] - s[lo]) * frac;
}

double percentile(std::span<const double> xs, double p) {
  std::vector<double> s(xs.begin(), xs.end());
  std::sort(s.begin(), s.end());
  return percentile_sorted(s, p);
}

double median(std::span<const double> xs) { return percentile(xs, 50.0); }

Summary summarize(std::span<const double> xs, std::span<const double> ps) {
  Summary out;
  out.n = xs.size();
  std::vector<double> s(xs.begin(), xs.end());
  std::sort(s.begin(), s.end());
  out.mean = mean(s);
  out.stddev = stddev(s);
  out.median = percentile_sorted(s, 50.0);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  out.min = s.empty() ? nan : s.front();
  out.max = s.empty() ? nan : s.back();
  for (double p : ps) out.percentiles.emplace_back(p, percentile_sorted(s, p));
  return out;
}

static std::vector<double> bootstrap_means(std::span<const double> xs, int resamples, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::size_t> pick(0, xs.size() - 1);
  std::vector<double> means(static_cast<std::size_t>(resamples));
  for (auto& m : means) {
    double acc = 0;
    for (std::size_t i = 0; i < xs.size(); ++i) acc += xs[pick(rng)];
    m = acc / static_cast<double>(xs.size());
  }
  return means;
}

Interval bootstrap_mean_ci(std::span<const double> xs, double confidence, int resamples, std::uint64_t seed) {
  if (xs.empty()) return {std::nan(""), std::nan("")};
  auto means = bootstrap_means(xs, resamples, seed);
  std::sort(means.begin(), means.end());
  const double tail = (1.0 - confidence) / 2.0 * 100.0;
  return {percentile_sorted(means, tail), percentile_sorted(means, 100.0 - tail)};
}

double bootstrap_mean_stderr(std::span<const double> xs, int resamples, std::uint64_t seed) {
  if (xs.size() < 2) return std::nan("");
  auto means = bootstrap_means(xs, resamples, seed);
  // Sample standard deviation of the bootstrap means.
  const double m = mean(means);
  double acc = 0;
  for (double x : means) acc += (x - m) * (x - m);
  return std::sqrt(acc / static_cast<double>(means.size() - 1));
}

}  // namespace qmeter::stats
