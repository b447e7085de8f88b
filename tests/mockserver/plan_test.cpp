// The mock's ground truth as a pure function: schedules, output lengths, gap distributions,
// fault assignment, and the validation of its settings.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "qmeter/core/error.h"
#include "qmeter/mockserver/response_plan.h"

namespace qmeter::mockserver {
namespace {

MockServerConfig base_config() {
  MockServerConfig c;
  c.ttft_ms = 50;
  c.itl_ms = 10;
  return c;
}

std::vector<Nanos> gaps_of(const ResponsePlan& p) {
  std::vector<Nanos> g;
  for (std::size_t i = 1; i < p.token_chunk_offsets_ns.size(); ++i) {
    g.push_back(p.token_chunk_offsets_ns[i] - p.token_chunk_offsets_ns[i - 1]);
  }
  return g;
}

TEST(ResponsePlan, TokenTextIsOneWordPerToken) {
  EXPECT_EQ(token_text(3, 2), " tok3 tok4");
  EXPECT_EQ(token_text(0, 0), "");
}

TEST(ResponsePlan, ConstantScheduleIsTtftThenOneGapPerChunk) {
  MockServerConfig c = base_config();
  c.tokens_per_chunk = 3;
  PlanRequest r;
  r.stream = true;
  r.max_tokens = 10;
  ResponsePlan p = plan_response(c, 0, r, /*include_usage=*/true);
  EXPECT_EQ(p.completion_tokens, 10);
  EXPECT_TRUE(p.hit_max_tokens);
  EXPECT_EQ(p.token_chunk_sizes, (std::vector<int>{3, 3, 3, 1}));
  EXPECT_EQ(p.token_chunk_offsets_ns,
            (std::vector<Nanos>{ms_to_ns(50), ms_to_ns(60), ms_to_ns(70), ms_to_ns(80)}));
  ASSERT_EQ(p.events.size(), 6u);  // 4 token chunks, usage, done
  EXPECT_EQ(p.events[0].kind, EventKind::kTokens);
  EXPECT_EQ(p.events[3].first_token, 9);
  EXPECT_EQ(p.events[3].tokens, 1);
  EXPECT_EQ(p.events[4].kind, EventKind::kUsage);
  EXPECT_EQ(p.events[5].kind, EventKind::kDone);
  EXPECT_EQ(p.events[5].offset_ns, ms_to_ns(80));
  // Without include_usage there is no usage chunk; a non-streamed reply is one body at the end.
  EXPECT_EQ(plan_response(c, 0, r, false).events.size(), 5u);
  r.stream = false;
  ResponsePlan whole = plan_response(c, 0, r, true);
  ASSERT_EQ(whole.events.size(), 1u);
  EXPECT_EQ(whole.events[0].kind, EventKind::kTokens);
  EXPECT_EQ(whole.events[0].tokens, 10);
  EXPECT_EQ(whole.events[0].offset_ns, ms_to_ns(80));
}

TEST(ResponsePlan, OutputLengthFollowsMaxTokensOutputLenAndIgnoreEos) {
  MockServerConfig c = base_config();
  PlanRequest r;
  EXPECT_EQ(plan_response(c, 0, r, false).completion_tokens, 16);  // OpenAI's default max_tokens
  r.max_tokens = 64;
  EXPECT_EQ(plan_response(c, 0, r, false).completion_tokens, 64);
  c.output_len = 5;  // the model "emits EOS" after 5 tokens
  ResponsePlan p = plan_response(c, 0, r, false);
  EXPECT_EQ(p.completion_tokens, 5);
  EXPECT_FALSE(p.hit_max_tokens);
  r.max_tokens = 3;
  EXPECT_EQ(plan_response(c, 0, r, false).completion_tokens, 3);
  r.max_tokens = 64;
  r.ignore_eos = true;
  EXPECT_EQ(plan_response(c, 0, r, false).completion_tokens, 64);
}

TEST(ResponsePlan, SameSeedAndIndexGiveTheSamePlan) {
  MockServerConfig c = base_config();
  c.itl_dist = ItlDistribution::kExponential;
  c.faults = {{FaultKind::kDrop, 0.3}};
  PlanRequest r;
  r.stream = true;
  r.max_tokens = 50;
  auto a = plan_response(c, 7, r, false);
  auto b = plan_response(c, 7, r, false);
  EXPECT_EQ(a.token_chunk_offsets_ns, b.token_chunk_offsets_ns);
  EXPECT_EQ(a.fault, b.fault);
  EXPECT_NE(a.token_chunk_offsets_ns, plan_response(c, 8, r, false).token_chunk_offsets_ns);
  c.seed = 1;
  EXPECT_NE(a.token_chunk_offsets_ns, plan_response(c, 7, r, false).token_chunk_offsets_ns);
}

TEST(ResponsePlan, ExponentialGapsHaveTheConfiguredMeanAndShape) {
  MockServerConfig c = base_config();
  c.itl_dist = ItlDistribution::kExponential;
  PlanRequest r;
  r.max_tokens = 201;
  std::vector<double> gaps;
  for (std::uint64_t i = 0; i < 100; ++i) {
    for (Nanos g : gaps_of(plan_response(c, i, r, false))) gaps.push_back(ns_to_ms(g));
  }
  ASSERT_EQ(gaps.size(), 20000u);
  double mean = 0;
  for (double g : gaps) mean += g;
  mean /= static_cast<double>(gaps.size());
  // Standard error of the mean = 10 / sqrt(20000) = 0.07 ms: 0.3 ms is > 4 standard errors.
  EXPECT_NEAR(mean, 10.0, 0.3);
  // P(gap > mean) = e^-1 for an exponential; standard error 0.0034.
  double above = static_cast<double>(std::count_if(gaps.begin(), gaps.end(), [](double g) { return g > 10.0; })) /
                 static_cast<double>(gaps.size());
  EXPECT_NEAR(above, std::exp(-1.0), 0.015);
}

TEST(ResponsePlan, LognormalGapsHaveTheConfiguredMeanAndMedian) {
  MockServerConfig c = base_config();
  c.itl_dist = ItlDistribution::kLognormal;
  c.itl_lognormal_sigma = 0.5;
  PlanRequest r;
  r.max_tokens = 201;
  std::vector<double> gaps;
  for (std::uint64_t i = 0; i < 100; ++i) {
    for (Nanos g : gaps_of(plan_response(c, i, r, false))) gaps.push_back(ns_to_ms(g));
  }
  double mean = 0;
  for (double g : gaps) mean += g;
  mean /= static_cast<double>(gaps.size());
  EXPECT_NEAR(mean, 10.0, 0.2);  // CV 0.53 -> standard error 0.04 ms
  std::sort(gaps.begin(), gaps.end());
  // median = exp(mu) = mean * exp(-sigma^2 / 2) = 8.825 ms
  EXPECT_NEAR(gaps[gaps.size() / 2], 10.0 * std::exp(-0.125), 0.2);
}

TEST(ResponsePlan, FaultFractionsHoldOverManyRequests) {
  MockServerConfig c = base_config();
  c.faults = {{FaultKind::kDrop, 0.2}, {FaultKind::kStall, 0.1}, {FaultKind::kHttp429, 0.05}};
  std::map<FaultKind, int> counts;
  const int n = 20000;
  for (int i = 0; i < n; ++i) counts[choose_fault(c, static_cast<std::uint64_t>(i))]++;
  auto within = [&](FaultKind k, double p) {
    double sd = std::sqrt(n * p * (1 - p));
    EXPECT_NEAR(counts[k], n * p, 4 * sd) << fault_name(k);
  };
  within(FaultKind::kDrop, 0.2);
  within(FaultKind::kStall, 0.1);
  within(FaultKind::kHttp429, 0.05);
  within(FaultKind::kNone, 0.65);
  // The fault decision does not depend on the request's shape.
  PlanRequest r;
  r.stream = true;
  for (std::uint64_t i = 0; i < 50; ++i) EXPECT_EQ(plan_response(c, i, r, false).fault, choose_fault(c, i));
}

// Plans of the fault kinds that change a stream's shape (10 tokens, one per chunk).
ResponsePlan plan_with(FaultKind kind, bool stream = true) {
  MockServerConfig c = base_config();
  c.faults = {{kind, 1.0}};
  PlanRequest r;
  r.stream = stream;
  r.max_tokens = 10;
  return plan_response(c, 0, r, true);
}

int tokens_in(const ResponsePlan& p) {
  int n = 0;
  for (const auto& e : p.events) n += e.kind == EventKind::kTokens ? e.tokens : 0;
  return n;
}

TEST(ResponsePlan, FaultKindsShapeTheStreamAsDocumented) {
  auto drop = plan_with(FaultKind::kDrop);
  EXPECT_EQ(tokens_in(drop), 5);  // half the chunks, then the connection is closed
  EXPECT_EQ(drop.events.back().kind, EventKind::kDrop);
  EXPECT_EQ(drop.events.back().offset_ns, ms_to_ns(100));  // when chunk 5 was due

  auto stall = plan_with(FaultKind::kStall);
  EXPECT_EQ(tokens_in(stall), 5);
  EXPECT_EQ(stall.events.back().kind, EventKind::kStall);

  auto malformed = plan_with(FaultKind::kMalformed);
  EXPECT_EQ(tokens_in(malformed), 10);
  EXPECT_EQ(malformed.events[5].kind, EventKind::kMalformed);
  EXPECT_EQ(malformed.events[6].first_token, 5);

  auto role = plan_with(FaultKind::kRoleOnlyFirst);
  EXPECT_EQ(role.events[0].kind, EventKind::kRole);
  EXPECT_EQ(role.events[0].offset_ns, 0);

  auto empty = plan_with(FaultKind::kEmptyChunks);
  EXPECT_EQ(tokens_in(empty), 10);
  ASSERT_EQ(empty.events.size(), 22u);  // 10 x (empty, tokens) + usage + done
  EXPECT_EQ(empty.events[0].kind, EventKind::kEmpty);
  EXPECT_EQ(empty.events[0].offset_ns, ms_to_ns(25));  // half-way to the first token
  EXPECT_EQ(empty.events[2].offset_ns, ms_to_ns(55));

  auto mismatch = plan_with(FaultKind::kUsageMismatch);
  EXPECT_EQ(mismatch.completion_tokens, 10);
  EXPECT_EQ(mismatch.reported_completion_tokens, 11);

  auto whole_drop = plan_with(FaultKind::kDrop, false);
  ASSERT_EQ(whole_drop.events.size(), 1u);
  EXPECT_EQ(whole_drop.events[0].kind, EventKind::kDrop);
}

TEST(MockServerConfig, BadSettingsNameTheirFlag) {
  auto message = [](auto&& fn) {
    try {
      fn();
    } catch (const UsageError& e) {
      return std::string(e.what());
    }
    return std::string("<no error>");
  };
  EXPECT_NE(message([] { parse_fault_spec("bogus:0.1"); }).find("unknown fault kind 'bogus'"), std::string::npos);
  EXPECT_NE(message([] { parse_fault_spec("drop:1.5"); }).find("--fault 'drop:1.5'"), std::string::npos);
  EXPECT_NE(message([] { parse_fault_spec("drop:x"); }).find("[0, 1]"), std::string::npos);
  EXPECT_NE(message([] { parse_fault_spec("drop"); }).find("KIND:FRACTION"), std::string::npos);
  EXPECT_EQ(parse_fault_spec("usage_mismatch:0.25").kind, FaultKind::kUsageMismatch);
  EXPECT_DOUBLE_EQ(parse_fault_spec("usage_mismatch:0.25").fraction, 0.25);
  EXPECT_NE(message([] { parse_itl_distribution("gauss"); }).find("--itl-dist"), std::string::npos);

  auto invalid = [&](auto mutate) {
    MockServerConfig c;
    mutate(c);
    return message([&] { c.validate(); });
  };
  EXPECT_NE(invalid([](auto& c) { c.ttft_ms = -1; }).find("--ttft-ms"), std::string::npos);
  EXPECT_NE(invalid([](auto& c) { c.itl_ms = -1; }).find("--itl-ms"), std::string::npos);
  EXPECT_NE(invalid([](auto& c) { c.tokens_per_chunk = 0; }).find("--tokens-per-chunk"), std::string::npos);
  EXPECT_NE(invalid([](auto& c) { c.output_len = 0; }).find("--tokens-before-eos"), std::string::npos);
  EXPECT_NE(invalid([](auto& c) { c.port = 70000; }).find("--port"), std::string::npos);
  EXPECT_NE(invalid([](auto& c) { c.io_threads = 0; }).find("--io-threads"), std::string::npos);
  EXPECT_NE(invalid([](auto& c) { c.faults = {{FaultKind::kDrop, 0.6}, {FaultKind::kStall, 0.6}}; }).find("add up"),
            std::string::npos);
  EXPECT_NE(invalid([](auto& c) { c.faults = {{FaultKind::kDrop, 0.1}, {FaultKind::kDrop, 0.1}}; }).find("twice"),
            std::string::npos);
  EXPECT_EQ(invalid([](auto&) {}), "<no error>");
}

}  // namespace
}  // namespace qmeter::mockserver
