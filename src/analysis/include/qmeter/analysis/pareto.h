#pragma once
// Pareto fronts over any number of objectives, each minimized or maximized.
#include <string>
#include <vector>

namespace qmeter::analysis {

struct Objective {
  std::string name;
  bool maximize = false;
};

struct ParetoResult {
  std::vector<int> front;        // indices of non-dominated points, ascending
  std::vector<int> dominated_by; // per point: the index of one point dominating it, or -1 on the front
};

// a dominates b when a is at least as good in every objective and strictly better in one.
// Points with a NaN objective are never on the front (they are dominated by nothing either: -2).
bool dominates(const std::vector<double>& a, const std::vector<double>& b, const std::vector<Objective>& objectives);
ParetoResult pareto_front(const std::vector<std::vector<double>>& points, const std::vector<Objective>& objectives);

// Hypervolume of a 2-objective front (both minimized after sign flips) against a reference point.
double hypervolume_2d(const std::vector<std::vector<double>>& points, const std::vector<Objective>& objectives,
                      const std::vector<double>& reference);

}  // namespace qmeter::analysis
