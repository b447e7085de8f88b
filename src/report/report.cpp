#include "qmeter/report/report.h"

#include <filesystem>
#include <fstream>

#include "chart_specs.h"
#include "html_page.h"
#include "qmeter/core/error.h"
#include "report_model.h"

namespace qmeter::report {

namespace fs = std::filesystem;

namespace {

// Writes through a temporary file and a rename, so a reader never sees a half-written page.
void write_file(const fs::path& path, const std::string& text, const std::string& flag) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw UsageError(flag + ": cannot write '" + path.string() + "'");
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    if (!out) throw Error("write failed: '" + tmp.string() + "'");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw Error("cannot rename '" + tmp.string() + "' to '" + path.string() + "': " + ec.message());
}

}  // namespace

ReportSummary write_report(const store::Store& db, const ReportOptions& options) {
  if (options.out_html.empty()) throw UsageError("--out: the report needs an output file");
  const auto model = detail::build_model(db, options.study, options.knee_attainment);
  const auto sections = detail::build_sections(model);

  ReportSummary summary;
  summary.study = model.study.name;
  summary.out_html = options.out_html;
  summary.specs_dir = options.specs_dir.empty() ? options.out_html + ".specs" : options.specs_dir;
  for (const auto& w : model.warnings) summary.warnings.push_back(w.text);
  for (const auto& n : detail::study_notes(model)) summary.missing.push_back(n);

  const fs::path out_dir = fs::path(options.out_html).parent_path();
  std::error_code ec;
  if (!out_dir.empty()) fs::create_directories(out_dir, ec);
  if (!out_dir.empty() && !fs::is_directory(out_dir)) {
    throw UsageError("--out: cannot create the folder of '" + options.out_html + "'");
  }
  fs::create_directories(summary.specs_dir, ec);
  if (!fs::is_directory(summary.specs_dir)) {
    throw UsageError("--specs-dir: cannot create the folder '" + summary.specs_dir + "'");
  }
  // Specs of an earlier report of another study would mislead a reader of the folder.
  for (const auto& entry : fs::directory_iterator(summary.specs_dir)) {
    const auto name = entry.path().filename().string();
    if (name.size() > 8 && name.compare(name.size() - 8, 8, ".vl.json") == 0) fs::remove(entry.path(), ec);
  }
  for (const auto& s : sections) {
    for (const auto& m : s.missing) summary.missing.push_back(m);
    for (const auto& c : s.charts) {
      write_file(fs::path(summary.specs_dir) / (c.id + ".vl.json"), detail::dump_json(c.spec, 2) + "\n", "--specs-dir");
      summary.charts.push_back(c.id);
    }
  }
  write_file(options.out_html, detail::render_page(model, sections), "--out");
  return summary;
}

ReportSummary write_report(const store::Store& db, const std::string& study, const std::string& out_html,
                           const std::string& specs_dir) {
  ReportOptions o;
  o.study = study;
  o.out_html = out_html;
  o.specs_dir = specs_dir;
  return write_report(db, o);
}

}  // namespace qmeter::report
