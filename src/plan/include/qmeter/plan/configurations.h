#pragma once
// What every planner works on: the study's configurations (one run on one workload), their
// measured load points ordered by request rate, and the lookups the planners share (SLO
// attainment, power at a rate, quality floors). Read only from analysis::StudyView.
#include <optional>
#include <string>
#include <vector>

#include "qmeter/analysis/study_view.h"

namespace qmeter::plan {

struct LoadSample {
  double rate = 0;  // offered req/s (rate and search points); achieved req/s for concurrency points
  const analysis::PointView* point = nullptr;
};

struct Configuration {
  const analysis::ConfigView* run = nullptr;
  std::string workload;
  std::vector<LoadSample> samples;  // ascending rate
  std::string label() const;        // the run's label, then the workload when the study has several
  bool show_workload = false;
};

// The study's configurations with at least one load point at a finite rate, optionally only one
// workload's (UsageError naming the workloads present when none matches).
std::vector<Configuration> configurations(const analysis::StudyView& study, const std::string& workload = "");

// UsageError unless some load point of the study carries SLO class `slo` (lists the classes found).
void require_slo_class(const analysis::StudyView& study, const std::string& slo);

// Linear interpolation of value(point) at `rate` between the measured samples that bracket it;
// samples whose value is negative or NaN are skipped. Below the lowest usable sample the lowest
// one's value is used when clamp_below (an instance idling at less load than measured draws at
// most that); above the highest usable sample there is no answer (nullopt), nor when none is usable.
template <class ValueOf>
std::optional<double> interpolate_at(const Configuration& c, double rate, ValueOf value, bool clamp_below);

// Average power of one instance of `c` at `rate` req/s: the points' avg_power_w, or
// energy_per_request_j x rate where only that was measured. nullopt when neither was measured.
std::optional<double> power_at(const Configuration& c, double rate);

// A quality floor: "perplexity=6.5" (the bound's direction follows the metric: perplexity, KL,
// loss and NLL must not exceed it, anything else must reach it), "acc>=0.6", "perplexity<=6.5".
struct QualityFloor {
  std::string metric;
  bool at_most = false;  // value <= bound (else value >= bound)
  double bound = 0;
  std::string text;      // as given, for messages
};
QualityFloor parse_quality_floor(const std::string& text);
bool lower_is_better(const std::string& metric);
// The run's quality result named `metric` ("perplexity" or "task.metric"); nullopt when absent.
std::optional<double> quality_value(const analysis::ConfigView& run, const std::string& metric);
// UsageError unless at least one configuration has a result for every floor's metric.
void require_quality_results(const std::vector<Configuration>& configs, const std::vector<QualityFloor>& floors);
// "" when `run` meets every floor, else why not ("acc 0.41 < 0.5", "no result for acc").
std::string quality_floor_violation(const analysis::ConfigView& run, const std::vector<QualityFloor>& floors);

// ---- template definition ----
template <class ValueOf>
std::optional<double> interpolate_at(const Configuration& c, double rate, ValueOf value, bool clamp_below) {
  std::optional<std::pair<double, double>> below;  // the usable sample at or below `rate` (highest)
  for (const auto& s : c.samples) {
    const double v = value(*s.point);
    if (!(v >= 0)) continue;
    if (s.rate == rate) return v;
    if (s.rate < rate) {
      below = std::make_pair(s.rate, v);
      continue;
    }
    if (!below) return clamp_below ? std::optional<double>(v) : std::nullopt;
    const auto [x0, y0] = *below;
    return y0 + (v - y0) * (rate - x0) / (s.rate - x0);
  }
  return std::nullopt;
}

}  // namespace qmeter::plan
