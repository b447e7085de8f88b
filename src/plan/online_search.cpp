#include "qmeter/plan/online_search.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "qmeter/core/error.h"

namespace qmeter::plan {

namespace {

// An additive model y = mean + sum over factors of effect[f][level], fitted to the measured
// candidates by backfitting (each factor's effects = the mean residual of its levels, repeated);
// an unmeasured level's effect is 0.
class AdditiveModel {
 public:
  AdditiveModel(const std::vector<std::vector<int>>& levels, const std::vector<int>& rows, const std::vector<double>& y)
      : levels_(levels) {
    const std::size_t nf = levels.empty() ? 0 : levels[0].size();
    effect_.assign(nf, {});
    for (double v : y) mean_ += v;
    mean_ /= static_cast<double>(y.size());
    for (int sweep = 0; sweep < 50; ++sweep) {
      for (std::size_t f = 0; f < nf; ++f) {
        std::map<int, std::pair<double, int>> sum;
        for (std::size_t i = 0; i < rows.size(); ++i) {
          const double residual = y[i] - predict(rows[i]) + effect(f, levels_[rows[i]][f]);
          auto& s = sum[levels_[rows[i]][f]];
          s.first += residual;
          s.second += 1;
        }
        effect_[f].clear();
        for (const auto& [level, s] : sum) effect_[f][level] = s.first / s.second;
      }
    }
  }
  double predict(int candidate) const {
    double v = mean_;
    for (std::size_t f = 0; f < effect_.size(); ++f) v += effect(f, levels_[candidate][f]);
    return v;
  }

 private:
  double effect(std::size_t f, int level) const {
    auto it = effect_[f].find(level);
    return it == effect_[f].end() ? 0 : it->second;
  }
  const std::vector<std::vector<int>>& levels_;
  double mean_ = 0;
  std::vector<std::map<int, double>> effect_;
};

}  // namespace

SearchResult online_search(const std::vector<std::vector<std::string>>& factors,
                           const std::vector<analysis::Objective>& objectives, int budget, const MeasureFn& measure) {
  return online_search(factors, objectives.size(), budget, measure, [&] { return objectives; });
}

SearchResult online_search(const std::vector<std::vector<std::string>>& factors, std::size_t objective_count, int budget,
                           const MeasureFn& measure, const std::function<std::vector<analysis::Objective>()>& resolve) {
  if (budget < 1) throw UsageError("--budget: must be at least 1");
  if (objective_count == 0) throw UsageError("--objectives: name at least one objective");
  std::vector<analysis::Objective> objectives;  // resolved after the first successful measurement
  const int n = static_cast<int>(factors.size());
  const std::size_t nf = n ? factors[0].size() : 0;
  // Levels as small integers per factor.
  std::vector<std::vector<int>> levels(n, std::vector<int>(nf));
  std::vector<std::map<std::string, int>> level_ids(nf);
  for (int c = 0; c < n; ++c) {
    if (factors[c].size() != nf) throw Error("online_search: candidates with different numbers of factors");
    for (std::size_t f = 0; f < nf; ++f) levels[c][f] = level_ids[f].emplace(factors[c][f], level_ids[f].size()).first->second;
  }

  SearchResult result;
  std::vector<bool> tried(n, false);
  std::vector<std::set<int>> seen(nf);  // levels with a successful measurement
  std::vector<int> ok_rows;             // measured candidates
  std::vector<std::vector<double>> ok_values;
  const int steps = std::min(budget, n);

  auto run = [&](int c, bool screening, double gap) {
    SearchStep step;
    step.candidate = c;
    step.screening = screening;
    step.predicted_gap = gap;
    tried[c] = true;
    auto v = measure(c, &step.failure);
    if (v && v->size() == objective_count &&
        std::all_of(v->begin(), v->end(), [](double x) { return std::isfinite(x); })) {
      if (objectives.empty()) {
        objectives = resolve();
        if (objectives.size() != objective_count) throw Error("online_search: objectives() returned the wrong count");
      }
      step.measured = true;
      step.values = *v;
      ok_rows.push_back(c);
      ok_values.push_back(*v);
      for (std::size_t f = 0; f < nf; ++f) seen[f].insert(levels[c][f]);
    } else if (step.failure.empty()) {
      step.failure = "no value for every objective";
    }
    result.steps.push_back(std::move(step));
  };

  while (static_cast<int>(result.steps.size()) < steps) {
    // Screening: the untried candidate covering the most unseen levels (ties: lowest index).
    int cover_best = -1, cover_count = 0;
    for (int c = 0; c < n; ++c) {
      if (tried[c]) continue;
      int count = 0;
      for (std::size_t f = 0; f < nf; ++f) count += !seen[f].count(levels[c][f]);
      if (count > cover_count) cover_best = c, cover_count = count;
    }
    if (cover_best >= 0) {
      run(cover_best, true, 0);
      continue;
    }
    if (ok_values.empty()) {  // nothing to model yet (no factors, or every measurement failed)
      const int c = static_cast<int>(std::find(tried.begin(), tried.end(), false) - tried.begin());
      if (c >= n) break;
      run(c, true, 0);
      continue;
    }
    // Model step: predict every untried candidate in minimize-space (log where positive).
    const std::size_t k = objective_count;
    std::vector<bool> use_log(k, true);
    for (std::size_t j = 0; j < k; ++j)
      for (const auto& v : ok_values) use_log[j] = use_log[j] && v[j] > 0;
    auto transform = [&](std::size_t j, double v) {
      const double t = use_log[j] ? std::log(v) : v;
      return objectives[j].maximize ? -t : t;
    };
    std::vector<std::vector<double>> pred(n);
    std::vector<double> lo(k, INFINITY), hi(k, -INFINITY);
    for (std::size_t j = 0; j < k; ++j) {
      std::vector<double> y;
      for (const auto& v : ok_values) y.push_back(transform(j, v[j]));
      for (double v : y) lo[j] = std::min(lo[j], v), hi[j] = std::max(hi[j], v);
      AdditiveModel model(levels, ok_rows, y);
      for (int c = 0; c < n; ++c)
        if (!tried[c]) pred[c].push_back(model.predict(c));
    }
    std::vector<std::vector<double>> measured_t;
    for (const auto& v : ok_values) {
      std::vector<double> t;
      for (std::size_t j = 0; j < k; ++j) t.push_back(transform(j, v[j]));
      measured_t.push_back(t);
    }
    std::vector<analysis::Objective> minimize(k);
    const auto front = analysis::pareto_front(measured_t, minimize).front;
    int pick = -1;
    double pick_gap = -INFINITY;
    for (int c = 0; c < n; ++c) {
      if (tried[c]) continue;
      double gap = INFINITY;  // nothing measured yet: every candidate is equally far ahead
      for (int f : front) {
        double ahead = -INFINITY;
        for (std::size_t j = 0; j < k; ++j) {
          const double range = hi[j] > lo[j] ? hi[j] - lo[j] : 1;
          ahead = std::max(ahead, (measured_t[f][j] - pred[c][j]) / range);
        }
        gap = std::min(gap, ahead);
      }
      if (gap > pick_gap) pick = c, pick_gap = gap;
    }
    if (pick < 0) break;
    run(pick, false, pick_gap);
  }

  if (ok_values.empty()) return result;  // nothing measured: no front (and no directions needed)
  const auto front = analysis::pareto_front(ok_values, objectives).front;
  for (int i : front) result.front.push_back(ok_rows[i]);
  std::sort(result.front.begin(), result.front.end());
  return result;
}

}  // namespace qmeter::plan
