// Golden values of the mock's seeded timings: the gaps a (seed, request index) gives today under
// each inter-token distribution, and the fault each index draws. Tests elsewhere derive their
// expectations from plan_response itself, so only pinned numbers show that a refactor of the
// generator (issue 19: one SplitMix64 in core) changed nothing.
#include <gtest/gtest.h>

#include "qmeter/core/hash.h"
#include "qmeter/mockserver/response_plan.h"

namespace qmeter::mockserver {
namespace {

std::uint64_t digest_offsets(const MockServerConfig& c, std::uint64_t first_index, int n) {
  PlanRequest r;
  r.stream = true;
  r.max_tokens = 24;
  std::uint64_t h = kFnv1a64Offset;
  for (int i = 0; i < n; ++i) {
    const ResponsePlan p = plan_response(c, first_index + static_cast<std::uint64_t>(i), r, true);
    h = fnv1a64_bytes(p.token_chunk_offsets_ns.data(), p.token_chunk_offsets_ns.size() * sizeof(Nanos), h);
    const int fault = static_cast<int>(p.fault);
    h = fnv1a64_bytes(&fault, sizeof fault, h);
  }
  return h;
}

TEST(GoldenPlan, SeededGapsAndFaultsArePinned) {
  MockServerConfig c;
  c.ttft_ms = 50;
  c.itl_ms = 10;
  c.seed = 11;
  c.itl_dist = ItlDistribution::kExponential;
  PlanRequest r;
  r.stream = true;
  r.max_tokens = 4;
  const ResponsePlan p = plan_response(c, 3, r, true);
  ASSERT_EQ(p.token_chunk_offsets_ns.size(), 4u);
  EXPECT_EQ(p.token_chunk_offsets_ns[1], 51946376);
  EXPECT_EQ(p.token_chunk_offsets_ns[3], 89386382);
  EXPECT_EQ(digest_offsets(c, 0, 50), 0xc4021da266f88782ULL);
  c.itl_dist = ItlDistribution::kLognormal;
  c.itl_lognormal_sigma = 0.8;
  EXPECT_EQ(digest_offsets(c, 100, 50), 0x267c7ebc64f39f83ULL);
  c.itl_dist = ItlDistribution::kConstant;
  c.faults = {{FaultKind::kHttp500, 0.2}, {FaultKind::kDrop, 0.1}, {FaultKind::kEmptyChunks, 0.3}};
  EXPECT_EQ(digest_offsets(c, 0, 200), 0xf4eaf5169025ee81ULL);
  std::string faults;
  for (std::uint64_t i = 0; i < 20; ++i) faults += std::to_string(static_cast<int>(choose_fault(c, i)));
  EXPECT_EQ(faults, "37010717731170017710");
}

}  // namespace
}  // namespace qmeter::mockserver
