// `qmeter serve` on loopback against the engine's own in-process results (stories260K).
#include <arpa/inet.h>
#include <curl/curl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "qmeter/backend/backend.h"
#include "qmeter/client/streaming_client.h"
#include "qmeter/core/clock.h"
#include "qmeter/core/process.h"
#include "qmeter/engine/session.h"
#include "qmeter/server/inference_server.h"
#include "serve_process.h"
#include "test_support.h"

using namespace qmeter;
using nlohmann::json;

namespace {

// One HTTP request (serve_process.h); POST unless `post` is false.
std::pair<long, std::string> http(const std::string& url, const std::string& body = "", bool post = true) {
  return qmeter::testing::http_fetch(url, body, post);
}

double metric(const std::string& base, const std::string& name) {
  auto text = http(base + "/metrics", "", false).second;
  auto pos = text.find("\n" + name + "{");
  if (pos == std::string::npos) return -1;
  auto sp = text.find("} ", pos);
  return std::stod(text.substr(sp + 2));
}

struct Fixture {
  std::shared_ptr<engine::Model> model;
  std::unique_ptr<server::InferenceServer> server;
  std::string base;
};

Fixture start(const std::string& model_path, server::SchedulerOptions so = {}) {
  Fixture f;
  f.model = std::shared_ptr<engine::Model>(engine::load_model(model_path).release());
  server::ServeOptions o;
  o.model = model_path;
  o.port = 0;
  o.served_model_name = "stories";
  o.scheduler = so;
  f.server = std::make_unique<server::InferenceServer>(o, f.model);
  f.server->start();
  f.base = f.server->base_url();
  return f;
}

std::vector<int> reference_greedy(const engine::Model& m, const std::string& prompt, int max_tokens) {
  engine::Session s(m, nullptr);
  auto ids = m.tokenizer->encode(prompt, true);
  engine::GenerateOptions go;
  go.max_tokens = max_tokens;
  std::vector<int> out;
  engine::generate(s, ids, go, m.tokenizer->stop_ids(), [&](int t) { out.push_back(t); });
  return out;
}

const char* kPrompts[] = {"Once upon a time", "The little dog", "Lily and Ben went to the park", "One day, a bird",
                          "Tom had a red ball", "The sun was", "Mom said", "There was a big tree"};

}  // namespace

TEST(Serve, GreedyRepliesMatchTheEngineTokenForTokenStreamingOrNot) {
  QMETER_REQUIRE_SHARED_DATA(model_path, "models/stories260K/stories260K.bin");
  auto f = start(model_path);
  for (const char* prompt : {kPrompts[0], kPrompts[2]}) {
    const auto ref = reference_greedy(*f.model, prompt, 40);
    const std::string ref_text = f.model->tokenizer->decode(ref);
    json req = {{"model", "stories"}, {"prompt", prompt}, {"max_tokens", 40}, {"temperature", 0}};
    auto [code, body] = http(f.base + "/v1/completions", req.dump());
    ASSERT_EQ(code, 200) << body;
    auto j = json::parse(body);
    EXPECT_EQ(j["choices"][0]["text"], ref_text);
    EXPECT_EQ(j["usage"]["completion_tokens"], ref.size());
    EXPECT_EQ(j["usage"]["prompt_tokens"], f.model->tokenizer->encode(prompt, true).size());
    // Streaming: the concatenated deltas are the same text; usage arrives in the final chunk.
    req["stream"] = true;
    req["stream_options"] = {{"include_usage", true}, {"continuous_usage_stats", true}};
    auto [scode, sbody] = http(f.base + "/v1/completions", req.dump());
    ASSERT_EQ(scode, 200);
    std::string text;
    int last_usage = -1, chunks = 0;
    bool done = false;
    std::size_t pos = 0;
    while ((pos = sbody.find("data: ", pos)) != std::string::npos) {
      auto end = sbody.find("\n\n", pos);
      std::string data = sbody.substr(pos + 6, end - pos - 6);
      pos = end;
      if (data == "[DONE]") {
        done = true;
        continue;
      }
      auto c = json::parse(data);
      if (!c["choices"].empty()) {
        text += c["choices"][0]["text"].get<std::string>();
        ++chunks;
      }
      if (c.contains("usage")) last_usage = c["usage"]["completion_tokens"];
    }
    EXPECT_TRUE(done);
    EXPECT_EQ(text, ref_text);
    EXPECT_EQ(last_usage, static_cast<int>(ref.size()));
    EXPECT_GE(chunks, 2);
  }
}

