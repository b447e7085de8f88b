// Response shapes of vLLM, SGLang, TGI, llama.cpp server and OpenAI, decoded into token chunks.
#include <gtest/gtest.h>

#include "qmeter/client/stream_decoder.h"

namespace qmeter::client {
namespace {

using Step = StreamDecoder::Step;

struct Fixture {
  RequestRecord rec;
  StreamDecoder dec{rec};
  Step feed(const std::string& data, Nanos t, const std::string& type = "message") { return dec.on_event(type, data, t); }
};

TEST(StreamDecoder, ChatRoleOnlyAndEmptyChunksAreNotTokens) {
  Fixture f;
  EXPECT_EQ(f.feed(R"({"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]})", 100), Step::kContinue);
  EXPECT_EQ(f.feed(R"({"choices":[{"index":0,"delta":{"role":"assistant"}}]})", 150), Step::kContinue);
  EXPECT_EQ(f.feed(R"({"choices":[{"index":0,"delta":{"content":""}}]})", 180), Step::kContinue);
  EXPECT_EQ(f.rec.first_token_ns, 0);
  f.feed(R"({"choices":[{"index":0,"delta":{"content":"Hel"}}]})", 200);
  f.feed(R"({"choices":[{"index":0,"delta":{"content":""}}]})", 250);
  f.feed(R"({"choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}]})", 300);
  EXPECT_EQ(f.feed("[DONE]", 310), Step::kDone);
  EXPECT_EQ(f.rec.first_token_ns, 200);
  ASSERT_EQ(f.rec.chunks.size(), 2u);
  EXPECT_EQ(f.rec.chunks[1].t_ns, 300);
  EXPECT_EQ(f.rec.client_tokens, 2);
  EXPECT_EQ(f.rec.generated_text, "Hello");
  EXPECT_TRUE(f.dec.saw_done());
  EXPECT_TRUE(f.dec.saw_finish_reason());
  EXPECT_FALSE(f.dec.continuous_usage());
}

TEST(StreamDecoder, ContinuousUsageCountsMultiTokenChunksExactly) {
  Fixture f;
  // vLLM with continuous_usage_stats: cumulative usage on every chunk, then a usage-only chunk.
  f.feed(R"({"choices":[{"delta":{"role":"assistant","content":""}}],"usage":{"prompt_tokens":7,"completion_tokens":0}})", 10);
  f.feed(R"({"choices":[{"delta":{"content":"a b c"}}],"usage":{"prompt_tokens":7,"completion_tokens":3}})", 20);
  f.feed(R"({"choices":[{"delta":{"content":" d e"}}],"usage":{"prompt_tokens":7,"completion_tokens":5}})", 30);
  f.feed(R"({"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":5,"total_tokens":12}})", 31);
  EXPECT_TRUE(f.dec.continuous_usage());
  ASSERT_EQ(f.rec.chunks.size(), 2u);
  EXPECT_EQ(f.rec.chunks[0].tokens, 3);
  EXPECT_EQ(f.rec.chunks[1].tokens, 2);
  EXPECT_EQ(f.rec.first_token_ns, 20);
  EXPECT_EQ(f.rec.client_tokens, 5);
  EXPECT_EQ(f.rec.server_completion_tokens, 5);
  EXPECT_EQ(f.rec.server_prompt_tokens, 7);
  EXPECT_FALSE(f.rec.token_count_mismatch());
}

TEST(StreamDecoder, FinalUsageThatDisagreesIsAMismatch) {
  Fixture f;
  f.feed(R"({"choices":[{"text":"x"}],"usage":{"prompt_tokens":2,"completion_tokens":1}})", 1);
  f.feed(R"({"choices":[{"text":"y"}],"usage":{"prompt_tokens":2,"completion_tokens":2}})", 2);
  f.feed(R"({"choices":[],"usage":{"prompt_tokens":2,"completion_tokens":9}})", 3);
  EXPECT_EQ(f.rec.client_tokens, 2);
  EXPECT_EQ(f.rec.server_completion_tokens, 9);
  EXPECT_EQ(f.rec.output_tokens(), 9);
  EXPECT_TRUE(f.rec.token_count_mismatch());
}

