// `qmeter serve --quantization NAME`: the binary quantizes at load time through the registry and
// serves exactly what the in-process quantized model computes.
#include <curl/curl.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "qmeter/backend/backend.h"
#include "qmeter/core/clock.h"
#include "qmeter/core/process.h"
#include "qmeter/engine/session.h"
#include "qmeter/quant/quantize.h"
#include "serve_process.h"
#include "test_support.h"

using namespace qmeter;
using nlohmann::json;

namespace {

using qmeter::testing::http_fetch;

std::vector<int> greedy(const engine::Model& m, const std::string& prompt, int max_tokens) {
  engine::Session s(m, nullptr);
  engine::GenerateOptions go;
  go.max_tokens = max_tokens;
  std::vector<int> out;
  engine::generate(s, m.tokenizer->encode(prompt, true), go, m.tokenizer->stop_ids(), [&](int t) { out.push_back(t); });
  return out;
}

}  // namespace

TEST(ServeQuantization, GreedyOutputAndLogprobsEqualTheInProcessQuantizedModel) {
  QMETER_REQUIRE_SHARED_DATA(model_path, "models/stories260K/stories260K.bin");
  const auto plain = engine::load_model(model_path);
  for (const std::string method : {"w8a16", "w3a16-rtn"}) {
    SCOPED_TRACE(method);
    auto dir = qmeter::testing::test_output_dir("serve_quantized_" + method);
    // The reference: the same method through the registry in this process.
    const auto quantized = quant::load_quantized(model_path, method, {}, "");
    std::string base;
    auto server = qmeter::testing::spawn_serve(dir, {"--model", model_path, "--quantization", method}, base);
    ASSERT_EQ(http_fetch(base + "/health").first, 200) << qmeter::read_file(dir + "/serve.log");
    EXPECT_NE(qmeter::read_file(dir + "/serve.log").find("quantized: " + method), std::string::npos)
        << "the startup line describes the quantized weights: " << qmeter::read_file(dir + "/serve.log");
    double largest_gap_to_fp32 = 0;
    for (const char* prompt : {"Once upon a time", "Lily and Ben went to the park", "The little dog"}) {
      const auto ref = greedy(*quantized, prompt, 48);
      json req = {{"model", "stories260K.bin"}, {"prompt", prompt}, {"max_tokens", 48}, {"temperature", 0},
                  {"logprobs", 0}};
      auto [code, body] = http_fetch(base + "/v1/completions", req.dump());
      ASSERT_EQ(code, 200) << body;
      auto j = json::parse(body);
      EXPECT_EQ(j["choices"][0]["text"], quantized->tokenizer->decode(ref)) << prompt;
      EXPECT_EQ(j["usage"]["completion_tokens"], ref.size());
      // The first chosen token's log-probability is the quantized model's own.
      const auto ids = quantized->tokenizer->encode(prompt, true);
      engine::Session qs(*quantized, nullptr), ps(*plain, nullptr);
      const double quantized_lp = engine::token_logprob(qs.feed(ids), ref.at(0));
      const double fp32_lp = engine::token_logprob(ps.feed(ids), ref.at(0));
      EXPECT_NEAR(j["choices"][0]["logprobs"]["token_logprobs"][0].get<double>(), quantized_lp, 1e-4);
      largest_gap_to_fp32 = std::max(largest_gap_to_fp32, std::abs(quantized_lp - fp32_lp));
    }
    // ...and measurably not fp32's, so the comparison above could tell the two apart.
    EXPECT_GT(largest_gap_to_fp32, 1e-3);
    server.stop(5);
  }
}

TEST(ServeQuantization, UnknownMethodsAndStrayOptionsAreUsageErrors) {
  auto dir = qmeter::testing::test_output_dir("serve_quant_errors");
  struct Case {
    std::vector<std::string> args;
    std::string expected;
  } cases[] = {
      {{"--quantization", "int3-magic"}, "unknown quantization method 'int3-magic' (known: fp32, bf16, fp16, w8a16"},
      {{"--quantization", "awq", "--bits", "5"}, "--bits 5: method awq supports 4"},
      {{"--quantization", "w8a16", "--dtype", "bf16"}, "--dtype and --quantization are exclusive"},
      {{"--group-size", "64"}, "quantization options (--group-size) need --quantization NAME"},
  };
  for (const auto& c : cases) {
    SpawnOptions so;
    so.argv = {qmeter::testing::qmeter_bin(), "serve", "--model", "synthetic:tiny", "--port", "0"};
    so.argv.insert(so.argv.end(), c.args.begin(), c.args.end());
    so.log_path = dir + "/log.txt";
    std::filesystem::remove(so.log_path);
    auto p = ChildProcess::spawn(so);
    EXPECT_EQ(p.wait(60).value_or(-1), 2) << c.expected;
    const std::string log = qmeter::read_file(so.log_path);
    EXPECT_NE(log.find(c.expected), std::string::npos) << log;
  }
}
