// `qmeter run spec.yaml`: the automated characterization study.
#include <fmt/core.h>

#include <atomic>
#include <csignal>

#include "qmeter/core/error.h"
#include "qmeter/exec/study_runner.h"
#include "verbs.h"

namespace qmeter::cli {

namespace {

std::atomic<bool> g_run_cancel{false};
extern "C" void on_sigint_run(int) {
  // First Ctrl-C: stop after the current drain; a second one kills at once (the store is safe).
  if (g_run_cancel.exchange(true)) std::_Exit(130);
}

}  // namespace

void add_run_verb(CLI::App& app) {
  auto o = std::make_shared<exec::StudyOptions>();
  auto* sub = app.add_subcommand("run", "Run a whole characterization study from a YAML spec (resumable)");
  sub->add_option("spec", o->spec_path, "the study spec (YAML)")->required();
  sub->add_option("--db", o->db_path, "results database (SQLite); completed runs in it are skipped");
  sub->add_option("--out", o->out_dir, "folder for server logs and run files");
  sub->add_option("--report-dir", o->report_dir, "folder for the HTML report (default: beside the database)");
  sub->add_flag("!--no-report", o->write_report, "write no HTML report at the end");
  sub->add_flag("--dry-run", o->dry_run, "print the expanded runs and a time estimate, run nothing");
  sub->add_flag("!--no-progress", o->progress, "no progress lines on stderr");
  sub->callback([o] {
    o->cancel = &g_run_cancel;
    auto old = std::signal(SIGINT, on_sigint_run);
    auto s = exec::run_study(*o);
    std::signal(SIGINT, old);
    if (o->dry_run) return;
    fmt::print("{}", s.summary_table);
    fmt::print("\nstudy: {} run(s): {} completed, {} skipped (already done), {} failed{}\n", s.total, s.completed,
               s.skipped, s.failed, s.cancelled ? fmt::format(", {} interrupted", s.cancelled) : "");
    for (const auto& f : s.failures) fmt::print("  FAILED {}\n", f);
    if (!s.report_path.empty()) fmt::print("report: {}\n", s.report_path);
    if (!s.report_error.empty()) fmt::print(stderr, "warning: no report written: {}\n", s.report_error);
    if (g_run_cancel.load()) {
      fmt::print(stderr, "interrupted: completed runs are stored; run the same command again to resume\n");
      verb_exit_code() = 130;
    } else if (s.failed > 0) {
      verb_exit_code() = 3;  // the study finished, but some runs failed
    }
  });
}

}  // namespace qmeter::cli
