#pragma once
// `qmeter tune spec.yaml --budget N --objectives ...`: online multi-objective search. Instead of
// measuring the whole matrix of the spec, measure at most N configurations, each chosen from those
// already measured (plan/online_search.h), and report the Pareto front found. Every measured
// configuration is stored exactly as `qmeter run` stores it (same run id, through run_study on
// the spec reduced to that configuration), so a later `qmeter run` of the same spec skips them,
// `qmeter plan` / `qmeter report` read them, and a configuration already complete in the
// database is reused instead of measured again.
#include <string>
#include <vector>

#include "qmeter/plan/tune.h"

namespace qmeter::exec {

struct OnlineTuneOptions {
  std::string spec_path;
  std::string db_path = "results.db";
  std::string out_dir = "qmeter-tune-out";  // server logs and the reduced specs (tune-specs/RUN_ID.yaml)
  std::vector<std::string> objectives;      // at least two, NAME[:min|:max] as plan::resolve_quantity reads them
  int budget = 0;                           // configurations to measure at most (>= 1)
  double at_rate = -1;                      // req/s where load metrics are compared (needed for them)
  std::string workload;                     // the workload whose points are compared ("" = the only one)
  std::string slo;                          // SLO class of the capacity objective
  double attainment = 0.99;                 // attainment of the capacity objective
  bool progress = true;                     // "tune: measuring ..." lines on stderr
};

struct OnlineTuneStep {
  std::string configuration, run_id;
  bool screening = false;     // chosen to cover factor levels not yet seen (else by the model)
  double predicted_gap = 0;   // the model's acquisition value
  bool measured = false;      // false: failure says why
  std::vector<double> values; // per objective
  std::string failure;
  bool reused = false;        // complete in the database before: not measured again
  double seconds = 0;         // time spent measuring it (0 when reused)
};

struct OnlineTuneResult {
  std::string spec, study;
  int budget = 0;
  std::size_t configurations = 0;           // in the spec's whole matrix
  std::vector<std::string> objective_names; // as given
  // Each objective resolved against the study (plan::resolve_quantity: kind, direction); empty
  // when no configuration could be measured.
  std::vector<plan::Quantity> objectives;
  std::vector<OnlineTuneStep> steps;        // in measurement order
  std::vector<std::string> front;           // labels of the measured Pareto front, in spec order
  double seconds = 0;
};

// Throws UsageError for a bad spec (file, line, field), a budget below 1, fewer than two
// objectives, an objective the study does not store, or a load metric without at_rate.
OnlineTuneResult online_tune(const OnlineTuneOptions& options);

// The steps in order (chosen by screening or the model, values or the failure) and the front.
std::string online_tune_table(const OnlineTuneResult& result);
std::string online_tune_json(const OnlineTuneResult& result);

}  // namespace qmeter::exec
