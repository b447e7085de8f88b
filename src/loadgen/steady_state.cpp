// The steady-state window of a load point and who limited it (definitions in metrics.h): figures
// over the window beside the whole-run ones, and the verdicts that decide whether the point may
// meet an SLO at all.
#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "qmeter/loadgen/metrics.h"

namespace qmeter::loadgen {

using client::RequestRecord;

LatencyStats latency_stats(std::vector<double> ms, std::span<const double> ps);

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double p99(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  // nearest-rank on the sorted values, as a verdict needs no interpolation
  const auto k = static_cast<std::size_t>(std::ceil(0.99 * static_cast<double>(v.size()))) - 1;
  return v[std::min(k, v.size() - 1)];
}

// Least-squares slope of y over x.
double slope(const std::vector<double>& x, const std::vector<double>& y) {
  const double n = static_cast<double>(x.size());
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    sx += x[i];
    sy += y[i];
    sxx += x[i] * x[i];
    sxy += x[i] * y[i];
  }
  const double den = n * sxx - sx * sx;
  return den > 0 ? (n * sxy - sx * sy) / den : 0;
}

}  // namespace

double client_lag_ms(const RequestRecord& r) {
  if (r.dispatched_ns == 0) return kNaN;
  return std::max(0.0, ns_to_ms(r.dispatched_ns - r.scheduled_ns - r.connection_wait_ns));
}

std::pair<Nanos, Nanos> steady_window(std::span<const RequestRecord> records) {
  Nanos w0 = std::numeric_limits<Nanos>::max(), w1 = 0;
  int completed = 0;
  for (const auto& r : records) {
    if (r.warmup || !r.ok() || r.end_ns == 0) continue;
    ++completed;
    w0 = std::min(w0, r.end_ns);
    w1 = std::max(w1, r.end_ns);
  }
  if (completed < 2 || w1 <= w0) return {0, 0};
  return {w0, w1};
}