TEST(StreamDecoder, UsageOnlyAtTheEndIsNotADelta) {
  // llama.cpp / OpenAI: no usage until the last chunk; counting mode must not add 3 tokens there.
  Fixture f;
  f.feed(R"({"choices":[{"text":"a"}]})", 1);
  f.feed(R"({"choices":[{"text":"b"}]})", 2);
  f.feed(R"({"choices":[{"text":"c","finish_reason":"length"}],"usage":{"prompt_tokens":4,"completion_tokens":3}})", 3);
  EXPECT_FALSE(f.dec.continuous_usage());
  EXPECT_EQ(f.rec.client_tokens, 3);
  ASSERT_EQ(f.rec.chunks.size(), 3u);
  EXPECT_EQ(f.rec.chunks[2].tokens, 1);
  EXPECT_EQ(f.rec.server_completion_tokens, 3);
  EXPECT_FALSE(f.rec.token_count_mismatch());
}

TEST(StreamDecoder, LogprobsEntriesCountTokens) {
  Fixture f;
  f.feed(R"({"choices":[{"text":"ab","logprobs":{"tokens":["a","b"],"token_logprobs":[-1,-2]}}]})", 5);
  f.feed(R"({"choices":[{"delta":{"content":"xyz"},"logprobs":{"content":[{"token":"x"},{"token":"y"},{"token":"z"}]}}]})", 6);
  ASSERT_EQ(f.rec.chunks.size(), 2u);
  EXPECT_EQ(f.rec.chunks[0].tokens, 2);
  EXPECT_EQ(f.rec.chunks[1].tokens, 3);
  EXPECT_EQ(f.rec.client_tokens, 5);
}

TEST(StreamDecoder, ReasoningContentIsATokenButNotText) {
  Fixture f;
  f.feed(R"({"choices":[{"delta":{"reasoning_content":"think"}}]})", 7);
  f.feed(R"({"choices":[{"delta":{"reasoning":"more","content":null}}]})", 8);
  f.feed(R"({"choices":[{"delta":{"content":"answer"}}]})", 9);
  EXPECT_EQ(f.rec.first_token_ns, 7);
  EXPECT_EQ(f.rec.client_tokens, 3);
  EXPECT_EQ(f.rec.generated_text, "answer");
}

TEST(StreamDecoder, ErrorObjectsInAnyShapeFailAsServerError) {
  for (const char* chunk : {R"({"error":{"message":"boom","type":"internal"}})", R"({"error":"boom","error_type":"x"})",
                            R"({"object":"error","message":"boom","code":500})"}) {
    Fixture f;
    EXPECT_EQ(f.feed(chunk, 1), Step::kFailed) << chunk;
    EXPECT_EQ(f.rec.error, ErrorKind::kServerError);
    EXPECT_NE(f.rec.error_message.find("boom"), std::string::npos);
  }
  Fixture f;
  EXPECT_EQ(f.feed("anything", 1, "error"), Step::kFailed);
  EXPECT_EQ(f.rec.error, ErrorKind::kServerError);
}

TEST(StreamDecoder, MalformedChunksFail) {
  for (const char* chunk : {"{not json", "[1,2]", R"({"id":"x","object":"chunk"})", R"({"choices":["text"]})"}) {
    Fixture f;
    EXPECT_EQ(f.feed(chunk, 1), Step::kFailed) << chunk;
    EXPECT_EQ(f.rec.error, ErrorKind::kMalformedResponse) << chunk;
  }
}

TEST(StreamDecoder, NonStreamingBodyUsesUsage) {
  Fixture f;
  EXPECT_EQ(f.dec.on_json_body(R"({"choices":[{"message":{"role":"assistant","content":"hi there"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":4}})", 50), Step::kDone);
  EXPECT_EQ(f.rec.first_token_ns, 50);
  EXPECT_EQ(f.rec.client_tokens, 4);
  EXPECT_EQ(f.rec.generated_text, "hi there");
  EXPECT_EQ(f.rec.server_prompt_tokens, 3);
}

