// `qmeter bench serve` with the issue #20 workloads, end to end against the real mock server:
// conversations with per-turn metrics in the JSON, shared prefixes, a trace window, bad flags.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "client/mock_server_process.h"
#include "qmeter/core/process.h"
#include "run_qmeter.h"

namespace qmeter {
namespace {

using nlohmann::json;

TEST(BenchServeWorkloadsCli, MultiturnWritesPerTurnMetrics) {
  const std::string dir = testing::test_output_dir("bench_serve_multiturn");
  testing::MockServerProcess mock(dir, {"--ttft-ms", "2", "--itl-ms", "1"});
  const int status = testing::run_qmeter({"bench", "serve", "--base-url", mock.base_url(), "--model", "m", "--dataset", "multiturn",
                                          "--num-prompts", "4", "--turns", "3", "--input-len", "5", "--output-len", "4",
                                          "--think-time-s", "0.02", "--request-rate", "50", "--output-json", dir + "/out.json"},
                                         dir + "/cli.out", 120);
  ASSERT_EQ(status, 0) << read_file(dir + "/cli.out");
  EXPECT_NE(read_file(dir + "/cli.out").find("Conversations (multi-turn)"), std::string::npos);
  const json j = json::parse(read_file(dir + "/out.json"));
  EXPECT_EQ(j["completed"], 12);
  const json& s = j["sessions"];
  EXPECT_EQ(s["sessions"], 4);
  EXPECT_EQ(s["completed_sessions"], 4);
  ASSERT_EQ(s["by_turn"].size(), 3u);
  // The mock counts words: turn k's context = k+1 user turns of 5 words + k replies of 4 words
  // (the mock's reply text has one word per token).
  for (int k = 0; k < 3; ++k) {
    EXPECT_EQ(s["by_turn"][k]["requests"], 4);
    EXPECT_DOUBLE_EQ(s["by_turn"][k]["mean_context_tokens"].get<double>(), 5.0 * (k + 1) + 4.0 * k) << k;
  }
}

TEST(BenchServeWorkloadsCli, PrefixAndTraceWindowFlags) {
  const std::string dir = testing::test_output_dir("bench_serve_prefix");
  testing::MockServerProcess mock(dir, {"--ttft-ms", "1", "--itl-ms", "1"});
  int status = testing::run_qmeter({"bench", "serve", "--base-url", mock.base_url(), "--model", "m", "--dataset", "prefix",
                                    "--num-prefixes", "2", "--prefix-len", "30", "--input-len", "4", "--output-len", "2",
                                    "--num-prompts", "6", "--output-json", dir + "/out.json"},
                                   dir + "/cli.out", 120);
  ASSERT_EQ(status, 0) << read_file(dir + "/cli.out");
  EXPECT_EQ(json::parse(read_file(dir + "/out.json"))["total_input_tokens"], 6 * 34);
  const std::string mooncake = testing::source_dir() + "/tests/workload/data/mooncake_sample.jsonl";
  status = testing::run_qmeter({"bench", "serve", "--base-url", mock.base_url(), "--model", "m", "--dataset", "trace:" + mooncake,
                                "--trace-window", "1,2", "--trace-time-scale", "10", "--num-prompts", "2", "--output-json",
                                dir + "/trace.json"},
                               dir + "/cli.out", 120);
  ASSERT_EQ(status, 0) << read_file(dir + "/cli.out");
  const json t = json::parse(read_file(dir + "/trace.json"));
  EXPECT_EQ(t["arrival"], "trace");
  EXPECT_EQ(t["total_input_tokens"], 1024 + 300);  // the rows at 1.5 s and 2.75 s
  status = testing::run_qmeter({"bench", "serve", "--base-url", mock.base_url(), "--model", "m", "--dataset", "trace:" + mooncake,
                                "--trace-window", "soon"},
                               dir + "/cli.out", 60);
  EXPECT_EQ(status, 2);
  EXPECT_NE(read_file(dir + "/cli.out").find("--trace-window 'soon': expected START,DURATION"), std::string::npos)
      << read_file(dir + "/cli.out");
}

}  // namespace
}  // namespace qmeter
