// Quality charts (per configuration, and against bits per weight), the Pareto chart of energy per
// token vs p99 TPOT, and the order of the page's sections.
#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "chart_helpers.h"
#include "chart_parts.h"
#include "chart_specs.h"
#include "qmeter/analysis/pareto.h"

namespace qmeter::report::detail {

namespace {

bool lower_is_better(const std::string& key) {
  return key.find("perplexity") != std::string::npos || key.find("kl") != std::string::npos ||
         key.find("loss") != std::string::npos;
}

json quality_rows(const ReportModel& m, bool need_bits) {
  json rows = json::array();
  for (const auto& c : m.study.configs) {
    if (need_bits && !measured(c.bits_per_weight)) continue;
    for (const auto& key : m.quality_keys) {
      auto it = c.quality.find(key);
      if (it == c.quality.end()) continue;
      const auto& q = it->second;
      rows.push_back({{"run_id", c.run_id},
                      {"label", c.label()},
                      {"method", c.method_label},
                      {"method_options", c.method},
                      {"key", key},
                      {"value", q.value},
                      {"stderr", q.stderr_},
                      {"lo", q.value - q.stderr_},
                      {"hi", q.value + q.stderr_},
                      {"n", q.n},
                      {"bits_per_weight", value_or_null(c.bits_per_weight)}});
    }
  }
  return rows;
}

// A faceted chart (one panel per task.metric, each with its own y scale): the value as a point and
// +-1 standard error as a rule.
json quality_spec(const ReportModel& m, const std::string& title, json rows, json x) {
  json tooltip = json::array({nominal("run_id", "run id"), nominal("label", "configuration"), nominal("method", "method"),
                              nominal("method_options", "method and options"),
                              nominal("key", "task.metric"), quantitative("value", "value"),
                              quantitative("stderr", "standard error"), quantitative("n", "items"),
                              quantitative("bits_per_weight", "bits per weight")});
  json point_enc = {{"x", x},
                    {"y", {{"field", "value"}, {"type", "quantitative"}, {"title", "value"}, {"scale", {{"zero", false}}}}},
                    {"color", method_colour(m)},
                    {"tooltip", tooltip}};
  json rule_enc = {{"x", x}, {"y", quantitative("lo", "value")}, {"y2", {{"field", "hi"}}}, {"color", method_colour(m)},
                   {"tooltip", tooltip}};
  return {{"$schema", kVegaLiteSchema},
          {"title", title},
          {"data", {{"values", std::move(rows)}}},
          {"facet", {{"field", "key"}, {"type", "nominal"}, {"title", "task.metric"}}},
          {"columns", 3},
          {"spec", {{"width", 240},
                    {"height", 200},
                    {"layer", json::array({{{"mark", {{"type", "rule"}, {"strokeWidth", 2}}}, {"encoding", rule_enc}},
                                           {{"mark", {{"type", "point"}, {"filled", true}, {"size", 70}}},
                                            {"encoding", point_enc}}})}}},
          {"resolve", {{"scale", {{"y", "independent"}}}}}};
}

}  // namespace

void add_quality_charts(const ReportModel& m, Section& s) {
  json rows = quality_rows(m, false);
  if (rows.empty()) {
    s.missing.push_back("Quality: no quality results in this study (add perplexity, multiple-choice or KL tasks "
                        "under `quality:` in the spec).");
    return;
  }
  s.charts.push_back({"quality", "Quality per configuration",
                      quality_spec(m, "Quality per configuration (point: value, bar: \u00b11 standard error)", rows,
                                   {{"field", "label"}, {"type", "nominal"}, {"title", "configuration"},
                                    {"axis", {{"labelAngle", -30}}}})});
  json bits_rows = quality_rows(m, true);
  if (bits_rows.empty()) {
    s.missing.push_back("Quality vs bits per weight: the bits per weight of these methods are unknown.");
    return;
  }
  s.charts.push_back({"quality_vs_bits", "Quality vs bits per weight",
                      quality_spec(m, "Quality vs bits per weight (\u00b11 standard error)", bits_rows,
                                   {{"field", "bits_per_weight"}, {"type", "quantitative"}, {"title", "bits per weight"},
                                    {"scale", {{"zero", false}}}})});
}

namespace {

struct ParetoCandidate {
  const analysis::ConfigView* config;
  const analysis::PointView* point;
  double energy, tpot;
};

std::vector<std::vector<ParetoCandidate>> pareto_candidates(const ReportModel& m) {
  std::vector<std::vector<ParetoCandidate>> per_config;
  for (const auto& c : m.study.configs) {
    std::vector<ParetoCandidate> cands;
    for (const auto& p : c.points) {
      const double tpot = p.metric("p99_tpot_ms");
      if (std::isfinite(p.target) && measured(p.energy_per_token_j) && measured(tpot)) {
        cands.push_back({&c, &p, p.energy_per_token_j, tpot});
      }
    }
    if (!cands.empty()) per_config.push_back(std::move(cands));
  }
  return per_config;
}

std::string primary_quality_key(const ReportModel& m) {
  for (const char* want : {".perplexity", ".acc", ".kl"}) {
    for (const auto& k : m.quality_keys) {
      if (k.size() >= std::string(want).size() && k.compare(k.size() - std::string(want).size(), std::string::npos, want) == 0)
        return k;
    }
  }
  return m.quality_keys.empty() ? "" : m.quality_keys.front();
}

}  // namespace

double default_pareto_load(const ReportModel& m) {
  auto per_config = pareto_candidates(m);
  if (per_config.empty()) return -1;
  std::set<double> common, all;
  for (const auto& c : per_config[0]) common.insert(c.point->target);
  for (const auto& cands : per_config) {
    std::set<double> mine;
    for (const auto& c : cands) {
      mine.insert(c.point->target);
      all.insert(c.point->target);
    }
    std::set<double> both;
    std::set_intersection(common.begin(), common.end(), mine.begin(), mine.end(), std::inserter(both, both.begin()));
    common = std::move(both);
  }
  return common.empty() ? *all.rbegin() : *common.rbegin();
}

void add_pareto_chart(const ReportModel& m, Section& s) {
  auto per_config = pareto_candidates(m);
  if (per_config.empty()) {
    s.missing.push_back("Pareto chart: needs load points with both energy per token and p99 TPOT measured; "
                        "this study has none.");
    return;
  }
  std::set<double> loads;
  for (const auto& cands : per_config) {
    for (const auto& c : cands) loads.insert(c.point->target);
  }
  const std::string qkey = primary_quality_key(m);
  json rows = json::array();
  for (double load : loads) {
    // Each configuration at its measured load closest to the chosen one (the lower one on a tie).
    std::vector<ParetoCandidate> picks;
    for (const auto& cands : per_config) {
      const ParetoCandidate* best = nullptr;
      for (const auto& c : cands) {
        const double d = std::abs(c.point->target - load);
        if (!best || d < std::abs(best->point->target - load) ||
            (d == std::abs(best->point->target - load) && c.point->target < best->point->target))
          best = &c;
      }
      picks.push_back(*best);
    }
    std::vector<std::vector<double>> objectives;
    for (const auto& p : picks) objectives.push_back({p.energy, p.tpot});
    auto front = analysis::pareto_front(objectives, {{"energy_per_token_j", false}, {"p99_tpot_ms", false}});
    for (std::size_t i = 0; i < picks.size(); ++i) {
      const auto& p = picks[i];
      const bool on_front = front.dominated_by[i] == -1;
      json row = point_fields(*p.config, *p.point);
      row["choice"] = load;
      row["exact"] = p.point->target == load;
      row["energy_per_token_j"] = p.energy;
      row["p99_tpot_ms"] = p.tpot;
      row["energy_source"] = p.point->energy_source;
      row["front"] = on_front;
      row["front_label"] = on_front ? "on the Pareto front" : "dominated";
      auto q = p.config->quality.find(qkey);
      row["quality"] = q == p.config->quality.end() ? json(nullptr) : json(q->second.value);
      rows.push_back(std::move(row));
    }
  }
  const double initial = default_pareto_load(m);
  json options = json::array(), labels = json::array();
  for (double l : loads) {
    options.push_back(l);
    labels.push_back(fmt::format("{:g}", l));
  }
  json spec = base_spec("Energy per output token vs p99 TPOT at the chosen offered load "
                        "(each configuration at its closest measured load)",
                        rows, 520, 300);
  spec["params"] = json::array({{{"name", "load"},
                                 {"value", initial},
                                 {"bind", {{"input", "select"}, {"options", options}, {"labels", labels},
                                           {"name", "offered load: "}}}}});
  spec["transform"] = json::array({{{"filter", "datum.choice == load"}}});
  json tooltip = point_tooltips(m.load_title);
  for (json t : {quantitative("choice", "chosen load"), nominal("exact", "measured at the chosen load"),
                 quantitative("energy_per_token_j", "energy per output token (J)"),
                 quantitative("p99_tpot_ms", "p99 TPOT (ms)"), nominal("energy_source", "energy source"),
                 quantitative("quality", qkey.empty() ? "quality" : qkey), nominal("front_label", "Pareto")})
    tooltip.push_back(t);
  json x = quantitative("p99_tpot_ms", "p99 TPOT (ms)");
  json y = quantitative("energy_per_token_j", "energy per output token (J)");
  x["scale"] = {{"zero", false}, {"padding", 16}};
  y["scale"] = {{"zero", false}, {"padding", 16}};
  json point_enc = {{"x", x},
                    {"y", y},
                    {"stroke", method_colour(m)},
                    {"shape", {{"field", "front_label"},
                               {"type", "nominal"},
                               {"title", "Pareto"},
                               {"scale", {{"domain", {"on the Pareto front", "dominated"}}, {"range", {"diamond", "circle"}}}}}},
                    {"tooltip", tooltip}};
  if (!qkey.empty()) {
    point_enc["fill"] = {{"field", "quality"},
                         {"type", "quantitative"},
                         {"title", qkey + (lower_is_better(qkey) ? " (lower is better)" : " (higher is better)")},
                         {"scale", {{"scheme", "viridis"}, {"reverse", lower_is_better(qkey)}}}};
  } else {
    point_enc["fill"] = method_colour(m);
    s.missing.push_back("Pareto chart: no quality results, so the points are coloured by method instead of quality.");
  }
  spec["layer"] = json::array(
      {{{"transform", json::array({{{"filter", "datum.front"}}})},
        {"mark", {{"type", "line"}, {"color", "#333333"}, {"strokeWidth", 1.5}}},
        {"encoding", {{"x", x}, {"y", y}, {"order", {{"field", "p99_tpot_ms"}, {"type", "quantitative"}}}}}},
       {{"mark", {{"type", "point"}, {"filled", true}, {"size", 160}, {"strokeWidth", 2.5}, {"opacity", 1}}},
        {"encoding", point_enc}}});
  s.charts.push_back({"pareto", "Pareto: energy per token vs p99 TPOT", spec});
}

std::vector<Section> build_sections(const ReportModel& m) {
  std::vector<Section> sections = {
      {"latency", "Latency vs offered load",
       "p50 (solid) and p99 (dashed) per configuration; grey rules are the SLO thresholds.", {}, {}},
      {"throughput", "Throughput, goodput and SLO knee",
       "Goodput counts the requests per second that meet an SLO class; the knee is the highest load still meeting it.",
       {}, {}},
      {"energy", "Energy and power", "Every figure names its energy source: counter, sampled or modelled.", {}, {}},
      {"quality", "Quality", "Values with \u00b11 standard error.", {}, {}},
      {"pareto", "Pareto: energy vs tail latency",
       "Fill: quality; outline: method; diamonds and the line: the Pareto front (lower energy and lower p99 TPOT).",
       {}, {}},
  };
  add_latency_charts(m, sections[0]);
  add_throughput_charts(m, sections[1]);
  add_energy_charts(m, sections[2]);
  add_quality_charts(m, sections[3]);
  add_pareto_chart(m, sections[4]);
  if (m.infinite_load_points > 0) {
    sections[0].missing.push_back(fmt::format(
        "{} load points at an unbounded offered rate are not on the load axes (they are in the table).",
        m.infinite_load_points));
  }
  return sections;
}

}  // namespace qmeter::report::detail
