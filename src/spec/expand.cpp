// Matrix expansion: models x methods x tp x hardware x repeats -> RunConfigs with stable ids.
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "qmeter/core/error.h"
#include "qmeter/spec/study_spec.h"

namespace qmeter::spec {

namespace {

using nlohmann::json;

json num(double v) { return std::isinf(v) ? json("inf") : json(v); }

bool is_utf8(const std::string& s) {
  try {
    (void)json(s).dump();
    return true;
  } catch (const json::type_error&) {
    return false;
  }
}

// The dotted path of the first key or string in `j` that is not UTF-8 ("" when all are). YAML
// specs must be UTF-8; yaml-cpp does not check, so a stray byte surfaces here, in the run hash.
std::string non_utf8_field(const json& j, const std::string& path) {
  if (j.is_string()) return is_utf8(j.get_ref<const std::string&>()) ? "" : path;
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string p = path.empty() ? it.key() : path + "." + it.key();
      if (!is_utf8(it.key())) return path.empty() ? "(a key)" : path + " (a key)";
      if (std::string bad = non_utf8_field(it.value(), p); !bad.empty()) return bad;
    }
  }
  if (j.is_array()) {
    for (std::size_t i = 0; i < j.size(); ++i)
      if (std::string bad = non_utf8_field(j[i], path + "[" + std::to_string(i) + "]"); !bad.empty()) return bad;
  }
  return "";
}

json workload_json(const WorkloadSpec& w) {
  json points = json::array();
  for (const auto& p : w.points) points.push_back({{"kind", p.kind}, {"value", num(p.value)}});
  json j = {{"name", w.name},         {"dataset", w.dataset},       {"input_len", w.input_len},
            {"output_len", w.output_len}, {"range_ratio", w.range_ratio}, {"num_prompts", w.num_prompts},
            {"arrival", w.arrival},   {"burstiness", w.burstiness}, {"points", points},
            {"warmup", w.warmup},     {"timeout_s", w.timeout_s},   {"endpoint", w.endpoint},
            {"trace_time_scale", w.trace_time_scale}};
  // Keys that change no earlier study's run ids: present only when set.
  if (w.max_connections > 0) j["max_connections"] = w.max_connections;
  if (w.client_bound_threshold_ms > 0) j["client_bound_threshold_ms"] = w.client_bound_threshold_ms;
  if (w.turns > 0) j["turns"] = w.turns;
  if (w.think_time_s > 0) j["think_time_s"] = w.think_time_s;
  if (w.num_prefixes > 0) j["num_prefixes"] = w.num_prefixes;
  if (w.prefix_len > 0) j["prefix_len"] = w.prefix_len;
  if (!w.trace_window.empty()) j["trace_window"] = w.trace_window;
  if (w.search_enabled) {
    j["search"] = {{"slo", w.search.slo}, {"lo", w.search.lo}, {"hi", w.search.hi},
                   {"iterations", w.search.iterations}, {"attainment", w.search.attainment}};
  }
  return j;
}

}  // namespace

std::vector<RunConfig> expand_runs(const StudySpec& s) {
  std::vector<RunConfig> out;
  json workloads = json::array(), slos = json::array(), quality = json::array();
  for (const auto& w : s.workloads) workloads.push_back(workload_json(w));
  for (const auto& c : s.slos) {
    slos.push_back({{"name", c.name}, {"ttft_ms", c.ttft_ms}, {"tpot_ms", c.tpot_ms}, {"e2e_ms", c.e2e_ms}, {"itl_ms", c.itl_ms}});
  }
  for (const auto& q : s.quality) quality.push_back({{"task", q.task}, {"options", q.options}});
  const json backend = {{"kind", s.backend.kind},       {"argv", s.backend.argv},
                        {"env", s.backend.env},         {"url", s.backend.url},
                        {"ready_path", s.backend.ready_path}, {"served_model", s.backend.served_model},
                        {"options", s.backend.options}};
  const json energy = {{"source", s.energy.source}, {"interval_ms", s.energy.interval_ms}, {"idle_s", s.energy.idle_s}};

  for (const auto& model : s.models) {
    for (const auto& method : s.methods) {
      for (int tp : s.tp) {
        for (const auto& hw : s.hardware) {
          for (int rep = 0; rep < s.repeats; ++rep) {
            RunConfig r;
            r.study = s.name;
            r.model = model;
            r.method = method;
            const auto checkpoint = method.checkpoints.find(model.name);
            r.checkpoint = checkpoint == method.checkpoints.end() ? model.path : checkpoint->second;
            r.tp = tp;
            r.hardware = hw;
            r.repeat = rep;
            r.backend = s.backend;
            r.workloads = s.workloads;
            r.slos = s.slos;
            r.quality = s.quality;
            r.energy = s.energy;
            r.seed = s.seed;
            // Everything that can change a result is in the hash; nlohmann's object is a sorted
            // map, so the dump is canonical.
            json j = {{"study", s.name},
                      {"model", {{"name", model.name}, {"path", model.path}}},
                      {"method", {{"name", method.name}, {"options", method.options}}},
                      {"tp", tp},
                      {"hardware", {{"power_limit_w", hw.power_limit_w}, {"locked_clock_mhz", hw.locked_clock_mhz}}},
                      {"repeat", rep},
                      {"backend", backend},
                      {"workloads", workloads},
                      {"slos", slos},
                      {"quality", quality},
                      {"energy", energy},
                      {"seed", s.seed}};
            // Only a partition factor adds the key: earlier studies keep their run ids.
            if (!hw.partition.empty()) j["hardware"]["partition"] = hw.partition;
            // The weights served are what is measured; present only when a method names them.
            if (checkpoint != method.checkpoints.end()) j["method"]["checkpoint"] = checkpoint->second;
            if (std::string bad = non_utf8_field(j, ""); !bad.empty())
              throw UsageError("study '" + s.name + "': " + bad + ": not valid UTF-8 text (a YAML spec must be UTF-8)");
            r.normalized_json = j.dump();
            char buf[17];
            std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(fnv1a64(r.normalized_json)));
            r.id = buf;
            out.push_back(std::move(r));
          }
        }
      }
    }
  }
  return out;
}

}  // namespace qmeter::spec
