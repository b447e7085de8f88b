// Capabilities probed once: against the mock server that refuses "echo" (like llama.cpp's
// llama-server), tasks that need prompt log-probabilities are reported unsupported with the
// server's reason, and generation tasks (GSM8K) still run; against `qmeter serve` everything is
// supported.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "qmeter/core/paths.h"
#include "qmeter/core/process.h"
#include "qmeter/mockserver/mock_server.h"
#include "qmeter/quality/eval.h"
#include "test_support.h"

namespace qmeter::quality {
namespace {

using nlohmann::json;

std::unique_ptr<mockserver::MockServer> start_mock(int no_echo_status) {
  mockserver::MockServerConfig c;
  c.no_echo_status = no_echo_status;
  c.output_len = 6;
  auto m = std::make_unique<mockserver::MockServer>(c);
  m->start();
  return m;
}

std::string gsm8k_file(const std::string& dir) {
  std::ofstream f(dir + "/gsm8k.jsonl");
  f << json{{"question", "shot"}, {"answer", "So.\n#### 1"}}.dump() << "\n";
  f << json{{"question", "q1"}, {"answer", "So.\n#### 0"}}.dump() << "\n";
  f << json{{"question", "q2"}, {"answer", "So.\n#### 5"}}.dump() << "\n";
  return dir + "/gsm8k.jsonl";
}

TEST(Capabilities, AServerThatRefusesEchoHasNoPromptLogprobsAndTheReasonSaysWhy) {
  for (int status : {400, 500}) {
    auto mock = start_mock(status);
    auto scorer = make_server_scorer({mock->base_url(), "m", "", 30});
    const auto caps = scorer->probe_capabilities();
    EXPECT_FALSE(caps.prompt_logprobs.supported);
    EXPECT_NE(caps.prompt_logprobs.reason.find("HTTP " + std::to_string(status)), std::string::npos) << caps.prompt_logprobs.reason;
    EXPECT_NE(caps.prompt_logprobs.reason.find("Unsupported param: echo"), std::string::npos) << caps.prompt_logprobs.reason;
    EXPECT_FALSE(caps.top_logprobs.supported);
    EXPECT_FALSE(caps.tokenize.supported) << "the mock has no /tokenize";
    EXPECT_NE(caps.tokenize.reason.find("404"), std::string::npos) << caps.tokenize.reason;
    EXPECT_TRUE(caps.chat.supported) << caps.chat.reason;
    EvalOptions o;
    EXPECT_NE(unsupported_reason(parse_task_spec("perplexity:x.txt"), o, caps), "");
    EXPECT_NE(unsupported_reason(parse_task_spec("mc:x.jsonl"), o, caps), "");
    EXPECT_EQ(unsupported_reason(parse_task_spec("gsm8k:x.jsonl"), o, caps), "");
    EXPECT_EQ(mock->requests_received(), 2u) << "one echo probe, one chat probe (the /tokenize probe is no generation)";
  }
  // The mock without --no-echo ignores echo: a 200 reply without prompt log-probabilities.
  auto mock = start_mock(0);
  const auto caps = make_server_scorer({mock->base_url(), "m", "", 30})->probe_capabilities();
  EXPECT_FALSE(caps.prompt_logprobs.supported);
  EXPECT_NE(caps.prompt_logprobs.reason.find("no log-probabilities of the prompt tokens"), std::string::npos)
      << caps.prompt_logprobs.reason;
}

TEST(Capabilities, EvalReportsPerplexityUnsupportedAndStillScoresGsm8k) {
  QMETER_REQUIRE_SHARED_DATA(val, "eval/tinystories_val.txt");
  const auto dir = qmeter::testing::test_output_dir("quality_capabilities_eval");
  auto mock = start_mock(500);
  SpawnOptions so;
  so.argv = {qmeter::testing::qmeter_bin(), "eval", "--base-url", mock->base_url(), "--task", std::string("perplexity:") + val,
             "--task", "gsm8k:" + gsm8k_file(dir), "--num-fewshot", "1", "--max-tokens", "6",
             "--output-json", dir + "/out.json"};
  so.log_path = dir + "/eval.log";
  auto child = ChildProcess::spawn(so);
  ASSERT_EQ(child.wait(120), 0) << file_tail(so.log_path);
  const auto j = json::parse(read_file(dir + "/out.json"));
  const auto& u = j["unsupported"][std::string("perplexity:") + val];
  EXPECT_EQ(u["status"], "unsupported");
  EXPECT_NE(u["reason"].get<std::string>().find("Unsupported param: echo"), std::string::npos) << u.dump();
  EXPECT_FALSE(j["results"].contains(std::string("perplexity:") + val));
  // GSM8K ran: the mock's replies " tok0 tok1 ... tok5" (6 tokens) end in the number 5, so q2
  // (answer 5) is right by the flexible rule and q1 is not; nothing follows "####".
  const auto& g = j["results"]["gsm8k:" + dir + "/gsm8k.jsonl"];
  EXPECT_EQ(g["n"], 2);
  EXPECT_DOUBLE_EQ(g["exact_match_strict"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(g["exact_match_flexible"].get<double>(), 0.5);
  EXPECT_EQ(j["config"]["capabilities"]["prompt_logprobs"]["supported"], false);
  EXPECT_NE(file_tail(so.log_path).find("UNSUPPORTED"), std::string::npos) << file_tail(so.log_path);
}

}  // namespace
}  // namespace qmeter::quality
