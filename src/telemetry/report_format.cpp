// JSON and text renderings of an EnergyReport (+ attribution).
#include <fmt/core.h>

#include <nlohmann/json.hpp>

#include "qmeter/telemetry/session.h"

namespace qmeter::telemetry {
namespace {

using nlohmann::json;

// NaN (not measured) becomes null rather than a number.
json num(double v) { return measured(v) ? json(v) : json(nullptr); }

std::string watts(double v) { return measured(v) ? fmt::format("{:.1f}", v) : "-"; }
std::string joules(double v) { return measured(v) ? fmt::format("{:.3f}", v) : "-"; }

}  // namespace

std::string energy_report_json(const EnergyReport& r, const AttributionResult* a, bool include_samples,
                               const std::vector<PowerSample>* samples) {
  json j;
  j["duration_s"] = r.duration_s;
  j["power_interval_ms"] = r.interval_ms;
  j["total_energy_j"] = r.total_j;
  j["above_idle_energy_j"] = num(r.above_idle_j);
  j["idle_baseline_s"] = r.idle_baseline_s;
  j["sampler_cpu_s"] = r.sampler_cpu_s;
  j["sources"] = json::array();
  for (const auto& s : r.sources) {
    j["sources"].push_back({{"source", s.source},
                            {"origin", energy_origin_name(s.origin)},
                            {"energy_j", s.energy_j},
                            {"above_idle_energy_j", num(s.above_idle_j)},
                            {"avg_power_w", num(s.avg_power_w)},
                            {"peak_power_w", num(s.peak_power_w)},
                            {"idle_power_w", num(s.idle_power_w)}});
  }
  j["devices"] = json::array();
  for (const auto& d : r.devices) {
    j["devices"].push_back({{"source", d.device.source},
                            {"index", d.device.index},
                            {"name", d.device.name},
                            {"uuid", d.device.uuid},
                            {"pci_bus_id", d.device.pci_bus_id},
                            {"power_kind", d.device.power_kind},
                            {"power_limit_w", num(d.device.power_limit_w)},
                            {"energy_j", d.energy_j},
                            {"energy_used", energy_origin_name(d.origin)},
                            {"counter_energy_j", num(d.counter_j)},
                            {"integrated_energy_j", num(d.integrated_j)},
                            {"avg_power_w", num(d.avg_power_w)},
                            {"peak_power_w", num(d.peak_power_w)},
                            {"idle_power_w", num(d.idle_power_w)},
                            {"above_idle_energy_j", num(d.above_idle_j)},
                            {"samples", d.samples}});
  }
  j["notes"] = r.notes;
  if (a != nullptr) {
    json p;
    p["window_energy_j"] = a->window_energy_j;
    p["attributed_energy_j"] = a->attributed_j;
    p["unattributed_energy_j"] = a->unattributed_j;
    p["attributed_above_idle_energy_j"] = a->attributed_above_idle_j;
    p["prefill_energy_j"] = a->prefill_j;
    p["decode_energy_j"] = a->decode_j;
    p["mean_energy_per_request_j"] = num(a->j_per_request_mean);
    p["median_energy_per_request_j"] = num(a->j_per_request_p50);
    p["p90_energy_per_request_j"] = num(a->j_per_request_p90);
    p["p99_energy_per_request_j"] = num(a->j_per_request_p99);
    p["energy_per_output_token_j"] = num(a->j_per_output_token);
    p["energy_per_prefill_token_j"] = num(a->j_per_prefill_token);
    p["energy_per_decode_token_j"] = num(a->j_per_decode_token);
    p["mean_above_idle_energy_per_request_j"] = num(a->above_idle_j_per_request_mean);
    p["above_idle_energy_per_output_token_j"] = num(a->above_idle_j_per_output_token);
    p["slo_classes"] = json::array();
    for (const auto& c : a->slo_classes)
      p["slo_classes"].push_back({{"slo_class", c.slo_class},
                                  {"compliant_requests", c.compliant_requests},
                                  {"energy_per_compliant_request_j", num(c.j_per_compliant_request)},
                                  {"above_idle_energy_per_compliant_request_j",
                                   num(c.above_idle_j_per_compliant_request)}});
    j["per_request"] = std::move(p);
  }
  if (include_samples && samples != nullptr) {
    // Columns rather than objects: a long run holds hundreds of thousands of samples.
    json cols = {{"t_s", json::array()},           {"device", json::array()},       {"power_w", json::array()},
                 {"energy_j", json::array()},      {"sm_clock_mhz", json::array()}, {"mem_clock_mhz", json::array()},
                 {"gpu_util_pct", json::array()},  {"mem_util_pct", json::array()}, {"mem_used_bytes", json::array()},
                 {"temperature_c", json::array()}};
    for (const auto& s : *samples) {
      cols["t_s"].push_back(ns_to_s(s.t_ns - r.t0_ns));
      cols["device"].push_back(s.device);
      cols["power_w"].push_back(num(s.power_w));
      cols["energy_j"].push_back(num(s.energy_j));
      cols["sm_clock_mhz"].push_back(num(s.sm_clock_mhz));
      cols["mem_clock_mhz"].push_back(num(s.mem_clock_mhz));
      cols["gpu_util_pct"].push_back(num(s.gpu_util_pct));
      cols["mem_util_pct"].push_back(num(s.mem_util_pct));
      cols["mem_used_bytes"].push_back(num(s.mem_used_bytes));
      cols["temperature_c"].push_back(num(s.temperature_c));
    }
    j["samples"] = std::move(cols);
  }
  return j.dump(2);
}

std::vector<std::string> energy_summary_lines(const EnergyReport& r, const AttributionResult* a) {
  std::vector<std::string> out;
  out.push_back(fmt::format("{:<6} {:>3} {:<34} {:>12} {:<9} {:>12} {:>12} {:>9} {:>9} {:>8} {:>12}", "source", "dev",
                            "name", "energy_J", "used", "counter_J", "integr_J", "avg_W", "peak_W", "idle_W",
                            "above_idle_J"));
  for (const auto& d : r.devices) {
    std::string name = d.device.name.size() > 34 ? d.device.name.substr(0, 31) + "..." : d.device.name;
    out.push_back(fmt::format("{:<6} {:>3} {:<34} {:>12} {:<9} {:>12} {:>12} {:>9} {:>9} {:>8} {:>12}", d.device.source,
                              d.device.index, name, joules(d.energy_j), energy_origin_name(d.origin),
                              joules(d.counter_j), joules(d.integrated_j), watts(d.avg_power_w),
                              watts(d.peak_power_w), watts(d.idle_power_w), joules(d.above_idle_j)));
  }
  for (const auto& s : r.sources)
    out.push_back(fmt::format("total {}: {} J ({}), avg {} W, peak {} W, above idle {} J", s.source, joules(s.energy_j),
                              energy_origin_name(s.origin), watts(s.avg_power_w), watts(s.peak_power_w),
                              joules(s.above_idle_j)));
  out.push_back(fmt::format("total energy: {} J over {:.3f} s (above idle: {} J; sampling every {} ms, sampler CPU {:.3f} s)",
                            joules(r.total_j), r.duration_s, joules(r.above_idle_j), r.interval_ms, r.sampler_cpu_s));
  if (a != nullptr) {
    out.push_back(fmt::format("per request: mean {} J, p50 {} J, p99 {} J; {} J/output token; prefill {} J/token, "
                              "decode {} J/token; unattributed {} J",
                              joules(a->j_per_request_mean), joules(a->j_per_request_p50), joules(a->j_per_request_p99),
                              joules(a->j_per_output_token), joules(a->j_per_prefill_token),
                              joules(a->j_per_decode_token), joules(a->unattributed_j)));
    for (const auto& c : a->slo_classes)
      out.push_back(fmt::format("  SLO class {}: {} compliant requests, {} J per compliant request", c.slo_class,
                                c.compliant_requests, joules(c.j_per_compliant_request)));
  }
  return out;
}

}  // namespace qmeter::telemetry
