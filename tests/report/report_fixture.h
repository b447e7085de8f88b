#pragma once
// Study databases with known numbers for the report tests, written through the store API.
//   demo:    3 methods (fp16, w8a16, w4a16-rtn) x 3 offered rates (1, 2, 4 req/s), quality results,
//            telemetry samples (idle + load), and a failed run (awq) with an error that holds
//            "</script>" to prove the page's escaping.
//   partial: one complete run without energy, quality or telemetry, and one failed run.
//   empty:   a study with a spec and no runs.
#include <fmt/core.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "qmeter/store/store.h"

namespace qmeter::report_test {

struct MethodNumbers {
  std::string method, name;  // run label, method name in the config
  nlohmann::json options;
  double ttft_p50[3], ttft_p99[3], tpot_p50[3], tpot_p99[3], e2e_p50[3], e2e_p99[3];
  double energy_per_token[3], energy_per_request[3], avg_power[3];
  double attain_interactive[3];
  double achieved[3];
  int mismatches[3];
  std::string energy_source;
};

inline const double kLoads[3] = {1, 2, 4};

inline std::vector<MethodNumbers> demo_methods() {
  return {
      {"fp16", "fp16", nlohmann::json::object(),
       {30, 35, 60}, {80, 95, 180}, {10, 12, 20}, {20, 25, 40}, {500, 600, 900}, {900, 1100, 1900},
       {0.50, 0.45, 0.40}, {64, 58, 51}, {150, 180, 230},
       {1.0, 0.95, 0.5}, {0.99, 1.98, 3.2}, {0, 0, 0}, "counter"},
      {"w8a16", "w8a16", nlohmann::json::object(),
       {25, 28, 40}, {60, 70, 120}, {8, 9, 15}, {15, 18, 30}, {400, 450, 700}, {700, 800, 1300},
       {0.35, 0.30, 0.28}, {45, 38, 36}, {120, 140, 190},
       {1.0, 1.0, 0.92}, {0.99, 1.99, 3.96}, {0, 0, 0}, "counter"},
      {"w4a16-rtn", "w4a16-rtn", {{"bits", "4"}, {"group_size", "128"}},
       {20, 24, 70}, {50, 60, 250}, {6, 7, 22}, {12, 14, 45}, {300, 350, 1000}, {600, 700, 2100},
       {0.30, 0.26, 0.25}, {38, 33, 32}, {100, 110, 170},
       {0.8, 0.7, 0.1}, {1.0, 1.98, 3.9}, {0, 0, 3}, "modelled"},
  };
}

inline std::string slos_json() {
  return R"([{"name":"interactive","ttft_ms":200.0,"tpot_ms":50.0,"e2e_ms":2000.0,"itl_ms":-1.0},
             {"name":"batch","ttft_ms":2000.0,"tpot_ms":200.0,"e2e_ms":-1.0,"itl_ms":-1.0}])";
}

inline store::RunRow run_row(const std::string& study, const std::string& id, const std::string& method,
                             const std::string& name, const nlohmann::json& options) {
  store::RunRow r;
  r.id = id;
  r.study = study;
  r.model = "tiny";
  r.method = method;
  nlohmann::json cfg = {{"method", {{"name", name}, {"options", options}}},
                        {"tp", 1},
                        {"hardware", {{"power_limit_w", -1.0}, {"locked_clock_mhz", -1.0}}},
                        {"slos", nlohmann::json::parse(slos_json())}};
  r.config_json = cfg.dump();
  r.host_json = R"({"hostname":"bench-host","cpu":"Test CPU 9000","cpus":16,"gpu":"none"})";
  r.versions_json = R"({"qmeter":"0.1.0","sqlite":"3.40.1"})";
  return r;
}