TEST(Serve, EchoLogprobsEqualTheEnginesPromptLogprobs) {
  QMETER_REQUIRE_SHARED_DATA(model_path, "models/stories260K/stories260K.bin");
  auto f = start(model_path, {.max_num_batched_tokens = 7});  // forces chunked prefill
  const std::string prompt = "Once upon a time, there was a little girl named Lily. She loved to play.";
  json req = {{"prompt", prompt}, {"max_tokens", 0}, {"echo", true}, {"logprobs", 0}, {"temperature", 0}};
  auto [code, body] = http(f.base + "/v1/completions", req.dump());
  ASSERT_EQ(code, 200) << body;
  auto lp = json::parse(body)["choices"][0]["logprobs"]["token_logprobs"];
  auto ids = f.model->tokenizer->encode(prompt, true);
  ASSERT_EQ(lp.size(), ids.size());
  EXPECT_TRUE(lp[0].is_null());
  engine::Session s(*f.model, nullptr);
  auto logits = s.feed_all(ids);
  const auto V = static_cast<std::size_t>(f.model->config.vocab_size);
  for (std::size_t i = 1; i < ids.size(); ++i) {
    const double want = engine::token_logprob(logits.subspan((i - 1) * V, V), ids[i]);
    EXPECT_NEAR(lp[i].get<double>(), want, 1e-4) << "position " << i;
  }
  EXPECT_EQ(json::parse(body)["choices"][0]["text"], prompt);
}

TEST(Serve, SixtyFourConcurrentStreamsEqualSequentialOutputs) {
  QMETER_REQUIRE_SHARED_DATA(model_path, "models/stories260K/stories260K.bin");
  auto f = start(model_path, {.max_num_seqs = 64});
  std::vector<std::string> expected;
  std::vector<client::StreamRequest> reqs;
  const Nanos t0 = steady_now_ns() + ms_to_ns(20);
  for (int i = 0; i < 64; ++i) {
    const std::string prompt = std::string(kPrompts[i % 8]) + (i >= 8 ? " " + std::to_string(i) : "");
    expected.push_back(f.model->tokenizer->decode(reference_greedy(*f.model, prompt, 24)));
    client::StreamRequest r;
    r.index = i;
    r.scheduled_ns = t0;
    r.prompt = prompt;
    r.max_tokens = 24;
    reqs.push_back(r);
  }
  client::ClientOptions co;
  co.base_url = f.base;
  co.model = "stories";
  co.timeout_s = 120;
  client::StreamingClient cl(co);
  auto records = cl.run(reqs);
  ASSERT_EQ(records.size(), 64u);
  for (int i = 0; i < 64; ++i) {
    EXPECT_TRUE(records[static_cast<std::size_t>(i)].ok()) << records[static_cast<std::size_t>(i)].error_message;
    EXPECT_EQ(records[static_cast<std::size_t>(i)].generated_text, expected[static_cast<std::size_t>(i)]) << i;
    EXPECT_FALSE(records[static_cast<std::size_t>(i)].token_count_mismatch());
  }
  EXPECT_GT(metric(f.base, "vllm:generation_tokens_total"), 64);
}

TEST(Serve, KvPressurePreemptsAndOutputsStayTheSame) {
  QMETER_REQUIRE_SHARED_DATA(model_path, "models/stories260K/stories260K.bin");
  // stories260K: 5 layers x 2 x 16 positions x kv_dim 32 floats = 20 KiB a block. 14 blocks cannot
  // hold 16 sequences of ~70 positions at once.
  auto f = start(model_path, {.max_num_seqs = 16, .kv_cache_bytes = 14 * 20480});
  std::vector<client::StreamRequest> reqs;
  std::vector<std::string> expected;
  const Nanos t0 = steady_now_ns() + ms_to_ns(20);
  for (int i = 0; i < 16; ++i) {
    client::StreamRequest r;
    r.index = i;
    r.scheduled_ns = t0;
    r.prompt = kPrompts[i % 8];
    r.max_tokens = 60;
    expected.push_back(f.model->tokenizer->decode(reference_greedy(*f.model, r.prompt, 60)));
    reqs.push_back(r);
  }
  client::ClientOptions co;
  co.base_url = f.base;
  co.timeout_s = 120;
  auto records = client::StreamingClient(co).run(reqs);
  for (int i = 0; i < 16; ++i) {
    ASSERT_TRUE(records[static_cast<std::size_t>(i)].ok()) << records[static_cast<std::size_t>(i)].error_message;
    EXPECT_EQ(records[static_cast<std::size_t>(i)].generated_text, expected[static_cast<std::size_t>(i)]) << i;
  }
  EXPECT_GT(metric(f.base, "vllm:num_preemptions_total"), 0);
  EXPECT_EQ(metric(f.base, "vllm:kv_cache_usage_perc"), 0);
}

