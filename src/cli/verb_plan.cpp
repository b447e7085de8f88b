// `qmeter plan capacity|schedule|tune`: deployment decisions from a study's stored measurements
// (see qmeter/plan/*.h). Each prints a table on stdout and, with --output-json, writes the same
// result as JSON.
#include <fmt/core.h>

#include <fstream>

#include "flag_names.h"
#include "qmeter/analysis/study_view.h"
#include "qmeter/core/error.h"
#include "qmeter/plan/capacity.h"
#include "qmeter/plan/schedule.h"
#include "qmeter/plan/tune.h"
#include "qmeter/store/store.h"
#include "verbs.h"

namespace qmeter::cli {

namespace {

struct PlanCommon {
  std::string db = "results.db", study, workload, output_json;
  bool include_unsustainable = false;
};

analysis::StudyView open_study(const PlanCommon& c) {
  if (!std::ifstream(c.db)) throw UsageError("--db: no results database at '" + c.db + "'");
  auto db = store::Store::open(c.db);
  analysis::LoadStudyOptions o;
  o.include_unsustainable = c.include_unsustainable;
  return analysis::load_study(*db, c.study, o);
}

void emit(const PlanCommon& c, const std::string& table, const std::string& json) {
  fmt::print("{}", table);
  if (c.output_json.empty()) return;
  std::ofstream out(c.output_json);
  if (!(out << json << "\n")) throw Error("--output-json: cannot write '" + c.output_json + "'");
}

void add_common(CLI::App* sub, PlanCommon& c) {
  sub->add_option("--db", c.db, "results database")->capture_default_str();
  sub->add_option("--study", c.study, "the study (default: the only or latest one)");
  sub->add_option("--workload", c.workload, "only this workload's load points (default: every workload)");
  sub->add_option("--output-json", c.output_json, "also write the result as JSON to this file");
  sub->add_flag("--include-unsustainable", c.include_unsustainable,
                "let client-bound or saturated load points meet SLOs by their percentiles (default: they meet none)");
}

std::vector<plan::QualityFloor> floors(const std::vector<std::string>& texts) {
  std::vector<plan::QualityFloor> out;
  for (const auto& t : texts) out.push_back(plan::parse_quality_floor(t));
  return out;
}

struct CapacityArgs {
  PlanCommon common;
  plan::CapacityOptions options;
  std::vector<std::string> floors;
};

struct ScheduleArgs {
  PlanCommon common;
  plan::ScheduleOptions options;
  std::string trace;
  double slot_minutes = 1, rate_scale = 1;
  std::vector<std::string> floors;
};

struct TuneArgs {
  PlanCommon common;
  plan::TuneOptions options;
  std::string objectives;
};

}  // namespace

void add_plan_verb(CLI::App& app) {
  auto* plan_cmd = app.add_subcommand("plan", "Deployment decisions from a study's measurements: capacity, schedule, tune");
  plan_cmd->require_subcommand(1);

  auto cap = std::make_shared<CapacityArgs>();
  auto* c = plan_cmd->add_subcommand("capacity", "Highest SLO-meeting rate per configuration; instances, cost, energy for a target rate");
  add_common(c, cap->common);
  c->add_option("--target-rate", cap->options.target_rate, "request rate to serve (req/s)")->required();
  c->add_option("--slo", cap->options.slo, "SLO class name (as measured in the study)")->required();
  c->add_option("--attainment", cap->options.attainment, "fraction of requests that must meet the SLO (default 0.99)");
  c->add_option("--gpu-cost-per-hour", cap->options.gpu_cost_per_hour, "price of one GPU per hour (adds a cost column)");
  c->add_option("--quality-floor", cap->floors, "METRIC=VALUE, METRIC>=VALUE or METRIC<=VALUE (repeatable)");
  c->add_option("--quality-metric", cap->options.quality_metric, "quality result shown per row (default: perplexity)");
  c->callback([cap] {
    cap->options.workload = cap->common.workload;
    cap->options.quality_floors = floors(cap->floors);
    const auto p = plan::plan_capacity(open_study(cap->common), cap->options);
    emit(cap->common, plan::capacity_table(p), plan::capacity_json(p));
  });

  auto sch = std::make_shared<ScheduleArgs>();
  auto* s = plan_cmd->add_subcommand("schedule", "Least-energy configuration and instance count per time slot (exact DP)");
  add_common(s, sch->common);
  s->add_option("--trace", sch->trace, "azure:PATH (arrivals binned per slot) or rates:PATH (CSV, one req/s per slot)")
      ->required();
  s->add_option("--slo", sch->options.slo, "SLO class name")->required();
  s->add_option("--attainment", sch->options.attainment, "fraction of requests that must meet the SLO (default 0.99)");
  s->add_option(renamed("--slot-min", {"--slot-minutes"}), sch->slot_minutes, "slot length in minutes (default 1)")
      ->check(CLI::PositiveNumber);
  s->add_option("--rate-scale", sch->rate_scale, "multiply the trace's rates by this (default 1)");
  s->add_option("--switch-cost-s", sch->options.switch_cost_s,
                "seconds a started instance draws power before serving (default 60)");
  s->add_option("--max-instances", sch->options.max_instances,
                "instances per slot at most (default: what each configuration needs at the peak)");
  s->add_option("--quality-floor", sch->floors, "METRIC=VALUE, METRIC>=VALUE or METRIC<=VALUE (repeatable)");
  s->callback([sch] {
    sch->options.workload = sch->common.workload;
    sch->options.quality_floors = floors(sch->floors);
    const auto study = open_study(sch->common);
    const auto trace = plan::load_trace(sch->trace, sch->slot_minutes * 60, sch->rate_scale);
    const auto p = plan::plan_schedule(study, trace, sch->options);
    emit(sch->common, plan::schedule_table(p), plan::schedule_json(p));
  });

  auto tun = std::make_shared<TuneArgs>();
  auto* t = plan_cmd->add_subcommand("tune", "Pareto-optimal configurations over chosen objectives and a recommendation");
  add_common(t, tun->common);
  t->add_option("--objectives", tun->objectives,
                "comma-separated, each optionally NAME:min or NAME:max (p99_tpot, energy_per_token, perplexity, acc, "
                "capacity, ...)")
      ->required();
  t->add_option("--constraint", tun->options.constraints, "NAME<=VALUE or NAME>=VALUE (repeatable)");
  t->add_option("--weights", tun->options.weights, "per objective: 1,2,0.5 or NAME=W,... (default all 1)");
  t->add_option("--at-rate", tun->options.at_rate,
                "req/s at which load metrics are compared (default: the highest rate every configuration measured)");
  t->add_option("--slo", tun->options.slo, "SLO class for the capacity objective");
  t->add_option("--attainment", tun->options.attainment, "attainment for the capacity objective (default 0.99)");
  t->callback([tun] {
    tun->options.workload = tun->common.workload;
    tun->options.objectives.clear();
    std::string item;
    for (char ch : tun->objectives + ",") {
      if (ch != ',') {
        item += ch;
      } else if (!item.empty()) {
        tun->options.objectives.push_back(item);
        item.clear();
      }
    }
    const auto p = plan::plan_tune(open_study(tun->common), tun->options);
    emit(tun->common, plan::tune_table(p), plan::tune_json(p));
  });
}

}  // namespace qmeter::cli
