// The steady-state window and the verdicts (client-bound, server-saturated, sustainable) on
// hand-made records whose answers are known exactly.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "qmeter/loadgen/loadgen.h"
#include "qmeter/loadgen/metrics.h"

namespace qmeter::loadgen {
namespace {

using client::RequestRecord;

constexpr Nanos ms(double v) { return static_cast<Nanos>(v * 1'000'000); }
constexpr Nanos kBase = 1'000'000'000;

// A one-token request scheduled at s ms, dispatched `lag` ms late (of which `wait` waiting for a
// connection), ending at e ms.
RequestRecord req(double s, double e, double lag = 0, double wait = 0) {
  RequestRecord r;
  r.scheduled_ns = r.planned_ns = kBase + ms(s);
  r.dispatched_ns = kBase + ms(s + lag);
  r.connection_wait_ns = ms(wait);
  r.sent_ns = r.dispatched_ns;
  r.first_token_ns = kBase + ms(e - 1);
  r.end_ns = kBase + ms(e);
  r.chunks = {{r.first_token_ns, 1}};
  r.client_tokens = 1;
  r.server_completion_tokens = 1;
  r.http_status = 200;
  return r;
}

// n requests every `gap` ms, each served in `service` ms, one at a time when `serial` (a server
// of capacity 1000 / service req/s), in parallel otherwise.
std::vector<RequestRecord> constant_load(int n, double gap, double service, bool serial) {
  std::vector<RequestRecord> rs;
  double free_at = 0;
  for (int i = 0; i < n; ++i) {
    const double s = i * gap;
    const double start = serial ? std::max(s, free_at) : s;
    free_at = start + service;
    rs.push_back(req(s, start + service));
  }
  return rs;
}

TEST(SteadyState, BelowCapacityTheWindowRateIsTheOfferedRateExactly) {
  // 40 requests at 20 req/s (every 50 ms), each taking 140 ms: the whole-run rate is diluted by
  // ramp-up and drain (40 / 2.09 s = 19.1), the window's is 20 exactly.
  const auto rs = constant_load(40, 50, 140, false);
  MetricsOptions o;
  o.slos = {{"fast", 200, -1, -1, -1}};
  const Metrics m = compute_metrics(rs, o);
  EXPECT_NEAR(m.request_throughput, 40 / 2.09, 1e-9);
  ASSERT_TRUE(m.steady.defined);
  EXPECT_NEAR(m.steady.start_s, 0.140, 1e-9);
  EXPECT_NEAR(m.steady.end_s, 1.95 + 0.140, 1e-9);
  EXPECT_NEAR(m.steady.request_throughput, 20.0, 1e-9);
  EXPECT_NEAR(m.steady.output_throughput, 20.0, 1e-9);
  EXPECT_NEAR(m.verdict.offered_rate, 20.0, 1e-9);
  EXPECT_EQ(m.steady.latency_requests, 40 - 3);  // scheduled at or after 140 ms
  EXPECT_NEAR(m.steady.ttft.median_ms, 139, 1e-9);
  ASSERT_EQ(m.steady.slo.size(), 1u);
  EXPECT_DOUBLE_EQ(m.steady.slo[0].attainment, 1.0);
  EXPECT_NEAR(m.steady.slo[0].goodput_rps, 20.0, 1e-9);
  EXPECT_FALSE(m.verdict.server_saturated);
  EXPECT_FALSE(m.verdict.client_bound);
  EXPECT_TRUE(m.verdict.sustainable);
  EXPECT_NEAR(m.verdict.in_flight_growth, 0.0, 0.5);
}

TEST(SteadyState, PastCapacityTheWindowRateIsTheCapacityAndTheQueueGrows) {
  // 100 requests at 20 req/s into a one-at-a-time server of 10 req/s (100 ms each).
  const auto rs = constant_load(100, 50, 100, true);
  MetricsOptions o;
  o.slos = {{"fast", 200, -1, -1, -1}};
  const Metrics m = compute_metrics(rs, o);
  EXPECT_NEAR(m.steady.request_throughput, 10.0, 1e-9);
  EXPECT_NEAR(m.verdict.offered_rate, 20.0, 1e-9);
  EXPECT_TRUE(m.verdict.server_saturated);
  EXPECT_FALSE(m.verdict.client_bound);
  EXPECT_FALSE(m.verdict.sustainable);
  // The queue grows by 10 req/s over the ~4.85 s of sending inside the window.
  EXPECT_NEAR(m.verdict.in_flight_growth, 10 * (4.95 - 0.1), 2.0);
  EXPECT_NE(m.verdict.saturation_reason.find("below 90% of the offered 20 req/s"), std::string::npos)
      << m.verdict.saturation_reason;
  // The steady latencies exclude the ramp-up's short queue: their median is well above the run's first.
  EXPECT_GT(m.steady.ttft.median_ms, m.ttft.min_ms + 500);
}

TEST(SteadyState, AShortRunsDrainIsNoQueue) {
  // A quickstart-like point: 20 requests at 4 req/s, each 2 s long. The whole-run rate is
  // 20 / (4.75 + 2) = 2.96 req/s (74% of offered: the old rule warned); nothing is queued.
  const auto rs = constant_load(20, 250, 2000, false);
  const Metrics m = compute_metrics(rs, {});
  EXPECT_LT(m.request_throughput, 0.9 * 4);
  EXPECT_NEAR(m.steady.request_throughput, 4.0, 1e-9);
  EXPECT_TRUE(m.verdict.sustainable);
}

TEST(SteadyState, UnboundedAndClosedLoopPoints) {
  std::vector<RequestRecord> all_at_once;
  for (int i = 0; i < 10; ++i) all_at_once.push_back(req(0, 10.0 * (i + 1)));
  const Metrics inf = compute_metrics(all_at_once, {});
  EXPECT_TRUE(std::isinf(inf.verdict.offered_rate));
  EXPECT_TRUE(inf.verdict.server_saturated);
  EXPECT_FALSE(inf.verdict.sustainable);
  MetricsOptions closed;
  closed.closed_loop = true;
  const Metrics c = compute_metrics(all_at_once, closed);
  EXPECT_LT(c.verdict.offered_rate, 0);
  EXPECT_FALSE(c.verdict.server_saturated);
  EXPECT_TRUE(c.verdict.sustainable);
}

TEST(Verdict, ClientLagAboveTheThresholdIsClientBound) {
  // TTFT ~ 9 ms: the default threshold is max(1 ms, 1% of it) = 1 ms.
  std::vector<RequestRecord> rs;
  for (int i = 0; i < 100; ++i) rs.push_back(req(10.0 * i, 10.0 * i + 10, i % 10 == 0 ? 3.0 : 0.05));
  const Metrics m = compute_metrics(rs, {});
  EXPECT_DOUBLE_EQ(m.verdict.threshold_ms, 1.0);
  EXPECT_NEAR(m.verdict.p99_client_lag_ms, 3.0, 1e-6);
  EXPECT_TRUE(m.verdict.client_bound);
  EXPECT_FALSE(m.verdict.sustainable);
  EXPECT_NE(m.verdict.client_bound_reason.find("p99 client lag 3.000 ms > 1.000 ms"), std::string::npos);
  EXPECT_NEAR(m.client_lag.max_ms, 3.0, 1e-6);
  // A threshold above it: not client-bound. 1% of a 500 ms median TTFT: 5 ms.
  MetricsOptions o;
  o.client_bound_threshold_ms = 5;
  EXPECT_FALSE(compute_metrics(rs, o).verdict.client_bound);
  std::vector<RequestRecord> slow;
  for (int i = 0; i < 100; ++i) slow.push_back(req(10.0 * i, 10.0 * i + 500, i % 10 == 0 ? 3.0 : 0.05));
  const Metrics ms500 = compute_metrics(slow, {});
  EXPECT_NEAR(ms500.verdict.threshold_ms, 4.99, 0.02);
  EXPECT_FALSE(ms500.verdict.client_bound);
}

// A lagging client and a connection limit at once: both are named (the limit is the user's own
// setting and must not hide behind the lag).
TEST(Verdict, ALaggingClientAndAConnectionLimitAreBothNamed) {
  std::vector<RequestRecord> rs;
  for (int i = 0; i < 100; ++i) {
    const double wait = i % 5 == 0 ? 4.0 : 0;
    rs.push_back(req(10.0 * i, 10.0 * i + 10, wait + 3.0, wait));  // 3 ms of the client's own lag
  }
  const Metrics m = compute_metrics(rs, {});
  EXPECT_TRUE(m.verdict.client_bound);
  EXPECT_NE(m.verdict.client_bound_reason.find("could not send on time"), std::string::npos) << m.verdict.client_bound_reason;
  EXPECT_NE(m.verdict.client_bound_reason.find("--max-connections"), std::string::npos) << m.verdict.client_bound_reason;
}

TEST(Verdict, WaitingForAConnectionIsReportedApartAndFlagged) {
  // Every fifth request waited 4 ms for a free connection; the client itself was on time.
  std::vector<RequestRecord> rs;
  for (int i = 0; i < 100; ++i) {
    const double wait = i % 5 == 0 ? 4.0 : 0;
    rs.push_back(req(10.0 * i, 10.0 * i + 10, wait + 0.01, wait));
  }
  const Metrics m = compute_metrics(rs, {});
  EXPECT_NEAR(m.verdict.p99_client_lag_ms, 0.01, 1e-6);
  EXPECT_NEAR(m.verdict.p99_connection_wait_ms, 4.0, 1e-6);
  EXPECT_NEAR(m.connection_wait.max_ms, 4.0, 1e-6);
  EXPECT_TRUE(m.verdict.client_bound);
  EXPECT_NE(m.verdict.client_bound_reason.find("--max-connections"), std::string::npos);
  // The JSON always carries the verdict keys, with the evidence.
  LoadgenResult res;
  res.metrics = m;
  res.info.max_connections = 7;
  const auto j = nlohmann::json::parse(output_json_text(res, {}));
  EXPECT_EQ(j["client_bound"], true);
  EXPECT_EQ(j["server_saturated"], false);
  EXPECT_EQ(j["sustainable"], false);
  EXPECT_EQ(j["max_connections"], 7);
  EXPECT_NEAR(j["client_bound_evidence"]["p99_connection_wait_ms"].get<double>(), 4.0, 1e-6);
  EXPECT_NEAR(j["p99_connection_wait_ms"].get<double>(), 4.0, 0.01);
  EXPECT_TRUE(j["steady_state"]["defined"].get<bool>());
  EXPECT_NE(format_summary(res, {}).find("WARNING: the load generator limited this point (client-bound)"),
            std::string::npos);
}

}  // namespace
}  // namespace qmeter::loadgen
