// Energy attribution against splits computed by hand.
#include <gtest/gtest.h>

#include <cmath>

#include "qmeter/telemetry/attribution.h"

namespace qmeter::telemetry {
namespace {

constexpr Nanos kSec = 1'000'000'000;

EnergyInterval interval(double a_s, double b_s, double joules, double above = 0) {
  return {static_cast<Nanos>(a_s * kSec), static_cast<Nanos>(b_s * kSec), joules, above};
}

// Request A: sent 0 s, first token 1 s, end 3 s, 100 prompt + 200 output tokens.
// Request B: sent 1 s, first token 2 s, end 3 s, 300 prompt + 100 output tokens.
std::vector<AttributionRequest> two_requests() {
  AttributionRequest a;
  a.id = 7;
  a.start_ns = 0;
  a.first_token_ns = 1 * kSec;
  a.end_ns = 3 * kSec;
  a.prompt_tokens = 100;
  a.output_tokens = 200;
  a.slo = {{"interactive", true}, {"batch", true}};
  AttributionRequest b;
  b.id = 8;
  b.start_ns = 1 * kSec;
  b.first_token_ns = 2 * kSec;
  b.end_ns = 3 * kSec;
  b.prompt_tokens = 300;
  b.output_tokens = 100;
  b.slo = {{"interactive", false}, {"batch", true}};
  return {a, b};
}

TEST(Attribution, TwoRequestsWithSecondIntervals) {
  // 100 J per second. By hand:
  //  [0,1]: only A's prefill (100 tokens)                  -> A prefill 100
  //  [1,2]: A decodes 100 tokens, B prefills 300           -> A decode 25, B prefill 75
  //  [2,3]: A decodes 100, B decodes 100                   -> A decode 50, B decode 50
  std::vector<EnergyInterval> iv = {interval(0, 1, 100, 40), interval(1, 2, 100, 40), interval(2, 3, 100, 40)};
  auto reqs = two_requests();
  AttributionResult r = attribute_energy(iv, reqs);
  ASSERT_EQ(r.requests.size(), 2u);
  EXPECT_EQ(r.requests[0].id, 7);
  EXPECT_NEAR(r.requests[0].prefill_j, 100, 1e-9);
  EXPECT_NEAR(r.requests[0].decode_j, 75, 1e-9);
  EXPECT_NEAR(r.requests[0].energy_j, 175, 1e-9);
  EXPECT_NEAR(r.requests[1].prefill_j, 75, 1e-9);
  EXPECT_NEAR(r.requests[1].decode_j, 50, 1e-9);
  EXPECT_NEAR(r.requests[1].energy_j, 125, 1e-9);
  // Above idle: 40 J per interval split the same way: A 40 + 10 + 20, B 30 + 20.
  EXPECT_NEAR(r.requests[0].above_idle_j, 70, 1e-9);
  EXPECT_NEAR(r.requests[1].above_idle_j, 50, 1e-9);
  EXPECT_NEAR(r.attributed_j, 300, 1e-9);
  EXPECT_NEAR(r.unattributed_j, 0, 1e-9);
  EXPECT_NEAR(r.j_per_request_mean, 150, 1e-9);
  EXPECT_NEAR(r.j_per_request_p50, 150, 1e-9);
  EXPECT_NEAR(r.j_per_request_p99, 125 + 0.99 * 50, 1e-9);  // linear interpolation between 125 and 175
  EXPECT_NEAR(r.j_per_output_token, 300.0 / 300.0, 1e-12);
  EXPECT_NEAR(r.j_per_prefill_token, 175.0 / 400.0, 1e-12);
  EXPECT_NEAR(r.j_per_decode_token, 125.0 / 300.0, 1e-12);
  ASSERT_EQ(r.slo_classes.size(), 2u);
  EXPECT_EQ(r.slo_classes[0].slo_class, "interactive");
  EXPECT_EQ(r.slo_classes[0].compliant_requests, 1u);
  EXPECT_NEAR(r.slo_classes[0].j_per_compliant_request, 300, 1e-9);
  EXPECT_NEAR(r.slo_classes[0].above_idle_j_per_compliant_request, 120, 1e-9);
  EXPECT_EQ(r.slo_classes[1].compliant_requests, 2u);
  EXPECT_NEAR(r.slo_classes[1].j_per_compliant_request, 150, 1e-9);
}

TEST(Attribution, IntervalsThatCutPhasesInTheMiddle) {
  // 150 J in [0, 1.5] and in [1.5, 3]. By hand:
  //  [0,1.5]: A prefill 100, A decode 200*0.5/2 = 50, B prefill 300*0.5 = 150 (sum 300)
  //           -> A prefill 50, A decode 25, B prefill 75
  //  [1.5,3]: A decode 150, B prefill 150, B decode 100 (sum 400)
  //           -> A decode 56.25, B prefill 56.25, B decode 37.5
  std::vector<EnergyInterval> iv = {interval(0, 1.5, 150), interval(1.5, 3, 150)};
  auto reqs = two_requests();
  AttributionResult r = attribute_energy(iv, reqs);
  EXPECT_NEAR(r.requests[0].prefill_j, 50, 1e-9);
  EXPECT_NEAR(r.requests[0].decode_j, 25 + 56.25, 1e-9);
  EXPECT_NEAR(r.requests[1].prefill_j, 75 + 56.25, 1e-9);
  EXPECT_NEAR(r.requests[1].decode_j, 37.5, 1e-9);
  EXPECT_NEAR(r.requests[0].energy_j, 131.25, 1e-9);
  EXPECT_NEAR(r.requests[1].energy_j, 168.75, 1e-9);
}

TEST(Attribution, OverlappingIntervalsOfTwoDevicesAreSplitEachOnItsOwn) {
  // GPU 0 gives [0,3] 300 J at once; GPU 1 gives per-second intervals of 10 J.
  // [0,3] as one interval: A 100 prefill + 200 decode = 300 tokens, B 400 tokens: A 3/7, B 4/7.
  std::vector<EnergyInterval> iv = {interval(0, 3, 300), interval(0, 1, 10), interval(1, 2, 10), interval(2, 3, 10)};
  auto reqs = two_requests();
  AttributionResult r = attribute_energy(iv, reqs);
  EXPECT_NEAR(r.requests[0].energy_j, 300.0 * 3 / 7 + 17.5, 1e-9);
  EXPECT_NEAR(r.requests[1].energy_j, 300.0 * 4 / 7 + 12.5, 1e-9);
}

TEST(Attribution, IdleGapsStayUnattributed) {
  auto reqs = two_requests();
  std::vector<EnergyInterval> iv = {interval(-2, -1, 80), interval(0, 1, 100), interval(3, 4, 60)};
  AttributionResult r = attribute_energy(iv, reqs);
  EXPECT_NEAR(r.window_energy_j, 240, 1e-9);
  EXPECT_NEAR(r.unattributed_j, 140, 1e-9);
  EXPECT_NEAR(r.attributed_j, 100, 1e-9);
  EXPECT_NEAR(r.requests[0].prefill_j, 100, 1e-9);
}

TEST(Attribution, ChunkTimesShapeTheDecodeSplit) {
  // A: prefill [0,1] 10 tokens; chunks at 1 s (1 token), 1.5 s (1 token), 3 s (2 tokens): the first
  // chunk's token spreads over [1,3], chunk 2 over (1,1.5], chunk 3 over (1.5,3].
  // B: a request decoding uniformly over [1,3] with 4 output tokens and no prompt.
  AttributionRequest a;
  a.id = 1;
  a.start_ns = 0;
  a.first_token_ns = 1 * kSec;
  a.end_ns = 3 * kSec;
  a.prompt_tokens = 10;
  a.output_tokens = 4;
  a.chunks = {{1 * kSec, 1}, {3 * kSec / 2, 1}, {3 * kSec, 2}};
  AttributionRequest b;
  b.id = 2;
  b.start_ns = 1 * kSec;
  b.first_token_ns = 1 * kSec;
  b.end_ns = 3 * kSec;
  b.prompt_tokens = 0;
  b.output_tokens = 4;
  // Interval [1, 1.5], 60 J: A decode = 1 * 0.25 + 1 = 1.25 tokens; B = 4 * 0.25 = 1 -> A 60*1.25/2.25.
  // Interval [1.5, 3], 90 J: A = 1 * 0.75 + 2 = 2.75; B = 3 -> A 90*2.75/5.75.
  std::vector<EnergyInterval> iv = {interval(1, 1.5, 60), interval(1.5, 3, 90)};
  std::vector<AttributionRequest> reqs = {a, b};
  AttributionResult r = attribute_energy(iv, reqs);
  EXPECT_NEAR(r.requests[0].decode_j, 60 * 1.25 / 2.25 + 90 * 2.75 / 5.75, 1e-9);
  EXPECT_NEAR(r.requests[1].decode_j, 60 * 1 / 2.25 + 90 * 3 / 5.75, 1e-9);
  EXPECT_NEAR(r.requests[0].prefill_j, 0, 1e-12);
  // With usage saying 8 output tokens while the chunks carry 4, every chunk counts double.
  reqs[0].output_tokens = 8;
  r = attribute_energy(iv, reqs);
  EXPECT_NEAR(r.requests[0].decode_j, 60 * 2.5 / 3.5 + 90 * 5.5 / 8.5, 1e-9);
}

TEST(Attribution, FailedRequestWithoutFirstTokenIsAllPrefill) {
  AttributionRequest a;
  a.id = 3;
  a.start_ns = 0;
  a.end_ns = 2 * kSec;
  a.prompt_tokens = 50;
  a.output_tokens = 0;
  std::vector<EnergyInterval> iv = {interval(0, 2, 20)};
  std::vector<AttributionRequest> reqs = {a};
  AttributionResult r = attribute_energy(iv, reqs);
  EXPECT_NEAR(r.requests[0].prefill_j, 20, 1e-9);
  EXPECT_NEAR(r.requests[0].decode_j, 0, 1e-12);
  EXPECT_TRUE(std::isnan(r.j_per_decode_token));
  EXPECT_TRUE(std::isnan(r.j_per_output_token));
}

TEST(Attribution, NoRequestsGivesNaNStatisticsNotACrash) {
  std::vector<EnergyInterval> iv = {interval(0, 1, 5)};
  AttributionResult r = attribute_energy(iv, {});
  EXPECT_NEAR(r.unattributed_j, 5, 1e-12);
  EXPECT_TRUE(std::isnan(r.j_per_request_mean));
  EXPECT_TRUE(r.slo_classes.empty());
}

}  // namespace
}  // namespace qmeter::telemetry
