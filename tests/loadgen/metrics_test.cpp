// Metrics on hand-made records with answers worked out by hand (see the comments per record).
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "qmeter/core/error.h"
#include "qmeter/loadgen/loadgen.h"
#include "qmeter/loadgen/metrics.h"

namespace qmeter::loadgen {
namespace {

using client::ErrorKind;
using client::RequestRecord;

constexpr Nanos ms(double v) { return static_cast<Nanos>(v * 1'000'000); }
constexpr Nanos kBase = 1'000'000'000;  // 1 s

RequestRecord make(double sched_ms, double sent_ms, double end_ms, std::vector<std::pair<double, int>> chunks,
                   int server_out, int server_in, int expected_in) {
  RequestRecord r;
  r.scheduled_ns = r.planned_ns = kBase + ms(sched_ms);
  r.sent_ns = kBase + ms(sent_ms);
  r.end_ns = kBase + ms(end_ms);
  for (auto [t, k] : chunks) {
    r.chunks.push_back({kBase + ms(t), k});
    r.client_tokens += k;
  }
  if (!r.chunks.empty()) r.first_token_ns = r.chunks.front().t_ns;
  r.server_completion_tokens = server_out;
  r.server_prompt_tokens = server_in;
  r.expected_prompt_tokens = expected_in;
  r.http_status = 200;
  return r;
}

std::vector<RequestRecord> hand_made() {
  std::vector<RequestRecord> rs;
  // R0: TTFT 50, chunks 1,1,2,1 -> n_out 5, TPOT (90-50)/4 = 10, ITL 10 | 20/2,20/2 | 10, E2E 95, lag 1.
  rs.push_back(make(0, 1, 95, {{50, 1}, {60, 1}, {80, 2}, {90, 1}}, 5, 10, 12));
  // R1: TTFT 100, client 3 vs usage 4 (mismatch; metrics use usage 4): TPOT 30/3 = 10, ITL 30, E2E 140, lag 0.5.
  rs.push_back(make(100, 100.5, 240, {{200, 2}, {230, 1}}, 4, -1, 20));
  // R2: HTTP 500, lag 0.2.
  rs.push_back(make(200, 200.2, 210, {}, -1, -1, 20));
  rs.back().http_status = 500;
  rs.back().error = ErrorKind::kHttpStatus;
  // R3: timed out after one token, lag 0.1, ends at 1300 (the last end of the run).
  rs.push_back(make(300, 300.1, 1300, {{350, 1}}, -1, -1, 20));
  rs.back().error = ErrorKind::kTimeout;
  // R4: warmup, excluded from everything (it would otherwise move the start to -500).
  rs.push_back(make(-500, -499, -400, {{-450, 1}}, 1, 3, 3));
  rs.back().warmup = true;
  // R5: one token without usage: TTFT 50, no TPOT, no ITL, E2E 60, lag 0.
  rs.push_back(make(400, 400, 460, {{450, 1}}, -1, -1, 5));
  return rs;
}

TEST(Metrics, CountsThroughputAndTokensOnHandMadeRecords) {
  const auto rs = hand_made();
  const Metrics m = compute_metrics(rs, {});
  EXPECT_EQ(m.measured, 5);
  EXPECT_EQ(m.completed, 3);
  EXPECT_EQ(m.failed, 2);
  EXPECT_EQ(m.warmup_excluded, 1);
  EXPECT_EQ(m.failed_by_kind.at("http_status"), 1);
  EXPECT_EQ(m.failed_by_kind.at("timeout"), 1);
  EXPECT_EQ(m.token_count_mismatches, 1);
  EXPECT_DOUBLE_EQ(m.duration_s, 1.3);  // first scheduled 0 ms .. last end 1300 ms
  EXPECT_EQ(m.total_input_tokens, 10 + 20 + 5);  // server count, else expected
  EXPECT_EQ(m.total_output_tokens, 5 + 4 + 1);
  EXPECT_NEAR(m.request_throughput, 3 / 1.3, 1e-12);
  EXPECT_NEAR(m.output_throughput, 10 / 1.3, 1e-12);
  EXPECT_NEAR(m.total_token_throughput, 45 / 1.3, 1e-12);
  EXPECT_EQ(m.max_concurrent_requests, 2);  // R1 overlaps R2, R3 overlaps R5
}

TEST(Metrics, LatencyDistributionsOnHandMadeRecords) {
  const auto rs = hand_made();
  MetricsOptions opt;
  opt.percentiles = {50, 99};
  const Metrics m = compute_metrics(rs, opt);
  // TTFT [50, 100, 50]
  EXPECT_EQ(m.ttft.n, 3u);
  EXPECT_NEAR(m.ttft.mean_ms, 200.0 / 3, 1e-9);
  EXPECT_NEAR(m.ttft.median_ms, 50, 1e-9);
  EXPECT_NEAR(m.ttft.std_ms, std::sqrt(5000.0 / 9), 1e-9);  // population std
  EXPECT_NEAR(m.ttft.percentiles_ms[1].second, 99, 1e-9);    // 50 + 0.98 * 50 (linear interpolation)
  // TPOT [10, 10]; R5 has a single token.
  EXPECT_EQ(m.tpot.n, 2u);
  EXPECT_NEAR(m.tpot.mean_ms, 10, 1e-9);
  EXPECT_NEAR(m.tpot.std_ms, 0, 1e-9);
  // ITL [10, 10, 10, 10, 30]
  EXPECT_EQ(m.itl.n, 5u);
  EXPECT_NEAR(m.itl.mean_ms, 14, 1e-9);
  EXPECT_NEAR(m.itl.median_ms, 10, 1e-9);
  EXPECT_NEAR(m.itl.percentiles_ms[1].second, 29.2, 1e-9);
  // E2E [95, 140, 60]
  EXPECT_NEAR(m.e2el.mean_ms, 295.0 / 3, 1e-9);
  EXPECT_NEAR(m.e2el.median_ms, 95, 1e-9);
  // Send lag over every sent measured request: [1, 0.5, 0.2, 0.1, 0]
  EXPECT_EQ(m.send_lag.n, 5u);
  EXPECT_NEAR(m.send_lag.mean_ms, 0.36, 1e-9);
  EXPECT_NEAR(m.send_lag.median_ms, 0.2, 1e-9);
}

TEST(Metrics, ItlDividesAMultiTokenChunkGapOverItsTokens) {
  const auto rs = hand_made();
  EXPECT_EQ(itl_samples_ms(rs[0]), (std::vector<double>{10, 10, 10, 10}));
  // Mean ITL over the request equals its TPOT when the usage agrees with the stream.
  EXPECT_NEAR(tpot_ms(rs[0]), 10, 1e-12);
}

TEST(Metrics, LatencyIsFromTheScheduledTimeNotTheSendTime) {
  RequestRecord r = make(0, 30, 100, {{80, 1}, {90, 1}}, 2, 1, 1);  // sent 30 ms late
  EXPECT_NEAR(ttft_ms(r), 80, 1e-12);
  EXPECT_NEAR(e2el_ms(r), 100, 1e-12);
}

TEST(Metrics, SloAttainmentAndGoodputPerClass) {
  const auto rs = hand_made();
  MetricsOptions opt;
  opt.slos = {parse_slo("interactive:ttft=60,tpot=12"), parse_slo("batch:e2e=150"), parse_slo("smooth:itl=25")};
  const Metrics m = compute_metrics(rs, opt);
  ASSERT_EQ(m.slo.size(), 3u);
  EXPECT_EQ(m.slo[0].met, 2);  // R0, R5 (R1's TTFT is 100)
  EXPECT_EQ(m.slo[1].met, 3);  // every completed request ends within 150 ms
  EXPECT_EQ(m.slo[2].met, 2);  // R1 has a 30 ms gap
  EXPECT_NEAR(m.slo[0].attainment, 0.4, 1e-12);
  EXPECT_NEAR(m.slo[1].attainment, 0.6, 1e-12);
  EXPECT_NEAR(m.slo[1].goodput_rps, 3 / 1.3, 1e-12);
}

TEST(Metrics, EmptyAndAllFailedRunsGiveNoLatencies) {
  const Metrics empty = compute_metrics({}, {});
  EXPECT_EQ(empty.measured, 0);
  EXPECT_EQ(empty.duration_s, 0);
  EXPECT_TRUE(std::isnan(empty.ttft.mean_ms));
  auto rs = hand_made();
  for (auto& r : rs) r.error = ErrorKind::kConnectFailed;
  const Metrics m = compute_metrics(rs, {});
  EXPECT_EQ(m.completed, 0);
  EXPECT_EQ(m.failed_by_kind.at("connect_failed"), 5);
  EXPECT_EQ(m.ttft.n, 0u);
}

TEST(Flags, SloAndPercentileParsing) {
  const SloClass s = parse_slo("interactive:ttft=200,tpot=50");
  EXPECT_EQ(s.name, "interactive");
  EXPECT_EQ(s.ttft_ms, 200);
  EXPECT_EQ(s.tpot_ms, 50);
  EXPECT_LT(s.e2e_ms, 0);
  EXPECT_EQ(parse_slo("b:e2e=20000,itl=7.5").itl_ms, 7.5);
  for (const char* bad : {"noclass", ":ttft=1", "x:", "x:ttft", "x:ttft=-1", "x:foo=1", "x:ttft=1,"})
    EXPECT_THROW(parse_slo(bad), UsageError) << bad;
  try {
    parse_slo("x:foo=1");
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("--slo"), std::string::npos);
  }
  EXPECT_EQ(parse_percentiles("50, 90,99.9"), (std::vector<double>{50, 90, 99.9}));
  EXPECT_THROW(parse_percentiles("50,abc"), UsageError);
  EXPECT_THROW(parse_percentiles("0"), UsageError);
  EXPECT_THROW(parse_percentiles("101"), UsageError);
  EXPECT_EQ(percentile_label(99), "99");
  EXPECT_EQ(percentile_label(99.9), "99.9");
}

TEST(Outputs, JsonUsesVllmKeyNames) {
  LoadgenResult res;
  res.records = hand_made();
  MetricsOptions opt;
  opt.percentiles = {50, 99};
  opt.slos = {parse_slo("interactive:ttft=60")};
  res.metrics = compute_metrics(res.records, opt);
  res.extras.numbers = {{"energy_j", 12.5}};
  const auto j = nlohmann::json::parse(output_json_text(res, opt));
  for (const char* key : {"mean_ttft_ms", "median_ttft_ms", "std_ttft_ms", "p99_ttft_ms", "p50_tpot_ms", "mean_itl_ms",
                          "p99_e2el_ms", "request_throughput", "output_throughput", "total_token_throughput",
                          "completed", "duration", "total_input_tokens", "total_output_tokens", "request_goodput",
                          "input_lens", "output_lens", "ttfts", "itls", "errors", "mean_send_lag_ms"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["completed"], 3);
  EXPECT_NEAR(j["p99_ttft_ms"].get<double>(), 99, 1e-9);
  EXPECT_EQ(j["failed_by_kind"]["timeout"], 1);
  EXPECT_EQ(j["slo"]["interactive"]["met"], 2);
  EXPECT_EQ(j["energy_j"], 12.5);
  EXPECT_EQ(j["ttfts"].size(), 5u);  // measured requests only
  EXPECT_NEAR(j["ttfts"][0].get<double>(), 0.05, 1e-12);
}

}  // namespace
}  // namespace qmeter::loadgen
