#pragma once
// A study as the report and the planners see it: one ConfigView per run (model, method,
// parallelism, hardware setting), its measured load points with every numeric metric, and its
// quality results. Read only from the store, so any figure can be recomputed later.
#include <map>
#include <string>
#include <vector>

#include "qmeter/store/store.h"

namespace qmeter::analysis {

struct PointView {
  std::int64_t id = 0;
  int index = 0;
  std::string workload;
  std::string kind;      // rate | concurrency | search
  double target = 0;     // offered load (req/s, or streams)
  double achieved = 0;   // completed req/s
  std::map<std::string, double> metrics;     // every numeric key of the bench-serve JSON
  // SLO class -> attainment / goodput req/s over the steady-state window (whole run for points
  // stored before it existed); 0 for a point that is not sustainable (LoadStudyOptions).
  std::map<std::string, double> attainment;
  std::map<std::string, double> goodput;
  std::map<std::string, double> raw_attainment;  // what the percentiles alone say
  bool sustainable = true;       // neither client-bound nor server-saturated
  bool client_bound = false;     // the load generator limited the point
  bool server_saturated = false;  // the queue grew: the server did not keep up
  std::string verdict;           // why it is not sustainable ("" when it is)
  double energy_per_token_j = -1, energy_per_request_j = -1, avg_power_w = -1;
  std::string energy_source;
  double metric(const std::string& key, double fallback = -1) const;
};

struct QualityView {
  double value = 0, stderr_ = 0;
  int n = 0;
};

struct ConfigView {
  // method: the full form with every option ("gptq(bits=4,calib=/data/kjv.txt)", for a column or
  // a tooltip); method_label: the short one, unique within the study ("gptq-w4g128").
  std::string run_id, model, method, method_name, method_label, status, error;
  int tp = 1;
  double power_limit_w = -1, locked_clock_mhz = -1;
  std::string hardware;  // label
  // From the quantization registry: stored with the run, or computed on read for runs stored
  // before it was (quant::configuration_properties); -1: unknown (a method the registry lacks).
  double bits_per_weight = -1;
  std::vector<PointView> points;
  std::map<std::string, QualityView> quality;  // "task.metric" and plain "metric" -> value
  std::map<std::string, std::string> method_options;
  std::string label() const;  // "model / method_label / tp=N / hw"
};

struct SloView {
  std::string name;
  double ttft_ms = -1, tpot_ms = -1, e2e_ms = -1, itl_ms = -1;
};

struct StudyView {
  std::string name;
  std::string spec;
  std::vector<ConfigView> configs;
  std::vector<SloView> slos;  // from the stored spec's run configs
};

// The study named (or the only/latest one when empty); throws UsageError when absent.
// Whether a stored load point sustained its load (loadgen's verdicts; the old 90%-of-offered rule
// for points stored before them), with the reason when it did not.
bool point_sustainable(const store::LoadPointRow& point, std::string* why = nullptr);

struct LoadStudyOptions {
  // The sustainable rule (loadgen/metrics.h) zeroes the SLO attainment and goodput of a point that
  // was client-bound or not sustainable; true keeps what its percentiles say (raw_attainment).
  bool include_unsustainable = false;
};
StudyView load_study(const store::Store& db, const std::string& study = "", const LoadStudyOptions& options = {});

}  // namespace qmeter::analysis