inline void write_demo_study(store::Store& db) {
  db.put_study("demo", "study: {name: demo}\nmethods: [fp16, w8a16, w4a16-rtn, awq]\nslos:\n  interactive: "
                       "{ttft_ms: 200, tpot_ms: 50, e2e_ms: 2000}\n  batch: {ttft_ms: 2000, tpot_ms: 200}\n");
  std::int64_t t_ns = 1'000'000'000;
  int run_index = 0;
  for (const auto& m : demo_methods()) {
    const std::string id = fmt::format("run{:02d}{}", run_index++, m.method.substr(0, 4));
    db.begin_run(run_row("demo", id, m.method, m.name, m.options));
    // Idle baseline: 10 samples at 50 W, 0.1 s apart.
    std::vector<store::TelemetrySampleRow> idle;
    for (int i = 0; i < 10; ++i, t_ns += 100'000'000) idle.push_back({t_ns, "idle", "nvml", "gpu0", 50.0});
    db.write_run_samples(id, idle);
    for (int k = 0; k < 3; ++k) {
      store::LoadPointRow p;
      p.run_id = id;
      p.index = k;
      p.target_kind = "rate";
      p.target_value = kLoads[k];
      p.achieved_rate = m.achieved[k];
      p.duration_s = 30;
      p.completed = 100;
      p.request_throughput = m.achieved[k];
      p.output_throughput = m.achieved[k] * 128;
      p.p50_ttft_ms = m.ttft_p50[k];
      p.p99_ttft_ms = m.ttft_p99[k];
      p.p50_tpot_ms = m.tpot_p50[k];
      p.p99_tpot_ms = m.tpot_p99[k];
      p.p99_e2el_ms = m.e2e_p99[k];
      p.energy_per_token_j = m.energy_per_token[k];
      p.avg_power_w = m.avg_power[k];
      p.energy_source = m.energy_source;
      nlohmann::json metrics = {
          {"workload", "chat"},
          {"completed", 100},
          {"failed", 0},
          {"token_count_mismatches", m.mismatches[k]},
          {"request_throughput", m.achieved[k]},
          {"output_throughput", m.achieved[k] * 128},
          {"median_ttft_ms", m.ttft_p50[k]},
          {"p99_ttft_ms", m.ttft_p99[k]},
          {"median_tpot_ms", m.tpot_p50[k]},
          {"p99_tpot_ms", m.tpot_p99[k]},
          {"median_e2el_ms", m.e2e_p50[k]},
          {"p99_e2el_ms", m.e2e_p99[k]},
          {"energy_per_request_j", m.energy_per_request[k]},
          {"slo",
           {{"interactive", {{"attainment", m.attain_interactive[k]}, {"request_goodput", m.achieved[k] * m.attain_interactive[k]}}},
            {"batch", {{"attainment", 1.0}, {"request_goodput", m.achieved[k]}}}}}};
      p.metrics_json = metrics.dump();
      p.energy_json = R"({"source":")" + m.energy_source + R"("})";
      std::vector<store::RequestRow> requests;
      for (int r = 0; r < 3; ++r) {
        store::RequestRow q;
        q.index = r;
        q.scheduled_ns = t_ns + r * 1000;
        q.sent_ns = q.scheduled_ns + 10;
        q.first_token_ns = q.scheduled_ns + 30'000'000;
        q.end_ns = q.scheduled_ns + 500'000'000;
        q.prompt_tokens = 16;
        q.output_tokens = 128;
        q.client_tokens = 128;
        q.http_status = 200;
        q.chunks_json = "[[1,1],[2,127]]";
        q.text = "a reply with <b>markup</b> and </script> inside";
        requests.push_back(q);
      }
      // 20 load samples, 0.1 s apart, at 100 + 20 * load watts.
      std::vector<store::TelemetrySampleRow> samples;
      for (int i = 0; i < 20; ++i, t_ns += 100'000'000)
        samples.push_back({t_ns, "load", "nvml", "gpu0", 100.0 + 20.0 * kLoads[k]});
      db.write_load_point(p, requests, samples, {});
    }
    db.finish_run(id, store::RunStatus::kComplete);
  }
  // Quality: perplexity and accuracy for all three, KL for the two quantized ones.
  struct Q {
    const char* task;
    const char* metric;
    double v[3], se[3];
  };
  const Q qualities[] = {{"perplexity:tiny", "perplexity", {5.00, 5.02, 5.40}, {0.05, 0.05, 0.06}},
                         {"mc:arc", "acc", {0.60, 0.59, 0.52}, {0.02, 0.02, 0.02}}};
  const auto runs = db.runs("demo");
  for (std::size_t i = 0; i < 3; ++i) {
    for (const auto& q : qualities) {
      db.write_quality(runs[i].id, q.task, {{runs[i].id, q.task, q.metric, q.v[i], q.se[i], 200}}, {});
    }
    if (i > 0) {
      const double kl = i == 1 ? 0.01 : 0.08;
      db.write_quality(runs[i].id, "kl", {{runs[i].id, "kl", "kl", kl, kl / 10, 200}}, {});
    }
  }
  // The failed run: no load point, an error holding markup the page must escape.
  db.begin_run(run_row("demo", "run03awq", "awq", "awq", nlohmann::json::object()));
  db.finish_run("run03awq", store::RunStatus::kFailed,
                "backend exited during startup </script><script>window.pwned=1</script>", "fatal: CUDA out of memory");
}

// A partial study (one complete run, no energy/quality/telemetry; one failed run) and an empty one.
inline void write_partial_and_empty_studies(store::Store& db) {
  db.put_study("partial", "study: partial\n");
  db.begin_run(run_row("partial", "p1", "fp16", "fp16", nlohmann::json::object()));
  for (int k = 0; k < 2; ++k) {
    store::LoadPointRow p;
    p.run_id = "p1";
    p.index = k;
    p.target_kind = "rate";
    p.target_value = kLoads[k];
    p.achieved_rate = kLoads[k];
    p.completed = 10;
    p.energy_source = "none";
    p.metrics_json = nlohmann::json({{"median_ttft_ms", 10.0 + k},
                                     {"p99_ttft_ms", 20.0 + k},
                                     {"median_tpot_ms", 3.0},
                                     {"p99_tpot_ms", 4.0 + k},
                                     {"median_e2el_ms", 100.0},
                                     {"p99_e2el_ms", 150.0 + k},
                                     {"request_throughput", kLoads[k]},
                                     {"output_throughput", kLoads[k] * 64},
                                     {"slo", {{"interactive", {{"attainment", 1.0}, {"request_goodput", kLoads[k]}}}}}})
                         .dump();
    db.write_load_point(p, {}, {}, {});
  }
  db.finish_run("p1", store::RunStatus::kComplete);
  db.begin_run(run_row("partial", "p2", "w8a16", "w8a16", nlohmann::json::object()));
  db.finish_run("p2", store::RunStatus::kFailed, "server died during load point rate 1", "");
  db.put_study("empty", "study: empty\n");
}

}  // namespace qmeter::report_test
