#pragma once
// The phases of one run (private to exec): backend lifecycle, quality, load points, search.
#include <string>

#include "qmeter/exec/study_runner.h"
#include "qmeter/spec/study_spec.h"
#include "qmeter/store/store.h"

namespace qmeter::exec {

struct RunOutcome {
  store::RunStatus status = store::RunStatus::kComplete;
  std::string error;
  std::string log_tail;
};

// Where a run's server process group is remembered while it runs (see backend::RunContext).
std::string server_process_record(const std::string& out_dir, const std::string& run_id);

RunOutcome execute_run(const spec::RunConfig& run, store::Store& db, const StudyOptions& options);
std::string summary_table(const store::Store& db, const std::string& study);
// The study's HTML report (beside the database unless options.report_dir), recorded in summary.
void write_study_report(const store::Store& db, const std::string& study, const StudyOptions& options,
                        StudySummary& summary);

}  // namespace qmeter::exec
