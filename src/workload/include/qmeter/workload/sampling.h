#pragma once
// Seeded random sampling that gives the same numbers on every platform and standard library.
//
// Why not <random>'s distributions: std::uniform_int_distribution, std::exponential_distribution,
// std::gamma_distribution, std::shuffle etc. are implementation-defined algorithms, so the same
// seed gives different schedules under libstdc++ and libc++. Only the engine std::mt19937_64 is
// fully specified by the standard; every distribution below is our own code on top of it:
//   uniform01      53 high bits of one engine draw / 2^53                       -> [0, 1)
//   uniform_int    rejection sampling on the engine's 64-bit output (no modulo bias)
//   exponential    inverse CDF: -log(1 - u) / rate
//   normal         Box-Muller (cosine branch only, two uniforms per draw)
//   gamma          Marsaglia-Tsang (2000) squeeze method; shape < 1 via the boost
//                  Gamma(k) = Gamma(k + 1) * U^(1/k)
// The results then depend only on the seed and on libm's log/cos/sqrt/pow, which are correctly
// rounded or nearly so on every platform we build on.
#include <cstdint>
#include <random>

namespace qmeter::workload {

// A seed for an independent stream: SplitMix64 of (seed, stream), so that the dataset's and the
// arrival process's draws never share a sequence (changing the dataset leaves the arrival times
// of the same seed unchanged).
std::uint64_t derive_seed(std::uint64_t seed, std::uint64_t stream);

class SeededRng {
 public:
  explicit SeededRng(std::uint64_t seed) : engine_(seed) {}

  std::uint64_t next_u64() { return engine_(); }
  double uniform01();                                     // [0, 1)
  std::int64_t uniform_int(std::int64_t lo, std::int64_t hi);  // inclusive; lo <= hi
  double exponential(double rate);                        // mean 1 / rate
  double standard_normal();
  double gamma(double shape, double scale);               // mean shape * scale

 private:
  std::mt19937_64 engine_;
};

}  // namespace qmeter::workload
