// The rest of `qmeter serve`'s API surface on loopback: chat completions (template, vLLM's
// role-only first chunk), the bearer token, the bounded queue (HTTP 429), stop strings, and the
// KV pool sized as a fraction of free memory.
#include <curl/curl.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "qmeter/core/clock.h"
#include "qmeter/engine/session.h"
#include "qmeter/server/inference_server.h"
#include "test_support.h"

using namespace qmeter;
using nlohmann::json;

namespace {

size_t append_to(char* p, size_t s, size_t n, void* out) {
  static_cast<std::string*>(out)->append(p, s * n);
  return s * n;
}

struct Reply {
  long status = 0;
  std::string body;
};

Reply call(const std::string& url, const std::string& body = "", const std::string& bearer = "") {
  CURL* c = curl_easy_init();
  Reply r;
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_slist* h = curl_slist_append(nullptr, "Content-Type: application/json");
  if (!bearer.empty()) h = curl_slist_append(h, ("Authorization: Bearer " + bearer).c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  if (!body.empty()) curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, append_to);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
  if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
  return r;
}

std::vector<json> sse_events(const std::string& body) {
  std::vector<json> out;
  std::size_t pos = 0;
  while ((pos = body.find("data: ", pos)) != std::string::npos) {
    const auto end = body.find("\n\n", pos);
    const std::string data = body.substr(pos + 6, end - pos - 6);
    pos = end;
    if (data != "[DONE]") out.push_back(json::parse(data));
  }
  return out;
}

std::string greedy_text(const engine::Model& m, const std::string& prompt, int max_tokens) {
  engine::Session s(m, nullptr);
  engine::GenerateOptions go;
  go.max_tokens = max_tokens;
  std::vector<int> out;
  engine::generate(s, m.tokenizer->encode(prompt, true), go, m.tokenizer->stop_ids(), [&](int t) { out.push_back(t); });
  return m.tokenizer->decode(out);
}

struct Served {
  std::shared_ptr<engine::Model> model;
  std::unique_ptr<server::InferenceServer> server;
  std::string base;
};

Served serve(const std::string& model_path, server::ServeOptions o = {}) {
  Served s;
  s.model = std::shared_ptr<engine::Model>(engine::load_model(model_path).release());
  o.model = model_path;
  o.port = 0;
  o.served_model_name = "stories";
  s.server = std::make_unique<server::InferenceServer>(o, s.model);
  s.server->start();
  s.base = s.server->base_url();
  return s;
}

double metric(const std::string& base, const std::string& name) {
  const std::string text = call(base + "/metrics").body;
  const auto pos = text.find("\n" + name + "{");
  if (pos == std::string::npos) return -1;
  return std::stod(text.substr(text.find("} ", pos) + 2));
}

}  // namespace

