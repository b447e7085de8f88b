#include "qmeter/workload/sampling.h"

#include <cmath>
#include <limits>
#include <numbers>

#include "qmeter/core/random.h"

namespace qmeter::workload {

std::uint64_t derive_seed(std::uint64_t seed, std::uint64_t stream) {
  // The (stream + 1)-th output of a SplitMix64 generator seeded `seed`.
  return splitmix64_hash(seed + kSplitMix64Gamma * stream);
}

double SeededRng::uniform01() {
  return unit_interval(engine_());
}

std::int64_t SeededRng::uniform_int(std::int64_t lo, std::int64_t hi) {
  const std::uint64_t span = static_cast<std::uint64_t>(hi) - static_cast<std::uint64_t>(lo);
  if (span == std::numeric_limits<std::uint64_t>::max()) return static_cast<std::int64_t>(engine_());
  const std::uint64_t n = span + 1;
  // Accept draws below the largest multiple of n, so every residue is equally likely.
  const std::uint64_t limit = std::numeric_limits<std::uint64_t>::max() - std::numeric_limits<std::uint64_t>::max() % n;
  std::uint64_t x;
  do {
    x = engine_();
  } while (x >= limit);
  return static_cast<std::int64_t>(static_cast<std::uint64_t>(lo) + x % n);
}

double SeededRng::exponential(double rate) {
  return -std::log1p(-uniform01()) / rate;  // 1 - u is in (0, 1]: never log(0)
}

double SeededRng::standard_normal() {
  const double u1 = 1.0 - uniform01();  // (0, 1]
  return box_muller(u1, uniform01());
}

double SeededRng::gamma(double shape, double scale) {
  if (shape < 1.0) {
    const double u = 1.0 - uniform01();  // (0, 1]
    return gamma(shape + 1.0, scale) * std::pow(u, 1.0 / shape);
  }
  const double d = shape - 1.0 / 3.0;
  const double c = 1.0 / std::sqrt(9.0 * d);
  for (;;) {
    double x, v;
    do {
      x = standard_normal();
      v = 1.0 + c * x;
    } while (v <= 0.0);
    v = v * v * v;
    const double u = 1.0 - uniform01();  // (0, 1]
    if (u < 1.0 - 0.0331 * x * x * x * x) return d * v * scale;
    if (std::log(u) < 0.5 * x * x + d * (1.0 - v + std::log(v))) return d * v * scale;
  }
}

}  // namespace qmeter::workload
