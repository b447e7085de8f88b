// The multi-turn, shared-prefix and trace workload keys of a study spec (issue #20).
#include <gtest/gtest.h>

#include "qmeter/core/error.h"
#include "qmeter/spec/study_spec.h"

using namespace qmeter::spec;

namespace {

std::string spec_with(const std::string& workload) {
  return "study: {name: demo}\nmodels:\n  - {name: tiny, path: \"synthetic:tiny\"}\nmethods: [fp32]\nworkloads:\n" + workload +
         "seed: 7\n";
}

KnownNames known() { return {{"fp32"}, {"perplexity"}}; }

std::string error_of(const std::string& text) {
  try {
    parse_study_spec_text(text, "s.yaml", known());
  } catch (const qmeter::UsageError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(SpecWorkloads, MultiturnPrefixAndTraceKeys) {
  const auto s = parse_study_spec_text(spec_with("  - {name: chat, dataset: multiturn, turns: 5, think_time_s: 1.5, rates: [1]}\n"
                                                 "  - {name: shared, dataset: prefix, num_prefixes: 8, prefix_len: 512, rates: [2]}\n"),
                                       "s.yaml", known());
  ASSERT_EQ(s.workloads.size(), 2u);
  EXPECT_EQ(s.workloads[0].turns, 5);
  EXPECT_DOUBLE_EQ(s.workloads[0].think_time_s, 1.5);
  EXPECT_EQ(s.workloads[1].num_prefixes, 8);
  EXPECT_EQ(s.workloads[1].prefix_len, 512);
  // They change what is measured, so they change the run ids.
  const auto plain = expand_runs(parse_study_spec_text(spec_with("  - {name: chat, dataset: multiturn, rates: [1]}\n"), "s.yaml", known()));
  EXPECT_NE(expand_runs(s)[0].id, plain[0].id);

  EXPECT_NE(error_of(spec_with("  - {name: chat, dataset: multiturn, turns: 0, rates: [1]}\n")).find("workloads[0].turns: must be >= 1"),
            std::string::npos);
  const std::string bad_window = error_of(spec_with("  - {name: t, dataset: random, trace_window: '5', rates: [1]}\n"));
  EXPECT_NE(bad_window.find("workloads[0].trace_window"), std::string::npos) << bad_window;
  EXPECT_NE(bad_window.find("expected START,DURATION"), std::string::npos) << bad_window;
  const std::string missing = error_of(spec_with("  - {name: t, dataset: 'mooncake:/nonexistent.jsonl', rates: [1]}\n"));
  EXPECT_NE(missing.find("file not found: /nonexistent.jsonl"), std::string::npos) << missing;
}