TEST(StreamDecoder, EventsAfterDoneAreIgnored) {
  Fixture f;
  EXPECT_EQ(f.feed("[DONE]", 1), Step::kDone);
  EXPECT_EQ(f.feed(R"({"choices":[{"text":"late"}]})", 2), Step::kDone);
  EXPECT_EQ(f.rec.client_tokens, 0);
}

// The allocation-free fast path and the general JSON path must give identical records for every
// chunk shape, including the ones the fast path hands over to the general parser.
TEST(StreamDecoder, FastPathAndGeneralParserAgree) {
  const std::vector<std::vector<std::string>> streams = {
      {R"({"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":{"prompt_tokens":5,"completion_tokens":0}})",
       R"({"id":"c1","choices":[{"index":0,"delta":{"content":" tok0 tok1"},"finish_reason":null}],"usage":{"prompt_tokens":5,"total_tokens":7,"completion_tokens":2}})",
       R"({"id":"c1","choices":[{"index":0,"delta":{"content":"a\nb\u00e9\"q\\ \/"},"finish_reason":"length"}],"usage":{"prompt_tokens":5,"completion_tokens":3}})",
       R"({"id":"c1","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":4}})"},
      {R"( { "choices" : [ { "text" : "x" , "logprobs" : { "tokens" : [ "a" , "b" ] , "content" : null } } , { "text" : "other" } ] } )",
       R"({"choices":[{"text":"é raw utf-8"}]})", R"({"choices":[{"text":"\ud83d\ude00"}]})",
       R"({"choices":[{"text":"y","logprobs":{"content":[{"t":[1,2,{"z":null}]},{}],"tokens":["q"]}}]})",
       R"({"choices":[{"delta":{"reasoning":"r","content":null}}]})", R"({"choices":[{"message":{"content":"m"}}]})",
       R"({"choices":[{"delta":"notobj","message":{"content":"m2"}}]})", R"({"choices":{"0":1},"usage":null})",
       R"({"usage":{"prompt_tokens":1.0,"completion_tokens":2.5}})", R"({"choices":[{"text":"d","text":"dup"}]})",
       R"({"error":null,"choices":[{"text":"z","finish_reason":"stop"}]})", R"({"choices":[{"text":"t"}]} trailing)"},
      {R"({"choices":[{"text":"a"}]})", R"({"object":"error","message":"bad"})"},
      {R"({"choices":[{"text":"a"}]})", R"({"choices":["s"]})"},
      {R"({"choices":[{"text":"bad escape \q"}]})"},
      {R"({"choices":[{"text":"ok"}],"usage":{"completion_tokens":"3"}})", R"({"id":1,"choices":[{"text":"k"}]})"},
  };
  for (const auto& stream : streams) {
    RequestRecord fast, slow;
    StreamDecoder df(fast), ds(slow);
    ds.set_fast_path(false);
    Nanos t = 100;
    for (const auto& chunk : stream) {
      const auto a = df.on_event("message", chunk, t);
      const auto b = ds.on_event("message", chunk, t);
      ASSERT_EQ(a, b) << chunk;
      t += 10;
    }
    EXPECT_EQ(fast.client_tokens, slow.client_tokens) << stream[0];
    EXPECT_EQ(fast.generated_text, slow.generated_text) << stream[0];
    EXPECT_EQ(fast.first_token_ns, slow.first_token_ns) << stream[0];
    EXPECT_EQ(fast.server_completion_tokens, slow.server_completion_tokens) << stream[0];
    EXPECT_EQ(fast.server_prompt_tokens, slow.server_prompt_tokens) << stream[0];
    EXPECT_EQ(fast.response_id, slow.response_id) << stream[0];
    EXPECT_EQ(fast.error, slow.error) << stream[0];
    ASSERT_EQ(fast.chunks.size(), slow.chunks.size()) << stream[0];
    for (std::size_t i = 0; i < fast.chunks.size(); ++i) EXPECT_EQ(fast.chunks[i].tokens, slow.chunks[i].tokens);
    EXPECT_EQ(df.saw_finish_reason(), ds.saw_finish_reason());
  }
}

}  // namespace
}  // namespace qmeter::client
