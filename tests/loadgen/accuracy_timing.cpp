// The accuracy check: against the mock with TTFT 50 ms and ITL 10 ms, 20 req/s Poisson,
// 200 requests of 64 output tokens, the client's median TTFT is within 2 ms of the mock's own log
// and its median ITL and TPOT within 0.5 ms.
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>

#include "client/mock_server_process.h"
#include "qmeter/core/stats.h"
#include "qmeter/loadgen/loadgen.h"

namespace qmeter::loadgen {
namespace {

using nlohmann::json;

TEST(Accuracy, MediansMatchTheMockLog) {
  const std::string dir = qmeter::testing::test_output_dir("loadgen_accuracy");
  qmeter::testing::MockServerProcess mock(
      dir, {"--ttft-ms", "50", "--itl-ms", "10", "--seed", "1", "--request-log", dir + "/log.jsonl"});

  workload::DatasetOptions ds;
  ds.spec = "random";
  ds.num_prompts = 200;
  ds.input_len = 32;
  ds.output_len = 64;
  workload::ArrivalOptions ar;
  ar.request_rate = 20;  // no kind: Poisson
  const workload::Schedule schedule = workload::build_schedule(ds, ar);
  ASSERT_EQ(schedule.arrival_kind, "poisson");

  LoadgenOptions opt;
  opt.client.base_url = mock.base_url();
  opt.client.model = "qmeter-mock";
  opt.client.keep_text = false;
  const LoadgenResult res = run_load(schedule, opt, {});
  mock.stop();
  ASSERT_EQ(res.metrics.completed, 200);
  EXPECT_EQ(res.metrics.total_output_tokens, 200 * 64);

  std::map<std::string, json> log;
  for (const auto& line : qmeter::testing::read_lines(dir + "/log.jsonl")) {
    json j = json::parse(line);
    log[j["id"].get<std::string>()] = j;
  }
  std::vector<double> mock_ttft, mock_itl, mock_tpot;
  for (const auto& r : res.records) {
    const json& j = log.at(r.response_id);
    std::vector<Nanos> t;
    for (const auto& c : j["chunks"])
      if (c["tokens"].get<int>() > 0) t.push_back(c["ns"].get<Nanos>());
    ASSERT_EQ(t.size(), 64u);
    mock_ttft.push_back(ns_to_ms(t.front() - j["arrival_ns"].get<Nanos>()));
    for (std::size_t i = 1; i < t.size(); ++i) mock_itl.push_back(ns_to_ms(t[i] - t[i - 1]));
    mock_tpot.push_back(ns_to_ms(t.back() - t.front()) / 63.0);
  }
  const Metrics& m = res.metrics;
  RecordProperty("client_median_ttft_ms", std::to_string(m.ttft.median_ms));
  RecordProperty("mock_median_ttft_ms", std::to_string(stats::median(mock_ttft)));
  EXPECT_NEAR(m.ttft.median_ms, stats::median(mock_ttft), 2.0);
  EXPECT_NEAR(m.itl.median_ms, stats::median(mock_itl), 0.5);
  EXPECT_NEAR(m.tpot.median_ms, stats::median(mock_tpot), 0.5);
  // And both sit where the mock was told to be.
  EXPECT_NEAR(stats::median(mock_ttft), 50.0, 2.0);
  EXPECT_NEAR(stats::median(mock_itl), 10.0, 0.5);
  EXPECT_LT(m.send_lag.percentiles_ms.back().second, 5.0);  // p99 send lag, loosely (the bench measures it)
  std::printf("client median TTFT %.3f ms (mock %.3f), ITL %.3f (mock %.3f), TPOT %.3f (mock %.3f), p99 send lag %.3f ms\n",
              m.ttft.median_ms, stats::median(mock_ttft), m.itl.median_ms, stats::median(mock_itl), m.tpot.median_ms,
              stats::median(mock_tpot), m.send_lag.percentiles_ms.back().second);
}

}  // namespace
}  // namespace qmeter::loadgen
