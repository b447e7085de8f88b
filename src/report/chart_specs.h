#pragma once
// One function per chart: each turns the report model into a self-contained Vega-Lite spec (data
// inlined, fixed method colours, tooltips with the exact values and the run id), or says what is
// missing when the study has nothing to draw.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "report_model.h"

namespace qmeter::report::detail {

struct Chart {
  std::string id;     // file name stem of the spec and the page's container id (chart-<id>)
  std::string title;
  nlohmann::json spec;
};

struct Section {
  std::string id, title, intro;
  std::vector<Chart> charts;
  std::vector<std::string> missing;  // shown instead of the charts that cannot be drawn
};

std::vector<Section> build_sections(const ReportModel& m);

// The load to show first in the Pareto chart: the highest load that every config measured (with
// energy and p99 TPOT), else the highest load any config measured. -1 when nothing is measured.
double default_pareto_load(const ReportModel& m);

}  // namespace qmeter::report::detail
