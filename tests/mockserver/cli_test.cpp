// `qmeter mock-server` as users and the load generator's tests run it: a separate process on port
// 0 that prints its URL, serves, and on SIGTERM stops cleanly with its log flushed; bad flags
// exit 2 with a message naming the flag.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <thread>

#include "mock_test_support.h"
#include "run_qmeter.h"
#include "qmeter/core/process.h"
#include "qmeter/mockserver/response_plan.h"

namespace qmeter::mockserver {
namespace {

using namespace qmeter::mockserver::testing;

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Runs qmeter with `args`, output into `out_path`; returns the exit status (waits up to 30 s).
int run_qmeter(const std::vector<std::string>& args, const std::string& out_path) {
  return qmeter::testing::run_qmeter(args, out_path, 30);
}

TEST(MockServerCli, StartsOnPortZeroServesAndStopsCleanlyOnSigterm) {
  const std::string dir = qmeter::testing::test_output_dir("mock_cli_run");
  const std::string out = dir + "/out.txt", log = dir + "/requests.jsonl";
  SpawnOptions opts;
  opts.argv = {qmeter::testing::qmeter_bin(), "mock-server", "--host", "127.0.0.1", "--port", "0", "--ttft-ms", "3",
               "--itl-ms", "1", "--itl-dist", "exponential", "--tokens-per-chunk", "2", "--tokens-before-eos", "4",
               "--fault", "http500:0.3", "--fault", "usage_mismatch:0.2", "--request-log", log, "--seed", "9",
               "--io-threads", "2"};
  opts.log_path = out;
  ChildProcess p = ChildProcess::spawn(opts);
  std::smatch m;
  const std::regex ready(R"(mock-server listening on http://127\.0\.0\.1:(\d+)\n)");
  std::string text;
  const Nanos deadline = steady_now_ns() + s_to_ns(20);
  while (!std::regex_search(text = slurp(out), m, ready) && steady_now_ns() < deadline && p.running()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(std::regex_search(text, m, ready)) << text;
  const int port = std::stoi(m[1]);

  const int n = 20;
  RawHttpConnection conn(port);
  std::vector<int> statuses;
  for (int i = 0; i < n; ++i) {
    conn.send_raw(post_text("/v1/completions", {{"prompt", "a b c"}, {"max_tokens", 10}, {"stream", true}}));
    RawResponse r = conn.read_response();
    ASSERT_TRUE(r.complete);
    statuses.push_back(r.status);
    if (r.status == 200) {
      StreamPayloads s = parse_stream(r);
      ASSERT_EQ(s.chunks.size(), 2u);  // 4 tokens ("EOS" via --output-len) in chunks of 2
      EXPECT_EQ(chunk_text(s.chunks[1]), " tok2 tok3");
      EXPECT_EQ(s.chunks[1]["choices"][0]["finish_reason"], "stop");
    }
  }
  EXPECT_EQ(p.stop(10), 0);  // SIGTERM: a clean exit

  // The same flags in-process give the same fault for each arrival index.
  MockServerConfig same;
  same.seed = 9;
  same.faults = {{FaultKind::kHttp500, 0.3}, {FaultKind::kUsageMismatch, 0.2}};
  std::ifstream in(log);
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) {
    json rec = json::parse(line);
    const auto index = rec["index"].get<std::uint64_t>();
    EXPECT_EQ(rec["fault"], std::string(fault_name(choose_fault(same, index))));
    EXPECT_EQ(rec["status"], statuses[index]);
    ++lines;
  }
  EXPECT_EQ(lines, n);
}

TEST(MockServerCli, BadFlagsExitWithCode2AndNameTheFlag) {
  const std::string dir = qmeter::testing::test_output_dir("mock_cli_bad_flags");
  struct Case {
    std::vector<std::string> args;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {{"--itl-dist", "gauss"}, "--itl-dist"},
      {{"--fault", "bogus:0.1"}, "unknown fault kind 'bogus'"},
      {{"--fault", "drop:1.5"}, "--fault 'drop:1.5'"},
      {{"--fault", "drop:0.7", "--fault", "stall:0.7"}, "add up"},
      {{"--tokens-per-chunk", "0"}, "--tokens-per-chunk"},
      {{"--ttft-ms", "-5"}, "--ttft-ms"},
      {{"--port", "99999"}, "--port"},
      {{"--tokens-before-eos", "0"}, "--tokens-before-eos"},
      {{"--itl-ms", "fast"}, "--itl-ms"},
      {{"--request-log", dir + "/no/such/dir/log.jsonl"}, "--request-log"},
  };
  int k = 0;
  for (const auto& c : cases) {
    std::vector<std::string> args = {"mock-server"};
    if (c.args.front() != "--port") args = {"mock-server", "--port", "0"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    const std::string out = dir + "/case" + std::to_string(k++) + ".txt";
    EXPECT_EQ(run_qmeter(args, out), 2) << c.expect;
    EXPECT_NE(slurp(out).find(c.expect), std::string::npos) << slurp(out);
  }
}

TEST(MockServerCli, PortInUseIsAClearError) {
  MockServer taken(MockServerConfig{});
  taken.start();
  const std::string out = qmeter::testing::test_output_dir("mock_cli_port_in_use") + "/out.txt";
  EXPECT_EQ(run_qmeter({"mock-server", "--port", std::to_string(taken.port())}, out), 1);
  EXPECT_NE(slurp(out).find("cannot listen on 127.0.0.1:" + std::to_string(taken.port())), std::string::npos)
      << slurp(out);
}

}  // namespace
}  // namespace qmeter::mockserver
