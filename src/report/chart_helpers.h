#pragma once
// Small builders shared by the chart functions: encodings, tooltips and the spec skeleton.
#include <nlohmann/json.hpp>
#include <string>

#include "report_model.h"

namespace qmeter::report::detail {

using json = nlohmann::json;

inline const char* kVegaLiteSchema = "https://vega.github.io/schema/vega-lite/v5.json";

// The skeleton of every spec: schema, title, size and the inlined rows.
inline json base_spec(const std::string& title, json values, int width = 460, int height = 260) {
  return {{"$schema", kVegaLiteSchema},
          {"title", title},
          {"width", width},
          {"height", height},
          {"data", {{"values", std::move(values)}}}};
}

// One colour per method, the same in every chart: an explicit domain and range.
inline json method_scale(const ReportModel& m) { return {{"domain", m.methods}, {"range", m.colours}}; }
inline json method_colour(const ReportModel& m) {
  return {{"field", "method"}, {"type", "nominal"}, {"scale", method_scale(m)}, {"legend", {{"title", "method"}}}};
}

inline json quantitative(const std::string& field, const std::string& title) {
  return {{"field", field}, {"type", "quantitative"}, {"title", title}};
}
inline json nominal(const std::string& field, const std::string& title) {
  return {{"field", field}, {"type", "nominal"}, {"title", title}};
}

// Tooltips that identify the point: run id, configuration, method (the short label, and the full
// options: "gptq(bits=4,calib=/data/kjv.txt)"), offered and achieved load.
inline json point_tooltips(const std::string& load_title) {
  return json::array({nominal("run_id", "run id"), nominal("label", "configuration"), nominal("method", "method"),
                              nominal("method_options", "method and options"),
                      nominal("kind", "load kind"), quantitative("offered", load_title),
                      quantitative("achieved", "achieved (req/s)")});
}

inline json load_axis(const ReportModel& m) { return quantitative("offered", m.load_title); }

}  // namespace qmeter::report::detail
