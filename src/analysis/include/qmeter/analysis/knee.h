#pragma once
// The SLO knee: the highest offered load at which a configuration still meets an SLO class at a
// required attainment, interpolated between the measured load points that bracket it.
#include <utility>
#include <vector>

namespace qmeter::analysis {

struct KneeResult {
  enum class Kind {
    kNone,          // even the lowest measured load misses the target
    kBracketed,     // interpolated between two measured points
    kAtLeastMax,    // every measured load meets it: the knee is at least the highest one
  } kind = Kind::kNone;
  double load = 0;           // the knee (kBracketed: interpolated; kAtLeastMax: the highest measured)
  double bracket_lo = 0;     // the highest measured load that meets the target
  double bracket_hi = 0;     // the lowest measured load above it that misses
};

// points: (load, attainment) in any order; attainment in [0, 1]. Linear interpolation of the
// attainment between the last meeting point and the first missing point above it. Non-monotone
// curves (noise) use the first miss above the lowest load: the knee is never past a miss.
KneeResult slo_knee(std::vector<std::pair<double, double>> points, double target_attainment);

}  // namespace qmeter::analysis
