#pragma once
// SplitMix64 (Steele, Lea & Flood 2014) and the samplers drawn from it: the one seeded generator
// of the project whose output is the same on every platform and standard library (<random>'s
// distributions are implementation-defined). Seeded schedules, mock timings, synthetic weights
// and training batches depend on these exact bits: tests/core/golden_test.cpp pins them.
#include <cmath>
#include <cstdint>
#include <numbers>

namespace qmeter {

// The generator's increment (2^64 / golden ratio).
inline constexpr std::uint64_t kSplitMix64Gamma = 0x9E3779B97F4A7C15ULL;

// SplitMix64's output function: every input bit reaches every output bit.
constexpr std::uint64_t splitmix64_finalize(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// A well-mixed hash of one word: the first output of a generator seeded with `x` (derives
// independent seeds, chains block hashes).
constexpr std::uint64_t splitmix64_hash(std::uint64_t x) { return splitmix64_finalize(x + kSplitMix64Gamma); }

// The 53 high bits of a 64-bit draw as a double in [0, 1).
constexpr double unit_interval(std::uint64_t bits) { return static_cast<double>(bits >> 11) * 0x1.0p-53; }
// The same bits as the midpoint of their 2^-53 step: in (0, 1), safe for log().
constexpr double open_unit_interval(std::uint64_t bits) { return (static_cast<double>(bits >> 11) + 0.5) * 0x1.0p-53; }

// One standard normal draw from two uniforms by Box-Muller (cosine branch only); u1 in (0, 1].
inline double box_muller(double u1, double u2) {
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

class SplitMix64 {
 public:
  explicit constexpr SplitMix64(std::uint64_t seed) : state_(seed) {}
  constexpr std::uint64_t next() { return splitmix64_finalize(state_ += kSplitMix64Gamma); }
  constexpr double uniform() { return unit_interval(next()); }            // [0, 1)
  constexpr double uniform_open() { return open_unit_interval(next()); }  // (0, 1)
  // N(0, 1) from two draws: u1 = 1 - uniform() in (0, 1], then u2.
  double normal() {
    const double u1 = 1.0 - uniform();
    return box_muller(u1, uniform());
  }
  // [0, n) by modulo: biased by under n / 2^64 (training batch offsets are pinned to it).
  constexpr std::uint64_t below(std::uint64_t n) { return n == 0 ? 0 : next() % n; }

 private:
  std::uint64_t state_;
};

}  // namespace qmeter
