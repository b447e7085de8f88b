// `qmeter tune spec.yaml --budget N --objectives ...`: online multi-objective search over a spec's
// configurations (exec/online_tune.h); this verb parses the flags and prints the result.
#include <fmt/core.h>

#include <fstream>

#include "qmeter/core/error.h"
#include "qmeter/core/text.h"
#include "qmeter/exec/online_tune.h"
#include "verbs.h"

namespace qmeter::cli {

namespace {

struct TuneSpecArgs {
  std::string spec, db = "results.db", out = "qmeter-tune-out", objectives, workload, slo, output_json;
  int budget = 0;
  double at_rate = -1, attainment = 0.99;
};

void run_tune(const TuneSpecArgs& a) {
  exec::OnlineTuneOptions o;
  o.spec_path = a.spec;
  o.db_path = a.db;
  o.out_dir = a.out;
  for (auto& name : split_strings(a.objectives, ','))
    if (!name.empty()) o.objectives.push_back(std::move(name));
  o.budget = a.budget;
  o.at_rate = a.at_rate;
  o.workload = a.workload;
  o.slo = a.slo;
  o.attainment = a.attainment;
  const auto result = exec::online_tune(o);
  fmt::print("{}", exec::online_tune_table(result));
  if (!a.output_json.empty()) {
    std::ofstream out(a.output_json);
    if (!(out << exec::online_tune_json(result))) throw Error("--output-json: cannot write '" + a.output_json + "'");
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
