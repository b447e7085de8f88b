#pragma once
// `qmeter run spec.yaml`: the whole characterization study, unattended and resumable.
// For each RunConfig not yet complete in the store: start the backend, run the quality tasks,
// run every workload's load points (or the SLO-knee search) with telemetry, write each point in
// one transaction, stop the backend, mark the run complete. A failing backend is recorded as a
// failed run with its log tail and the study moves on.
#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "qmeter/spec/study_spec.h"

namespace qmeter::exec {

struct StudyOptions {
  std::string spec_path;
  std::string db_path = "results.db";
  std::string out_dir = "qmeter-out";  // server logs, per-run files, the report
  // The HTML report written at the end: <report_dir>/<db file stem>.html; "" = beside the db.
  std::string report_dir;
  bool write_report = true;
  bool dry_run = false;
  bool progress = true;                 // progress lines on stderr
  bool rerun_failed = true;             // failed runs are tried again on resume
  // One run only (`--only RUN_ID`): what a Slurm task executes on its node, or a single redo.
  std::string only_run;
  // The database is a task's shard: rollback journal instead of WAL (network file systems).
  bool shard = false;
  const std::atomic<bool>* cancel = nullptr;  // SIGINT: stop after the current drain
};

struct StudySummary {
  int total = 0, skipped = 0, completed = 0, failed = 0, cancelled = 0;
  bool detached = false;              // Slurm: tasks left running, to be collected later
  std::vector<std::string> failures;  // "run_id model method: error"
  std::string summary_table;          // per model and method, printed at the end
  std::string report_path;            // the HTML report written, "" when none
  std::string report_error;           // why the report could not be written (the study itself is fine)
};

// What `run` can validate names against (registry names of methods and quality tasks).
spec::KnownNames known_names();

StudySummary run_study(const StudyOptions& options);

// The run with this id, or UsageError listing the spec's run ids.
std::vector<spec::RunConfig> select_run(const std::vector<spec::RunConfig>& runs, const std::string& id,
                                        const std::string& spec_path);

// Seconds one run should take on a small model (startup, load points, quality): the ETA before
// any run has finished.
double estimate_run_seconds(const spec::RunConfig& run);

// The expanded runs with a time estimate, as `qmeter run --dry-run` prints them.
std::string describe_plan(const spec::StudySpec& spec, const std::vector<spec::RunConfig>& runs);

}  // namespace qmeter::exec
