#include "qmeter/plan/configurations.h"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "qmeter/core/error.h"
#include "qmeter/core/parse_number.h"
#include "qmeter/core/text.h"

namespace qmeter::plan {

namespace {

std::string join(const std::set<std::string>& items) {
  std::string s;
  for (const auto& i : items) s += (s.empty() ? "" : ", ") + i;
  return s.empty() ? "none" : s;
}

}  // namespace

std::string Configuration::label() const {
  const std::string base = run->label();
  return show_workload && !workload.empty() ? base + " / " + workload : base;
}

std::vector<Configuration> configurations(const analysis::StudyView& study, const std::string& workload) {
  std::vector<Configuration> out;
  std::set<std::string> workloads;
  for (const auto& run : study.configs) {
    // One configuration per (run, workload), in the order the study measured them.
    std::vector<std::string> order;
    for (const auto& p : run.points) {
      if (std::find(order.begin(), order.end(), p.workload) == order.end()) order.push_back(p.workload);
    }
    for (const auto& w : order) {
      workloads.insert(w);
      if (!workload.empty() && w != workload) continue;
      Configuration c;
      c.run = &run;
      c.workload = w;
      for (const auto& p : run.points) {
        if (p.workload != w) continue;
        const double rate = p.kind == "concurrency" ? p.achieved : p.target;
        if (std::isfinite(rate) && rate > 0) c.samples.push_back({rate, &p});
      }
      std::stable_sort(c.samples.begin(), c.samples.end(),
                       [](const LoadSample& a, const LoadSample& b) { return a.rate < b.rate; });
      if (!c.samples.empty()) out.push_back(std::move(c));
    }
  }
  if (!workload.empty() && out.empty())
    throw UsageError(fmt::format("--workload '{}': study '{}' has no load points of that workload (workloads: {})",
                                 workload, study.name, join(workloads)));
  const bool several = workload.empty() && workloads.size() > 1;
  for (auto& c : out) c.show_workload = several;
  return out;
}

void require_slo_class(const analysis::StudyView& study, const std::string& slo) {
  std::set<std::string> classes;
  for (const auto& run : study.configs)
    for (const auto& p : run.points)
      for (const auto& [name, att] : p.attainment) classes.insert(name);
  if (!classes.count(slo))
    throw UsageError(fmt::format("--slo '{}': no load point of study '{}' was measured against an SLO class of that name "
                                 "(classes measured: {})",
                                 slo, study.name, join(classes)));
}

std::optional<double> power_at(const Configuration& c, double rate) {
  auto watts = interpolate_at(c, rate, [](const analysis::PointView& p) { return p.avg_power_w; }, true);
  if (watts) return watts;
  // Energy per request x requests per second is the same power, from the attributed energy.
  auto joules = interpolate_at(c, rate, [](const analysis::PointView& p) { return p.energy_per_request_j; }, true);
  if (joules) return *joules * rate;
  return std::nullopt;
}

bool lower_is_better(const std::string& metric) {
  const auto plain = metric.substr(metric.rfind('.') == std::string::npos ? 0 : metric.rfind('.') + 1);
  for (const char* key : {"perplexity", "kl", "nll", "loss", "bits_per_byte", "bpb", "wer", "cer"}) {
    if (plain.rfind(key, 0) == 0) return true;
  }
  return false;
}

QualityFloor parse_quality_floor(const std::string& text) {
  QualityFloor f;
  f.text = text;
  std::size_t op = std::string::npos, op_len = 1;
  for (const char* candidate : {"<=", ">=", "="}) {
    op = text.find(candidate);
    if (op != std::string::npos) {
      op_len = std::string(candidate).size();
      break;
    }
  }
  if (op == std::string::npos)
    throw UsageError(fmt::format("--quality-floor '{}': expected METRIC=VALUE, METRIC>=VALUE or METRIC<=VALUE", text));
  f.metric = std::string(trim(std::string_view(text).substr(0, op)));
  const std::string_view value = trim(std::string_view(text).substr(op + op_len));
  if (f.metric.empty()) throw UsageError(fmt::format("--quality-floor '{}': no metric name before the operator", text));
  const auto bound = parse_double(value);
  if (!bound || !std::isfinite(*bound))
    throw UsageError(fmt::format("--quality-floor '{}': '{}' is not a number", text, value));
  f.bound = *bound;
  f.at_most = op_len == 2 ? text[op] == '<' : lower_is_better(f.metric);
  return f;
}

std::optional<double> quality_value(const analysis::ConfigView& run, const std::string& metric) {
  auto it = run.quality.find(metric);
  if (it == run.quality.end()) return std::nullopt;
  return it->second.value;
}

void require_quality_results(const std::vector<Configuration>& configs, const std::vector<QualityFloor>& floors) {
  for (const auto& f : floors) {
    std::set<std::string> present;
    bool any = false;
    for (const auto& c : configs) {
      for (const auto& [name, q] : c.run->quality) present.insert(name);
      any = any || quality_value(*c.run, f.metric).has_value();
    }
    if (!any)
      throw UsageError(fmt::format("--quality-floor '{}': no configuration has a quality result named '{}' "
                                   "(quality results stored: {})",
                                   f.text, f.metric, join(present)));
  }
}

std::string quality_floor_violation(const analysis::ConfigView& run, const std::vector<QualityFloor>& floors) {
  std::string why;
  for (const auto& f : floors) {
    const auto v = quality_value(run, f.metric);
    std::string one;
    if (!v) one = fmt::format("no result for {}", f.metric);
    else if (f.at_most && !(*v <= f.bound)) one = fmt::format("{} {:.4g} > {:.4g}", f.metric, *v, f.bound);
    else if (!f.at_most && !(*v >= f.bound)) one = fmt::format("{} {:.4g} < {:.4g}", f.metric, *v, f.bound);
    if (!one.empty()) why += (why.empty() ? "" : "; ") + one;
  }
  return why;
}

}  // namespace qmeter::plan
