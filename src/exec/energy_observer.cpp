#include "qmeter/exec/energy_observer.h"

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>

#include "qmeter/loadgen/metrics.h"
#include "qmeter/telemetry/attribution.h"
#include "qmeter/telemetry/session.h"

namespace qmeter::exec {

struct EnergyObserver::Impl {
  EnergyOptions options;
  std::vector<std::string> notes;
  std::unique_ptr<telemetry::TelemetrySession> session;
  Nanos idle_end_ns = 0;
  Nanos load_start_ns = 0, load_stop_ns = 0;
  std::vector<store::TelemetrySampleRow> rows(Nanos t0, Nanos t1, const char* phase) const;
  std::map<std::int64_t, double> per_request_j;
};

EnergyObserver::EnergyObserver(EnergyOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  if (impl_->options.source == "none") return;
  auto samplers = telemetry::open_samplers(impl_->options.source, telemetry::SamplerConfig{}, impl_->notes);
  if (samplers.empty()) return;
  telemetry::SessionOptions so;
  so.interval_ns = ms_to_ns(impl_->options.interval_ms);
  impl_->session = std::make_unique<telemetry::TelemetrySession>(std::move(samplers), so);
}

EnergyObserver::~EnergyObserver() = default;

bool EnergyObserver::active() const { return impl_->session && !impl_->session->empty(); }
const std::vector<std::string>& EnergyObserver::notes() const { return impl_->notes; }

void EnergyObserver::prepare() {
  if (!active()) return;
  impl_->session->start();
  impl_->session->measure_idle_baseline(impl_->options.idle_s);
  impl_->idle_end_ns = steady_now_ns();
}

void EnergyObserver::on_run_stop(std::span<const client::RequestRecord> records, Nanos start_ns, Nanos stop_ns,
                                 loadgen::ResultExtras& extras) {
  if (!active()) {
    extras.strings.emplace_back("energy_source", "none");
    return;
  }
  impl_->load_start_ns = start_ns;
  impl_->load_stop_ns = stop_ns;
  // The session keeps running across load points; wait for one sample past the window's end so
  // the window's edge is interpolated, not clipped.
  sleep_until_ns(stop_ns + ms_to_ns(impl_->options.interval_ms * 1.5));
  const auto report = impl_->session->report(start_ns, stop_ns);
  // Attribution over the measured (non-warmup) requests that were sent.
  std::vector<telemetry::AttributionRequest> reqs;
  std::vector<std::int64_t> index_of;
  for (const auto& r : records) {
    if (r.warmup || r.sent_ns == 0) continue;
    telemetry::AttributionRequest a;
    a.id = r.index;
    a.start_ns = r.sent_ns;
    a.first_token_ns = r.first_token_ns;
    a.end_ns = r.end_ns;
    a.prompt_tokens = std::max(0, r.server_prompt_tokens >= 0 ? r.server_prompt_tokens : r.expected_prompt_tokens);
    a.output_tokens = r.ok() ? r.output_tokens() : r.client_tokens;
    for (const auto& c : r.chunks) a.chunks.push_back({c.t_ns, c.tokens});
    reqs.push_back(std::move(a));
    index_of.push_back(r.index);
  }
  const auto intervals = impl_->session->energy_intervals(start_ns, stop_ns);
  const auto attribution = telemetry::attribute_energy(intervals, reqs);
  for (std::size_t i = 0; i < attribution.requests.size(); ++i) {
    impl_->per_request_j[index_of[i]] = attribution.requests[i].energy_j;
  }
  // The weakest origin among the sources labels every derived figure.
  std::string origin = "counter";
  for (const auto& s : report.sources) {
    const std::string o(telemetry::energy_origin_name(s.origin));
    if (o == "modelled" || (o == "sampled" && origin == "counter")) origin = o;
  }
  auto num = [&](const char* k, double v) {
    if (std::isfinite(v)) extras.numbers.emplace_back(k, v);
  };
  num("total_energy_j", report.total_j);
  num("above_idle_energy_j", report.above_idle_j);
  num("avg_power_w", report.duration_s > 0 ? report.total_j / report.duration_s : NAN);
  num("energy_per_output_token_j", attribution.j_per_output_token);
  num("energy_per_request_j", attribution.j_per_request_mean);
  num("p99_energy_per_request_j", attribution.j_per_request_p99);
  num("energy_per_prefill_token_j", attribution.j_per_prefill_token);
  num("energy_per_decode_token_j", attribution.j_per_decode_token);
  num("above_idle_energy_per_output_token_j", attribution.above_idle_j_per_output_token);
  num("unattributed_energy_j", attribution.unattributed_j);
  // Over the steady-state window too (ramp-up excluded; loadgen/metrics.h): energy in it per
  // output token of the requests that completed in it (the first completion is the origin).
  const auto [w0, w1] = loadgen::steady_window(records);
  if (w1 > w0) {
    const auto steady = impl_->session->report(w0, w1);
    std::int64_t tokens = 0;
    for (const auto& r : records) {
      if (!r.warmup && r.ok() && r.end_ns > w0 && r.end_ns <= w1) tokens += r.output_tokens();
    }
    num("steady_avg_power_w", steady.duration_s > 0 ? steady.total_j / steady.duration_s : NAN);
    num("steady_energy_per_output_token_j", tokens > 0 ? steady.total_j / static_cast<double>(tokens) : NAN);
  }
  extras.strings.emplace_back("energy_source", origin);
  extras.strings.emplace_back("energy_json", telemetry::energy_report_json(report, &attribution));
  for (auto& line : telemetry::energy_summary_lines(report, &attribution)) extras.summary_lines.push_back(line);
  for (const auto& n : impl_->notes) extras.summary_lines.push_back("energy note: " + n);
}

double EnergyObserver::request_energy_j(std::int64_t index) const {
  auto it = impl_->per_request_j.find(index);
  return it == impl_->per_request_j.end() ? -1 : it->second;
}

std::vector<store::TelemetrySampleRow> EnergyObserver::Impl::rows(Nanos t0, Nanos t1, const char* phase) const {
  std::vector<store::TelemetrySampleRow> out;
  if (!session) return out;
  const auto& devices = session->devices();
  auto v = [](double x) { return std::isnan(x) ? -1.0 : x; };
  for (const auto& s : session->samples()) {
    if (s.t_ns < t0 || s.t_ns > t1) continue;
    store::TelemetrySampleRow r;
    r.t_ns = s.t_ns;
    r.phase = phase;
    const auto& d = devices.at(static_cast<std::size_t>(s.device));
    r.source = d.source;
    r.device = d.name + (d.source == "nvml" ? ":" + std::to_string(d.index) : "");
    r.power_w = v(s.power_w);
    r.energy_j = v(s.energy_j);
    r.sm_clock_mhz = v(s.sm_clock_mhz);
    r.mem_clock_mhz = v(s.mem_clock_mhz);
    r.util_pct = v(s.gpu_util_pct);
    r.mem_used_mb = std::isnan(s.mem_used_bytes) ? -1 : s.mem_used_bytes / 1e6;
    r.temp_c = v(s.temperature_c);
    out.push_back(r);
  }
  return out;
}

std::vector<store::TelemetrySampleRow> EnergyObserver::idle_sample_rows() const {
  return impl_->rows(0, impl_->idle_end_ns, "idle");
}

std::vector<store::TelemetrySampleRow> EnergyObserver::load_sample_rows() const {
  // A little margin on each side keeps the samples that bracket the window's edges.
  const Nanos margin = ms_to_ns(impl_->options.interval_ms * 2);
  return impl_->rows(impl_->load_start_ns - margin, impl_->load_stop_ns + margin, "load");
}

}  // namespace qmeter::exec
