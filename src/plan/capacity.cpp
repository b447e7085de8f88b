#include "qmeter/plan/capacity.h"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "qmeter/analysis/knee.h"
#include "qmeter/core/error.h"
#include "text_table.h"

namespace qmeter::plan {

namespace {

std::string pick_quality_metric(const CapacityOptions& o, const std::vector<Configuration>& configs) {
  if (!o.quality_metric.empty()) return o.quality_metric;
  if (!o.quality_floors.empty()) return o.quality_floors.front().metric;
  for (const auto& c : configs)
    if (quality_value(*c.run, "perplexity")) return "perplexity";
  return "";
}

const char* status_name(CapacityRow::Status s) {
  switch (s) {
    case CapacityRow::Status::kBracketed: return "bracketed";
    case CapacityRow::Status::kLowerBound: return "lower_bound";
    case CapacityRow::Status::kNeverMeets: return "never_meets";
    case CapacityRow::Status::kBelowFloor: return "below_quality_floor";
  }
  return "?";
}

double attainment_at(const Configuration& c, double rate, const std::string& slo) {
  for (const auto& s : c.samples) {
    auto it = s.point->attainment.find(slo);
    if (s.rate == rate && it != s.point->attainment.end()) return it->second;
  }
  return -1;
}

}  // namespace

CapacityPlan plan_capacity(const analysis::StudyView& study, const CapacityOptions& o) {
  if (o.slo.empty()) throw UsageError("--slo: an SLO class name is required");
  if (!(o.attainment > 0 && o.attainment <= 1))
    throw UsageError(fmt::format("--attainment {}: must be in (0, 1]", o.attainment));
  if (!(o.target_rate > 0 && std::isfinite(o.target_rate)))
    throw UsageError(fmt::format("--target-rate {}: must be a positive request rate (req/s)", o.target_rate));
  require_slo_class(study, o.slo);
  const auto configs = configurations(study, o.workload);
  if (configs.empty())
    throw UsageError(fmt::format("study '{}' has no load point at a finite request rate to plan from", study.name));
  require_quality_results(configs, o.quality_floors);

  CapacityPlan plan;
  plan.study = study.name;
  plan.slo = o.slo;
  plan.workload = o.workload;
  plan.attainment = o.attainment;
  plan.target_rate = o.target_rate;
  plan.gpu_cost_per_hour = o.gpu_cost_per_hour;
  plan.quality_metric = pick_quality_metric(o, configs);

  for (const auto& c : configs) {
    CapacityRow row;
    row.label = c.label();
    row.run_id = c.run->run_id;
    row.model = c.run->model;
    row.method = c.run->method;
    row.hardware = c.run->hardware;
    row.workload = c.workload;
    row.tp = c.run->tp;
    if (!plan.quality_metric.empty()) {
      if (auto q = quality_value(*c.run, plan.quality_metric)) row.quality = *q, row.has_quality = true;
    }
    // Points not measured against this class (a class added later) do not count either way.
    std::vector<std::pair<double, double>> curve;
    for (const auto& s : c.samples) {
      auto it = s.point->attainment.find(o.slo);
      if (it != s.point->attainment.end()) curve.emplace_back(s.rate, it->second);
    }
    const auto knee = analysis::slo_knee(curve, o.attainment);
    if (curve.empty() || knee.kind == analysis::KneeResult::Kind::kNone) {
      row.status = CapacityRow::Status::kNeverMeets;
      if (!curve.empty()) {
        const auto lowest = *std::min_element(curve.begin(), curve.end());
        row.lowest_rate_rps = lowest.first;
        row.lowest_attainment = lowest.second;
        row.note = fmt::format("attainment {:.4g} < {:.4g} already at the lowest measured rate {:.4g} req/s",
                               lowest.second, o.attainment, lowest.first);
      } else {
        row.note = "no load point measured against this SLO class";
      }
      plan.never_meets.push_back(std::move(row));
      continue;
    }
    row.capacity_rps = knee.load;
    row.bracket_lo_rps = knee.bracket_lo;
    row.bracket_hi_rps = knee.bracket_hi;
    row.attainment_lo = attainment_at(c, knee.bracket_lo, o.slo);
    row.attainment_hi = attainment_at(c, knee.bracket_hi, o.slo);
    if (knee.kind == analysis::KneeResult::Kind::kBracketed) {
      row.status = CapacityRow::Status::kBracketed;
    } else {
      row.status = CapacityRow::Status::kLowerBound;
      row.note = fmt::format("every measured rate met the SLO: capacity >= {:.4g} req/s (not bracketed; measure higher "
                             "rates), so the instance count is an upper bound",
                             knee.load);
    }
    // Enough instances that none runs past its knee; the load splits evenly between them.
    row.instances = static_cast<int>(std::ceil(o.target_rate / row.capacity_rps - 1e-9));
    row.instances = std::max(row.instances, 1);
    row.gpus = row.instances * row.tp;
    row.rate_per_instance_rps = o.target_rate / row.instances;
    if (o.gpu_cost_per_hour >= 0) row.cost_per_hour = row.gpus * o.gpu_cost_per_hour;
    if (auto watts = power_at(c, row.rate_per_instance_rps)) {
      row.power_per_instance_w = *watts;
      row.energy_kwh_per_hour = row.instances * *watts / 1000.0;  // W x 1 h = Wh
      row.energy_source = c.samples.front().point->energy_source;
      if (row.rate_per_instance_rps < c.samples.front().rate) {
        row.note += std::string(row.note.empty() ? "" : "; ") +
                    fmt::format("power taken from the lowest measured rate {:.4g} req/s", c.samples.front().rate);
      }
    }
    const std::string violation = quality_floor_violation(*c.run, o.quality_floors);
    if (!violation.empty()) {
      row.status = CapacityRow::Status::kBelowFloor;
      row.note = violation;
      plan.below_floor.push_back(std::move(row));
      continue;
    }
    plan.ranked.push_back(std::move(row));
  }
  // Fewest GPUs first; then least energy (unmeasured energy last), then the larger capacity.
  std::stable_sort(plan.ranked.begin(), plan.ranked.end(), [](const CapacityRow& a, const CapacityRow& b) {
    if (a.gpus != b.gpus) return a.gpus < b.gpus;
    const double ea = a.energy_kwh_per_hour < 0 ? INFINITY : a.energy_kwh_per_hour;
    const double eb = b.energy_kwh_per_hour < 0 ? INFINITY : b.energy_kwh_per_hour;
    if (ea != eb) return ea < eb;
    return a.capacity_rps > b.capacity_rps;
  });
  return plan;
}

std::string capacity_table(const CapacityPlan& p) {
  std::string out = fmt::format(
      "capacity plan: study '{}', SLO '{}' met by {:.4g}% of requests, target {:.4g} req/s{}\n"
      "capacity = highest rate one instance sustains, interpolated between the measured bracket [lo, hi]\n\n",
      p.study, p.slo, p.attainment * 100, p.target_rate, p.workload.empty() ? "" : ", workload " + p.workload);
  TextTable t({"rank", "configuration", "capacity req/s", "bracket req/s", "instances", "GPUs", "cost/h", "kWh/h",
               p.quality_metric.empty() ? "quality" : p.quality_metric});
  int rank = 0;
  for (const auto& r : p.ranked) {
    t.add({std::to_string(++rank), r.label,
           (r.status == CapacityRow::Status::kLowerBound ? ">= " : "") + fmt::format("{:.3f}", r.capacity_rps),
           r.status == CapacityRow::Status::kLowerBound ? fmt::format("[{:.4g}, -]", r.bracket_lo_rps)
                                                        : fmt::format("[{:.4g}, {:.4g}]", r.bracket_lo_rps, r.bracket_hi_rps),
           (r.status == CapacityRow::Status::kLowerBound ? "<= " : "") + std::to_string(r.instances),
           std::to_string(r.gpus), r.cost_per_hour < 0 ? "-" : fmt::format("{:.2f}", r.cost_per_hour),
           r.energy_kwh_per_hour < 0 ? "-" : fmt::format("{:.4g}", r.energy_kwh_per_hour),
           r.has_quality ? fmt::format("{:.4g}", r.quality) : "-"});
  }
  out += p.ranked.empty() ? "no configuration can serve the target under this SLO\n" : t.render();
  for (const auto& r : p.ranked)
    if (!r.note.empty()) out += fmt::format("  note: {}: {}\n", r.label, r.note);
  if (!p.below_floor.empty()) {
    out += "\nmeet the SLO but fail the quality floor:\n";
    for (const auto& r : p.below_floor) out += fmt::format("  {}: {}\n", r.label, r.note);
  }
  if (!p.never_meets.empty()) {
    out += "\ncannot meet the SLO at any measured rate:\n";
    for (const auto& r : p.never_meets) out += fmt::format("  {}: {}\n", r.label, r.note);
  }
  return out;
}

std::string capacity_json(const CapacityPlan& p) {
  auto row_json = [](const CapacityRow& r) {
    nlohmann::ordered_json j = {{"configuration", r.label}, {"run_id", r.run_id}, {"model", r.model},
                                {"method", r.method}, {"hardware", r.hardware}, {"workload", r.workload},
                                {"tp", r.tp}, {"status", status_name(r.status)}};
    if (r.status != CapacityRow::Status::kNeverMeets) {
      j["capacity_rps"] = r.capacity_rps;
      j["bracket_lo_rps"] = r.bracket_lo_rps;
      j["attainment_at_lo"] = r.attainment_lo;
      if (r.status != CapacityRow::Status::kLowerBound) {
        j["bracket_hi_rps"] = r.bracket_hi_rps;
        j["attainment_at_hi"] = r.attainment_hi;
      }
      j["instances"] = r.instances;
      j["gpus"] = r.gpus;
      j["rate_per_instance_rps"] = r.rate_per_instance_rps;
      j["cost_per_hour"] = r.cost_per_hour < 0 ? nlohmann::ordered_json() : nlohmann::ordered_json(r.cost_per_hour);
      j["power_per_instance_w"] =
          r.power_per_instance_w < 0 ? nlohmann::ordered_json() : nlohmann::ordered_json(r.power_per_instance_w);
      j["energy_kwh_per_hour"] =
          r.energy_kwh_per_hour < 0 ? nlohmann::ordered_json() : nlohmann::ordered_json(r.energy_kwh_per_hour);
      j["energy_source"] = r.energy_source;
    } else {
      j["lowest_rate_rps"] = r.lowest_rate_rps;
      j["attainment_at_lowest"] = r.lowest_attainment;
    }
    j["quality"] = r.has_quality ? nlohmann::ordered_json(r.quality) : nlohmann::ordered_json();
    j["note"] = r.note;
    return j;
  };
  nlohmann::ordered_json j = {{"planner", "capacity"}, {"study", p.study}, {"slo", p.slo},
                              {"attainment", p.attainment}, {"target_rate", p.target_rate},
                              {"workload", p.workload}, {"quality_metric", p.quality_metric}};
  j["ranked"] = nlohmann::ordered_json::array();
  for (const auto& r : p.ranked) j["ranked"].push_back(row_json(r));
  j["below_quality_floor"] = nlohmann::ordered_json::array();
  for (const auto& r : p.below_floor) j["below_quality_floor"].push_back(row_json(r));
  j["never_meets_slo"] = nlohmann::ordered_json::array();
  for (const auto& r : p.never_meets) j["never_meets_slo"].push_back(row_json(r));
  return j.dump(2);
}

}  // namespace qmeter::plan
