#include "qmeter/loadgen/metrics.h"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "qmeter/core/error.h"
#include "qmeter/core/parse_number.h"
#include "qmeter/core/stats.h"
#include "qmeter/core/text.h"

namespace qmeter::loadgen {

using client::RequestRecord;

// Shared with steady_state.cpp.
LatencyStats latency_stats(std::vector<double> ms, std::span<const double> ps);
void compute_steady_state(std::span<const RequestRecord> records, const MetricsOptions& options, Metrics& m);

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// A finite number, the whole of `text`.
std::optional<double> finite_number(std::string_view text) {
  const auto v = parse_double(text);
  return v && std::isfinite(*v) ? v : std::nullopt;
}

}  // namespace

LatencyStats latency_stats(std::vector<double> ms, std::span<const double> ps) {
  const stats::Summary s = stats::summarize(ms, ps);
  LatencyStats out;
  out.n = s.n;
  out.mean_ms = s.mean;
  out.median_ms = s.median;
  out.std_ms = s.stddev;
  out.min_ms = s.min;
  out.max_ms = s.max;
  out.percentiles_ms = s.percentiles;
  return out;
}


SloClass parse_slo(const std::string& spec) {
  const auto colon = spec.find(':');
  SloClass slo;
  if (colon == std::string::npos || colon == 0)
    throw UsageError(fmt::format("--slo '{}': expected NAME:KEY=MS[,KEY=MS...] (keys ttft, tpot, e2e, itl)", spec));
  slo.name = std::string(trim(std::string_view(spec).substr(0, colon)));
  const std::string_view rest = std::string_view(spec).substr(colon + 1);
  if (trim(rest).empty()) throw UsageError(fmt::format("--slo '{}': no bounds given after '{}:'", spec, slo.name));
  for (const std::string_view item : split(rest, ',')) {
    const auto eq = item.find('=');
    const auto value = eq == std::string_view::npos ? std::nullopt : finite_number(item.substr(eq + 1));
    if (!value || *value <= 0)
      throw UsageError(fmt::format("--slo '{}': '{}' is not KEY=MS with a positive number of ms", spec, item));
    const std::string_view key = trim(item.substr(0, eq));
    if (key == "ttft") slo.ttft_ms = *value;
    else if (key == "tpot") slo.tpot_ms = *value;
    else if (key == "e2e" || key == "e2el") slo.e2e_ms = *value;
    else if (key == "itl") slo.itl_ms = *value;
    else throw UsageError(fmt::format("--slo '{}': unknown key '{}' (use ttft, tpot, e2e, itl)", spec, key));
  }
  return slo;
}

std::vector<double> parse_percentiles(const std::string& list) {
  std::vector<double> out;
  for (const std::string_view item : split(list, ',')) {
    const auto p = finite_number(item);
    if (!p || *p <= 0 || *p > 100)
      throw UsageError(fmt::format("--percentiles '{}': '{}' is not a number in (0, 100]", list, item));
    out.push_back(*p);
  }
  return out;
}

std::string percentile_label(double p) {
  if (p == std::floor(p)) return fmt::format("{}", static_cast<long long>(p));
  return fmt::format("{}", p);
}

double ttft_ms(const RequestRecord& r) {
  if (!r.ok() || r.first_token_ns == 0) return kNaN;
  return ns_to_ms(r.first_token_ns - r.scheduled_ns);
}

double tpot_ms(const RequestRecord& r) {
  const int n = r.output_tokens();
  if (!r.ok() || n < 2 || r.chunks.empty()) return kNaN;
  return ns_to_ms(r.chunks.back().t_ns - r.first_token_ns) / static_cast<double>(n - 1);
}

double e2el_ms(const RequestRecord& r) {
  if (!r.ok() || r.end_ns == 0) return kNaN;
  return ns_to_ms(r.end_ns - r.scheduled_ns);
}

std::vector<double> itl_samples_ms(const RequestRecord& r) {
  std::vector<double> out;
  for (std::size_t i = 1; i < r.chunks.size(); ++i) {
    const int k = std::max(1, r.chunks[i].tokens);
    const double per_token = ns_to_ms(r.chunks[i].t_ns - r.chunks[i - 1].t_ns) / k;
    out.insert(out.end(), static_cast<std::size_t>(k), per_token);
  }
  return out;
}

