// Every fault mode over real sockets: at fraction 0.5 of 200 requests, the faulty share is within
// binomial tolerance, each reply shows exactly the promised defect (and the others none), and the
// request log names the fault each request got.
#include <gtest/gtest.h>

#include "mock_test_support.h"
#include "qmeter/mockserver/response_plan.h"

namespace qmeter::mockserver {
namespace {

using namespace qmeter::mockserver::testing;

constexpr int kRequests = 200;
constexpr int kTokens = 6;  // one token per chunk: drop and stall strike after 3 chunks

struct Observed {
  int tokens = 0;               // generated tokens streamed (word count of the texts)
  int usage_completion = -1;    // from the usage-only chunk
  int empty_chunks = 0;         // chunks with no text that are not the usage chunk
  bool first_is_role_only = false;
};

Observed observe(const StreamPayloads& s, bool chat) {
  Observed o;
  for (std::size_t i = 0; i < s.chunks.size(); ++i) {
    const json& c = s.chunks[i];
    if (c["choices"].empty()) {
      o.usage_completion = c["usage"]["completion_tokens"];
      continue;
    }
    const std::string text = chunk_text(c);
    o.tokens += word_count(text);
    if (i == 0) {
      o.first_is_role_only = chat ? c["choices"][0]["delta"] == json{{"role", "assistant"}} : text.empty();
    }
    if (text.empty()) o.empty_chunks++;
  }
  return o;
}

class StreamFault : public ::testing::TestWithParam<FaultKind> {};

TEST_P(StreamFault, HitsItsFractionAndDoesExactlyWhatItPromises) {
  const FaultKind kind = GetParam();
  MockServerConfig config;
  config.ttft_ms = 1;
  config.itl_ms = 1;
  config.seed = 2024;
  config.faults = {{kind, 0.5}};
  RunningMock mock(config, "mock_fault_" + std::string(fault_name(kind)));

  std::vector<std::string> requests;
  for (int i = 0; i < kRequests; ++i) {
    json body = {{"max_tokens", kTokens}, {"stream", true}, {"stream_options", {{"include_usage", true}}}};
    if (i % 2) {
      body["messages"] = {{{"role", "user"}, {"content", "hi"}}};
    } else {
      body["prompt"] = "hi";
    }
    requests.push_back(post_text(i % 2 ? "/v1/chat/completions" : "/v1/completions", body));
  }
  auto replies = run_concurrently(mock.port(), requests);
  auto log = mock.stop_and_read_log();
  ASSERT_EQ(log.size(), static_cast<std::size_t>(kRequests));
  std::map<std::string, const json*> by_id;
  for (auto& [i, rec] : log) {
    by_id[rec["id"]] = &rec;
    // The log's fault is the seeded decision for that arrival index.
    EXPECT_EQ(rec["fault"], std::string(fault_name(choose_fault(config, i))));
  }

  int faulty = 0;
  for (const auto& r : replies) {
    const std::string id = r.header("X-Request-Id");
    ASSERT_TRUE(by_id.count(id)) << "reply without a known X-Request-Id (status " << r.status << ")";
    const json& rec = *by_id[id];
    const bool chat = id.rfind("chatcmpl-", 0) == 0;
    const bool hit = rec["fault"] == std::string(fault_name(kind));
    faulty += hit;
    SCOPED_TRACE(id + (hit ? " (faulty)" : " (clean)"));
    StreamPayloads s = parse_stream(r);
    Observed o = observe(s, chat);
    if (!hit) {
      EXPECT_EQ(r.status, 200);
      EXPECT_TRUE(r.complete);
      EXPECT_TRUE(s.done);
      EXPECT_EQ(s.malformed, 0);
      EXPECT_EQ(o.tokens, kTokens);
      EXPECT_EQ(o.usage_completion, kTokens);
      EXPECT_EQ(o.empty_chunks, 0);
      EXPECT_FALSE(o.first_is_role_only);
      EXPECT_EQ(rec["outcome"], "completed");
      continue;
    }
    switch (kind) {
      case FaultKind::kHttp500:
      case FaultKind::kHttp429: {
        const int code = kind == FaultKind::kHttp500 ? 500 : 429;
        EXPECT_EQ(r.status, code);
        EXPECT_EQ(json::parse(r.body)["error"]["code"], code);
        if (code == 429) {
          EXPECT_EQ(r.header("Retry-After"), "1");
        }
        EXPECT_EQ(rec["status"], code);
        EXPECT_EQ(rec["outcome"], "error_status");
        break;
      }
      case FaultKind::kDrop:
        EXPECT_EQ(r.status, 200);
        EXPECT_TRUE(r.peer_closed);
        EXPECT_FALSE(r.complete);  // no terminating chunk
        EXPECT_FALSE(s.done);
        EXPECT_EQ(o.tokens, kTokens / 2);
        EXPECT_EQ(rec["outcome"], "dropped");
        break;
      case FaultKind::kStall:
        EXPECT_EQ(r.status, 200);
        EXPECT_TRUE(r.timed_out);  // open, silent
        EXPECT_FALSE(r.peer_closed);
        EXPECT_EQ(o.tokens, kTokens / 2);
        EXPECT_GT(rec["stalled_ns"].get<Nanos>(), 0);
        EXPECT_TRUE(rec["outcome"] == "client_closed" || rec["outcome"] == "server_stopped") << rec["outcome"];
        break;
      case FaultKind::kMalformed:
        EXPECT_TRUE(r.complete);
        EXPECT_TRUE(s.done);
        EXPECT_EQ(s.malformed, 1);
        EXPECT_EQ(s.malformed_event, static_cast<std::size_t>(kTokens / 2));  // before the middle token chunk
        EXPECT_EQ(o.tokens, kTokens);
        break;
      case FaultKind::kRoleOnlyFirst:
        EXPECT_TRUE(o.first_is_role_only);
        EXPECT_EQ(rec["chunks"][0]["kind"], "role");
        EXPECT_EQ(rec["chunks"][0]["tokens"], 0);
        EXPECT_EQ(o.tokens, kTokens);
        EXPECT_EQ(o.usage_completion, kTokens);
        break;
      case FaultKind::kEmptyChunks:
        EXPECT_EQ(o.empty_chunks, kTokens);  // one before every token chunk
        for (int k = 0; k < kTokens; ++k) {
          EXPECT_EQ(chunk_text(s.chunks[2 * k]), "");
          EXPECT_EQ(chunk_text(s.chunks[2 * k + 1]), " tok" + std::to_string(k));
        }
        EXPECT_EQ(o.tokens, kTokens);
        break;
      case FaultKind::kUsageMismatch:
        EXPECT_EQ(o.tokens, kTokens);
        EXPECT_EQ(o.usage_completion, kTokens + 1);
        EXPECT_EQ(rec["reported_completion_tokens"], kTokens + 1);
        break;
      case FaultKind::kNone:
        break;
    }
  }
  // 0.5 of 200: mean 100, standard deviation 7.07; four of them either side.
  EXPECT_NEAR(faulty, 100, 28);
}

INSTANTIATE_TEST_SUITE_P(AllKinds, StreamFault, ::testing::ValuesIn(kAllFaultKinds),
                         [](const auto& info) { return std::string(fault_name(info.param)); });

TEST(NonStreamingFaults, DropStallMalformedAndErrorsOnWholeReplies) {
  MockServerConfig config;
  config.ttft_ms = 1;
  config.itl_ms = 1;
  config.seed = 5;
  config.faults = {{FaultKind::kDrop, 0.2}, {FaultKind::kStall, 0.2}, {FaultKind::kMalformed, 0.2}, {FaultKind::kHttp500, 0.2}};
  RunningMock mock(config, "mock_fault_non_streaming");
  const int n = 60;
  std::vector<std::string> requests(n, post_text("/v1/completions", {{"prompt", "x"}, {"max_tokens", 4}}));
  auto replies = run_concurrently(mock.port(), requests);
  auto log = mock.stop_and_read_log();
  ASSERT_EQ(log.size(), static_cast<std::size_t>(n));
  std::map<std::string, int> seen, logged;
  for (auto& [i, rec] : log) logged[rec["fault"]]++;
  for (const auto& r : replies) {
    if (r.peer_closed && r.status == 0) {
      seen["drop"]++;
    } else if (r.timed_out && r.status == 0) {
      seen["stall"]++;
    } else if (r.status == 500) {
      seen["http500"]++;
    } else {
      ASSERT_EQ(r.status, 200);
      json j = json::parse(r.body, nullptr, false);
      if (j.is_discarded()) {
        seen["malformed"]++;
      } else {
        EXPECT_EQ(j["choices"][0]["text"], " tok0 tok1 tok2 tok3");
        seen["none"]++;
      }
    }
  }
  EXPECT_EQ(seen, logged);  // what the client saw, kind by kind, is what the log says
  for (const char* k : {"drop", "stall", "malformed", "http500", "none"}) EXPECT_GT(seen[k], 0) << k;
}

}  // namespace
}  // namespace qmeter::mockserver
