// Charts over offered load (latency, throughput, goodput, SLO knee, energy, power) and the
// per-run power traces.
#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "chart_helpers.h"
#include "chart_specs.h"
#include "chart_parts.h"
#include "qmeter/analysis/knee.h"

namespace qmeter::report::detail {

namespace {

// Rows of one metric per load point, with the chart's value under "value"; skips unmeasured ones.
template <typename Get>
json point_rows(const ReportModel& m, Get get) {
  json rows = json::array();
  for (const auto& c : m.study.configs) {
    for (const auto& p : c.points) {
      if (!std::isfinite(p.target)) continue;
      const double v = get(p);
      if (!measured(v)) continue;
      json row = point_fields(c, p);
      row["value"] = v;
      row["energy_source"] = p.energy_source;
      rows.push_back(std::move(row));
    }
  }
  return rows;
}

// A line per run over offered load, coloured by method.
json load_line_layer(const ReportModel& m, const std::string& y_title, json extra_tooltips, json extra_encoding = {}) {
  json tooltip = point_tooltips(m.load_title);
  tooltip.push_back(quantitative("value", y_title));
  for (auto& t : extra_tooltips) tooltip.push_back(t);
  json enc = {{"x", load_axis(m)},
              {"y", quantitative("value", y_title)},
              {"color", method_colour(m)},
              {"detail", nominal("run_id", "run id")},
              {"tooltip", tooltip}};
  for (auto& [k, v] : extra_encoding.items()) enc[k] = v;
  return {{"mark", {{"type", "line"}, {"point", {{"filled", true}, {"size", 60}}}}}, {"encoding", enc}};
}

void latency_chart(const ReportModel& m, Section& s, const std::string& metric, const std::string& name,
                   double analysis::SloView::*bound) {
  json rows = json::array();
  for (const auto& c : m.study.configs) {
    for (const auto& p : c.points) {
      if (!std::isfinite(p.target)) continue;
      for (const auto& [pct, key] : {std::pair<std::string, std::string>{"p50", "median_" + metric + "_ms"},
                                     std::pair<std::string, std::string>{"p99", "p99_" + metric + "_ms"}}) {
        const double v = p.metric(key);
        if (!measured(v) || v <= 0) continue;  // the axis is logarithmic
        json row = point_fields(c, p);
        row["percentile"] = pct;
        row["value"] = v;
        rows.push_back(std::move(row));
      }
    }
  }
  if (rows.empty()) {
    s.missing.push_back(fmt::format("{}: no load point measured it (no completed requests in this study).", name));
    return;
  }
  json line = load_line_layer(m, name + " (ms)", json::array({nominal("percentile", "percentile")}),
                              {{"strokeDash", {{"field", "percentile"},
                                               {"type", "nominal"},
                                               {"title", "percentile"},
                                               {"scale", {{"domain", {"p50", "p99"}}, {"range", {{1, 0}, {6, 3}}}}}}}});
  // A log axis: tail latencies near saturation and SLO bounds span orders of magnitude.
  line["encoding"]["y"]["scale"] = {{"type", "log"}};
  json spec = base_spec(name + " vs offered load (p50 solid, p99 dashed, log scale)", rows);
  json layers = json::array({line});
  json slo_rows = json::array();
  for (const auto& slo : m.study.slos) {
    const double threshold = slo.*bound;
    if (threshold > 0) {
      slo_rows.push_back({{"slo", slo.name},
                          {"threshold_ms", threshold},
                          {"text", fmt::format("SLO {}: {:g} ms", slo.name, threshold)}});
    }
  }
  if (!slo_rows.empty()) {
    layers.push_back({{"data", {{"values", slo_rows}}},
                      {"mark", {{"type", "rule"}, {"color", "#555555"}, {"strokeDash", {2, 2}}}},
                      {"encoding", {{"y", quantitative("threshold_ms", name + " (ms)")},
                                    {"tooltip", {nominal("slo", "SLO class"), quantitative("threshold_ms", "threshold (ms)")}}}}});
    layers.push_back({{"data", {{"values", slo_rows}}},
                      {"mark", {{"type", "text"}, {"align", "left"}, {"dx", 4}, {"dy", -6}, {"color", "#555555"}}},
                      {"encoding", {{"y", quantitative("threshold_ms", name + " (ms)")},
                                    {"x", {{"value", 0}}},
                                    {"text", {{"field", "text"}}}}}});
  }
  spec["layer"] = layers;
  s.charts.push_back({"latency_" + metric, name + " vs offered load", spec});
}

void throughput_chart(const ReportModel& m, Section& s) {
  json rows = point_rows(m, [](const analysis::PointView& p) { return p.metric("output_throughput"); });
  if (rows.empty()) {
    s.missing.push_back("Throughput: no load point completed a request.");
    return;
  }
  json spec = base_spec("Output token throughput vs offered load", rows);
  auto layer = load_line_layer(m, "output tokens/s", json::array());
  spec["mark"] = layer["mark"];
  spec["encoding"] = layer["encoding"];
  s.charts.push_back({"throughput", "Output token throughput vs offered load", spec});
}

void goodput_chart(const ReportModel& m, Section& s) {
  json rows = json::array();
  std::vector<std::string> series = {"request throughput"};
  for (const auto& slo : m.study.slos) series.push_back("goodput " + slo.name);
  for (const auto& c : m.study.configs) {
    for (const auto& p : c.points) {
      if (!std::isfinite(p.target)) continue;
      auto add = [&](const std::string& name, double v) {
        if (!measured(v)) return;
        json row = point_fields(c, p);
        row["series"] = name;
        row["value"] = v;
        rows.push_back(std::move(row));
      };
      add("request throughput", p.metric("request_throughput"));
      for (const auto& [cls, v] : p.goodput) add("goodput " + cls, v);
    }
  }
  if (rows.empty()) {
    s.missing.push_back("Goodput: no load point completed a request.");
    return;
  }
  if (m.study.slos.empty()) s.missing.push_back("Goodput: the study defines no SLO class, so only request throughput is shown.");
  json spec = base_spec("Request throughput and goodput per SLO class vs offered load", rows);
  std::vector<json> dashes;
  for (std::size_t i = 0; i < series.size(); ++i) dashes.push_back(i == 0 ? json{1, 0} : json{int(2 + 2 * i), 3});
  auto layer = load_line_layer(m, "requests/s", json::array({nominal("series", "series")}),
                               {{"strokeDash", {{"field", "series"},
                                                {"type", "nominal"},
                                                {"title", "series"},
                                                {"scale", {{"domain", series}, {"range", dashes}}}}}});
  spec["mark"] = layer["mark"];
  spec["encoding"] = layer["encoding"];
  s.charts.push_back({"goodput", "Request throughput and goodput vs offered load", spec});
}

void knee_chart(const ReportModel& m, Section& s) {
  json rows = json::array();
  for (const auto& c : m.study.configs) {
    std::set<std::string> classes;
    for (const auto& p : c.points) {
      for (const auto& [cls, a] : p.attainment) classes.insert(cls);
    }
    for (const auto& cls : classes) {
      std::vector<std::pair<double, double>> pts;
      for (const auto& p : c.points) {
        auto it = p.attainment.find(cls);
        if (std::isfinite(p.target) && it != p.attainment.end()) pts.emplace_back(p.target, it->second);
      }
      if (pts.empty()) continue;
      const auto k = analysis::slo_knee(pts, m.knee_attainment);
      std::string kind, note;
      switch (k.kind) {
        case analysis::KneeResult::Kind::kNone:
          kind = "none: the lowest measured load misses the target";
          note = "none";
          break;
        case analysis::KneeResult::Kind::kBracketed:
          kind = fmt::format("interpolated between {:g} and {:g}", k.bracket_lo, k.bracket_hi);
          note = fmt::format("{:.4g}", k.load);
          break;
        case analysis::KneeResult::Kind::kAtLeastMax:
          kind = "at least the highest measured load (every load meets the target)";
          note = fmt::format("\u2265 {:g}", k.load);
          break;
      }
      rows.push_back({{"run_id", c.run_id},
                      {"label", c.label()},
                      {"method", c.method_label},
                      {"method_options", c.method},
                      {"slo", cls},
                      {"knee", k.kind == analysis::KneeResult::Kind::kNone ? 0.0 : k.load},
                      {"knee_kind", kind},
                      {"note", note},
                      {"target_attainment", m.knee_attainment}});
    }
  }
  if (rows.empty()) {
    s.missing.push_back("SLO knee: no load point has an SLO attainment (the study defines no SLO class or "
                        "measured no load point).");
    return;
  }
  const std::string title = fmt::format("SLO knee: highest offered load meeting each SLO class at {:g}% attainment",
                                        m.knee_attainment * 100);
  json spec = base_spec(title, rows);
  json tooltip = json::array({nominal("run_id", "run id"), nominal("label", "configuration"), nominal("method", "method"),
                              nominal("method_options", "method and options"),
                              nominal("slo", "SLO class"), quantitative("knee", "knee (" + m.load_title + ")"),
                              nominal("knee_kind", "how"), quantitative("target_attainment", "required attainment")});
  json enc = {{"x", {{"field", "label"}, {"type", "nominal"}, {"title", "configuration"}, {"axis", {{"labelAngle", -20}}}}},
              {"xOffset", nominal("slo", "SLO class")},
              {"y", quantitative("knee", "knee: " + m.load_title)},
              {"tooltip", tooltip}};
  json bar_enc = enc;
  bar_enc["color"] = method_colour(m);
  json text_enc = enc;
  text_enc["text"] = {{"field", "note"}};
  spec["layer"] = json::array({{{"mark", {{"type", "bar"}}}, {"encoding", bar_enc}},
                               {{"mark", {{"type", "text"}, {"dy", -6}, {"fontSize", 10}}}, {"encoding", text_enc}}});
  s.charts.push_back({"slo_knee", "SLO knee per configuration and SLO class", spec});
}

template <typename Get>
void energy_chart(const ReportModel& m, Section& s, const std::string& id, const std::string& what,
                  const std::string& unit, Get get) {
  json rows = point_rows(m, get);
  if (rows.empty()) {
    s.missing.push_back(fmt::format("{}: not measured (energy source 'none' at every load point; run with an "
                                    "energy source: NVML, RAPL or the CPU power model).",
                                    what));
    return;
  }
  std::set<std::string> sources;
  for (const auto& r : rows) sources.insert(r["energy_source"].get<std::string>());
  std::string src;
  for (const auto& x : sources) src += (src.empty() ? "" : ", ") + x;
  json spec = base_spec(fmt::format("{} vs offered load (energy source: {})", what, src), rows);
  auto layer = load_line_layer(m, what + " (" + unit + ")", json::array({nominal("energy_source", "energy source")}),
                               {{"shape", nominal("energy_source", "energy source")}});
  spec["mark"] = layer["mark"];
  spec["encoding"] = layer["encoding"];
  s.charts.push_back({id, what + " vs offered load", spec});
}

std::string safe_id(const std::string& s) {
  std::string out;
  for (char ch : s) out += (std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-') ? ch : '_';
  return out;
}

void power_trace_charts(const ReportModel& m, Section& s) {
  constexpr std::size_t kMaxSamplesPerRun = 4000;  // keeps the page light; the export holds every sample
  for (const auto& c : m.study.configs) {
    auto it = m.telemetry.find(c.run_id);
    if (it == m.telemetry.end() || it->second.empty()) continue;
    const auto& samples = it->second;
    const std::size_t stride = (samples.size() + kMaxSamplesPerRun - 1) / kMaxSamplesPerRun;
    std::map<std::int64_t, double> load_of_point;
    for (const auto& p : c.points) load_of_point[p.id] = p.target;
    json rows = json::array(), segments = json::array();
    for (std::size_t i = 0; i < samples.size(); ++i) {
      const auto& t = samples[i];
      if (i % stride == 0) {
        rows.push_back({{"run_id", c.run_id}, {"label", c.label()}, {"method", c.method_label},
                        {"method_options", c.method}, {"t_s", t.t_s},
                        {"power_w", t.power_w}, {"device", t.device}, {"source", t.source}, {"phase", t.phase}});
      }
      // A phase segment: consecutive samples of the same phase and load point.
      const bool starts = i == 0 || samples[i - 1].phase != t.phase || samples[i - 1].load_point_id != t.load_point_id;
      if (starts) {
        auto lp = load_of_point.find(t.load_point_id);
        segments.push_back({{"phase", t.phase.empty() ? "unknown" : t.phase},
                            {"start_s", t.t_s},
                            {"end_s", t.t_s},
                            {"load", lp == load_of_point.end() ? json(nullptr) : json(lp->second)},
                            {"run_id", c.run_id}});
      }
      segments.back()["end_s"] = t.t_s;
    }
    std::string title = fmt::format("Power over time: {} (run {})", c.label(), c.run_id);
    if (stride > 1) title += fmt::format(", every {}th sample", stride);
    json spec = base_spec(title, rows, 460, 200);
    // Only the phases this run has, each in its fixed colour.
    const std::map<std::string, std::string> kPhaseColour = {{"idle", "#d9d9d9"}, {"load", "#c6dbef"}};
    json phase_domain = json::array(), phase_range = json::array();
    for (const auto& seg : segments) {
      if (std::find(phase_domain.begin(), phase_domain.end(), seg["phase"]) != phase_domain.end()) continue;
      phase_domain.push_back(seg["phase"]);
      auto colour = kPhaseColour.find(seg["phase"].get<std::string>());
      phase_range.push_back(colour == kPhaseColour.end() ? "#fdd0a2" : colour->second);
    }
    json sample_tips = json::array({nominal("run_id", "run id"), nominal("label", "configuration"),
                                    quantitative("t_s", "time (s)"), quantitative("power_w", "power (W)"),
                                    nominal("device", "device"), nominal("source", "source"), nominal("phase", "phase")});
    spec["layer"] = json::array(
        {{{"data", {{"values", segments}}},
          {"mark", {{"type", "rect"}, {"opacity", 0.5}}},
          {"encoding", {{"x", quantitative("start_s", "time since the run's first sample (s)")},
                        {"x2", {{"field", "end_s"}}},
                        {"fill", {{"field", "phase"},
                                  {"type", "nominal"},
                                  {"title", "phase"},
                                  {"scale", {{"domain", phase_domain}, {"range", phase_range}}}}},
                        {"tooltip", {nominal("run_id", "run id"), nominal("phase", "phase"),
                                     quantitative("load", "offered load"), quantitative("start_s", "from (s)"),
                                     quantitative("end_s", "to (s)")}}}}},
         {{"mark", {{"type", "line"}, {"point", {{"size", 12}, {"filled", true}}}}},
          {"encoding", {{"x", quantitative("t_s", "time since the run's first sample (s)")},
                        {"y", quantitative("power_w", "power (W)")},
                        {"color", method_colour(m)},
                        {"detail", nominal("device", "device")},
                        {"tooltip", sample_tips}}}}});
    s.charts.push_back({"power_trace_" + safe_id(c.run_id), title, spec});
  }
  if (m.telemetry.empty()) {
    s.missing.push_back("Power over time: no telemetry samples were recorded for any run of this study.");
  }
}

}  // namespace

void add_latency_charts(const ReportModel& m, Section& s) {
  latency_chart(m, s, "ttft", "TTFT", &analysis::SloView::ttft_ms);
  latency_chart(m, s, "tpot", "TPOT", &analysis::SloView::tpot_ms);
  latency_chart(m, s, "e2el", "E2E latency", &analysis::SloView::e2e_ms);
}

void add_throughput_charts(const ReportModel& m, Section& s) {
  throughput_chart(m, s);
  goodput_chart(m, s);
  knee_chart(m, s);
}

void add_energy_charts(const ReportModel& m, Section& s) {
  energy_chart(m, s, "energy_per_token", "Energy per output token", "J",
               [](const analysis::PointView& p) { return p.energy_per_token_j; });
  energy_chart(m, s, "energy_per_request", "Energy per request", "J",
               [](const analysis::PointView& p) { return p.energy_per_request_j; });
  energy_chart(m, s, "avg_power", "Average power", "W", [](const analysis::PointView& p) { return p.avg_power_w; });
  power_trace_charts(m, s);
}

}  // namespace qmeter::report::detail
