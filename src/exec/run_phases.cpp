#include "run_phases.h"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <set>
#include <nlohmann/json.hpp>

#include "qmeter/backend/backend.h"
#include "qmeter/core/error.h"
#include "qmeter/loadgen/loadgen.h"
#include "qmeter/workload/schedule.h"
#include "qmeter/exec/hardware_settings.h"
#include "record_rows.h"
#include "run_hooks.h"

namespace qmeter::exec {

namespace {

loadgen::MetricsOptions metrics_options(const spec::RunConfig& run) {
  loadgen::MetricsOptions m;
  for (const auto& s : run.slos) m.slos.push_back({s.name, s.ttft_ms, s.tpot_ms, s.e2e_ms, s.itl_ms});
  return m;
}

struct PointResult {
  bool cancelled = false;
  double attainment_first_slo = -1;
  std::map<std::string, double> attainment;  // SLO class -> attainment
  int failed = 0, measured = 0;
  int connect_failures = 0;
};

PointResult run_point(const spec::RunConfig& run, const spec::WorkloadSpec& w, const spec::LoadPoint& p,
                      const std::string& kind, int index, backend::Backend& be, RunInstruments& instruments,
                      store::Store& db, const StudyOptions& o) {
  workload::DatasetOptions d;
  d.spec = w.dataset;
  d.num_prompts = w.num_prompts + w.warmup;
  d.input_len = w.input_len;
  d.output_len = w.output_len;
  d.range_ratio = w.range_ratio;
  // Multi-turn, shared-prefix and trace workloads (issue #20); 0 / "" keeps the dataset's default.
  if (w.turns > 0) d.turns = w.turns;
  d.think_time_s = w.think_time_s;
  if (w.num_prefixes > 0) d.num_prefixes = w.num_prefixes;
  if (w.prefix_len > 0) d.prefix_len = w.prefix_len;
  if (!w.trace_window.empty()) workload::parse_trace_window(w.trace_window, d, "trace_window");
  d.seed = run.seed + static_cast<std::uint64_t>(run.repeat) * 1000003ULL;
  // The workload library names a bad field as the spec does (workloads[0].num_prompts), not --num-prompts.
  const auto at = std::find_if(run.workloads.begin(), run.workloads.end(), [&](const spec::WorkloadSpec& x) { return &x == &w; });
  d.field_names = FieldNames::spec(at == run.workloads.end() ? "workload " + w.name
                                                            : fmt::format("workloads[{}]", at - run.workloads.begin()));
  workload::ArrivalOptions a;
  a.seed = d.seed;
  a.burstiness = w.burstiness;
  a.trace_time_scale = w.trace_time_scale;
  if (p.kind == "concurrency") {
    a.kind = "closed";
    a.max_concurrency = static_cast<int>(p.value);
  } else {
    a.kind = std::isinf(p.value) ? "inf" : w.arrival;
    a.request_rate = std::isinf(p.value) ? -1 : p.value;
  }
  const auto schedule = workload::build_schedule(d, a);
  if (o.progress) {
    fmt::print(stderr, "    phase: load point {} ({} {} {:g}, {} requests)\n", index + 1, w.name, kind, p.value,
               w.num_prompts + w.warmup);
  }

  loadgen::LoadgenOptions lo;
  lo.client.base_url = be.base_url();
  lo.client.endpoint = w.endpoint;
  lo.client.model = be.served_model();
  lo.client.timeout_s = w.timeout_s;
  lo.warmup = w.warmup;
  lo.metrics = metrics_options(run);
  if (w.max_connections > 0) lo.max_connections = w.max_connections;
  lo.metrics.client_bound_threshold_ms = w.client_bound_threshold_ms;
  lo.cancel = o.cancel;
  lo.progress = false;
  lo.observers = instruments.observers();

  loadgen::RunInfo info;
  info.base_url = be.base_url();
  info.endpoint = w.endpoint;
  info.model_id = be.served_model();
  info.dataset = w.dataset;
  info.arrival = a.kind;
  info.request_rate = a.request_rate;
  info.burstiness = w.burstiness;
  info.max_concurrency = a.max_concurrency;
  info.num_prompts = w.num_prompts;
  info.warmup = w.warmup;
  info.seed = d.seed;
  info.schedule_description = schedule.description;

  auto result = loadgen::run_load(schedule, lo, info);
  PointResult out;
  if (o.cancel && o.cancel->load()) {
    out.cancelled = true;  // an interrupted point is not written: the resume measures it again
    return out;
  }
  auto row = load_point_row(result, lo.metrics);
  row.run_id = run.id;
  row.index = index;
  row.target_kind = kind;
  row.target_value = p.value;
  nlohmann::json mj = nlohmann::json::parse(row.metrics_json);
  mj["workload"] = w.name;
  row.metrics_json = mj.dump();
  PointSideData side = instruments.point_side_data();
  auto rows = request_rows(result);
  instruments.attach_request_energy(rows);
  db.write_load_point(row, rows, side.samples, side.server_metrics);

  out.measured = static_cast<int>(result.metrics.measured);
  out.failed = static_cast<int>(result.metrics.failed);
  for (const auto& [k, n] : result.metrics.failed_by_kind) {
    if (k == "connect_failed") out.connect_failures += static_cast<int>(n);
  }
  // The search's rule is the analysis': steady-state attainment, and none for a point that was
  // client-bound or could not sustain its offered load.
  const auto& slos = result.metrics.steady.defined ? result.metrics.steady.slo : result.metrics.slo;
  for (const auto& s : slos) out.attainment[s.slo.name] = result.metrics.verdict.sustainable ? s.attainment : 0.0;
  if (o.progress && !result.metrics.verdict.sustainable) {
    fmt::print(stderr, "    not sustainable: {}{}\n", result.metrics.verdict.client_bound_reason,
               result.metrics.verdict.saturation_reason);
  }
  if (o.progress) {
    fmt::print(stderr, "    {} {} {:g}: {} ok / {} failed, {:.1f} tok/s, p99 TTFT {:.1f} ms, p99 TPOT {:.2f} ms\n", w.name,
               kind, p.value, result.metrics.completed, result.metrics.failed, result.metrics.output_throughput,
               row.p99_ttft_ms, row.p99_tpot_ms);
  }
  return out;
}

}  // namespace

std::string server_process_record(const std::string& out_dir, const std::string& run_id) {
  return (std::filesystem::path(out_dir) / run_id / "server.pgid").string();
}

RunOutcome execute_run(const spec::RunConfig& run, store::Store& db, const StudyOptions& o) {
  const std::string run_dir = (std::filesystem::path(o.out_dir) / run.id).string();
  std::filesystem::create_directories(run_dir);
  backend::RunContext ctx = backend::run_context(run);
  ctx.log_path = run_dir + "/server.log";
  ctx.process_record_path = server_process_record(o.out_dir, run.id);

  // The hardware setting holds for the run's whole life (idle baseline included); restored when
  // `hardware` goes out of scope, after the backend (declared after it) has stopped.
  std::unique_ptr<AppliedHardwareSetting> hardware;
  try {
    hardware = std::make_unique<AppliedHardwareSetting>(run.hardware);
    for (const auto& note : hardware->notes()) {
      if (o.progress) fmt::print(stderr, "    {}\n", note);
    }
  } catch (const std::exception& e) {
    return {store::RunStatus::kFailed, e.what(), ""};
  }
  std::unique_ptr<backend::Backend> be;
  try {
    be = backend::make_backend(run.backend);
    be->start(ctx);
  } catch (const backend::BackendError& e) {
    return {store::RunStatus::kFailed, std::string("backend failed to start: ") + e.what(), e.log_tail()};
  } catch (const std::exception& e) {
    return {store::RunStatus::kFailed, std::string("backend failed to start: ") + e.what(), be ? be->log_tail() : ""};
  }
  auto died = [&](const std::string& when) {
    std::string tail = be->log_tail();
    be->stop();
    return RunOutcome{store::RunStatus::kFailed, "server died " + when, tail};
  };
  auto interrupted = [&](const std::string& during) {
    be->stop();
    return RunOutcome{store::RunStatus::kInterrupted,
                      fmt::format("interrupted during {}: the points before it are kept until a resume measures the "
                                  "run again",
                                  during),
                      ""};
  };
  try {
    RunInstruments instruments(run, *be);
    db.write_run_samples(run.id, instruments.idle_samples());
    if (!be->alive()) return died("during the idle baseline");
    int index = 0;
    for (const auto& w : run.workloads) {
      for (const auto& p : w.points) {
        auto r = run_point(run, w, p, p.kind, index++, *be, instruments, db, o);
        if (r.cancelled) return interrupted(fmt::format("load point {} {:g} of workload {}", p.kind, p.value, w.name));
        if (!be->alive()) return died(fmt::format("during load point {} {:g} of workload {}", p.kind, p.value, w.name));
        if (r.measured > 0 && r.connect_failures == r.measured) {
          std::string tail = be->log_tail();
          be->stop();
          return {store::RunStatus::kFailed, "server stopped accepting connections", tail};
        }
      }
      if (w.search_enabled) {
        // Bisection (in log space) for the highest rate meeting the SLO class at the attainment.
        double lo = w.search.lo, hi = w.search.hi;
        for (int it = 0; it < w.search.iterations; ++it) {
          const double mid = std::sqrt(lo * hi);
          auto r = run_point(run, w, {"rate", mid}, "search", index++, *be, instruments, db, o);
          if (r.cancelled) return interrupted(fmt::format("the SLO-knee search of workload {}", w.name));
          if (!be->alive()) return died("during the SLO-knee search");
          (r.attainment[w.search.slo] >= w.search.attainment ? lo : hi) = mid;
        }
      }
    }
    // Quality last, each task on its own (quality_phase.cpp): a task that fails, or a server that
    // dies while scoring, costs only the tasks it touched; every load point is already stored.
    if (o.progress && !run.quality.empty()) fmt::print(stderr, "    phase: quality ({} task(s))\n", run.quality.size());
    run_quality_phase(run, *be, db, o);
    if (!be->alive() && o.progress) fmt::print(stderr, "    the server died during the quality phase\n");
  } catch (const store::DatabaseError&) {
    be->stop();
    throw;  // the study stops; the run stays unfinished, so the resume measures it
  } catch (const std::exception& e) {
    std::string tail = be->log_tail();
    be->stop();
    return {store::RunStatus::kFailed, e.what(), tail};
  }
  be->stop();
  return {};
}

std::string summary_table(const store::Store& db, const std::string& study) {
  std::string out = fmt::format("{:<16} {:<24} {:<12} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10}  {}\n", "model", "method",
                                "point", "req/s", "out tok/s", "p99 TTFT", "p99 TPOT", "goodput", "J/token", "quality");
  for (const auto& r : db.runs(study)) {
    std::string quality;
    // Headline metrics only; every metric is in the store and the report.
    static const std::set<std::string> kHeadline = {"perplexity", "acc", "acc_norm", "exact_match_flexible", "kl_mean",
                                                    "top1_agreement"};
    for (const auto& q : db.quality_results(r.id)) {
      if (kHeadline.count(q.metric)) quality += fmt::format("{}{}={:.4g}", quality.empty() ? "" : " ", q.metric, q.value);
    }
    if (r.status == store::RunStatus::kFailed) {
      out += fmt::format("{:<16} {:<24} FAILED: {}\n", r.model, r.method, r.error.substr(0, 80));
      continue;
    }
    for (const auto& p : db.load_points(r.id)) {
      double goodput = NAN;
      try {
        auto j = nlohmann::json::parse(p.metrics_json);
        if (j.contains("request_goodput")) goodput = j["request_goodput"].get<double>();
      } catch (...) {
      }
      out += fmt::format("{:<16} {:<24} {:<12} {:>8.2f} {:>10.1f} {:>10.1f} {:>10.2f} {:>10.2f} {:>10.4g}  {}\n", r.model,
                         r.method, fmt::format("{}={:g}", p.target_kind, p.target_value), p.request_throughput,
                         p.output_throughput, p.p99_ttft_ms, p.p99_tpot_ms, goodput, p.energy_per_token_j, quality);
      quality.clear();
    }
  }
  return out;
}

}  // namespace qmeter::exec
