#include "qmeter/analysis/study_view.h"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "qmeter/core/error.h"
#include "qmeter/quant/method_options.h"

namespace qmeter::analysis {

double PointView::metric(const std::string& key, double fallback) const {
  auto it = metrics.find(key);
  return it == metrics.end() ? fallback : it->second;
}

std::string ConfigView::label() const {
  std::string s = model + " / " + (method_label.empty() ? method : method_label);
  if (tp != 1) s += fmt::format(" / tp={}", tp);
  if (hardware != "default" && !hardware.empty()) s += " / " + hardware;
  return s;
}

namespace {

// Who limited a point, from its stored JSON; points stored before the verdicts existed fall back
// to the old rule (a rate point that achieved below 90% of its offered rate did not keep up).
void read_verdict(const nlohmann::json& j, PointView& pv) {
  if (j.contains("sustainable")) {
    pv.client_bound = j.value("client_bound", false);
    pv.server_saturated = j.value("server_saturated", false);
    pv.sustainable = j.value("sustainable", true);
    if (pv.client_bound) pv.verdict = "client-bound: " + j["client_bound_evidence"].value("reason", std::string());
    if (pv.server_saturated) {
      pv.verdict += (pv.verdict.empty() ? "" : "; ") + std::string("server saturated: ") +
                    j["saturation_evidence"].value("reason", std::string());
    }
  } else {
    const double achieved = j.value("request_throughput", pv.achieved);
    if (pv.kind == "rate" && std::isfinite(pv.target) && pv.target > 0 && achieved < 0.9 * pv.target) {
      pv.server_saturated = true;
      pv.sustainable = false;
      pv.verdict = fmt::format("achieved {:.4g} req/s, below 90% of the offered {:g} req/s", achieved, pv.target);
    }
  }
}

}  // namespace

bool point_sustainable(const store::LoadPointRow& point, std::string* why) {
  PointView pv;
  pv.kind = point.target_kind;
  pv.target = point.target_value;
  pv.achieved = point.achieved_rate;
  try {
    read_verdict(nlohmann::json::parse(point.metrics_json), pv);
  } catch (const std::exception&) {
    return true;  // nothing stored to judge by
  }
  if (why) *why = pv.verdict;
  return pv.sustainable;
}

StudyView load_study(const store::Store& db, const std::string& study, const LoadStudyOptions& options) {
  StudyView v;
  auto studies = db.studies();
  if (studies.empty()) throw UsageError("the database holds no study");
  if (study.empty()) {
    v.name = studies.back();
  } else {
    if (std::find(studies.begin(), studies.end(), study) == studies.end()) {
      std::string list;
      for (const auto& s : studies) list += (list.empty() ? "" : ", ") + s;
      throw UsageError("no study named '" + study + "' in the database (studies: " + list + ")");
    }
    v.name = study;
  }
  v.spec = db.study_spec(v.name);
  bool slos_read = false;
  for (const auto& r : db.runs(v.name)) {
    ConfigView c;
    c.run_id = r.id;
    c.model = r.model;
    c.method = r.method;
    c.status = store::run_status_name(r.status);
    c.error = r.error;
    try {
      auto cfg = nlohmann::json::parse(r.config_json);
      c.method_name = cfg["method"]["name"].get<std::string>();
      for (auto& [k, val] : cfg["method"]["options"].items()) c.method_options[k] = val.get<std::string>();
      c.tp = cfg.value("tp", 1);
      c.power_limit_w = cfg["hardware"].value("power_limit_w", -1.0);
      c.locked_clock_mhz = cfg["hardware"].value("locked_clock_mhz", -1.0);
      if (!slos_read) {
        for (const auto& s : cfg["slos"]) {
          v.slos.push_back({s["name"].get<std::string>(), s.value("ttft_ms", -1.0), s.value("tpot_ms", -1.0),
                            s.value("e2e_ms", -1.0), s.value("itl_ms", -1.0)});
        }
        slos_read = true;
      }
    } catch (const std::exception&) {
      c.method_name = r.method;
    }
    c.hardware = c.power_limit_w > 0 ? fmt::format("pl{:.0f}W", c.power_limit_w) : "default";
    if (c.locked_clock_mhz > 0) c.hardware += fmt::format(",clk{:.0f}", c.locked_clock_mhz);
    // Derived from the registry when the run was stored; a run stored before that (an older
    // database, migrated) gets the same computation now.
    quant::ConfigurationProperties props;
    try {
      props = r.properties_json.empty() ? quant::configuration_properties(c.method_name, c.method_options)
                                        : quant::ConfigurationProperties::from_json(r.properties_json);
    } catch (const Error&) {
      props = quant::configuration_properties(c.method_name, c.method_options);
    }
    c.bits_per_weight = props.bits_per_weight;
    c.method_label = props.label;
    for (const auto& p : db.load_points(r.id)) {
      PointView pv;
      pv.id = p.id;
      pv.index = p.index;
      pv.kind = p.target_kind;
      pv.target = p.target_value;
      pv.achieved = p.achieved_rate;
      pv.energy_per_token_j = p.energy_per_token_j;
      pv.avg_power_w = p.avg_power_w;
      pv.energy_source = p.energy_source;
      try {
        auto j = nlohmann::json::parse(p.metrics_json);
        pv.workload = j.value("workload", "");
        for (auto& [k, val] : j.items()) {
          if (val.is_number()) pv.metrics[k] = val.get<double>();
        }
        // Steady-state figures where stored (ramp-up and drain excluded), else the whole run's.
        const bool steady = j.contains("steady_state") && j["steady_state"].value("defined", false) &&
                            j["steady_state"].contains("slo");
        const auto& slos = steady ? j["steady_state"]["slo"] : j.value("slo", nlohmann::json::object());
        for (auto& [name, s] : slos.items()) {
          pv.attainment[name] = s.value("attainment", 0.0);
          pv.goodput[name] = s.value("request_goodput", 0.0);
        }
        pv.raw_attainment = pv.attainment;
        read_verdict(j, pv);
        if (!pv.sustainable && !options.include_unsustainable) {
          // A point that did not sustain its load meets no SLO, whatever its percentiles say.
          for (auto& [name, a] : pv.attainment) a = 0;
          for (auto& [name, g] : pv.goodput) g = 0;
        }
        pv.energy_per_request_j = j.value("energy_per_request_j", -1.0);
      } catch (const std::exception&) {
      }
      c.points.push_back(std::move(pv));
    }
    for (const auto& q : db.quality_results(r.id)) {
      c.quality[q.task + "." + q.metric] = {q.value, q.stderr_, q.n};
      c.quality[q.metric] = {q.value, q.stderr_, q.n};
    }
    v.configs.push_back(std::move(c));
  }
  // Short labels unique within the study: colliding ones get the options that differ appended.
  std::vector<quant::MethodConfiguration> methods;
  for (const ConfigView& c : v.configs) methods.push_back({c.method_name, c.method_options, c.method_label});
  const std::vector<std::string> labels = quant::unique_labels(methods);
  for (std::size_t i = 0; i < v.configs.size(); ++i) v.configs[i].method_label = labels[i];
  return v;
}

}  // namespace qmeter::analysis
