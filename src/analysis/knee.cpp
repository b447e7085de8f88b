#include "qmeter/analysis/knee.h"

#include <algorithm>

namespace qmeter::analysis {

KneeResult slo_knee(std::vector<std::pair<double, double>> points, double target) {
  KneeResult r;
  if (points.empty()) return r;
  std::sort(points.begin(), points.end());
  if (points.front().second < target) return r;  // fails at the lowest measured load
  std::size_t last_ok = 0;
  for (std::size_t i = 1; i < points.size(); ++i) {
    if (points[i].second < target) {
      const auto [x0, a0] = points[last_ok];
      const auto [x1, a1] = points[i];
      r.kind = KneeResult::Kind::kBracketed;
      r.bracket_lo = x0;
      r.bracket_hi = x1;
      // Where the straight line from (x0, a0) to (x1, a1) crosses the target.
      r.load = a0 == a1 ? x0 : x0 + (x1 - x0) * (a0 - target) / (a0 - a1);
      return r;
    }
    last_ok = i;
  }
  r.kind = KneeResult::Kind::kAtLeastMax;
  r.load = r.bracket_lo = r.bracket_hi = points.back().first;
  return r;
}

}  // namespace qmeter::analysis
