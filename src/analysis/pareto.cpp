#include "qmeter/analysis/pareto.h"

#include <algorithm>
#include <cmath>

namespace qmeter::analysis {

static bool has_nan(const std::vector<double>& p) {
  return std::any_of(p.begin(), p.end(), [](double v) { return std::isnan(v); });
}

bool dominates(const std::vector<double>& a, const std::vector<double>& b, const std::vector<Objective>& objectives) {
  if (has_nan(a) || has_nan(b)) return false;
  bool strictly = false;
  for (std::size_t k = 0; k < objectives.size(); ++k) {
    const double x = objectives[k].maximize ? -a[k] : a[k];
    const double y = objectives[k].maximize ? -b[k] : b[k];
    if (x > y) return false;
    if (x < y) strictly = true;
  }
  return strictly;
}

ParetoResult pareto_front(const std::vector<std::vector<double>>& points, const std::vector<Objective>& objectives) {
  ParetoResult r;
  r.dominated_by.assign(points.size(), -1);
  for (std::size_t i = 0; i < points.size(); ++i) {
    if (has_nan(points[i])) {
      r.dominated_by[i] = -2;
      continue;
    }
    for (std::size_t j = 0; j < points.size(); ++j) {
      if (i != j && dominates(points[j], points[i], objectives)) {
        r.dominated_by[i] = static_cast<int>(j);
        break;
      }
    }
    if (r.dominated_by[i] == -1) r.front.push_back(static_cast<int>(i));
  }
  return r;
}

double hypervolume_2d(const std::vector<std::vector<double>>& points, const std::vector<Objective>& objectives,
                      const std::vector<double>& reference) {
  // Minimize both: flip maximized objectives.
  std::vector<std::pair<double, double>> pts;
  auto flip = [&](std::size_t k, double v) { return objectives[k].maximize ? -v : v; };
  const double rx = flip(0, reference[0]), ry = flip(1, reference[1]);
  auto front = pareto_front(points, objectives).front;
  for (int i : front) {
    const double x = flip(0, points[static_cast<std::size_t>(i)][0]), y = flip(1, points[static_cast<std::size_t>(i)][1]);
    if (x < rx && y < ry) pts.emplace_back(x, y);
  }
  std::sort(pts.begin(), pts.end());
  double area = 0, prev_y = ry;
  for (const auto& [x, y] : pts) {
    if (y < prev_y) {
      area += (rx - x) * (prev_y - y);
      prev_y = y;
    }
  }
  return area;
}

}  // namespace qmeter::analysis
