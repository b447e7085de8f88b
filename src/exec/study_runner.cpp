#include "qmeter/exec/study_runner.h"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "qmeter/backend/backend.h"
#include "qmeter/core/clock.h"
#include "qmeter/core/error.h"
#include "qmeter/core/process.h"
#include "qmeter/loadgen/loadgen.h"
#include "qmeter/quant/method_options.h"
#include "qmeter/report/report.h"
#include "qmeter/store/store.h"
#include "qmeter/workload/schedule.h"
#include "embedded_backend.h"
#include "record_rows.h"
#include "run_phases.h"

namespace qmeter::exec {

namespace {

// Seconds one load point should take: the arrival span plus a drain allowance.
double estimate_point_s(const spec::WorkloadSpec& w, const spec::LoadPoint& p) {
  const double per_request_s = 0.02 * w.output_len + 0.2;  // a pessimistic small-model guess
  if (p.kind == "rate" && std::isfinite(p.value)) return w.num_prompts / p.value + per_request_s * 2;
  const double parallel = p.kind == "concurrency" ? p.value : 16;
  return w.num_prompts * per_request_s / std::max(1.0, parallel) + per_request_s;
}

void progress(const StudyOptions& o, const std::string& line) {
  if (o.progress) fmt::print(stderr, "{}\n", line);
}

}  // namespace

// The report of the study, beside the database unless a folder is given. A report that cannot be
// written is reported, not fatal: every measurement is already in the store (`qmeter report`
// can write it later).
void write_study_report(const store::Store& db, const std::string& study, const StudyOptions& o, StudySummary& s) {
  const std::filesystem::path db_path(o.db_path);
  const std::filesystem::path dir = o.report_dir.empty() ? db_path.parent_path() : std::filesystem::path(o.report_dir);
  const std::string html = (dir / (db_path.stem().string() + ".html")).string();
  try {
    if (!dir.empty()) std::filesystem::create_directories(dir);
    s.report_path = report::write_report(db, study, html).out_html;
  } catch (const std::exception& e) {
    s.report_error = e.what();
  }
}

namespace {

// Seconds one run should take (startup, load points, quality), and its number of load points.
double estimate_run_s(const spec::RunConfig& r, int* points_out = nullptr) {
  double run_s = 5;  // startup
  int points = 0;
  for (const auto& w : r.workloads) {
    for (const auto& p : w.points) {
      run_s += estimate_point_s(w, p);
      ++points;
    }
    if (w.search_enabled) {
      points += w.search.iterations;
      run_s += w.search.iterations * estimate_point_s(w, {"rate", std::sqrt(w.search.lo * w.search.hi)});
    }
  }
  run_s += 20.0 * static_cast<double>(r.quality.size());
  if (r.energy.source != "none") run_s += r.energy.idle_s;
  if (points_out) *points_out = points;
  return run_s;
}

}  // namespace

double estimate_run_seconds(const spec::RunConfig& run) { return estimate_run_s(run); }

std::vector<spec::RunConfig> select_run(const std::vector<spec::RunConfig>& runs, const std::string& id,
                                        const std::string& spec_path) {
  for (const auto& r : runs) {
    if (r.id == id) return {r};
  }
  std::string ids;
  for (const auto& r : runs) ids += (ids.empty() ? "" : ", ") + r.id;
  throw UsageError("--only: no run " + id + " in " + spec_path + " (its runs: " + ids +
                   "); a spec whose ${VARIABLES} expand differently gives other run ids");
}

std::string describe_plan(const spec::StudySpec& spec, const std::vector<spec::RunConfig>& runs) {
  std::string out = fmt::format("study '{}': {} run(s)\n", spec.name, runs.size());
  double total_s = 0;
  for (const auto& r : runs) {
    int points = 0;
    const double run_s = estimate_run_s(r, &points);
    total_s += run_s;
    out += fmt::format("  {}  model={} method={} tp={} hw={} repeat={}  points={} quality={}  ~{:.0f} s\n", r.id,
                       r.model.name, r.method.label(), r.tp, r.hardware.label(), r.repeat, points, r.quality.size(), run_s);
    // The exact server command (its port is picked when the run starts), to check before GPUs are spent.
    if (r.backend.kind == "command") {
      out += "      $ " + backend::shell_line(backend::command_line(r.backend, backend::run_context(r), "{port}")) + "\n";
    }
  }
  out += fmt::format("estimated time: ~{:.1f} min (estimate for a small model on the embedded engine)\n", total_s / 60);
  return out;
}

StudySummary run_study(const StudyOptions& o) {
  register_embedded_backend();
  const auto spec = spec::parse_study_spec_file(o.spec_path, known_names());
  auto runs = spec::expand_runs(spec);
  if (!o.only_run.empty()) {
    runs = select_run(runs, o.only_run, o.spec_path);
  } else if (!o.dry_run && std::any_of(runs.begin(), runs.end(), [](const spec::RunConfig& r) { return !r.hardware.partition.empty(); })) {
    throw UsageError(o.spec_path + ": hardware.partition makes Slurm partitions a study factor; run it with --executor slurm");
  }
  StudySummary summary;
  summary.total = static_cast<int>(runs.size());
  if (o.dry_run) {
    fmt::print("{}", describe_plan(spec, runs));
    return summary;
  }
  std::filesystem::create_directories(o.out_dir);
  auto db = store::Store::open(o.db_path, o.shard ? store::JournalMode::kRollback : store::JournalMode::kWal);
  db->put_study(spec.name, spec.text);
  // A study killed with SIGKILL may have left a server behind (one that ignores or is slow on
  // its parent-death signal): stop it before anything is measured beside it.
  for (const auto& run : runs) {
    if (stop_recorded_process_group(server_process_record(o.out_dir, run.id))) {
      progress(o, fmt::format("stopped a server that an earlier, killed study left running for run {}", run.id));
    }
  }

  const Nanos study_start = steady_now_ns();
  int done = 0;
  for (const auto& run : runs) {
    if (o.cancel && o.cancel->load()) break;
    ++done;
    const auto status = db->run_status(run.id);
    if (status == store::RunStatus::kComplete || (status == store::RunStatus::kFailed && !o.rerun_failed)) {
      ++summary.skipped;
      progress(o, fmt::format("[{}/{}] {} {} {}: already {} in {}, skipped", done, runs.size(), run.id, run.model.name,
                              run.method.label(), store::run_status_name(*status), o.db_path));
      continue;
    }
    const double elapsed = ns_to_s(steady_now_ns() - study_start);
    const int measured = done - 1 - summary.skipped;
    // ETA: the pace of the runs measured so far; before the first, the plan's estimate.
    std::string eta;
    if (measured > 0) {
      eta = fmt::format(", ETA {:.0f} s", elapsed / measured * static_cast<double>(runs.size() - done + 1));
    } else {
      double left_s = 0;
      for (std::size_t i = static_cast<std::size_t>(done - 1); i < runs.size(); ++i) left_s += estimate_run_s(runs[i]);
      eta = fmt::format(", ETA ~{:.0f} s (estimate)", left_s);
    }
    progress(o, fmt::format("[{}/{}] {} model={} method={} tp={}{}", done, runs.size(), run.id, run.model.name,
                            run.method.label(), run.tp, eta));

    store::RunRow row;
    row.id = run.id;
    row.study = run.study;
    row.model = run.model.name;
    row.method = run.method.label();
    row.config_json = run.normalized_json;
    row.properties_json = quant::configuration_properties(run.method.name, run.method.options).to_json();
    row.host_json = host_json();
    row.versions_json = versions_json();
    db->begin_run(row);

    RunOutcome outcome = execute_run(run, *db, o);
    switch (outcome.status) {
      case store::RunStatus::kComplete:
        db->finish_run(run.id, store::RunStatus::kComplete);
        ++summary.completed;
        break;
      case store::RunStatus::kFailed:
        db->finish_run(run.id, store::RunStatus::kFailed, outcome.error, outcome.log_tail);
        ++summary.failed;
        summary.failures.push_back(fmt::format("{} {} {}: {}", run.id, run.model.name, run.method.label(), outcome.error));
        progress(o, fmt::format("  run {} FAILED: {}", run.id, outcome.error));
        break;
      case store::RunStatus::kInterrupted:
        // Marked, so `qmeter ls` tells it from a crash; a resume measures it again (not skipped).
        db->finish_run(run.id, store::RunStatus::kInterrupted, outcome.error);
        ++summary.cancelled;
        progress(o, fmt::format("  run {} {}", run.id, outcome.error));
        break;
      default:
        ++summary.cancelled;
        break;
    }
  }
  summary.summary_table = summary_table(*db, spec.name);
  if (o.write_report && !(o.cancel && o.cancel->load())) write_study_report(*db, spec.name, o, summary);
  return summary;
}

}  // namespace qmeter::exec
