// `qmeter report`: the self-contained HTML report of a study (see qmeter/report/report.h).
#include <fmt/core.h>

#include <fstream>

#include "flag_names.h"
#include "qmeter/core/error.h"
#include "qmeter/report/report.h"
#include "qmeter/store/store.h"
#include "verbs.h"

namespace qmeter::cli {

namespace {

struct ReportArgs {
  std::string db = "results.db", study, out, specs_dir;
  double knee_attainment = -1;
};

void run_report(const ReportArgs& a) {
  if (!std::ifstream(a.db)) throw UsageError("--db: no results database at '" + a.db + "'");
  auto db = store::Store::open(a.db);
  report::ReportOptions o;
  o.study = a.study;
  o.out_html = a.out;
  o.specs_dir = a.specs_dir;
  o.knee_attainment = a.knee_attainment;
  const auto s = report::write_report(*db, o);
  fmt::print("report of study '{}': {} ({} charts; specs in {})\n", s.study, s.out_html, s.charts.size(), s.specs_dir);
  for (const auto& w : s.warnings) fmt::print("  warning: {}\n", w);
  for (const auto& m : s.missing) fmt::print("  missing: {}\n", m);
}

}  // namespace

void add_report_verb(CLI::App& app) {
  auto args = std::make_shared<ReportArgs>();
  auto* sub = app.add_subcommand("report", "Write a self-contained interactive HTML report of a study");
  sub->add_option("--db", args->db, "results database")->capture_default_str();
  sub->add_option("--study", args->study, "the study (default: the only or latest one)");
  sub->add_option(renamed("--output-html", {"--out"}), args->out, "the HTML page to write")->required();
  sub->add_option("--specs-dir", args->specs_dir, "where each chart's Vega-Lite spec goes (default: <output-html>.specs)");
  sub->add_option("--knee-attainment", args->knee_attainment,
                  "SLO attainment the knee must meet, in (0, 1] (default: the spec's search attainment, else 0.9)")
      ->check(CLI::Range(0.000001, 1.0));
  sub->callback([args] { run_report(*args); });
}

}  // namespace qmeter::cli
