#include "html_page.h"

#include <fmt/core.h>

#include <cmath>
#include <ctime>
#include <map>
#include <set>

#include "assets.h"
#include "page_assets.h"

namespace qmeter::report::detail {

using json = nlohmann::json;

json run_table(const ReportModel& m) {
  json columns = json::array();
  auto col = [&](const std::string& key, const std::string& label, bool numeric) {
    columns.push_back({{"key", key}, {"label", label}, {"numeric", numeric}});
  };
  struct Column {
    const char* key;
    const char* label;
    bool numeric;
  };
  static const Column kRunColumns[] = {
      {"run_id", "run id", false},   {"model", "model", false},          {"method", "method", false},
      {"tp", "tp", true},            {"hardware", "hardware", false},    {"status", "status", false},
      {"workload", "workload", false}, {"kind", "load kind", false},     {"offered", "offered", true},
      {"achieved", "achieved req/s", true}, {"completed", "completed", true}, {"failed", "failed", true},
      {"token_count_mismatches", "token mismatches", true}, {"request_throughput", "req/s", true},
      {"output_throughput", "output tok/s", true}, {"median_ttft_ms", "p50 TTFT ms", true},
      {"p99_ttft_ms", "p99 TTFT ms", true}, {"median_tpot_ms", "p50 TPOT ms", true},
      {"p99_tpot_ms", "p99 TPOT ms", true}, {"median_e2el_ms", "p50 E2E ms", true},
      {"p99_e2el_ms", "p99 E2E ms", true}};
  for (const auto& c : kRunColumns) col(c.key, c.label, c.numeric);
  for (const auto& slo : m.study.slos) {
    col("attainment:" + slo.name, "attainment " + slo.name, true);
    col("goodput:" + slo.name, "goodput " + slo.name + " req/s", true);
  }
  col("energy_per_token_j", "J/output token", true);
  col("energy_per_request_j", "J/request", true);
  col("avg_power_w", "avg power W", true);
  col("energy_source", "energy source", false);
  col("bits_per_weight", "bits/weight", true);
  for (const auto& k : m.quality_keys) col("quality:" + k, k, true);
  col("method_options", "method and options", false);  // "method" is the short label
  col("error", "error", false);

  json rows = json::array();
  for (const auto& c : m.study.configs) {
    json base = {{"run_id", c.run_id},     {"model", c.model},   {"method", c.method_label},
                 {"method_options", c.method}, {"tp", c.tp},
                 {"hardware", c.hardware}, {"status", c.status}, {"error", c.error},
                 {"bits_per_weight", value_or_null(c.bits_per_weight)}};
    for (const auto& k : m.quality_keys) {
      auto it = c.quality.find(k);
      base["quality:" + k] = it == c.quality.end() ? json(nullptr) : json(it->second.value);
    }
    if (c.points.empty()) rows.push_back(base);
    for (const auto& p : c.points) {
      json row = base;
      row["workload"] = p.workload;
      row["kind"] = p.kind;
      row["offered"] = std::isfinite(p.target) ? json(p.target) : json("inf");
      row["achieved"] = p.achieved;
      for (const char* k : {"completed", "failed", "token_count_mismatches", "request_throughput", "output_throughput",
                            "median_ttft_ms", "p99_ttft_ms", "median_tpot_ms", "p99_tpot_ms", "median_e2el_ms",
                            "p99_e2el_ms"}) {
        const double v = p.metric(k, std::nan(""));
        row[k] = std::isfinite(v) ? json(v) : json(nullptr);
      }
      for (const auto& [cls, v] : p.attainment) row["attainment:" + cls] = v;
      for (const auto& [cls, v] : p.goodput) row["goodput:" + cls] = v;
      row["energy_per_token_j"] = value_or_null(p.energy_per_token_j);
      row["energy_per_request_j"] = value_or_null(p.energy_per_request_j);
      row["avg_power_w"] = value_or_null(p.avg_power_w);
      row["energy_source"] = p.energy_source;
      rows.push_back(std::move(row));
    }
  }
  return {{"columns", columns}, {"rows", rows}};
}

std::vector<std::string> study_notes(const ReportModel& m) {
  std::vector<std::string> notes;
  if (m.study.configs.empty()) {
    notes.push_back("This study has no runs yet: nothing was measured (run it with `qmeter run`).");
    return notes;
  }
  std::size_t points = 0, failed = 0;
  for (const auto& c : m.study.configs) {
    points += c.points.size();
    failed += c.status == "failed";
  }
  if (points == 0) notes.push_back("No load point was measured in this study: the latency, throughput and energy "
                                   "charts are left out.");
  if (failed > 0) notes.push_back(fmt::format("{} of {} runs failed (see the warnings).", failed, m.study.configs.size()));
  return notes;
}

namespace {

// A key/value table of one JSON object (hosts and versions are flat objects of strings and numbers).
std::string kv_table(const std::string& text) {
  json j;
  try {
    j = json::parse(text);
  } catch (const std::exception&) {
    return "<pre>" + html_escape(text) + "</pre>";
  }
  if (!j.is_object()) return "<pre>" + html_escape(dump_json(j)) + "</pre>";
  std::string out = "<table class=\"kv\">";
  for (auto& [k, v] : j.items()) {
    out += "<tr><td>" + html_escape(k) + "</td><td>" + html_escape(v.is_string() ? v.get<std::string>() : dump_json(v)) +
           "</td></tr>";
  }
  return out + "</table>";
}

// Distinct descriptions (host or versions) with the runs that share each.
std::string distinct_descriptions(const ReportModel& m, std::string store::RunRow::*field, const std::string& what) {
  std::map<std::string, std::vector<std::string>> by_text;
  for (const auto& r : m.runs) {
    if (!(r.*field).empty()) by_text[r.*field].push_back(r.id);
  }
  if (by_text.empty()) return "<ul class=\"missing\"><li>No run recorded its " + what + ".</li></ul>";
  std::string out;
  for (const auto& [text, ids] : by_text) {
    std::string list;
    for (const auto& id : ids) list += (list.empty() ? "" : ", ") + id;
    out += "<p>runs " + html_escape(list) + ":</p>" + kv_table(text);
  }
  return out;
}

std::string energy_sources_table(const ReportModel& m) {
  if (m.study.configs.empty()) return "";
  std::string out =
      "<table><thead><tr><th>run id</th><th>configuration</th><th>energy figures (per load point)</th>"
      "<th>telemetry samples</th></tr></thead><tbody>";
  for (const auto& c : m.study.configs) {
    std::set<std::string> sources;
    for (const auto& p : c.points) sources.insert(p.energy_source.empty() ? "none" : p.energy_source);
    std::string src;
    for (const auto& s : sources) src += (src.empty() ? "" : ", ") + (s == "none" ? std::string("none (not measured)") : s);
    std::set<std::string> devices;
    auto it = m.telemetry.find(c.run_id);
    if (it != m.telemetry.end()) {
      for (const auto& t : it->second) devices.insert(t.source + ":" + t.device);
    }
    std::string dev;
    for (const auto& d : devices) dev += (dev.empty() ? "" : ", ") + d;
    out += "<tr><td>" + html_escape(c.run_id) + "</td><td>" + html_escape(c.label()) + "</td><td>" +
           html_escape(src.empty() ? "no load points" : src) + "</td><td>" +
           html_escape(dev.empty() ? "none" : dev) + "</td></tr>";
  }
  return out + "</tbody></table><p>Sources: <b>counter</b> = hardware energy counter (NVML total energy, RAPL), "
               "<b>sampled</b> = integrated power samples, <b>modelled</b> = CPU-utilization power model "
               "(an estimate).</p>";
}

// Where each run executed: the Slurm job, task and node, times and final state (cluster runs).
std::string placements_table(const ReportModel& m) {
  if (m.placements.empty()) return "<p>Every run executed locally, on the hosts above.</p>";
  auto time_of = [](std::int64_t ms) {
    if (ms <= 0) return std::string("-");
    const std::time_t t = static_cast<std::time_t>(ms / 1000);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", std::localtime(&t));
    return std::string(buf);
  };
  std::string out =
      "<table id=\"placements\"><thead><tr><th>run id</th><th>configuration</th><th>executor</th><th>job_task</th>"
      "<th>node</th><th>submitted</th><th>started</th><th>ended</th><th>state</th><th>exit</th><th>attempt</th>"
      "</tr></thead><tbody>";
  for (const auto& p : m.placements) {
    out += "<tr><td>" + html_escape(p.run_id) + "</td><td>" + html_escape(p.label) + "</td><td>" +
           html_escape(p.executor) + "</td><td>" + html_escape(fmt::format("{}_{}", p.job_id, p.task_id)) + "</td><td>" +
           html_escape(p.node) + "</td><td>" + time_of(p.submit_unix_ms) + "</td><td>" + time_of(p.start_unix_ms) +
           "</td><td>" + time_of(p.end_unix_ms) + "</td><td>" + html_escape(p.state) + "</td><td>" +
           html_escape(p.exit_code) + "</td><td>" + std::to_string(p.attempt) + "</td></tr>";
  }
  return out + "</tbody></table>";
}

std::string missing_list(const std::vector<std::string>& lines) {
  if (lines.empty()) return "";
  std::string out = "<ul class=\"missing\">";
  for (const auto& l : lines) out += "<li>" + html_escape(l) + "</li>";
  return out + "</ul>";
}

std::string header_section(const ReportModel& m) {
  std::string h = "<section id=\"study\"><h2>Study</h2>";
  h += missing_list(study_notes(m));
  h += "<details><summary>Spec</summary><pre>" +
       html_escape(m.study.spec.empty() ? "(no spec stored)" : m.study.spec) + "</pre></details>";
  h += "<h3>Hardware</h3>" + distinct_descriptions(m, &store::RunRow::host_json, "host and hardware");
  h += "<h3>Where the runs ran</h3>" + placements_table(m);
  h += "<h3>Software versions</h3>" + distinct_descriptions(m, &store::RunRow::versions_json, "software versions");
  h += "<h3>Energy sources</h3>" + energy_sources_table(m);
  h += "<h3>Warnings</h3>";
  if (m.warnings.empty()) {
    h += "<p>None: no failed run, no failed request, no token-count mismatch, no unstable window.</p>";
  } else {
    h += "<ul class=\"warnings\">";
    for (const auto& w : m.warnings) {
      h += "<li data-kind=\"" + w.kind + "\">" + html_escape(w.text);
      if (!w.detail.empty()) h += "<details><summary>log tail</summary><pre>" + html_escape(w.detail) + "</pre></details>";
      h += "</li>";
    }
    h += "</ul>";
  }
  return h + "</section>";
}

}  // namespace

std::string render_page(const ReportModel& m, const std::vector<Section>& sections) {
  json charts = json::array();
  std::string body;
  std::string nav = "<a href=\"#study\">Study</a>";
  for (const auto& s : sections) {
    nav += "<a href=\"#" + s.id + "\">" + html_escape(s.title) + "</a>";
    body += "<section id=\"" + s.id + "\"><h2>" + html_escape(s.title) + "</h2><p>" + html_escape(s.intro) + "</p>";
    body += missing_list(s.missing);
    body += "<div class=\"charts\">";
    for (const auto& c : s.charts) {
      body += "<div class=\"chart\" id=\"chart-" + c.id + "\" data-title=\"" + html_escape(c.title) + "\"></div>";
      charts.push_back({{"id", c.id}, {"spec", c.spec}});
    }
    body += "</div></section>";
  }
  nav += "<a href=\"#table\">Table</a>";
  json report = {{"study", m.study.name}, {"charts", charts}, {"table", run_table(m)}};

  std::string page;
  page.reserve(m.export_json.size() + 1024 * 1024);
  page += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  page += fmt::format("<meta http-equiv=\"Content-Security-Policy\" content=\"{}\">\n", kContentSecurityPolicy);
  page += "<title>qmeter report: " + html_escape(m.study.name) + "</title>\n";
  page += "<script>" + std::string(kEarlyScript) + "</script>\n";
  page += "<style>" + std::string(kStyle) + "</style>\n</head>\n<body>\n";
  page += "<h1>qmeter report: " + html_escape(m.study.name) + "</h1>\n<nav>" + nav + "</nav>\n";
  page += header_section(m) + "\n" + body + "\n";
  page += "<section id=\"table\"><h2>Every run and load point</h2>"
          "<p>Click a column to sort. <a id=\"csv-download\" href=\"#\" download=\"" +
          html_escape(m.study.name) + ".csv\">Download CSV</a></p>"
          "<div class=\"table-wrap\"><table id=\"runs-table\"></table></div></section>\n";
  page += "<pre id=\"qmeter-selfcheck\" hidden></pre>\n";
  // The store's export, byte for byte but for '<' (written \u003c so no string can end the element).
  page += "<script type=\"application/json\" id=\"qmeter-data\">" + script_safe_json(m.export_json) + "</script>\n";
  page += "<script type=\"application/json\" id=\"qmeter-report\">" + script_safe_json(dump_json(report)) +
          "</script>\n";
  for (const auto& a : embedded_assets()) {
    page += "<script>/* " + std::string(a.name) + " */\n";
    page.append(a.data, a.size);
    page += "\n</script>\n";
  }
  page += "<script>" + std::string(kPageScript) + "</script>\n</body>\n</html>\n";
  return page;
}

}  // namespace qmeter::report::detail
