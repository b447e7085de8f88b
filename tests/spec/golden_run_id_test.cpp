// Golden run ids: a run id is FNV-1a 64 of the normalized configuration, and a study resumed after
// an upgrade finds its finished runs by these ids, so they must never move (issue 19 moves the
// hash into core; these values prove it unchanged).
#include <gtest/gtest.h>

#include "qmeter/spec/study_spec.h"

namespace qmeter::spec {
namespace {

TEST(GoldenRunId, ExpandedRunIdsArePinned) {
  const char* text = R"(study: {name: golden}
models:
  - {name: tiny, path: "synthetic:tiny"}
methods:
  - fp32
  - {name: w4a16-rtn, group_size: 64}
parallelism: {tp: [1, 2]}
workloads:
  - {name: chat, dataset: random, input_len: 32, output_len: 16, num_prompts: 20, rates: [1, inf]}
slos:
  interactive: {ttft_ms: 200, tpot_ms: 50}
energy: {source: model, interval_ms: 20}
seed: 7
)";
  const auto runs = expand_runs(parse_study_spec_text(text, "golden.yaml"));
  std::vector<std::string> ids;
  for (const auto& r : runs) ids.push_back(r.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"207c83d6101d09d1", "479ebca022dc52ba", "c36f550fa5174503", "1125fe28d086b318"}));
}

// The run-id hash is FNV-1a with the offset basis 1469598103934665603: the standard basis
// 14695981039346656037 with its last digit lost. Every stored run id carries that basis, so it
// stays; these values tell it apart from the standard FNV-1a ("" hashes to the basis itself).
TEST(GoldenRunId, RunIdHashKeepsItsOffsetBasis) {
  EXPECT_EQ(fnv1a64(""), 1469598103934665603ULL);
  EXPECT_EQ(fnv1a64("a"), 4953267810257967366ULL);
  EXPECT_EQ(fnv1a64("foobar"), 9870438755804841970ULL);
}

}  // namespace
}  // namespace qmeter::spec