TEST(Serve, ClientsThatDisconnectFreeTheirKvBlocks) {
  QMETER_REQUIRE_SHARED_DATA(model_path, "models/stories260K/stories260K.bin");
  auto f = start(model_path);
  const int port = f.server->port();
  std::vector<int> fds;
  for (int i = 0; i < 8; ++i) {
    const int fd = qmeter::testing::open_completion_stream(
        port, R"({"prompt":"Once upon a time","max_tokens":400,"stream":true,"ignore_eos":true})");
    ASSERT_GE(fd, 0);
    fds.push_back(fd);
  }
  // The headers go out before the engine admits the sequences: wait until their blocks are held.
  const Nanos admit_deadline = steady_now_ns() + s_to_ns(10);
  while (steady_now_ns() < admit_deadline && metric(f.base, "vllm:kv_cache_usage_perc") == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_GT(metric(f.base, "vllm:kv_cache_usage_perc"), 0);
  for (int fd : fds) close(fd);
  const Nanos deadline = steady_now_ns() + s_to_ns(10);
  double usage = 1;
  while (steady_now_ns() < deadline && (usage = metric(f.base, "vllm:kv_cache_usage_perc")) != 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(usage, 0);
  EXPECT_EQ(metric(f.base, "vllm:num_requests_running"), 0);
}

TEST(Serve, BadRequestsGetOpenAiErrors) {
  QMETER_REQUIRE_SHARED_DATA(model_path, "models/stories260K/stories260K.bin");
  auto f = start(model_path);
  auto check = [&](const std::string& body, const std::string& needle) {
    auto [code, out] = http(f.base + "/v1/completions", body);
    EXPECT_EQ(code, 400) << body;
    auto j = json::parse(out);
    EXPECT_NE(j["error"]["message"].get<std::string>().find(needle), std::string::npos) << out;
  };
  check("{not json", "invalid JSON");
  check(R"({"prompt": 5})", "'prompt' must be a string");
  check(R"({"prompt": "hi", "max_tokens": "ten"})", "'max_tokens' has the wrong type");
  check(R"({"prompt": "hi", "max_tokens": 100000})", "exceed the context length 512");
  std::string longp = "{\"prompt\": \"";
  for (int i = 0; i < 600; ++i) longp += "dog ";
  check(longp + "\"}", "the context length is 512");
  check(R"({"prompt": [1, 99999]})", "out of range");
  auto [c404, _] = http(f.base + "/v1/nothing", "{}");
  EXPECT_EQ(c404, 404);
  auto [cm, models] = http(f.base + "/v1/models", "", false);
  EXPECT_EQ(cm, 200);
  EXPECT_EQ(json::parse(models)["data"][0]["id"], "stories");
  auto [ct, tok] = http(f.base + "/tokenize", R"({"prompt": "Once upon a time"})");
  EXPECT_EQ(json::parse(tok)["tokens"], f.model->tokenizer->encode("Once upon a time", true));
  auto [cd, detok] = http(f.base + "/detokenize", json{{"tokens", f.model->tokenizer->encode("Once upon a time", true)}}.dump());
  EXPECT_EQ(json::parse(detok)["prompt"], "Once upon a time");
}

TEST(Serve, BenchServeRunsAgainstQmeterServeEndToEnd) {
  QMETER_REQUIRE_SHARED_DATA(model_path, "models/stories260K/stories260K.bin");
  auto dir = qmeter::testing::test_output_dir("serve_bench");
  std::string base;
  auto server = qmeter::testing::spawn_serve(dir, {"--model", model_path}, base);
  SpawnOptions bo;
  bo.argv = {qmeter::testing::qmeter_bin(), "bench", "serve", "--base-url", base, "--model", "stories260K.bin",
             "--dataset", "random", "--input-len", "16", "--output-len", "16", "--num-prompts", "40", "--request-rate", "20",
             "--seed", "1", "--output-json", dir + "/out.json"};
  bo.log_path = dir + "/bench.log";
  auto bench = ChildProcess::spawn(bo);
  ASSERT_EQ(bench.wait(120), 0) << qmeter::read_file(dir + "/bench.log");
  server.stop(5);
  auto j = json::parse(qmeter::read_file(dir + "/out.json"));
  EXPECT_EQ(j["completed"], 40);
  EXPECT_EQ(j["failed"], 0);
  EXPECT_GT(j["output_throughput"].get<double>(), 0);
}
