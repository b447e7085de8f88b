// A server slower than the arrival rate: with latency measured from the scheduled time, open-loop
// E2E grows across the run (the queue is visible); closed loop (one in flight) stays flat.
#include <gtest/gtest.h>

#include <numeric>

#include "client/scripted_server.h"
#include "qmeter/loadgen/loadgen.h"

namespace qmeter::loadgen {
namespace {

using testing::ScriptedConnection;
using testing::ScriptedServer;

// One request at a time, 20 ms each: at most 50 req/s.
void serve_slowly(const std::string&, ScriptedConnection& c) {
  c.sse_headers();
  c.sleep_ms(20);
  c.write("data: {\"choices\":[{\"text\":\" a\"}]}\n\ndata: {\"choices\":[{\"text\":\" b\",\"finish_reason\":\"length\"}]}\n\n"
          "data: [DONE]\n\n");
}

workload::Schedule every_10ms(int n, int max_concurrency) {
  workload::Schedule s;
  for (int i = 0; i < n; ++i) {
    workload::ScheduledRequest r;
    r.index = i;
    r.offset_ns = i * 10'000'000;  // 100 req/s
    r.prompt.text = "x";
    r.prompt.max_tokens = 2;
    s.requests.push_back(r);
  }
  s.max_concurrency = max_concurrency;
  return s;
}

double mean_e2e(const std::vector<client::RequestRecord>& rs, std::size_t from, std::size_t to) {
  double sum = 0;
  for (std::size_t i = from; i < to; ++i) sum += e2el_ms(rs[i]);
  return sum / static_cast<double>(to - from);
}

TEST(Queueing, OpenLoopE2EGrowsAcrossTheRunClosedLoopDoesNot) {
  ScriptedServer server(serve_slowly);
  LoadgenOptions opt;
  opt.client.base_url = server.base_url();
  opt.client.model = "m";
  opt.check_server = false;
  const int n = 30;

  const LoadgenResult open = run_load(every_10ms(n, 0), opt, {});
  ASSERT_EQ(open.metrics.completed, n);
  // Request i is scheduled at 10 i ms but served at about 20 (i + 1) ms: E2E ~ 20 + 10 i ms.
  const double open_first = mean_e2e(open.records, 0, 5), open_last = mean_e2e(open.records, n - 5, n);
  EXPECT_GT(open_last - open_first, 150.0) << open_first << " -> " << open_last;
  EXPECT_GT(open.metrics.max_concurrent_requests, 5);

  const LoadgenResult closed = run_load(every_10ms(n, 1), opt, {});
  ASSERT_EQ(closed.metrics.completed, n);
  const double closed_first = mean_e2e(closed.records, 0, 5), closed_last = mean_e2e(closed.records, n - 5, n);
  EXPECT_LT(closed_last - closed_first, 50.0) << closed_first << " -> " << closed_last;
  EXPECT_EQ(closed.metrics.max_concurrent_requests, 1);
  // Closed loop releases each request when the previous one ends: latency counts from the
  // release, and planned_ns keeps the schedule's own time.
  for (int i = 1; i < n; ++i) {
    EXPECT_GE(closed.records[i].scheduled_ns, closed.records[i - 1].end_ns);
    EXPECT_EQ(closed.records[i].planned_ns, closed.start_ns + i * 10'000'000);
  }
  // Both runs served the same work; the open loop's queueing shows only in its latencies.
  EXPECT_GT(open.metrics.e2el.mean_ms, 3 * closed.metrics.e2el.mean_ms);
}

TEST(Queueing, WarmupRequestsAreSentButExcluded) {
  ScriptedServer server(serve_slowly);
  LoadgenOptions opt;
  opt.client.base_url = server.base_url();
  opt.client.model = "m";
  opt.check_server = false;
  opt.warmup = 3;
  const LoadgenResult r = run_load(every_10ms(8, 1), opt, {});
  EXPECT_EQ(r.records.size(), 8u);
  EXPECT_EQ(server.requests().size(), 8u);
  EXPECT_EQ(r.metrics.warmup_excluded, 3);
  EXPECT_EQ(r.metrics.completed, 5);
  EXPECT_TRUE(r.records[2].warmup);
  EXPECT_FALSE(r.records[3].warmup);
}

}  // namespace
}  // namespace qmeter::loadgen
