#pragma once
// Online multi-objective search (`qmeter tune`): instead of measuring the whole matrix, measure at
// most `budget` configurations, choosing each next one from those already measured.
//
// 1. Screening: configurations that cover every factor level not yet seen (model, method, tp,
//    hardware setting), greedily, so each level has been measured once.
// 2. Then, per step: fit an additive model of each objective over the factor levels (in log space
//    when the objective is positive, so effects multiply: a 4-bit method speeds every model up by a
//    similar factor), predict every unmeasured configuration, and measure the one whose prediction
//    lies furthest ahead of the measured Pareto front: the largest additive-epsilon gap
//    min over front points f of max over objectives k of (f_k - p_k), objectives normalized by
//    their measured range. A predicted point the front does not dominate has a positive gap, so
//    the predicted front is measured before anything predicted dominated.
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "qmeter/analysis/pareto.h"

namespace qmeter::plan {

struct SearchStep {
  int candidate = -1;
  bool screening = false;         // chosen to cover unseen factor levels
  double predicted_gap = 0;       // the acquisition value (model steps)
  bool measured = false;          // false: the measurement failed or gave no value
  std::vector<double> values;     // measured objective values
  std::string failure;
};

struct SearchResult {
  std::vector<SearchStep> steps;  // in measurement order
  std::vector<int> front;         // candidates on the Pareto front of what was measured, ascending
};

// factors[c][f]: candidate c's level of factor f (every candidate has the same number of factors).
// measure(c): the objective values of candidate c, or nullopt with *failure set.
using MeasureFn = std::function<std::optional<std::vector<double>>(int candidate, std::string* failure)>;
SearchResult online_search(const std::vector<std::vector<std::string>>& factors,
                           const std::vector<analysis::Objective>& objectives, int budget, const MeasureFn& measure);

// The same search for objectives whose directions are known only once something has been measured
// (`qmeter tune` resolves each name against what the study stores, plan::resolve_quantity):
// objectives() is called once, after the first successful measurement and before anything uses a
// direction, and returns objective_count objectives.
SearchResult online_search(const std::vector<std::vector<std::string>>& factors, std::size_t objective_count, int budget,
                           const MeasureFn& measure, const std::function<std::vector<analysis::Objective>()>& objectives);

}  // namespace qmeter::plan
