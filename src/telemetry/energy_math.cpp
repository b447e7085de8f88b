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

// Counter energy over [t0, t1]: the exact counter delta between the reads nearest the window's
// edges, corrected by the sampled power's integral over the (signed) gaps between those reads and
// the edges: E(t0, t1) = C(tb) - C(ta) + E(t0, ta) + E(tb, t1). Without a power series the
// counter is interpolated linearly instead.
double counter_window(const DeviceSeries& series, Nanos t0, Nanos t1) {
  const auto& e = series.energy;
  if (e.size() < 2) return kNotMeasured;
  if (series.power.size() < 2) return value_at(e, t1) - value_at(e, t0);
  auto nearest = [&](Nanos t) {
    auto it = std::lower_bound(e.begin(), e.end(), t, [](const TimedValue& x, Nanos v) { return x.t < v; });
    std::size_t i = static_cast<std::size_t>(it - e.begin());
    if (i == e.size()) return i - 1;
    if (i > 0 && t - e[i - 1].t < e[i].t - t) return i - 1;
    return i;
  };
  std::size_t a = nearest(t0), b = nearest(t1);
  if (a == b) {
    if (b + 1 < e.size()) ++b;
    else --a;
  }
  auto signed_integral = [&](Nanos x, Nanos y) {
    return x <= y ? trapezoid(series.power, x, y) : -trapezoid(series.power, y, x);
  };
  return e[b].v - e[a].v + signed_integral(t0, e[a].t) + signed_integral(e[b].t, t1);
}

WindowEnergy window_energy(const DeviceSeries& series, Nanos t0, Nanos t1, bool use_counter) {
  WindowEnergy w;
  const auto& timeline = use_counter && !series.energy.empty() ? series.energy : series.power;
  if (!timeline.empty()) w.clipped = t0 < timeline.front().t || t1 > timeline.back().t;
  if (use_counter && series.energy.size() >= 2) w.counter_j = counter_window(series, t0, t1);
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
  if (series.power.size() < 2) {
    // No power series: the counter's own intervals (or nothing).
    if (!counter) return out;
    const auto& e = series.energy;
    for (std::size_t k = 1; k < e.size(); ++k) {
      Nanos lo = std::max(t0, e[k - 1].t), hi = std::min(t1, e[k].t);
      if (hi > lo) out.push_back({lo, hi, value_at(e, hi) - value_at(e, lo), 0});
    }
    return out;
  }
  // The power samples give each interval's shape; where counter reads bracket an interval, the
  // intervals between two reads are scaled so that together they hold exactly the counter delta.
  const auto& p = series.power;
  std::vector<EnergyInterval> all;  // unclipped power intervals
  for (std::size_t k = 1; k < p.size(); ++k)
    if (p[k].t > p[k - 1].t) all.push_back({p[k - 1].t, p[k].t, trapezoid(p, p[k - 1].t, p[k].t), 0});
  if (counter) {
    const auto& e = series.energy;
    std::size_t i = 0;
    for (std::size_t k = 1; k < e.size(); ++k) {
      Nanos a = e[k - 1].t, b = e[k].t;
      while (i < all.size() && all[i].t1_ns <= a) ++i;
      std::size_t j = i;
      double sum = 0;
      bool aligned = true;
      for (; j < all.size() && all[j].t0_ns < b; ++j) {
        sum += all[j].energy_j;
        aligned &= all[j].t0_ns >= a && all[j].t1_ns <= b;
      }
      double delta = e[k].v - e[k - 1].v;
      // Counter reads are stamped with their tick's time, so intervals fall wholly inside one
      // counter interval; anything else (a counter read without a power sample) is left as is.
      if (aligned && sum > 0) {
        for (std::size_t q = i; q < j; ++q) all[q].energy_j *= delta / sum;
      }
      i = j;
    }
  }
  for (const auto& iv : all) {
    Nanos lo = std::max(t0, iv.t0_ns), hi = std::min(t1, iv.t1_ns);
    if (hi <= lo) continue;
    double share = static_cast<double>(hi - lo) / static_cast<double>(iv.t1_ns - iv.t0_ns);
    double e = share >= 1.0 ? iv.energy_j : trapezoid(p, lo, hi) * (iv.energy_j / std::max(1e-300, trapezoid(p, iv.t0_ns, iv.t1_ns)));
    out.push_back({lo, hi, e, 0});
  }
  return out;
}

}  // namespace qmeter::telemetry
