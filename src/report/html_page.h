#pragma once
// The HTML page: a small template filled with the header (spec, hosts, versions, energy sources,
// warnings), one container per chart, the table, the embedded data and the inlined libraries.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "chart_specs.h"
#include "report_model.h"

namespace qmeter::report::detail {

// {"columns": [{key, label, numeric}], "rows": [{key: value}]}: every run and load point.
nlohmann::json run_table(const ReportModel& m);

// Study-level notes shown at the top when something is missing (no runs, no load points, ...).
std::vector<std::string> study_notes(const ReportModel& m);

std::string render_page(const ReportModel& m, const std::vector<Section>& sections);

}  // namespace qmeter::report::detail
