// The mock over real loopback sockets: response shapes of both endpoints (streamed and whole),
// usage and continuous usage, tokens per chunk, routes, bad requests, the request log against
// what the client received. (A thousand concurrent streams: timing_test.cpp.)
#include <gtest/gtest.h>

#include "mock_test_support.h"
#include "qmeter/mockserver/response_plan.h"

namespace qmeter::mockserver {
namespace {

using namespace qmeter::mockserver::testing;

MockServerConfig fast_config() {
  MockServerConfig c;
  c.ttft_ms = 2;
  c.itl_ms = 1;
  return c;
}

TEST(MockServer, CompletionsStreamHasTheVllmShapeAndFinalUsage) {
  RunningMock mock(fast_config(), "mock_completions_stream");
  json body = {{"model", "any/model-name"}, {"prompt", "one two  three\nfour"}, {"max_tokens", 5},
               {"stream", true}, {"ignore_eos", true}, {"stream_options", {{"include_usage", true}}}};
  RawResponse r = exchange(mock.port(), "/v1/completions", body);
  ASSERT_TRUE(r.complete);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("Content-Type"), "text/event-stream");
  EXPECT_EQ(r.header("X-Request-Id"), "cmpl-mock-0");
  StreamPayloads s = parse_stream(r);
  EXPECT_TRUE(s.done);
  EXPECT_EQ(s.malformed, 0);
  ASSERT_EQ(s.chunks.size(), 6u);  // 5 token chunks + usage
  EXPECT_EQ(r.chunks.size(), 7u);  // one HTTP chunk per SSE event ([DONE] included)
  for (int i = 0; i < 5; ++i) {
    const json& c = s.chunks[i];
    EXPECT_EQ(c["id"], "cmpl-mock-0");
    EXPECT_EQ(c["object"], "text_completion");
    EXPECT_EQ(c["model"], "any/model-name");
    EXPECT_EQ(c["choices"][0]["text"], " tok" + std::to_string(i));
    EXPECT_EQ(c["choices"][0]["finish_reason"], i == 4 ? json("length") : json(nullptr));
    EXPECT_FALSE(c.contains("usage"));
  }
  const json& usage = s.chunks[5];
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["prompt_tokens"], 4);
  EXPECT_EQ(usage["usage"]["completion_tokens"], 5);
  EXPECT_EQ(usage["usage"]["total_tokens"], 9);
}

