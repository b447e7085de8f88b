// `qmeter tune spec.yaml --budget N --objectives ...`: online multi-objective search. Instead of
// measuring the whole matrix of the spec, measure at most N configurations, each chosen from those
// already measured (qmeter/plan/online_search.h), and report the Pareto front found. Every
// measured configuration is stored exactly as `qmeter run` stores it (same run id), so a later
// `qmeter run` of the same spec skips them and `qmeter plan` / `qmeter report` read them.
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
#include "qmeter/plan/tune.h"
#include "qmeter/store/store.h"
#include "verbs.h"

namespace qmeter::cli {

namespace {

struct TuneSpecArgs {
  std::string spec, db = "results.db", out = "qmeter-tune-out", objectives, workload, slo, output_json;
  int budget = 0;
  double at_rate = -1, attainment = 0.99;
};

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::string item;
  for (char ch : s + ",") {
    if (ch != ',') {
      item += ch;
    } else if (!item.empty()) {
      out.push_back(item);
      item.clear();
    }
  }
  return out;
}

// The direction of an objective before anything is measured (plan::resolve_quantity applies the
// same rules once the study has data).
analysis::Objective direction(const std::string& text) {
  analysis::Objective o{text, false};
  const auto colon = text.rfind(':');
  if (colon != std::string::npos && (text.substr(colon) == ":max" || text.substr(colon) == ":min")) {
    o.name = text.substr(0, colon);
    o.maximize = text.substr(colon) == ":max";
    return o;
  }
  for (const char* key : {"ttft", "tpot", "itl", "e2el", "energy", "power", "bits_per_weight", "gpus"})
    if (text.find(key) != std::string::npos) return o;
  for (const char* key : {"throughput", "goodput", "capacity"})
    if (text.find(key) != std::string::npos) return o.maximize = true, o;
  o.maximize = !plan::lower_is_better(text);
  return o;
}

void run_tune(const TuneSpecArgs& a) {
  if (a.budget < 1) throw UsageError("--budget: must be at least 1");
  const auto names = split_commas(a.objectives);
  if (names.size() < 2) throw UsageError("--objectives: name at least two objectives, comma-separated");
  const auto full = spec::parse_study_spec_file(a.spec, exec::known_names());
  const auto candidates = plan::spec_candidates(a.spec, exec::known_names());
  std::vector<std::vector<std::string>> factors;
  for (const auto& c : candidates) factors.push_back(c.factors);
  std::vector<analysis::Objective> objectives;
  for (const auto& n : names) objectives.push_back(direction(n));

  std::filesystem::create_directories(a.out + "/tune-specs");
  plan::TuneOptions topts;
  topts.workload = a.workload;
  topts.slo = a.slo;
  topts.attainment = a.attainment;
  std::vector<double> seconds(candidates.size(), 0);
  std::vector<bool> reused(candidates.size(), false);
  const auto start = std::chrono::steady_clock::now();

  auto measure = [&](int c, std::string* failure) -> std::optional<std::vector<double>> {
    const auto& cand = candidates[c];
    {
      auto db = store::Store::open(a.db);
      reused[c] = db->run_status(cand.run_id) == store::RunStatus::kComplete;
    }
    if (!reused[c]) {
      const std::string path = a.out + "/tune-specs/" + cand.run_id + ".yaml";
      std::ofstream(path) << cand.spec_text;
      exec::StudyOptions o;
      o.spec_path = path;
      o.db_path = a.db;
      o.out_dir = a.out;
      o.write_report = false;
      fmt::print(stderr, "tune: measuring {} ({})\n", cand.label, cand.run_id);
      const auto t0 = std::chrono::steady_clock::now();
      const auto summary = exec::run_study(o);
      seconds[c] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (summary.failed > 0) {
        *failure = summary.failures.empty() ? "the run failed" : summary.failures.front();
        return std::nullopt;
      }
    }
    auto db = store::Store::open(a.db);
    db->put_study(full.name, full.text);  // the study keeps its whole spec, not the reduced one
    const auto view = analysis::load_study(*db, full.name);
    const auto configs = plan::configurations(view, a.workload);
    for (const auto& cfg : configs) {
      if (cfg.run->run_id != cand.run_id) continue;
      std::vector<double> values;
      for (const auto& n : names) {
        const auto q = plan::resolve_quantity(view, n);
        if (q.maximize != direction(n).maximize)
          throw UsageError(fmt::format("--objectives: '{}' is {} here; write {}:min or {}:max", n,
                                       q.maximize ? "maximized" : "minimized", q.name, q.name));
        const bool load_metric = q.kind == plan::Quantity::Kind::kPointMetric ||
                                 q.kind == plan::Quantity::Kind::kEnergyPerToken ||
                                 q.kind == plan::Quantity::Kind::kEnergyPerRequest ||
                                 q.kind == plan::Quantity::Kind::kAvgPower;
        if (load_metric && !(a.at_rate > 0))
          throw UsageError(fmt::format("--at-rate: '{}' depends on the load; give the request rate to compare at", n));
        const auto v = plan::evaluate(cfg, q, a.at_rate, topts, failure);
        if (!v) return std::nullopt;
        values.push_back(*v);
      }
      return values;
    }
    *failure = "no load points stored for this configuration";
    return std::nullopt;
  };

  const auto result = plan::online_search(factors, objectives, a.budget, measure);
  const double total_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  // The table: every measurement in order, then the front.
  std::string header = fmt::format("{:>4}  {:<8}  {:<40}", "step", "chosen", "configuration");
  for (const auto& o : objectives) header += fmt::format("  {:>14}", o.name + (o.maximize ? " (max)" : " (min)"));
  fmt::print("online tuning of {}: measured {} of {} configurations (budget {}) in {:.1f} s\n\n{}\n", a.spec,
             result.steps.size(), candidates.size(), a.budget, total_s, header);
  nlohmann::ordered_json steps = nlohmann::ordered_json::array();
  for (std::size_t i = 0; i < result.steps.size(); ++i) {
    const auto& st = result.steps[i];
    const auto& cand = candidates[st.candidate];
    std::string line = fmt::format("{:>4}  {:<8}  {:<40}", i + 1, st.screening ? "screen" : "model", cand.label);
    nlohmann::ordered_json values = nlohmann::ordered_json::object();
    if (st.measured) {
      for (std::size_t k = 0; k < objectives.size(); ++k) {
        line += fmt::format("  {:>14.4g}", st.values[k]);
        values[objectives[k].name] = st.values[k];
      }
    } else {
      line += "  FAILED: " + st.failure;
    }
    fmt::print("{}{}\n", line, reused[st.candidate] ? "  (already in the database)" : "");
    steps.push_back({{"configuration", cand.label}, {"run_id", cand.run_id}, {"chosen_by", st.screening ? "screening" : "model"},
                     {"predicted_gap", st.predicted_gap}, {"measured", st.measured}, {"values", values},
                     {"failure", st.failure}, {"reused", static_cast<bool>(reused[st.candidate])},
                     {"seconds", seconds[st.candidate]}});
  }
  nlohmann::ordered_json front = nlohmann::ordered_json::array();
  fmt::print("\nPareto front of the measured configurations:\n");
  for (int c : result.front) {
    fmt::print("  {}\n", candidates[c].label);
    front.push_back(candidates[c].label);
  }
  if (!a.output_json.empty()) {
    nlohmann::ordered_json j = {{"tuner", "online"}, {"spec", a.spec}, {"study", full.name}, {"budget", a.budget},
                                {"configurations", candidates.size()}, {"measured", result.steps.size()},
                                {"seconds", total_s}, {"steps", steps}, {"pareto_front", front}};
    std::ofstream out(a.output_json);
    if (!(out << j.dump(2) << "\n")) throw Error("--output-json: cannot write '" + a.output_json + "'");
  }
}

}  // namespace

