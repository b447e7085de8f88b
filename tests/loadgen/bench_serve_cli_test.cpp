// `qmeter bench serve` end to end: the real binary against the real mock server.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "client/mock_server_process.h"
#include "qmeter/core/process.h"

namespace qmeter {
namespace {

using nlohmann::json;

struct CliResult {
  int status;
  std::string output;  // stdout + stderr
};

CliResult run_qmeter(const std::string& dir, std::vector<std::string> args) {
  SpawnOptions so;
  so.argv = {testing::qmeter_bin()};
  so.argv.insert(so.argv.end(), args.begin(), args.end());
  so.log_path = dir + "/cli.out";
  std::remove(so.log_path.c_str());
  ChildProcess p = ChildProcess::spawn(so);
  const auto status = p.wait(120);
  if (!status) p.stop(1);
  return {status.value_or(-1), read_file(so.log_path)};
}

TEST(BenchServeCli, WritesSummaryJsonAndRequests) {
  const std::string dir = testing::test_output_dir("bench_serve_cli");
  testing::MockServerProcess mock(dir, {"--ttft-ms", "2", "--itl-ms", "1"});
  const auto r = run_qmeter(dir, {"bench", "serve", "--base-url", mock.base_url(), "--model", "m", "--num-prompts", "20",
                                  "--request-rate", "200", "--input-len", "4", "--output-len", "8", "--warmup", "2",
                                  "--slo", "fast:ttft=1000,tpot=1000", "--slo", "impossible:ttft=0.001",
                                  "--percentiles", "50,99.9", "--output-json", dir + "/out.json",
                                  "--save-requests", dir + "/requests.jsonl"});
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("Serving Benchmark Result"), std::string::npos);
  EXPECT_NE(r.output.find("Successful requests:"), std::string::npos);
  const json j = json::parse(read_file(dir + "/out.json"));
  EXPECT_EQ(j["completed"], 18);
  EXPECT_EQ(j["failed"], 0);
  EXPECT_EQ(j["warmup"], 2);
  EXPECT_EQ(j["total_output_tokens"], 18 * 8);
  EXPECT_EQ(j["total_input_tokens"], 18 * 4);  // the mock counts words; the random dataset builds them
  EXPECT_EQ(j["arrival"], "poisson");
  EXPECT_TRUE(j.contains("p99.9_ttft_ms"));
  EXPECT_TRUE(j.contains("median_tpot_ms"));
  EXPECT_EQ(j["slo"]["fast"]["attainment"], 1.0);
  EXPECT_EQ(j["slo"]["impossible"]["met"], 0);
  EXPECT_EQ(testing::read_lines(dir + "/requests.jsonl").size(), 20u);
  const json first = json::parse(testing::read_lines(dir + "/requests.jsonl")[0]);
  EXPECT_EQ(first["warmup"], true);
  EXPECT_EQ(first["chunks"].size(), 8u);
}

TEST(BenchServeCli, StrictTokenCountFailsTheRunAfterWritingOutputs) {
  const std::string dir = testing::test_output_dir("bench_serve_strict");
  testing::MockServerProcess mock(dir, {"--fault", "usage_mismatch:1"});
  const auto r = run_qmeter(dir, {"bench", "serve", "--base-url", mock.base_url(), "--model", "m", "--num-prompts", "5",
                                  "--output-len", "4", "--strict-token-count", "--output-json", dir + "/out.json"});
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("--strict-token-count"), std::string::npos) << r.output;
  const json j = json::parse(read_file(dir + "/out.json"));
  EXPECT_EQ(j["token_count_mismatches"], 5);
  EXPECT_EQ(j["completed"], 5);
}

TEST(BenchServeCli, BadFlagsExitTwoNamingTheFlag) {
  const std::string dir = testing::test_output_dir("bench_serve_badflags");
  const std::vector<std::string> base = {"bench", "serve", "--base-url", "http://127.0.0.1:9", "--model", "m"};
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--request-rate", "fast"}, "--request-rate"},
      {{"--request-rate", "-3"}, "--request-rate"},
      {{"--slo", "interactive:ttft"}, "--slo"},
      {{"--percentiles", "50,200"}, "--percentiles"},
      {{"--header", "novalue"}, "--header"},
      {{"--num-prompts", "0"}, "--num-prompts"},
      {{"--warmup", "5", "--num-prompts", "5"}, "--warmup"},
      {{"--timeout-s", "0"}, "--timeout-s"},
      {{"--endpoint", "v1/completions"}, "--endpoint"},
      {{"--dataset", "nosuchkind"}, "nosuchkind"},
      {{"--no-such-flag"}, "--no-such-flag"},
  };
  for (const auto& [extra, needle] : cases) {
    auto args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    const auto r = run_qmeter(dir, args);
    EXPECT_EQ(r.status, 2) << needle << ": " << r.output;
    EXPECT_NE(r.output.find(needle), std::string::npos) << needle << ": " << r.output;
  }
  const auto r = run_qmeter(dir, {"bench", "serve", "--model", "m"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("--base-url"), std::string::npos) << r.output;
}

TEST(BenchServeCli, UnreachableServerIsOneClearError) {
  const std::string dir = testing::test_output_dir("bench_serve_unreachable");
  // Port 9 (discard) on loopback has no listener here.
  const auto r = run_qmeter(dir, {"bench", "serve", "--base-url", "http://127.0.0.1:9", "--model", "m", "--num-prompts", "3"});
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("cannot reach the server at http://127.0.0.1:9"), std::string::npos) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
}

}  // namespace
}  // namespace qmeter
