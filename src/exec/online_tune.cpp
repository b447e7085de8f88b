#include "qmeter/exec/online_tune.h"

#include <fmt/core.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "qmeter/analysis/study_view.h"
#include "qmeter/core/error.h"
#include "qmeter/exec/study_runner.h"
#include "qmeter/plan/configurations.h"
#include "qmeter/plan/online_search.h"
#include "qmeter/plan/spec_candidates.h"
#include "qmeter/store/store.h"

namespace qmeter::exec {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

OnlineTuneResult online_tune(const OnlineTuneOptions& a) {
  if (a.budget < 1) throw UsageError("--budget: must be at least 1");
  if (a.objectives.size() < 2) throw UsageError("--objectives: name at least two objectives, comma-separated");
  const auto full = spec::parse_study_spec_file(a.spec_path, known_names());
  const auto candidates = plan::spec_candidates(a.spec_path, known_names());
  std::vector<std::vector<std::string>> factors;
  for (const auto& c : candidates) factors.push_back(c.factors);

  OnlineTuneResult result;
  result.spec = a.spec_path;
  result.study = full.name;
  result.budget = a.budget;
  result.configurations = candidates.size();
  result.objective_names = a.objectives;
  std::filesystem::create_directories(a.out_dir + "/tune-specs");
  plan::TuneOptions topts;
  topts.workload = a.workload;
  topts.slo = a.slo;
  topts.attainment = a.attainment;
  std::vector<double> seconds(candidates.size(), 0);
  std::vector<bool> reused(candidates.size(), false);
  const auto start = std::chrono::steady_clock::now();

  // Measures candidate c (or finds it complete in the database), then evaluates every objective on
  // the stored study: the objectives are resolved against what the study stores (their kind and
  // direction), the first time something has been measured.
  auto measure = [&](int c, std::string* failure) -> std::optional<std::vector<double>> {
    const auto& cand = candidates[c];
    reused[c] = store::Store::open(a.db_path)->run_status(cand.run_id) == store::RunStatus::kComplete;
    if (!reused[c]) {
      const std::string path = a.out_dir + "/tune-specs/" + cand.run_id + ".yaml";
      std::ofstream(path) << cand.spec_text;
      StudyOptions o;
      o.spec_path = path;
      o.db_path = a.db_path;
      o.out_dir = a.out_dir;
      o.write_report = false;
      o.progress = a.progress;
      if (a.progress) fmt::print(stderr, "tune: measuring {} ({})\n", cand.label, cand.run_id);
      const auto t0 = std::chrono::steady_clock::now();
      const auto summary = run_study(o);
      seconds[c] = seconds_since(t0);
      if (summary.failed > 0) {
        *failure = summary.failures.empty() ? "the run failed" : summary.failures.front();
        return std::nullopt;
      }
    }
    auto db = store::Store::open(a.db_path);
    db->put_study(full.name, full.text);  // the study keeps its whole spec, not the reduced one
    const auto view = analysis::load_study(*db, full.name);
    std::vector<plan::Quantity> quantities;
    for (const auto& n : a.objectives) {
      quantities.push_back(plan::resolve_quantity(view, n));
      if (plan::depends_on_load(quantities.back()) && !(a.at_rate > 0))
        throw UsageError(fmt::format("--at-rate: '{}' depends on the load; give the request rate to compare at", n));
    }
    for (const auto& cfg : plan::configurations(view, a.workload)) {
      if (cfg.run->run_id != cand.run_id) continue;
      std::vector<double> values;
      for (const auto& q : quantities) {
        const auto v = plan::evaluate(cfg, q, a.at_rate, topts, failure);
        if (!v) return std::nullopt;
        values.push_back(*v);
      }
      if (result.objectives.empty()) result.objectives = quantities;
      return values;
    }
    *failure = "no load points stored for this configuration";
    return std::nullopt;
  };
  auto directions = [&] {
    std::vector<analysis::Objective> out;
    for (const auto& q : result.objectives) out.push_back({q.name, q.maximize});
    return out;
  };

  const auto search = plan::online_search(factors, a.objectives.size(), a.budget, measure, directions);
  result.seconds = seconds_since(start);
  for (const auto& st : search.steps) {
    OnlineTuneStep s;
    s.configuration = candidates[st.candidate].label;
    s.run_id = candidates[st.candidate].run_id;
    s.screening = st.screening;
    s.predicted_gap = st.predicted_gap;
    s.measured = st.measured;
    s.values = st.values;
    s.failure = st.failure;
    s.reused = reused[st.candidate];
    s.seconds = seconds[st.candidate];
    result.steps.push_back(std::move(s));
  }
  for (int c : search.front) result.front.push_back(candidates[c].label);
  return result;
}

namespace {

// "p99_tpot (min)"; the bare name when nothing was measured (no direction known).
std::string objective_heading(const OnlineTuneResult& r, std::size_t k) {
  if (k >= r.objectives.size()) return r.objective_names[k];
  return r.objectives[k].name + (r.objectives[k].maximize ? " (max)" : " (min)");
}

}  // namespace

std::string online_tune_table(const OnlineTuneResult& r) {
  std::string header = fmt::format("{:>4}  {:<8}  {:<40}", "step", "chosen", "configuration");
  for (std::size_t k = 0; k < r.objective_names.size(); ++k) header += fmt::format("  {:>14}", objective_heading(r, k));
  std::string out = fmt::format("online tuning of {}: measured {} of {} configurations (budget {}) in {:.1f} s\n\n{}\n",
                                r.spec, r.steps.size(), r.configurations, r.budget, r.seconds, header);
  for (std::size_t i = 0; i < r.steps.size(); ++i) {
    const auto& st = r.steps[i];
    out += fmt::format("{:>4}  {:<8}  {:<40}", i + 1, st.screening ? "screen" : "model", st.configuration);
    if (st.measured) {
      for (double v : st.values) out += fmt::format("  {:>14.4g}", v);
    } else {
      out += "  FAILED: " + st.failure;
    }
    out += st.reused ? "  (already in the database)\n" : "\n";
  }
  out += "\nPareto front of the measured configurations:\n";
  for (const auto& label : r.front) out += "  " + label + "\n";
  return out;
}

std::string online_tune_json(const OnlineTuneResult& r) {
  using J = nlohmann::ordered_json;
  J objectives = J::array();
  for (std::size_t k = 0; k < r.objective_names.size(); ++k) {
    J o = {{"name", k < r.objectives.size() ? r.objectives[k].name : r.objective_names[k]}};
    if (k < r.objectives.size()) o["maximize"] = r.objectives[k].maximize;
    objectives.push_back(o);
  }
  J steps = J::array();
  for (const auto& st : r.steps) {
    J values = J::object();
    if (st.measured)
      for (std::size_t k = 0; k < st.values.size(); ++k) values[objectives[k]["name"].get<std::string>()] = st.values[k];
    steps.push_back({{"configuration", st.configuration}, {"run_id", st.run_id},
                     {"chosen_by", st.screening ? "screening" : "model"}, {"predicted_gap", st.predicted_gap},
                     {"measured", st.measured}, {"values", values}, {"failure", st.failure}, {"reused", st.reused},
                     {"seconds", st.seconds}});
  }
  J j = {{"tuner", "online"},       {"spec", r.spec},         {"study", r.study},
         {"budget", r.budget},      {"configurations", r.configurations}, {"measured", r.steps.size()},
         {"seconds", r.seconds},    {"objectives", objectives}, {"steps", steps},
         {"pareto_front", r.front}};
  return j.dump(2) + "\n";
}

}  // namespace qmeter::exec