void add_tune_verb(CLI::App& app) {
  auto a = std::make_shared<TuneSpecArgs>();
  auto* sub = app.add_subcommand("tune", "Online multi-objective search: measure at most N configurations of a spec");
  sub->add_option("spec", a->spec, "the study spec (YAML)")->required();
  sub->add_option("--budget", a->budget, "configurations to measure at most")->required();
  sub->add_option("--objectives", a->objectives, "comma-separated, NAME[:min|:max] (p99_tpot, energy_per_token, perplexity, ...)")
      ->required();
  sub->add_option("--at-rate", a->at_rate, "req/s at which load metrics are compared (needed for load metrics)");
  sub->add_option("--db", a->db, "results database (default results.db); configurations complete in it are reused");
  sub->add_option("--out", a->out, "folder for server logs and the reduced specs (default qmeter-tune-out)");
  sub->add_option("--workload", a->workload, "the workload whose points are compared (default: the only one)");
  sub->add_option("--slo", a->slo, "SLO class for the capacity objective");
  sub->add_option("--attainment", a->attainment, "attainment for the capacity objective (default 0.99)");
  sub->add_option("--output-json", a->output_json, "also write the result as JSON to this file");
  sub->callback([a] { run_tune(*a); });
}

}  // namespace qmeter::cli