TEST(ServeApi, ChatCompletionsUseTheTemplateAndStreamARoleOnlyFirstChunk) {
  QMETER_REQUIRE_SHARED_DATA(model_path, "models/stories260K/stories260K.bin");
  auto s = serve(model_path);
  // stories260K's tokenizer has no chat markers: the contents are joined one per line.
  const std::string expected = greedy_text(*s.model, "You tell stories.\nOnce upon a time", 32);
  json req = {{"model", "stories"},
              {"messages", {{{"role", "system"}, {"content", "You tell stories."}}, {{"role", "user"}, {"content", "Once upon a time"}}}},
              {"max_tokens", 32},
              {"temperature", 0}};
  auto r = call(s.base + "/v1/chat/completions", req.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = json::parse(r.body);
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["message"]["content"], expected);
  EXPECT_EQ(j["usage"]["prompt_tokens"], s.model->tokenizer->encode("You tell stories.\nOnce upon a time", true).size());

  req["stream"] = true;
  auto sr = call(s.base + "/v1/chat/completions", req.dump());
  ASSERT_EQ(sr.status, 200);
  auto events = sse_events(sr.body);
  ASSERT_GE(events.size(), 3u);
  // vLLM's first chunk carries the role and no text (a client must not count it as a token).
  EXPECT_EQ(events[0]["object"], "chat.completion.chunk");
  EXPECT_EQ(events[0]["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(events[0]["choices"][0]["delta"]["content"], "");
  std::string text;
  std::string finish;
  for (std::size_t i = 1; i < events.size(); ++i) {
    for (const auto& c : events[i]["choices"]) {
      if (c["delta"].contains("content")) text += c["delta"]["content"].get<std::string>();
      if (!c["finish_reason"].is_null()) finish = c["finish_reason"];
    }
  }
  EXPECT_EQ(text, expected);
  EXPECT_TRUE(finish == "length" || finish == "stop") << finish;
  // /tokenize with messages applies the same template.
  auto t = call(s.base + "/tokenize", json{{"messages", req["messages"]}}.dump());
  EXPECT_EQ(json::parse(t.body)["tokens"], s.model->tokenizer->encode("You tell stories.\nOnce upon a time", true));
}

TEST(ServeApi, StopStringsEndTheReplyBeforeTheMatch) {
  QMETER_REQUIRE_SHARED_DATA(model_path, "models/stories260K/stories260K.bin");
  auto s = serve(model_path);
  const std::string full = greedy_text(*s.model, "Once upon a time", 48);
  // Stop at the second word of the reference continuation: the reply is the text before it.
  const auto first_space = full.find(' ', 1);
  ASSERT_NE(first_space, std::string::npos) << full;
  const auto second_space = full.find(' ', first_space + 1);
  ASSERT_NE(second_space, std::string::npos) << full;
  const std::string stop = full.substr(first_space, second_space - first_space);
  auto r = call(s.base + "/v1/completions",
                json{{"prompt", "Once upon a time"}, {"max_tokens", 48}, {"temperature", 0}, {"stop", {stop}}}.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = json::parse(r.body);
  EXPECT_EQ(j["choices"][0]["text"], full.substr(0, full.find(stop))) << "stop '" << stop << "' in '" << full << "'";
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
}

TEST(ServeApi, AnApiKeyIsRequiredAsABearerToken) {
  QMETER_REQUIRE_SHARED_DATA(model_path, "models/stories260K/stories260K.bin");
  server::ServeOptions o;
  o.api_key = "s3cret";
  auto s = serve(model_path, o);
  const std::string body = json{{"prompt", "Once"}, {"max_tokens", 2}}.dump();
  auto none = call(s.base + "/v1/completions", body);
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(json::parse(none.body)["error"]["type"], "authentication_error");
  EXPECT_EQ(call(s.base + "/v1/completions", body, "wrong").status, 401);
  EXPECT_EQ(call(s.base + "/v1/completions", body, "s3cret").status, 200);
}

TEST(ServeApi, BeyondTheQueueBoundRequestsGet429) {
  QMETER_REQUIRE_SHARED_DATA(model_path, "models/stories260K/stories260K.bin");
  server::ServeOptions o;
  o.scheduler.max_num_seqs = 1;
  o.scheduler.max_queue = 1;
  auto s = serve(model_path, o);
  // One long request runs, a second waits in the one-slot queue, a third is refused.
  const std::string long_body =
      json{{"prompt", "Once upon a time"}, {"max_tokens", 400}, {"ignore_eos", true}, {"temperature", 0}}.dump();
  std::thread running([&] { EXPECT_EQ(call(s.base + "/v1/completions", long_body).status, 200); });
  const Nanos deadline = steady_now_ns() + s_to_ns(10);
  while (steady_now_ns() < deadline && metric(s.base, "vllm:num_requests_running") != 1) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  std::thread waiting([&] { EXPECT_EQ(call(s.base + "/v1/completions", long_body).status, 200); });
  while (steady_now_ns() < deadline && metric(s.base, "vllm:num_requests_waiting") != 1) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ASSERT_EQ(metric(s.base, "vllm:num_requests_waiting"), 1) << "the first request finished too early to test";
  auto refused = call(s.base + "/v1/completions", long_body);
  EXPECT_EQ(refused.status, 429);
  EXPECT_EQ(json::parse(refused.body)["error"]["type"], "rate_limit_error");
  running.join();
  waiting.join();
  EXPECT_EQ(metric(s.base, "qmeter:request_rejected_total"), 1);
}

TEST(ServeApi, TheKvPoolCanBeAFractionOfAvailableMemory) {
  QMETER_REQUIRE_SHARED_DATA(model_path, "models/stories260K/stories260K.bin");
  auto available = [] {
    std::ifstream in("/proc/meminfo");
    std::string key;
    double kib = 0;
    std::string unit;
    while (in >> key >> kib >> unit) {
      if (key == "MemAvailable:") return kib * 1024;
    }
    return -1.0;
  };
  const double before = available();
  ASSERT_GT(before, 0);
  server::ServeOptions o;
  o.kv_cache_memory_fraction = 0.01;
  auto s = serve(model_path, o);
  // stories260K: 5 layers x 2 (K, V) x 16 positions x kv_dim 32 floats x 4 bytes = 20 KiB a block.
  const double pool_bytes = s.server->scheduler().total_kv_blocks() * 20480.0;
  EXPECT_NEAR(pool_bytes, 0.01 * before, 0.002 * before);  // other processes move MemAvailable a little
}