bool meets_slo(const RequestRecord& r, const SloClass& slo) {
  if (!r.ok()) return false;
  if (slo.ttft_ms >= 0) {
    const double v = ttft_ms(r);
    if (std::isnan(v) || v > slo.ttft_ms) return false;
  }
  if (slo.tpot_ms >= 0) {
    const double v = tpot_ms(r);  // undefined for a single output token: no decode to bound
    if (!std::isnan(v) && v > slo.tpot_ms) return false;
  }
  if (slo.e2e_ms >= 0 && !(e2el_ms(r) <= slo.e2e_ms)) return false;
  if (slo.itl_ms >= 0) {
    for (double v : itl_samples_ms(r))
      if (v > slo.itl_ms) return false;
  }
  return true;
}

Metrics compute_metrics(std::span<const RequestRecord> records, const MetricsOptions& options) {
  Metrics m;
  std::vector<double> ttft, tpot, itl, e2el, lag, conn_wait, own_lag;
  Nanos first_scheduled = std::numeric_limits<Nanos>::max(), last_end = std::numeric_limits<Nanos>::min();
  std::vector<std::pair<Nanos, int>> edges;  // (time, +1 send / -1 end) for the concurrency sweep
  for (const auto& r : records) {
    if (r.warmup) {
      ++m.warmup_excluded;
      continue;
    }
    ++m.measured;
    first_scheduled = std::min(first_scheduled, r.scheduled_ns);
    if (r.end_ns > 0) last_end = std::max(last_end, r.end_ns);
    if (r.dispatched_ns > 0) {
      conn_wait.push_back(ns_to_ms(r.connection_wait_ns));
      own_lag.push_back(client_lag_ms(r));
    }
    if (r.sent_ns > 0) {
      lag.push_back(ns_to_ms(r.sent_ns - r.scheduled_ns));
      if (r.end_ns >= r.sent_ns) {
        edges.emplace_back(r.sent_ns, +1);
        edges.emplace_back(r.end_ns, -1);
      }
    }
    if (!r.ok()) {
      ++m.failed;
      ++m.failed_by_kind[std::string(client::error_kind_name(r.error))];
      continue;
    }
    ++m.completed;
    if (r.token_count_mismatch()) ++m.token_count_mismatches;
    const int in = r.server_prompt_tokens >= 0 ? r.server_prompt_tokens : r.expected_prompt_tokens;
    m.total_input_tokens += std::max(0, in);
    m.total_output_tokens += r.output_tokens();
    if (double v = ttft_ms(r); !std::isnan(v)) ttft.push_back(v);
    if (double v = tpot_ms(r); !std::isnan(v)) tpot.push_back(v);
    if (double v = e2el_ms(r); !std::isnan(v)) e2el.push_back(v);
    auto s = itl_samples_ms(r);
    itl.insert(itl.end(), s.begin(), s.end());
  }
  if (m.measured > 0 && last_end > first_scheduled) m.duration_s = ns_to_s(last_end - first_scheduled);
  if (m.duration_s > 0) {
    m.request_throughput = static_cast<double>(m.completed) / m.duration_s;
    m.output_throughput = static_cast<double>(m.total_output_tokens) / m.duration_s;
    m.total_token_throughput = static_cast<double>(m.total_input_tokens + m.total_output_tokens) / m.duration_s;
  }
  // Ends sort before sends at the same instant: a request that ends as another starts does not overlap it.
  std::sort(edges.begin(), edges.end());
  int open = 0;
  for (const auto& [t, d] : edges) m.max_concurrent_requests = std::max(m.max_concurrent_requests, open += d);

  m.ttft = latency_stats(std::move(ttft), options.percentiles);
  m.tpot = latency_stats(std::move(tpot), options.percentiles);
  m.itl = latency_stats(std::move(itl), options.percentiles);
  m.e2el = latency_stats(std::move(e2el), options.percentiles);
  m.send_lag = latency_stats(std::move(lag), options.percentiles);
  m.connection_wait = latency_stats(std::move(conn_wait), options.percentiles);
  m.client_lag = latency_stats(std::move(own_lag), options.percentiles);

  for (const auto& slo : options.slos) {
    SloResult res;
    res.slo = slo;
    for (const auto& r : records)
      if (!r.warmup && meets_slo(r, slo)) ++res.met;
    res.attainment = m.measured > 0 ? static_cast<double>(res.met) / static_cast<double>(m.measured) : 0;
    res.goodput_rps = m.duration_s > 0 ? static_cast<double>(res.met) / m.duration_s : 0;
    m.slo.push_back(res);
  }
  compute_steady_state(records, options, m);
  return m;
}

}  // namespace qmeter::loadgen
