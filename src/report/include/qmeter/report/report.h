#pragma once
// `qmeter report`: one self-contained HTML page for a study (charts with Vega-Lite inlined at build
// time, the database's JSON export embedded), plus every chart's Vega-Lite spec as a JSON file.
#include <string>
#include <vector>

#include "qmeter/store/store.h"

namespace qmeter::report {

struct ReportOptions {
  std::string study;       // empty: the only / latest study (as analysis::load_study)
  std::string out_html;    // the page to write
  std::string specs_dir;   // empty: "<out_html>.specs" beside the page
  double knee_attainment = -1;  // SLO attainment the knee must meet; <= 0: the spec's search attainment, else 0.9
};

struct ReportSummary {
  std::string study;
  std::string out_html;
  std::string specs_dir;
  std::vector<std::string> charts;   // ids of the charts written (one <id>.vl.json each)
  std::vector<std::string> missing;  // what the page says is missing, one line each
  std::vector<std::string> warnings; // the study header's warnings
};

// Writes the page and the specs. Throws UsageError (unknown study, unwritable path) or Error.
ReportSummary write_report(const store::Store& db, const ReportOptions& options);

// Convenience for the study runner: the report of `study` at out_html (specs beside it).
ReportSummary write_report(const store::Store& db, const std::string& study, const std::string& out_html,
                           const std::string& specs_dir = "");

}  // namespace qmeter::report
