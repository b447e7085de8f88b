#pragma once
// `qmeter plan tune`: the Pareto-optimal configurations over chosen objectives (each minimized or
// maximized), every dominated configuration with the ones that dominate it, and a recommendation
// under constraints and weights.
#include <optional>
#include <string>
#include <vector>

#include "qmeter/analysis/pareto.h"
#include "qmeter/analysis/study_view.h"
#include "qmeter/plan/configurations.h"

namespace qmeter::plan {

// An objective or constraint quantity of a configuration:
//  - a load-point metric at the evaluation rate (p99_tpot -> p99_tpot_ms, request_throughput,
//    energy_per_token -> energy_per_token_j, energy_per_request, avg_power), interpolated between
//    the measured points that bracket the rate;
//  - capacity: the highest rate meeting --slo at --attainment (the SLO knee);
//  - bits_per_weight, gpus (tensor-parallel degree);
//  - a stored quality result (perplexity, acc, kl_mean, task.metric, ...).
struct Quantity {
  std::string name;       // as the user wrote it, without a :min/:max suffix
  bool maximize = false;  // the default direction of the metric, or the suffix
  enum class Kind { kPointMetric, kEnergyPerToken, kEnergyPerRequest, kAvgPower, kCapacity, kBits, kGpus, kQuality } kind =
      Kind::kQuality;
  std::string key;        // the point metric key or quality name
};

// "p99_tpot", "acc:max", "perplexity:min". UsageError naming what the study does store.
Quantity resolve_quantity(const analysis::StudyView& study, const std::string& text);
// True for the quantities read at a request rate (load-point metrics, energy, power).
bool depends_on_load(const Quantity& q);

struct Constraint {
  Quantity quantity;
  bool at_most = true;
  double bound = 0;
  std::string text;
};
// "p99_tpot<=50", "acc>=0.6".
Constraint parse_constraint(const analysis::StudyView& study, const std::string& text);

struct TuneOptions {
  std::string workload;
  std::vector<std::string> objectives;   // at least two
  std::vector<std::string> constraints;
  std::string weights;                   // "1,2,0.5" (per objective, in order) or "perplexity=2,p99_tpot=1"
  double at_rate = -1;                   // req/s where load metrics are read; < 0: highest rate every configuration measured
  std::string slo;                       // for capacity
  double attainment = 0.99;
};

struct TuneRow {
  std::string label, run_id, workload;
  std::vector<double> values;                 // per objective
  bool on_front = false;
  std::vector<int> dominated_by;              // indices (into TunePlan::rows) of every dominating row
  std::vector<std::string> violations;        // constraints not met
  double score = -1;                          // weighted normalized distance (feasible rows), 0 = best in all
};

struct TunePlan {
  std::string study, workload;
  std::vector<Quantity> objectives;
  std::vector<double> weights;
  std::vector<std::string> constraints;
  double at_rate = -1;                          // -1 when no objective depends on load
  std::vector<TuneRow> rows;                    // evaluated configurations
  std::vector<std::string> skipped;             // "label: why" (an objective it has no value for)
  std::vector<int> front;                       // indices into rows
  int recommended = -1;                         // index into rows; -1 when nothing meets the constraints
};

// The value of q for configuration c at `rate`; nullopt and a reason when it cannot be evaluated.
std::optional<double> evaluate(const Configuration& c, const Quantity& q, double rate, const TuneOptions& options,
                               std::string* why);

TunePlan plan_tune(const analysis::StudyView& study, const TuneOptions& options);
std::string tune_table(const TunePlan& plan);
std::string tune_json(const TunePlan& plan);

}  // namespace qmeter::plan
