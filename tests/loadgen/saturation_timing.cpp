// Honest measurement past saturation, against the real mock server: a server of known capacity
// (--max-concurrent-streams) driven at 2x and 4x holds that capacity and reads server-saturated;
// a starved client reads client-bound with its evidence; a 40-request point below capacity has a
// steady-state rate equal to the offered one; a connection limit holds requests in the client.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "client/mock_server_process.h"
#include "qmeter/loadgen/loadgen.h"

namespace qmeter::loadgen {
namespace {

workload::Schedule constant(int n, double rate, int output_len) {
  workload::DatasetOptions ds;
  ds.spec = "random";
  ds.num_prompts = n;
  ds.input_len = 8;
  ds.output_len = output_len;
  workload::ArrivalOptions ar;
  ar.kind = "constant";
  ar.request_rate = rate;
  return workload::build_schedule(ds, ar);
}

LoadgenOptions options_for(const qmeter::testing::MockServerProcess& mock) {
  LoadgenOptions opt;
  opt.client.base_url = mock.base_url();
  opt.client.model = "qmeter-mock";
  opt.client.keep_text = false;
  opt.metrics.slos = {{"fast", 300, -1, -1, -1}};
  return opt;
}

TEST(Saturation, TwiceAndFourTimesTheServersCapacityHoldTheCapacityAndReadServerSaturated) {
  const std::string dir = qmeter::testing::test_output_dir("loadgen_saturation");
  // 4 streams at once, 10 tokens at 10 ms gaps: 90 ms a reply, capacity 4 / 0.09 = 44.4 req/s.
  qmeter::testing::MockServerProcess mock(
      dir, {"--ttft-ms", "0", "--itl-ms", "10", "--tokens-before-eos", "10", "--max-concurrent-streams", "4"});
  const double capacity = 4 / 0.090;
  for (double factor : {2.0, 4.0}) {
    const LoadgenResult res = run_load(constant(160, factor * capacity, 10), options_for(mock), {});
    const Metrics& m = res.metrics;
    SCOPED_TRACE(factor);
    EXPECT_EQ(m.failed, 0);  // no connect errors, nothing dropped: requests queue, they do not fail
    EXPECT_EQ(m.completed, 160);
    EXPECT_NEAR(m.steady.request_throughput, capacity, 0.1 * capacity);
    EXPECT_NEAR(m.verdict.offered_rate, factor * capacity, 0.01 * factor * capacity);
    EXPECT_TRUE(m.verdict.server_saturated) << m.verdict.saturation_reason;
    EXPECT_FALSE(m.verdict.client_bound) << m.verdict.client_bound_reason;
    EXPECT_FALSE(m.verdict.sustainable);
    EXPECT_GT(m.verdict.in_flight_growth, 10);
    // The latency percentiles still "meet" a loose SLO for the early requests; the point does not.
    const auto j = nlohmann::json::parse(output_json_text(res, {}));
    EXPECT_EQ(j["server_saturated"], true);
    EXPECT_EQ(j["sustainable"], false);
    EXPECT_NE(format_summary(res, {}).find("WARNING: not sustainable (server saturated)"), std::string::npos);
  }
}

TEST(Saturation, BelowCapacityAFortyRequestPointReadsTheOfferedRateAndNoWarning) {
  const std::string dir = qmeter::testing::test_output_dir("loadgen_steady_below");
  // 50 ms to the first token, then 9 gaps of 10 ms: 140 ms a reply, no stream limit.
  qmeter::testing::MockServerProcess mock(dir, {"--ttft-ms", "50", "--itl-ms", "10", "--tokens-before-eos", "10"});
  auto opt = options_for(mock);
  opt.metrics.client_bound_threshold_ms = 20;  // this test is about the window, not a busy CI machine
  const LoadgenResult res = run_load(constant(40, 20, 10), opt, {});
  const Metrics& m = res.metrics;
  ASSERT_EQ(m.completed, 40);
  EXPECT_NEAR(m.steady.request_throughput, 20.0, 0.02 * 20);
  EXPECT_LT(m.request_throughput, 0.97 * 20);  // the whole run's figure is diluted by ramp-up and drain
  EXPECT_FALSE(m.verdict.server_saturated) << m.verdict.saturation_reason;
  EXPECT_TRUE(m.verdict.sustainable);
  EXPECT_EQ(format_summary(res, {}).find("WARNING"), std::string::npos) << format_summary(res, {});
}

TEST(Saturation, AStarvedClientReadsClientBoundWithTheEvidence) {
  const std::string dir = qmeter::testing::test_output_dir("loadgen_starved");
  qmeter::testing::MockServerProcess mock(dir, {"--ttft-ms", "5", "--itl-ms", "1", "--tokens-before-eos", "4"});
  auto opt = options_for(mock);
  opt.metrics.client_bound_threshold_ms = 15;
  // Control: the same point with a healthy client is not client-bound.
  const Metrics healthy = run_load(constant(40, 50, 4), opt, {}).metrics;
  EXPECT_FALSE(healthy.verdict.client_bound) << healthy.verdict.client_bound_reason;
  // Every turn of the event loop stalls 40 ms: requests due every 20 ms go out late.
  opt.debug_loop_stall_ns = 40'000'000;
  const LoadgenResult res = run_load(constant(40, 50, 4), opt, {});
  const Metrics& m = res.metrics;
  EXPECT_TRUE(m.verdict.client_bound);
  EXPECT_GE(m.verdict.p99_client_lag_ms, 20.0);
  EXPECT_NE(m.verdict.client_bound_reason.find("could not send on time"), std::string::npos);
  const auto j = nlohmann::json::parse(output_json_text(res, {}));
  EXPECT_EQ(j["client_bound"], true);
  EXPECT_GE(j["client_bound_evidence"]["p99_client_lag_ms"].get<double>(), 20.0);
  EXPECT_EQ(j["client_bound_evidence"]["threshold_ms"], 15.0);
  EXPECT_EQ(j["sustainable"], false);
}

TEST(Saturation, AConnectionLimitHoldsRequestsInTheClientAndSaysSo) {
  const std::string dir = qmeter::testing::test_output_dir("loadgen_max_connections");
  qmeter::testing::MockServerProcess mock(dir, {"--ttft-ms", "0", "--itl-ms", "20", "--tokens-before-eos", "5"});
  auto opt = options_for(mock);
  opt.max_connections = 2;
  const LoadgenResult res = run_load(constant(20, 100, 5), opt, {});
  const Metrics& m = res.metrics;
  ASSERT_EQ(m.completed, 20);
  EXPECT_LE(m.max_concurrent_requests, 2);
  EXPECT_EQ(res.info.max_connections, 2);
  EXPECT_GT(m.verdict.p99_connection_wait_ms, 100.0);
  EXPECT_TRUE(m.verdict.client_bound);
  EXPECT_NE(m.verdict.client_bound_reason.find("--max-connections"), std::string::npos);
  // Latency still counts from the schedule: a request that waited has its wait in its TTFT.
  for (const auto& r : res.records) {
    if (r.connection_wait_ns > 0) EXPECT_GE(ttft_ms(r), ns_to_ms(r.connection_wait_ns));
  }
}

}  // namespace
}  // namespace qmeter::loadgen
