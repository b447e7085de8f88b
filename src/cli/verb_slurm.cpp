// `qmeter slurm status|collect|cancel|task`: a study that runs on a Slurm cluster.
#include <fmt/core.h>

#include <atomic>
#include <csignal>
#include <fstream>

#include "qmeter/core/error.h"
#include "qmeter/exec/slurm_executor.h"
#include "verbs.h"

namespace qmeter::cli {

namespace {

struct SlurmArgs {
  std::string db = "results.db", run, spec, runs_file, results;
  bool json = false;
};

std::atomic<bool> g_task_cancel{false};
extern "C" void on_term_task(int) { g_task_cancel.store(true); }

// --db defaults to results.db (as for `qmeter run`), so a missing file is named, not created.
const std::string& existing_db(const SlurmArgs& a) {
  if (!std::ifstream(a.db)) throw UsageError("--db: no results database at '" + a.db + "'");
  return a.db;
}

}  // namespace

void add_slurm_verb(CLI::App& app) {
  auto a = std::make_shared<SlurmArgs>();
  auto* sub = app.add_subcommand("slurm", "Follow, merge and cancel a study submitted with `qmeter run --executor slurm`");
  sub->require_subcommand(1);

  auto* status = sub->add_subcommand("status", "Per run: pending / running (node, elapsed) / complete / failed (Slurm state, exit code, reason)");
  status->add_option("--db", a->db, "the study database")->capture_default_str();
  status->callback([a] { fmt::print("{}", exec::format_slurm_status(exec::slurm_status(existing_db(*a)))); });

  auto* collect = sub->add_subcommand("collect", "Merge every finished task's shard into the study database");
  collect->add_option("--db", a->db, "the study database")->capture_default_str();
  collect->callback([a] {
    auto s = exec::slurm_collect(existing_db(*a));
    for (const auto& line : s.lines) fmt::print("{}\n", line);
    fmt::print("collected: {} complete, {} failed, {} still pending or running\n", s.merged, s.failed, s.live);
    if (s.failed > 0) verb_exit_code() = 3;
  });

  auto* cancel = sub->add_subcommand("cancel", "scancel the study's live tasks (or one run's)");
  cancel->add_option("--db", a->db, "the study database")->capture_default_str();
  cancel->add_option("--run", a->run, "only this run's task");
  cancel->callback([a] {
    const int n = exec::slurm_cancel(existing_db(*a), a->run);
    fmt::print("cancelled {} task(s); `qmeter slurm collect --db {}` records them\n", n, a->db);
  });

  // What each array task executes on its node (written into the job script by `qmeter run`).
  auto* task = sub->add_subcommand("task", "(internal) run one array task's run into its shard");
  task->add_option("--spec", a->spec, "the frozen study spec")->required();
  task->add_option("--runs-file", a->runs_file, "run ids, one per array index")->required();
  task->add_option("--results", a->results, "the study's Slurm results folder")->required();
  task->callback([a] {
    // Slurm ends a cancelled or timed-out task with SIGTERM before SIGKILL: stop after the drain.
    std::signal(SIGTERM, on_term_task);
    verb_exit_code() = exec::run_slurm_task(a->spec, a->runs_file, a->results, &g_task_cancel);
  });
}

}  // namespace qmeter::cli
