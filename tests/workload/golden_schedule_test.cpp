// Golden values of seeded schedules: the arrival times and lengths that a fixed seed gives today.
// A stored study compares runs by their seed, so these numbers must never move; a refactor of the
// generators (issue 19: one SplitMix64 and one set of samplers) proves itself against them.
// Each case pins a digest of the whole schedule plus its first values in the clear.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "qmeter/core/hash.h"
#include "qmeter/workload/sampling.h"
#include "qmeter/workload/schedule.h"
#include "test_support.h"

namespace qmeter::workload {
namespace {

// FNV-1a over every request's offset, token counts and text, in order.
std::uint64_t digest(const Schedule& s) {
  std::uint64_t h = kFnv1a64Offset;
  for (const auto& r : s.requests) {
    const std::int64_t nums[] = {r.index, r.offset_ns, r.prompt.prompt_tokens, r.prompt.max_tokens, r.follows};
    h = fnv1a64_bytes(nums, sizeof nums, h);
    h = fnv1a64(r.prompt.text, h);
  }
  return h;
}

Schedule random_schedule(const std::string& arrival, double rate, double burstiness, std::uint64_t seed) {
  DatasetOptions d;
  d.num_prompts = 64;
  d.input_len = 32;
  d.output_len = 16;
  d.range_ratio = 0.5;
  d.seed = seed;
  ArrivalOptions a;
  a.kind = arrival;
  a.request_rate = rate;
  a.burstiness = burstiness;
  a.seed = seed;
  return build_schedule(d, a);
}

TEST(GoldenSchedule, DeriveSeedIsPinned) {
  EXPECT_EQ(derive_seed(0, 0), 0xe220a8397b1dcdafULL);
  EXPECT_EQ(derive_seed(42, 1), 0x28efe333b266f103ULL);
  SeededRng rng(7);
  EXPECT_EQ(rng.next_u64(), 0xc11f6531eb66d9a7ULL);
}

TEST(GoldenSchedule, PoissonRandomDatasetIsPinned) {
  const Schedule s = random_schedule("poisson", 20, 1, 0);
  ASSERT_EQ(s.requests.size(), 64u);
  EXPECT_EQ(s.requests[1].offset_ns, 42961526);
  EXPECT_EQ(s.requests[2].offset_ns, 178148808);
  EXPECT_EQ(s.requests[0].prompt.prompt_tokens, 16);
  EXPECT_EQ(s.requests[0].prompt.max_tokens, 8);
  EXPECT_EQ(digest(s), 0x836bfc61b61941e2ULL);
}

TEST(GoldenSchedule, GammaBurstyAndSeed7ArePinned) {
  EXPECT_EQ(digest(random_schedule("gamma", 10, 0.5, 7)), 0xec7bcf702a0d711dULL);
  EXPECT_EQ(digest(random_schedule("gamma", 10, 3, 7)), 0xd1fec70a6deebf23ULL);
  EXPECT_EQ(digest(random_schedule("constant", 10, 1, 7)), 0x86e2e4c635ab0e73ULL);
}

TEST(GoldenSchedule, RampAndClosedLoopArePinned) {
  DatasetOptions d;
  d.num_prompts = 50;
  d.seed = 3;
  d.range_ratio = 0.25;
  ArrivalOptions a;
  a.kind = "ramp";
  a.ramp_start_rate = 2;
  a.ramp_end_rate = 20;
  a.seed = 3;
  EXPECT_EQ(digest(build_schedule(d, a)), 0xbb396d94b31cc2b8ULL);
  a.ramp_base = "gamma";
  a.burstiness = 0.7;
  EXPECT_EQ(digest(build_schedule(d, a)), 0x4f40b31f4197f724ULL);
}

TEST(GoldenSchedule, AzureTraceReplayIsPinned) {
  const auto dir = qmeter::testing::test_output_dir("golden_azure");
  const std::string path = dir + "/azure.csv";
  std::ofstream(path) << "TIMESTAMP,ContextTokens,GeneratedTokens\n"
                         "2023-11-16 18:15:46.6805900,374,44\n"
                         "2023-11-16 18:15:50.0000000,120,7\n"
                         "2023-11-16 18:15:50.2500001,33,250\n"
                         "2023-11-16 18:16:01.5,900,12\n";
  DatasetOptions d;
  d.spec = "azure:" + path;
  d.num_prompts = 4;
  d.seed = 5;
  const Schedule s = build_schedule(d, ArrivalOptions{});
  ASSERT_EQ(s.requests.size(), 4u);
  EXPECT_EQ(s.requests[1].offset_ns, 3319410000);
  EXPECT_EQ(s.requests[2].offset_ns, 3569410100);
  EXPECT_EQ(s.requests[3].offset_ns, 14819410000);
  EXPECT_EQ(digest(s), 0xf1c9480615fc55f4ULL);
}

}  // namespace
}  // namespace qmeter::workload
