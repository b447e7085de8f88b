// `qmeter run spec.yaml`: the automated characterization study.
#include <fmt/core.h>

#include <atomic>
#include <csignal>

#include "qmeter/core/error.h"
#include "qmeter/exec/slurm_executor.h"
#include "flag_names.h"
#include "qmeter/exec/study_runner.h"
#include "verbs.h"

namespace qmeter::cli {

namespace {

std::atomic<bool> g_run_cancel{false};
std::atomic<int> g_run_signal{0};
extern "C" void on_stop_signal_run(int sig) {
  // First SIGINT/SIGTERM: stop after the current drain (the point is marked interrupted, the
  // server stopped); a second one exits at once (the store is safe: every write is a transaction).
  g_run_signal.store(sig);
  if (g_run_cancel.exchange(true)) std::_Exit(128 + sig);
}

}  // namespace

void add_run_verb(CLI::App& app) {
  auto o = std::make_shared<exec::StudyOptions>();
  auto so = std::make_shared<exec::SlurmOptions>();
  auto executor = std::make_shared<std::string>("local");
  auto* sub = app.add_subcommand("run", "Run a whole characterization study from a YAML spec (resumable)");
  sub->add_option("spec", o->spec_path, "the study spec (YAML)")->required();
  sub->add_option("--db", o->db_path, "results database (SQLite); completed runs in it are skipped")->capture_default_str();
  sub->add_option("--out", o->out_dir, "folder for server logs and run files")->capture_default_str();
  sub->add_option("--report-dir", o->report_dir, "folder for the HTML report (default: beside the database)");
  sub->add_flag("!--no-report", o->write_report, "write no HTML report at the end");
  sub->add_flag("--dry-run", o->dry_run, "print the expanded runs and a time estimate, run nothing");
  sub->add_flag(renamed("!--quiet", {"!--no-progress"}), o->progress, "no progress lines on stderr");
  sub->add_option("--only", o->only_run, "run only the run with this id (see --dry-run)");
  sub->add_option("--executor", *executor, "local (one run after another here) or slurm (one array task per run)")
      ->check(CLI::IsMember({"local", "slurm"}));
  auto* g = sub->add_option_group("Slurm", "with --executor slurm (override the spec's executor.slurm section)");
  std::vector<CLI::Option*> slurm_only = {
      g->add_option("--partition", so->partition, "Slurm partition of the tasks"),
      g->add_option("--account", so->account, "Slurm account"),
      g->add_option("--time", so->time_limit, "time limit per task (Slurm format, e.g. 02:00:00)"),
      g->add_option("--mem", so->mem, "memory per task (Slurm format, e.g. 64G)"),
      g->add_option("--max-parallel", so->max_parallel, "tasks running at once at most (the array's %N)")
          ->check(CLI::NonNegativeNumber),
      g->add_option("--sbatch-arg", so->sbatch_args, "an extra sbatch argument, repeatable: --sbatch-arg=--qos=high"),
      g->add_flag("--detach", so->detach, "submit, print the job id and return"),
      g->add_flag("--retry-failed", so->retry_failed, "resubmit runs that failed"),
      g->add_flag("--requeue", so->requeue, "let Slurm requeue a task whose node failed"),
      g->add_flag("--cancel-on-interrupt", so->cancel_on_interrupt, "Ctrl-C cancels the live tasks without asking"),
      g->add_option(renamed("--poll-interval-s", {"--poll-interval"}), so->poll_interval_s, "seconds between questions to Slurm")
          ->check(CLI::PositiveNumber),
  };
  sub->callback([o, so, executor, slurm_only] {
    if (*executor != "slurm") {
      for (const auto* opt : slurm_only) {
        if (opt->count() > 0) throw UsageError(opt->get_name() + " needs --executor slurm");
      }
    }
    o->cancel = &g_run_cancel;
    auto old_int = std::signal(SIGINT, on_stop_signal_run);
    auto old_term = std::signal(SIGTERM, on_stop_signal_run);
    auto s = *executor == "slurm" ? exec::run_study_on_slurm(*o, *so) : exec::run_study(*o);
    std::signal(SIGINT, old_int);
    std::signal(SIGTERM, old_term);
    if (o->dry_run || s.detached && *executor == "slurm" && so->detach) return;
    fmt::print("{}", s.summary_table);
    fmt::print("\nstudy: {} run(s): {} completed, {} skipped (already done), {} failed{}\n", s.total, s.completed,
               s.skipped, s.failed, s.cancelled ? fmt::format(", {} interrupted", s.cancelled) : "");
    for (const auto& f : s.failures) fmt::print("  FAILED {}\n", f);
    if (!s.report_path.empty()) fmt::print("report: {}\n", s.report_path);
    if (!s.report_error.empty()) fmt::print(stderr, "warning: no report written: {}\n", s.report_error);
    if (s.detached) {
      fmt::print(stderr, "interrupted: the Slurm tasks keep running; `qmeter slurm collect --db {}` merges them\n", o->db_path);
      verb_exit_code() = 128 + (g_run_signal.load() ? g_run_signal.load() : SIGINT);
    } else if (g_run_cancel.load()) {
      fmt::print(stderr, "interrupted: completed runs are stored; run the same command again to resume\n");
      verb_exit_code() = 128 + (g_run_signal.load() ? g_run_signal.load() : SIGINT);
    } else if (s.failed > 0) {
      verb_exit_code() = 3;  // the study finished, but some runs failed
    }
  });
}

}  // namespace qmeter::cli
