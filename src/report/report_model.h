#pragma once
// What the page shows, gathered once from the store: the study view (analysis), the runs' host and
// version descriptions, the telemetry samples, the warnings, and the fixed colour of each method.
// Chart specs (chart_specs.cpp) and the page (html_page.cpp) only read this.
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "qmeter/analysis/study_view.h"
#include "qmeter/store/store.h"

namespace qmeter::report::detail {

struct Warning {
  std::string kind;    // failed-run | failed-requests | token-mismatch | unstable-window
  std::string run_id;
  std::string text;
  std::string detail;  // e.g. the log tail of a failed run
};

struct TelemetrySample {
  double t_s = 0;  // seconds since the run's first sample
  std::string phase, source, device;
  double power_w = 0;
  std::int64_t load_point_id = -1;  // -1: not tied to a load point (idle baseline)
};

struct ReportModel {
  analysis::StudyView study;
  std::vector<store::RunRow> runs;  // same order as study.configs
  std::vector<store::PlacementRow> placements;  // where runs executed under Slurm (study's runs only)
  std::string export_json;          // Store::export_all_json(), embedded verbatim in the page
  std::vector<std::string> methods; // colour domain, in the order of first appearance
  std::vector<std::string> colours; // colour range, one per method
  std::map<std::string, std::vector<TelemetrySample>> telemetry;  // run id -> samples in time order
  std::vector<std::string> quality_keys;  // "task.metric", sorted
  double knee_attainment = 0.9;
  std::string load_title;           // x-axis title of every load chart
  std::vector<Warning> warnings;
  int infinite_load_points = 0;     // points at an unbounded offered load (not on load axes)

  const analysis::ConfigView* config(const std::string& run_id) const;
};

ReportModel build_model(const store::Store& db, const std::string& study, double knee_attainment);

// Fields every chart row of a load point carries (run id, label, method, offered and achieved load).
nlohmann::json point_fields(const analysis::ConfigView& c, const analysis::PointView& p);
// A measured value or JSON null (the store writes -1 or NaN for "not measured").
nlohmann::json value_or_null(double v);
bool measured(double v);

// JSON text safe inside a <script> element: every '<' is written as \u003c (only strings can hold one).
std::string script_safe_json(const std::string& json_text);
std::string dump_json(const nlohmann::json& j, int indent = -1);
std::string html_escape(const std::string& s);

}  // namespace qmeter::report::detail