void compute_steady_state(std::span<const RequestRecord> records, const MetricsOptions& options, Metrics& m) {
  SteadyState& ss = m.steady;
  LoadVerdict& v = m.verdict;
  std::vector<const RequestRecord*> measured;
  for (const auto& r : records) {
    if (!r.warmup) measured.push_back(&r);
  }
  std::sort(measured.begin(), measured.end(),
            [](const RequestRecord* a, const RequestRecord* b) { return a->scheduled_ns < b->scheduled_ns; });
  const Nanos first_scheduled = measured.empty() ? 0 : measured.front()->scheduled_ns;
  const Nanos last_scheduled = measured.empty() ? 0 : measured.back()->scheduled_ns;

  // ---- the window and the figures over it ----------------------------------------------------
  const auto [w0, w1] = steady_window(records);
  if (w1 > w0) {
    ss.defined = true;
    ss.start_ns = w0;
    ss.end_ns = w1;
    ss.start_s = ns_to_s(w0 - first_scheduled);
    ss.end_s = ns_to_s(w1 - first_scheduled);
    ss.duration_s = ns_to_s(w1 - w0);
    std::int64_t tokens = 0;
    for (const auto* r : measured) {
      if (!r->ok() || r->end_ns < w0 || r->end_ns > w1) continue;
      ++ss.completed;
      if (r->end_ns > w0) tokens += r->output_tokens();  // the first completion is the origin
    }
    ss.request_throughput = static_cast<double>(ss.completed - 1) / ss.duration_s;
    ss.output_throughput = static_cast<double>(tokens) / ss.duration_s;
    std::vector<const RequestRecord*> in_window;
    for (const auto* r : measured) {
      if (r->scheduled_ns >= w0 && r->scheduled_ns <= w1) in_window.push_back(r);
    }
    if (in_window.size() < 10) in_window = measured;  // too few after ramp-up: all of them
    ss.latency_requests = static_cast<std::int64_t>(in_window.size());
    std::vector<double> ttft, tpot, e2el;
    for (const auto* r : in_window) {
      if (double x = ttft_ms(*r); !std::isnan(x)) ttft.push_back(x);
      if (double x = tpot_ms(*r); !std::isnan(x)) tpot.push_back(x);
      if (double x = e2el_ms(*r); !std::isnan(x)) e2el.push_back(x);
    }
    ss.ttft = latency_stats(std::move(ttft), options.percentiles);
    ss.tpot = latency_stats(std::move(tpot), options.percentiles);
    ss.e2el = latency_stats(std::move(e2el), options.percentiles);
    for (const auto& slo : options.slos) {
      SloResult res;
      res.slo = slo;
      for (const auto* r : in_window) res.met += meets_slo(*r, slo) ? 1 : 0;
      res.attainment = static_cast<double>(res.met) / static_cast<double>(in_window.size());
      res.goodput_rps = ss.request_throughput * res.attainment;
      ss.slo.push_back(res);
    }
  }

  // ---- who limited the point -----------------------------------------------------------------
  v.threshold_ms = options.client_bound_threshold_ms > 0
                       ? options.client_bound_threshold_ms
                       : std::max(1.0, std::isfinite(m.ttft.median_ms) ? 0.01 * m.ttft.median_ms : 0.0);
  std::vector<double> own_lag, conn_wait;
  for (const auto* r : measured) {
    if (r->dispatched_ns == 0) continue;
    own_lag.push_back(client_lag_ms(*r));
    conn_wait.push_back(ns_to_ms(r->connection_wait_ns));
  }
  v.p99_client_lag_ms = p99(own_lag);
  v.p99_connection_wait_ms = p99(conn_wait);
  // Both causes are named when both hold: a connection limit that held requests back is the
  // user's own setting and must not hide behind a lagging client (or the other way round).
  std::vector<std::string> reasons;
  if (v.p99_client_lag_ms > v.threshold_ms) {
    reasons.push_back(fmt::format("p99 client lag {:.3f} ms > {:.3f} ms: the load generator could not send on time",
                                  v.p99_client_lag_ms, v.threshold_ms));
  }
  if (v.p99_connection_wait_ms > v.threshold_ms) {
    reasons.push_back(fmt::format(
        "p99 wait for a free connection {:.3f} ms > {:.3f} ms: --max-connections held requests back, so the server "
        "did not receive the offered load",
        v.p99_connection_wait_ms, v.threshold_ms));
  }
  v.client_bound = !reasons.empty();
  v.client_bound_reason = reasons.empty() ? "" : reasons.size() == 1 ? reasons[0] : reasons[0] + "; " + reasons[1];

  if (!options.closed_loop && measured.size() >= 2) {
    v.offered_rate = last_scheduled > first_scheduled
                         ? static_cast<double>(measured.size() - 1) / ns_to_s(last_scheduled - first_scheduled)
                         : std::numeric_limits<double>::infinity();
    // In flight at each send inside the window: scheduled so far minus ended so far.
    std::vector<Nanos> ends;
    for (const auto* r : measured) ends.push_back(r->end_ns > 0 ? r->end_ns : std::numeric_limits<Nanos>::max());
    std::sort(ends.begin(), ends.end());
    std::vector<double> xs, ys;
    for (std::size_t k = 0; k < measured.size(); ++k) {
      const Nanos t = measured[k]->scheduled_ns;
      if (!ss.defined || t < w0) continue;
      const auto ended = std::upper_bound(ends.begin(), ends.end(), t) - ends.begin();
      xs.push_back(ns_to_s(t - w0));
      ys.push_back(static_cast<double>(k + 1) - static_cast<double>(ended));
    }
    if (xs.size() >= 3) {
      v.in_flight_growth = slope(xs, ys) * (xs.back() - xs.front());
      double sum = 0;
      for (double y : ys) sum += y;
      v.mean_in_flight = sum / static_cast<double>(ys.size());
    } else {
      v.in_flight_growth = kNaN;
    }
    const double achieved = ss.defined ? ss.request_throughput : m.request_throughput;
    const bool behind = achieved < (1.0 - options.rate_tolerance) * v.offered_rate;
    const bool growing = std::isnan(v.in_flight_growth) || v.in_flight_growth > std::max(2.0, 0.2 * v.mean_in_flight);
    if (std::isinf(v.offered_rate)) {
      v.server_saturated = true;
      v.saturation_reason = "every request was due at once (rate inf): a throughput probe, not a sustainable load";
    } else if (behind && growing) {
      v.server_saturated = true;
      v.saturation_reason = fmt::format(
          "steady-state throughput {:.4g} req/s is below {:.0f}% of the offered {:.4g} req/s and the queue grew{}",
          achieved, 100 * (1 - options.rate_tolerance), v.offered_rate,
          std::isnan(v.in_flight_growth) ? "" : fmt::format(" by {:.1f} requests in flight", v.in_flight_growth));
    }
  }
  v.sustainable = !v.client_bound && !v.server_saturated;
}

}  // namespace qmeter::loadgen
