#pragma once
// Builds a results database with known numbers for the planner tests: runs with load points whose
// SLO attainment, power and metrics are chosen so each planner's right answer is known by hand.
#include <fmt/core.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "qmeter/store/store.h"

namespace qmeter::testing {

struct PointSpec {
  double rate = 0;
  std::map<std::string, double> attainment;  // SLO class -> attainment
  double avg_power_w = -1;
  double energy_per_request_j = -1;
  double energy_per_token_j = -1;
  std::map<std::string, double> metrics;     // e.g. p99_tpot_ms
  std::string workload = "chat";
  std::string kind = "rate";
  nlohmann::json extra = nlohmann::json::object();  // more keys of the stored JSON (verdicts, ...)
};

struct RunSpec {
  std::string id, model = "m", method = "fp16";
  int tp = 1;
  double power_limit_w = -1;
  std::vector<PointSpec> points;
  std::map<std::string, double> quality;  // metric -> value (task "t")
};

inline RunSpec make_run(const std::string& id, const std::string& method, int tp = 1) {
  RunSpec r;
  r.id = id;
  r.method = method;
  r.tp = tp;
  return r;
}

inline PointSpec make_point(double rate, std::map<std::string, double> attainment, double avg_power_w = -1) {
  PointSpec p;
  p.rate = rate;
  p.attainment = std::move(attainment);
  p.avg_power_w = avg_power_w;
  return p;
}

class StudyBuilder {
 public:
  StudyBuilder(const std::string& db_path, const std::string& study) : db_(store::Store::open(db_path)), study_(study) {
    db_->put_study(study, "study: {name: " + study + "}\n");
  }
  void add(const RunSpec& r) {
    store::RunRow run;
    run.id = r.id;
    run.study = study_;
    run.model = r.model;
    run.method = r.method;
    nlohmann::json cfg = {{"method", {{"name", r.method}, {"options", nlohmann::json::object()}}},
                          {"tp", r.tp},
                          {"hardware", {{"power_limit_w", r.power_limit_w}, {"locked_clock_mhz", -1.0}}},
                          {"slos", nlohmann::json::array()}};
    run.config_json = cfg.dump();
    db_->begin_run(run);
    int index = 0;
    for (const auto& p : r.points) {
      store::LoadPointRow row;
      row.run_id = r.id;
      row.index = index++;
      row.target_kind = p.kind;
      row.target_value = p.rate;
      row.achieved_rate = p.rate;
      row.avg_power_w = p.avg_power_w;
      row.energy_per_token_j = p.energy_per_token_j;
      row.energy_source = p.avg_power_w >= 0 ? "counter" : "none";
      nlohmann::json m = {{"workload", p.workload}, {"energy_per_request_j", p.energy_per_request_j}};
      for (const auto& [k, v] : p.metrics) m[k] = v;
      for (const auto& [name, att] : p.attainment) m["slo"][name] = {{"attainment", att}, {"request_goodput", att * p.rate}};
      m.update(p.extra);
      row.metrics_json = m.dump();
      db_->write_load_point(row, {}, {}, {});
    }
    std::vector<store::QualityResultRow> q;
    for (const auto& [metric, value] : r.quality) q.push_back({r.id, "t", metric, value, 0.0, 100});
    if (!q.empty()) db_->write_quality(r.id, "t", q, {});
    db_->finish_run(r.id, store::RunStatus::kComplete);
  }
  store::Store& db() { return *db_; }

 private:
  std::unique_ptr<store::Store> db_;
  std::string study_;
};

}  // namespace qmeter::testing
