#include "energy_math.h"

#include <algorithm>

namespace qmeter::telemetry {

double value_at(const std::vector<TimedValue>& s, Nanos t) {
  if (t <= s.front().t) return s.front().v;
  if (t >= s.back().t) return s.back().v;
  auto hi = std::lower_bound(s.begin(), s.end(), t, [](const TimedValue& x, Nanos v) { return x.t < v; });
  auto lo = hi - 1;
  if (hi->t == lo->t) return hi->v;
  double f = static_cast<double>(t - lo->t) / static_cast<double>(hi->t - lo->t);
  return lo->v + f * (hi->v - lo->v);
}

double trapezoid(const std::vector<TimedValue>& s, Nanos a, Nanos b) {
  if (s.size() < 2) return 0;
  a = std::max(a, s.front().t);
  b = std::min(b, s.back().t);
  if (b <= a) return 0;
  double sum = 0;
  // First segment that ends after a.
  auto it = std::upper_bound(s.begin(), s.end(), a, [](Nanos v, const TimedValue& x) { return v < x.t; });
  if (it == s.begin()) ++it;
  for (; it != s.end(); ++it) {
    Nanos lo = std::max(a, (it - 1)->t), hi = std::min(b, it->t);
    if (hi > lo) sum += 0.5 * (value_at(s, lo) + value_at(s, hi)) * ns_to_s(hi - lo);
    if (it->t >= b) break;
  }
  return sum;
}

WindowEnergy window_energy(const DeviceSeries& series, Nanos t0, Nanos t1, bool use_counter) {
  WindowEnergy w;
  const auto& timeline = use_counter && !series.energy.empty() ? series.energy : series.power;
  if (!timeline.empty()) w.clipped = t0 < timeline.front().t || t1 > timeline.back().t;
  if (use_counter && series.energy.size() >= 2) w.counter_j = value_at(series.energy, t1) - value_at(series.energy, t0);
  if (series.power.size() >= 2) w.integrated_j = trapezoid(series.power, t0, t1);
  for (const auto& p : series.power) {
    if (p.t < t0 || p.t > t1) continue;
    ++w.samples_inside;
    w.peak_power_w = measured(w.peak_power_w) ? std::max(w.peak_power_w, p.v) : p.v;
  }
  return w;
}

std::vector<EnergyInterval> split_intervals(const DeviceSeries& series, Nanos t0, Nanos t1, bool use_counter) {
  std::vector<EnergyInterval> out;
  bool counter = use_counter && series.energy.size() >= 2;
  const auto& s = counter ? series.energy : series.power;
  for (std::size_t k = 1; k < s.size(); ++k) {
    Nanos lo = std::max(t0, s[k - 1].t), hi = std::min(t1, s[k].t);
    if (hi <= lo) continue;
    EnergyInterval iv;
    iv.t0_ns = lo;
    iv.t1_ns = hi;
    iv.energy_j = counter ? value_at(s, hi) - value_at(s, lo) : trapezoid(s, lo, hi);
    out.push_back(iv);
  }
  return out;
}

}  // namespace qmeter::telemetry