TEST(MockServer, ChatStreamCarriesDeltasTokensPerChunkAndContinuousUsage) {
  MockServerConfig c = fast_config();
  c.tokens_per_chunk = 2;
  RunningMock mock(c, "mock_chat_stream");
  json body = {{"model", "m"},
               {"messages",
                {{{"role", "system"}, {"content", "be brief"}},
                 {{"role", "user"}, {"content", {{{"type", "text"}, {"text", "hello there world"}}}}}}},
               {"max_completion_tokens", 5},
               {"stream", true},
               {"stream_options", {{"include_usage", true}, {"continuous_usage_stats", true}}}};
  RawResponse r = exchange(mock.port(), "/v1/chat/completions", body);
  ASSERT_TRUE(r.complete);
  StreamPayloads s = parse_stream(r);
  ASSERT_EQ(s.chunks.size(), 4u);  // chunks of 2, 2, 1 tokens + the usage chunk
  std::vector<std::string> texts = {" tok0 tok1", " tok2 tok3", " tok4"};
  for (int i = 0; i < 3; ++i) {
    const json& ch = s.chunks[i];
    EXPECT_EQ(ch["object"], "chat.completion.chunk");
    EXPECT_EQ(ch["choices"][0]["delta"]["content"], texts[i]);
    EXPECT_EQ(ch["choices"][0]["delta"].contains("role"), i == 0);  // the role rides on the first token chunk
    EXPECT_EQ(ch["usage"]["prompt_tokens"], 5);  // 2 + 3 words
    EXPECT_EQ(ch["usage"]["completion_tokens"], std::min(2 * (i + 1), 5));
  }
  EXPECT_EQ(s.chunks[2]["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(s.chunks[3]["usage"]["completion_tokens"], 5);
  EXPECT_TRUE(s.done);
}

TEST(MockServer, NonStreamingRepliesCarryTheWholeTextAndUsage) {
  MockServerConfig c = fast_config();
  c.output_len = 3;  // "EOS" after 3 tokens
  RunningMock mock(c, "mock_non_streaming");
  RawResponse a = exchange(mock.port(), "/v1/completions", {{"prompt", "a b"}, {"max_tokens", 10}});
  ASSERT_TRUE(a.complete);
  json ja = json::parse(a.body);
  EXPECT_EQ(ja["object"], "text_completion");
  EXPECT_EQ(ja["choices"][0]["text"], " tok0 tok1 tok2");
  EXPECT_EQ(ja["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(ja["usage"]["prompt_tokens"], 2);
  EXPECT_EQ(ja["usage"]["completion_tokens"], 3);

  RawResponse b = exchange(mock.port(), "/v1/chat/completions",
                           {{"messages", {{{"role", "user"}, {"content", "x y z"}}}}, {"max_tokens", 10},
                            {"ignore_eos", true}, {"stream", false}});
  json jb = json::parse(b.body);
  EXPECT_EQ(jb["object"], "chat.completion");
  EXPECT_EQ(jb["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(word_count(jb["choices"][0]["message"]["content"].get<std::string>()), 10);  // ignore_eos
  EXPECT_EQ(jb["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(jb["usage"]["total_tokens"], 13);
}

TEST(MockServer, ModelsHealthAndUnknownRoutes) {
  MockServerConfig c = fast_config();
  c.model_name = "served-name";
  RunningMock mock(c, "mock_routes");
  RawHttpConnection conn(mock.port());
  conn.send_request("GET", "/v1/models");
  json models = json::parse(conn.read_response().body);
  EXPECT_EQ(models["object"], "list");
  EXPECT_EQ(models["data"][0]["id"], "served-name");
  conn.send_request("GET", "/health");
  RawResponse health = conn.read_response();
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body, "");
  conn.send_request("GET", "/v1/nothing");
  EXPECT_EQ(conn.read_response().status, 404);
  conn.send_request("GET", "/v1/completions");
  EXPECT_EQ(conn.read_response().status, 405);
  EXPECT_EQ(mock.server->requests_received(), 0u);
}

TEST(MockServer, BadRequestsGet400NamingTheFieldAndAreLogged) {
  RunningMock mock(fast_config(), "mock_bad_requests");
  auto post_raw = [&](const std::string& path, const std::string& body) {
    RawHttpConnection c(mock.port());
    c.send_raw(RawHttpConnection::request_text("POST", path, body));
    return c.read_response();
  };
  RawResponse not_json = post_raw("/v1/completions", "{nope");
  EXPECT_EQ(not_json.status, 400);
  EXPECT_NE(json::parse(not_json.body)["error"]["message"].get<std::string>().find("not valid JSON"), std::string::npos);
  RawResponse no_prompt = exchange(mock.port(), "/v1/completions", {{"max_tokens", 3}});
  EXPECT_NE(no_prompt.body.find("'prompt' is required"), std::string::npos);
  RawResponse bad_max = exchange(mock.port(), "/v1/completions", {{"prompt", "x"}, {"max_tokens", -1}});
  EXPECT_EQ(bad_max.status, 400);
  EXPECT_NE(bad_max.body.find("max_tokens"), std::string::npos);
  RawResponse bad_stream = exchange(mock.port(), "/v1/chat/completions",
                                    {{"messages", {{{"role", "user"}, {"content", "x"}}}}, {"stream", "yes"}});
  EXPECT_NE(bad_stream.body.find("'stream' must be a boolean"), std::string::npos);
  RawResponse no_messages = exchange(mock.port(), "/v1/chat/completions", {{"messages", json::array()}});
  EXPECT_NE(no_messages.body.find("'messages' must be a non-empty list"), std::string::npos);
  auto log = mock.stop_and_read_log();
  ASSERT_EQ(log.size(), 5u);
  for (auto& [i, rec] : log) {
    EXPECT_EQ(rec["status"], 400);
    EXPECT_EQ(rec["outcome"], "error_status");
    EXPECT_FALSE(rec["error"].get<std::string>().empty());
  }
}

TEST(MockServer, RequestLogMatchesWhatTheClientReceived) {
  MockServerConfig c = fast_config();
  c.itl_dist = ItlDistribution::kExponential;
  c.tokens_per_chunk = 2;
  c.seed = 11;
  RunningMock mock(c, "mock_log_matches");
  std::map<std::string, RawResponse> received;  // by request id
  std::map<std::string, Nanos> sent_at;
  RawHttpConnection conn(mock.port());  // keep-alive: all on one connection
  for (int i = 0; i < 6; ++i) {
    const bool chat = i % 2 == 1;
    json body = {{"max_tokens", 3 + i}, {"stream", true}};
    if (chat) {
      body["messages"] = {{{"role", "user"}, {"content", "w w w"}}};
    } else {
      body["prompt"] = "w w w";
    }
    sent_at[(chat ? "chatcmpl-mock-" : "cmpl-mock-") + std::to_string(i)] = steady_now_ns();
    conn.send_raw(post_text(chat ? "/v1/chat/completions" : "/v1/completions", body));
    RawResponse r = conn.read_response();
    ASSERT_TRUE(r.complete);
    received[r.header("X-Request-Id")] = std::move(r);
  }
  auto log = mock.stop_and_read_log();
  ASSERT_EQ(log.size(), 6u);
  for (auto& [index, rec] : log) {
    const std::string id = rec["id"];
    ASSERT_TRUE(received.count(id)) << id;
    const RawResponse& r = received[id];
    const int max_tokens = 3 + static_cast<int>(index);
    EXPECT_EQ(rec["endpoint"], index % 2 ? "/v1/chat/completions" : "/v1/completions");
    EXPECT_EQ(rec["fault"], "none");
    EXPECT_EQ(rec["outcome"], "completed");
    EXPECT_EQ(rec["prompt_tokens"], 3);
    EXPECT_EQ(rec["completion_tokens"], max_tokens);
    // One logged chunk per HTTP chunk received, same kinds and token counts, sent before it arrived.
    const json& chunks = rec["chunks"];
    ASSERT_EQ(chunks.size(), r.chunks.size()) << id;
    auto payloads = sse_data_payloads(r.body);
    int tokens = 0;
    Nanos previous = rec["arrival_ns"].get<Nanos>();
    EXPECT_GE(previous, sent_at[id]);  // one clock for both processes' sides (CLOCK_MONOTONIC)
    EXPECT_GE(rec["headers_ns"].get<Nanos>(), previous);
    for (std::size_t k = 0; k < chunks.size(); ++k) {
      const Nanos sent = chunks[k]["ns"].get<Nanos>();
      EXPECT_GE(sent, previous);
      EXPECT_LE(sent, r.chunks[k].t_ns);  // causality: logged before the client read it
      previous = sent;
      const std::string kind = chunks[k]["kind"];
      if (kind == "tokens") {
        const int n = chunks[k]["tokens"];
        EXPECT_EQ(word_count(chunk_text(json::parse(payloads[k]))), n);
        tokens += n;
      } else {
        EXPECT_EQ(kind, "done");
        EXPECT_EQ(payloads[k], "[DONE]");
      }
    }
    EXPECT_EQ(tokens, max_tokens);
    EXPECT_GE(rec["end_ns"].get<Nanos>(), previous);
    // The chunk times follow the seeded plan (never early).
    PlanRequest pr;
    pr.chat = index % 2;
    pr.stream = true;
    pr.max_tokens = max_tokens;
    ResponsePlan plan = plan_response(mock.config, index, pr, false);
    for (std::size_t k = 0; k + 1 < chunks.size(); ++k) {
      EXPECT_GE(chunks[k]["ns"].get<Nanos>() - rec["arrival_ns"].get<Nanos>(), plan.token_chunk_offsets_ns[k]);
    }
  }
}

}  // namespace
}  // namespace qmeter::mockserver
