// `qmeter export` and `qmeter ls`: read-only views of a results database.
#include <fmt/core.h>

#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "qmeter/analysis/study_view.h"
#include "flag_names.h"
#include "qmeter/core/error.h"
#include "qmeter/store/store.h"
#include "verbs.h"

namespace qmeter::cli {

namespace {

struct ExportArgs {
  std::string db = "results.db", format = "csv", table, out;
};

struct LsArgs {
  std::string db = "results.db", study, output_json;
};

std::unique_ptr<store::Store> open_existing(const std::string& path) {
  if (!std::ifstream(path)) throw UsageError("--db: no results database at '" + path + "'");
  return store::Store::open(path);
}

void run_export(const ExportArgs& a) {
  auto db = open_existing(a.db);
  std::ofstream file;
  std::ostream* out = &std::cout;
  if (!a.out.empty()) {
    file.open(a.out);
    if (!file) throw UsageError("--output-file: cannot write '" + a.out + "'");
    out = &file;
  }
  if (!a.table.empty()) {
    db->export_table(a.table, a.format, *out);
  } else if (a.format == "json") {
    *out << db->export_all_json() << "\n";
  } else {
    throw UsageError("--table is required with --format csv (one table per CSV)");
  }
}

// Headline figures come from sustainable points only; "points" says "5(2!)" when 2 of 5 were
// client-bound or not sustainable (see `qmeter report` for why).
void run_ls(const LsArgs& a) {
  auto db = open_existing(a.db);
  nlohmann::json runs = nlohmann::json::array();
  fmt::print("{:<17} {:<14} {:<28} {:<9} {:<12} {:>7} {:>10} {:>10} {:>10} {:>10}  {}\n", "id", "model", "method",
             "status", "where", "points", "max_tput", "p99_ttft", "p99_tpot", "J/token", "quality");
  for (const auto& r : db->runs(a.study)) {
    auto points = db->load_points(r.id);
    double best_tput = 0, p99_ttft = 0, p99_tpot = 0, jpt = -1;
    int unreliable = 0;
    for (const auto& p : points) {
      // A point the client limited or the server could not sustain is no headline figure.
      if (!analysis::point_sustainable(p)) {
        ++unreliable;
        continue;
      }
      if (p.output_throughput >= best_tput) {
        best_tput = p.output_throughput;
        p99_ttft = p.p99_ttft_ms;
        p99_tpot = p.p99_tpot_ms;
        jpt = p.energy_per_token_j;
      }
    }
    std::string quality;
    nlohmann::json q = nlohmann::json::object();
    for (const auto& qr : db->quality_results(r.id)) {
      quality += fmt::format("{}{}={:.4g}", quality.empty() ? "" : " ", qr.metric, qr.value);
      q[qr.task + "." + qr.metric] = qr.value;
    }
    nlohmann::json quality_errors = nlohmann::json::array();
    for (const auto& qe : db->quality_errors(r.id)) {
      quality += fmt::format("{}{} {}", quality.empty() ? "" : " ", qe.task.substr(0, qe.task.find(':')),
                             qe.status == "failed" ? "FAILED" : qe.status == "unsupported" ? "UNSUPPORTED" : qe.status);
      quality_errors.push_back({{"task", qe.task}, {"status", qe.status}, {"error", qe.error}});
    }
    // Where the run executed: the Slurm node (job_task) for a cluster run, "local" otherwise.
    const auto placed = db->placement(r.id);
    const std::string where = placed ? (placed->node.empty() ? "-" : placed->node) : "local";
    const std::string npoints = unreliable ? fmt::format("{}({}!)", points.size(), unreliable) : std::to_string(points.size());
    fmt::print("{:<17} {:<14} {:<28} {:<9} {:<12} {:>7} {:>10.1f} {:>10.1f} {:>10.2f} {:>10.4g}  {}\n", r.id, r.model,
               r.method, store::run_status_name(r.status), where, npoints, best_tput, p99_ttft, p99_tpot, jpt,
               quality);
    runs.push_back({{"id", r.id},
                    {"study", r.study},
                    {"model", r.model},
                    {"method", r.method},
                    {"status", store::run_status_name(r.status)},
                    {"load_points", points.size()},
                    {"unsustainable_points", unreliable},
                    {"max_output_throughput", best_tput},
                    {"p99_ttft_ms", p99_ttft},
                    {"p99_tpot_ms", p99_tpot},
                    {"energy_per_token_j", jpt},
                    {"quality", q},
                    {"quality_errors", quality_errors},
                    {"where", where},
                    {"slurm", placed ? nlohmann::json{{"job_id", placed->job_id},
                                                      {"task_id", placed->task_id},
                                                      {"node", placed->node},
                                                      {"state", placed->state},
                                                      {"exit_code", placed->exit_code},
                                                      {"submit_unix_ms", placed->submit_unix_ms},
                                                      {"start_unix_ms", placed->start_unix_ms},
                                                      {"end_unix_ms", placed->end_unix_ms}}
                                     : nlohmann::json(nullptr)},
                    {"error", r.error}});
  }
  if (!a.output_json.empty()) {
    std::ofstream f(a.output_json);
    if (!f) throw UsageError("--output-json: cannot write '" + a.output_json + "'");
    f << nlohmann::json{{"runs", runs}}.dump(2) << "\n";
  }
}

}  // namespace

void add_export_verb(CLI::App& app) {
  auto args = std::make_shared<ExportArgs>();
  auto* sub = app.add_subcommand("export", "Export tables of a results database as CSV or JSON");
  sub->add_option("--db", args->db, "results database")->capture_default_str();
  sub->add_option("--format", args->format, "csv or json")->check(CLI::IsMember({"csv", "json"}));
  sub->add_option("--table", args->table, "one table (default with json: every table)");
  sub->add_option(renamed("--output-file", {"--out"}), args->out, "output file (default stdout)");
  sub->callback([args] { run_export(*args); });
}

void add_ls_verb(CLI::App& app) {
  auto args = std::make_shared<LsArgs>();
  auto* sub = app.add_subcommand("ls", "List the runs of a results database with headline figures");
  sub->add_option("--db", args->db, "results database")->capture_default_str();
  sub->add_option("--study", args->study, "only this study");
  sub->add_option("--output-json", args->output_json, "also write the list as JSON");
  sub->callback([args] { run_ls(*args); });
}

}  // namespace qmeter::cli
