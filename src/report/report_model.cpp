#include "report_model.h"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <set>

namespace qmeter::report::detail {

namespace {

// Tableau 20 reordered so the first ten are Vega's default category10-like tableau10.
const std::vector<std::string> kPalette = {
    "#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac",
    "#9ecae9", "#ffbf79", "#ff9d98", "#88d27a", "#83bcb6", "#b79a20", "#f2cf5b", "#d6a5c9", "#fcbfd2", "#d8b5a5"};

// Bounded offered loads for the load axes; an unbounded rate ("inf") has no place on them.
bool finite_load(const analysis::PointView& p) { return std::isfinite(p.target); }

double search_attainment(const std::vector<store::RunRow>& runs) {
  for (const auto& r : runs) {
    try {
      auto cfg = nlohmann::json::parse(r.config_json);
      for (const auto& w : cfg.value("workloads", nlohmann::json::array())) {
        if (w.contains("search") && w["search"].contains("attainment")) return w["search"]["attainment"].get<double>();
      }
    } catch (const std::exception&) {
    }
  }
  return 0.9;
}

}  // namespace

bool measured(double v) { return std::isfinite(v) && v >= 0; }

nlohmann::json value_or_null(double v) { return measured(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

const analysis::ConfigView* ReportModel::config(const std::string& run_id) const {
  for (const auto& c : study.configs) {
    if (c.run_id == run_id) return &c;
  }
  return nullptr;
}

nlohmann::json point_fields(const analysis::ConfigView& c, const analysis::PointView& p) {
  return {{"run_id", c.run_id},     {"label", c.label()},     {"method", c.method_label},
          {"method_options", c.method},  {"model", c.model},       {"workload", p.workload}, {"kind", p.kind},
          {"offered", p.target},    {"achieved", p.achieved}, {"point", p.index}};
}

std::string dump_json(const nlohmann::json& j, int indent) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string script_safe_json(const std::string& json_text) {
  std::string out;
  out.reserve(json_text.size() + json_text.size() / 64);
  for (char ch : json_text) {
    if (ch == '<') {
      out += "\\u003c";
    } else {
      out += ch;
    }
  }
  return out;
}

std::string html_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += ch;
    }
  }
  return out;
}

static void add_point_warnings(ReportModel& m, const analysis::ConfigView& c) {
  for (const auto& p : c.points) {
    const std::string where = fmt::format("run {} ({}), {} {:g}", c.run_id, c.label(), p.kind, p.target);
    const double mismatches = p.metric("token_count_mismatches", 0);
    if (mismatches > 0) {
      m.warnings.push_back({"token-mismatch", c.run_id,
                            fmt::format("{}: {:g} requests whose server token count differs from the client's count",
                                        where, mismatches),
                            ""});
    }
    const double failed = p.metric("failed", 0);
    if (failed > 0) {
      m.warnings.push_back({"failed-requests", c.run_id, fmt::format("{}: {:g} failed requests", where, failed), ""});
    }
    // A point is unreliable when the load generator limited it or the server's queue grew during
    // its steady-state window (loadgen's verdicts): it meets no SLO in any chart or plan.
    if (!p.sustainable && finite_load(p)) {
      m.warnings.push_back({p.client_bound ? "client-bound" : "unstable-window", c.run_id,
                            fmt::format("{}: not sustainable, meets no SLO ({})", where, p.verdict), ""});
    }
    if (!finite_load(p)) ++m.infinite_load_points;
  }
}

ReportModel build_model(const store::Store& db, const std::string& study, double knee_attainment) {
  ReportModel m;
  m.study = analysis::load_study(db, study);
  m.runs = db.runs(m.study.name);
  for (auto& p : db.placements()) {
    if (std::any_of(m.runs.begin(), m.runs.end(), [&](const store::RunRow& r) { return r.id == p.run_id; })) {
      m.placements.push_back(std::move(p));
    }
  }
  m.export_json = db.export_all_json();
  m.knee_attainment = knee_attainment > 0 ? knee_attainment : search_attainment(m.runs);

  std::set<std::string> kinds, keys;
  for (const auto& c : m.study.configs) {
    // Colours by the short label (a legend entry per configuration, unique within the study).
    if (std::find(m.methods.begin(), m.methods.end(), c.method_label) == m.methods.end()) m.methods.push_back(c.method_label);
    for (const auto& p : c.points) kinds.insert(p.kind);
    for (const auto& q : db.quality_results(c.run_id)) keys.insert(q.task + "." + q.metric);
    for (const auto& qe : db.quality_errors(c.run_id)) {
      m.warnings.push_back({"quality-task", c.run_id,
                            fmt::format("run {} ({}): quality task {} {}: {}", c.run_id, c.label(), qe.task, qe.status,
                                        qe.error),
                            ""});
    }
    if (c.status == "failed") {
      const store::RunRow* row = nullptr;
      for (const auto& r : m.runs) {
        if (r.id == c.run_id) row = &r;
      }
      m.warnings.push_back({"failed-run", c.run_id,
                            fmt::format("run {} ({}) failed: {}", c.run_id, c.label(),
                                        c.error.empty() ? "no error recorded" : c.error),
                            row ? row->log_tail : ""});
    }
    add_point_warnings(m, c);
  }
  for (std::size_t i = 0; i < m.methods.size(); ++i) m.colours.push_back(kPalette[i % kPalette.size()]);
  m.quality_keys.assign(keys.begin(), keys.end());
  if (kinds.size() == 1 && *kinds.begin() == "rate") {
    m.load_title = "offered load (req/s)";
  } else if (kinds.size() == 1 && *kinds.begin() == "concurrency") {
    m.load_title = "offered load (concurrent streams)";
  } else {
    m.load_title = "offered load (req/s or concurrent streams)";
  }

  // Telemetry samples come from the export (the store has no per-run sample query): the same rows
  // the page embeds, so the trace is exactly what a reader of the export would plot.
  auto exported = nlohmann::json::parse(m.export_json);
  std::map<std::string, std::vector<std::pair<std::int64_t, TelemetrySample>>> raw;
  for (const auto& s : exported.value("telemetry_samples", nlohmann::json::array())) {
    const std::string run = s.value("run_id", "");
    if (!m.config(run) || !s["power_w"].is_number() || !s["t_ns"].is_number()) continue;
    const double power = s["power_w"].get<double>();
    if (!measured(power)) continue;
    TelemetrySample t;
    t.phase = s["phase"].is_string() ? s["phase"].get<std::string>() : "";
    t.source = s["source"].is_string() ? s["source"].get<std::string>() : "";
    t.device = s["device"].is_string() ? s["device"].get<std::string>() : "";
    t.power_w = power;
    t.load_point_id = s["load_point_id"].is_number() ? s["load_point_id"].get<std::int64_t>() : -1;
    raw[run].emplace_back(s["t_ns"].get<std::int64_t>(), std::move(t));
  }
  for (auto& [run, samples] : raw) {
    std::stable_sort(samples.begin(), samples.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    const std::int64_t t0 = samples.front().first;
    auto& out = m.telemetry[run];
    for (auto& [t_ns, s] : samples) {
      s.t_s = static_cast<double>(t_ns - t0) / 1e9;
      out.push_back(std::move(s));
    }
  }
  return m;
}

}  // namespace qmeter::report::detail
