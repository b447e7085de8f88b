#pragma once
// The phases of one run (private to exec): backend lifecycle, quality, load points, search.
#include <string>

#include "qmeter/exec/study_runner.h"
#include "qmeter/spec/study_spec.h"
#include "qmeter/store/store.h"

namespace qmeter::exec {

struct RunOutcome {
  store::RunStatus status = store::RunStatus::kComplete;  // kRunning = cancelled
  std::string error;
  std::string log_tail;
};

RunOutcome execute_run(const spec::RunConfig& run, store::Store& db, const StudyOptions& options);
std::string summary_table(const store::Store& db, const std::string& study);
// The study's HTML report (beside the database unless options.report_dir), recorded in summary.
void write_study_report(const store::Store& db, const std::string& study, const StudyOptions& options,
                        StudySummary& summary);

}  // namespace qmeter::exec
