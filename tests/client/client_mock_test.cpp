// The streaming client against the real `qmeter mock-server`, checked request by request against
// the mock's own log (chunk send times on the same steady clock, token counts, injected faults).
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>

#include "client/mock_server_process.h"
#include "qmeter/client/streaming_client.h"

namespace qmeter::client {
namespace {

using nlohmann::json;
using testing::MockServerProcess;

std::vector<StreamRequest> spaced_requests(int n, Nanos gap_ns, int max_tokens) {
  std::vector<StreamRequest> rs;
  const Nanos t0 = steady_now_ns() + 10'000'000;
  for (int i = 0; i < n; ++i) {
    StreamRequest r;
    r.index = i;
    r.scheduled_ns = t0 + i * gap_ns;
    r.prompt = "one two three four five";
    r.max_tokens = max_tokens;
    r.expected_prompt_tokens = 5;
    rs.push_back(r);
  }
  return rs;
}

// The mock's log records by reply id.
std::map<std::string, json> log_by_id(const std::string& path) {
  std::map<std::string, json> out;
  for (const auto& line : testing::read_lines(path)) {
    json j = json::parse(line);
    out[j["id"].get<std::string>()] = j;
  }
  return out;
}

std::vector<json> token_chunks(const json& rec) {
  std::vector<json> out;
  for (const auto& c : rec["chunks"])
    if (c["tokens"].get<int>() > 0) out.push_back(c);
  return out;
}

std::string expected_text(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += " tok" + std::to_string(i);
  return s;
}

// Delivery delay allowed between the mock's send and the client's receipt. Generous: these tests
// also run under sanitizers on a loaded machine; the tight timing check is accuracy_timing.cpp.
constexpr Nanos kSlackNs = 1'000'000'000;

// Every token chunk the client saw matches one the mock logged: same token count, and the client
// time is after the mock's send time (causality on one clock) by less than `slack_ns`.
void expect_chunks_match_log(const RequestRecord& r, const json& logged, Nanos slack_ns) {
  const auto truth = token_chunks(logged);
  ASSERT_EQ(r.chunks.size(), truth.size()) << r.response_id;
  for (std::size_t i = 0; i < truth.size(); ++i) {
    EXPECT_EQ(r.chunks[i].tokens, truth[i]["tokens"].get<int>()) << r.response_id << " chunk " << i;
    const Nanos sent = truth[i]["ns"].get<Nanos>();
    EXPECT_GE(r.chunks[i].t_ns, sent) << r.response_id << " chunk " << i;
    EXPECT_LT(r.chunks[i].t_ns - sent, slack_ns) << r.response_id << " chunk " << i;
  }
  EXPECT_EQ(r.first_token_ns, r.chunks.front().t_ns);
}

class ClientMock : public ::testing::TestWithParam<std::string> {};

TEST_P(ClientMock, StreamsMatchTheMockLogChunkByChunk) {
  const std::string dir = testing::test_output_dir("client_mock_basic" + std::to_string(GetParam().size()));
  MockServerProcess mock(dir, {"--ttft-ms", "5", "--itl-ms", "2", "--request-log", dir + "/log.jsonl"});
  ClientOptions opt;
  opt.base_url = mock.base_url();
  opt.endpoint = GetParam();
  opt.model = "qmeter-mock";
  StreamingClient client(opt);
  client.check_reachable();
  const auto recs = client.run(spaced_requests(12, 2'000'000, 8));
  mock.stop();
  const auto log = log_by_id(dir + "/log.jsonl");
  ASSERT_EQ(log.size(), 12u);
  for (const auto& r : recs) {
    ASSERT_TRUE(r.ok()) << r.error_message;
    EXPECT_EQ(r.client_tokens, 8);
    EXPECT_EQ(r.server_completion_tokens, 8);
    EXPECT_EQ(r.server_prompt_tokens, 5);
    EXPECT_FALSE(r.token_count_mismatch());
    EXPECT_EQ(r.generated_text, expected_text(8));
    ASSERT_EQ(log.count(r.response_id), 1u) << r.response_id;
    const json& logged = log.at(r.response_id);
    expect_chunks_match_log(r, logged, kSlackNs);
    EXPECT_LE(r.sent_ns, logged["arrival_ns"].get<Nanos>());  // sent before the mock saw it
  }
}

INSTANTIATE_TEST_SUITE_P(BothEndpoints, ClientMock, ::testing::Values("/v1/completions", "/v1/chat/completions"));

TEST(ClientMockChunks, MultiTokenChunksAreCountedExactlyWithContinuousUsage) {
  const std::string dir = testing::test_output_dir("client_mock_multitoken");
  MockServerProcess mock(dir, {"--ttft-ms", "2", "--itl-ms", "1", "--tokens-per-chunk", "3", "--request-log",
                               dir + "/log.jsonl"});
  ClientOptions opt;
  opt.base_url = mock.base_url();
  opt.model = "m";
  const auto recs = StreamingClient(opt).run(spaced_requests(4, 1'000'000, 10));
  mock.stop();
  const auto log = log_by_id(dir + "/log.jsonl");
  for (const auto& r : recs) {
    ASSERT_TRUE(r.ok()) << r.error_message;
    ASSERT_EQ(r.chunks.size(), 4u);  // 3 + 3 + 3 + 1
    EXPECT_EQ(r.chunks[0].tokens, 3);
    EXPECT_EQ(r.chunks[3].tokens, 1);
    EXPECT_EQ(r.client_tokens, 10);
    EXPECT_FALSE(r.token_count_mismatch());
    expect_chunks_match_log(r, log.at(r.response_id), kSlackNs);
  }
}

TEST(ClientMockChunks, WithoutContinuousUsageMultiTokenChunksShowAsAMismatch) {
  const std::string dir = testing::test_output_dir("client_mock_multitoken_nocont");
  MockServerProcess mock(dir, {"--ttft-ms", "2", "--itl-ms", "1", "--tokens-per-chunk", "3"});
  ClientOptions opt;
  opt.base_url = mock.base_url();
  opt.model = "m";
  opt.continuous_usage = false;
  const auto recs = StreamingClient(opt).run(spaced_requests(2, 1'000'000, 10));
  for (const auto& r : recs) {
    ASSERT_TRUE(r.ok()) << r.error_message;
    EXPECT_EQ(r.client_tokens, 4);  // one per chunk: the client cannot know better
    EXPECT_EQ(r.server_completion_tokens, 10);
    EXPECT_EQ(r.output_tokens(), 10);
    EXPECT_TRUE(r.token_count_mismatch());
  }
}

class ClientMockEmptyFirst : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(ClientMockEmptyFirst, RoleOnlyAndEmptyChunksDoNotSetTheFirstTokenTime) {
  const auto& [endpoint, fault] = GetParam();
  const std::string dir = testing::test_output_dir("client_mock_" + fault + std::to_string(endpoint.size()));
  MockServerProcess mock(dir, {"--ttft-ms", "20", "--itl-ms", "5", "--fault", fault + ":1", "--request-log",
                               dir + "/log.jsonl"});
  ClientOptions opt;
  opt.base_url = mock.base_url();
  opt.endpoint = endpoint;
  opt.model = "m";
  const auto recs = StreamingClient(opt).run(spaced_requests(5, 3'000'000, 6));
  mock.stop();
  const auto log = log_by_id(dir + "/log.jsonl");
  for (const auto& r : recs) {
    ASSERT_TRUE(r.ok()) << r.error_message;
    const json& logged = log.at(r.response_id);
    EXPECT_EQ(logged["fault"], fault);
    // The log has non-token chunks (role / empty) before the first token chunk ...
    ASSERT_GT(logged["chunks"].size(), token_chunks(logged).size());
    EXPECT_EQ(logged["chunks"][0]["tokens"], 0);
    // ... and the client's first token time is the first TOKEN chunk's, about 20 ms after arrival.
    expect_chunks_match_log(r, logged, kSlackNs);
    EXPECT_GE(r.first_token_ns - logged["arrival_ns"].get<Nanos>(), 19'000'000);
    EXPECT_EQ(r.client_tokens, 6);
    EXPECT_EQ(r.generated_text, expected_text(6));
  }
}

INSTANTIATE_TEST_SUITE_P(Faults, ClientMockEmptyFirst,
                         ::testing::Combine(::testing::Values("/v1/completions", "/v1/chat/completions"),
                                            ::testing::Values("role_only_first", "empty_chunks")));

TEST(ClientMockFaults, EveryFaultModeEndsClassified) {
  const std::string dir = testing::test_output_dir("client_mock_faults");
  std::vector<std::string> args = {"--ttft-ms", "3", "--itl-ms", "1", "--seed", "7", "--request-log", dir + "/log.jsonl"};
  for (const char* f : {"http500", "http429", "drop", "stall", "malformed", "role_only_first", "empty_chunks",
                        "usage_mismatch"}) {
    args.push_back("--fault");
    args.push_back(std::string(f) + ":0.1");
  }
  MockServerProcess mock(dir, args);
  ClientOptions opt;
  opt.base_url = mock.base_url();
  opt.model = "m";
  opt.timeout_s = 2.5;  // ends the stalls (generous: the mock may be slow under sanitizers)
  const int n = 120;
  const Nanos t0 = steady_now_ns();
  const auto recs = StreamingClient(opt).run(spaced_requests(n, 1'000'000, 8));
  EXPECT_LT(steady_now_ns() - t0, 10'000'000'000);
  mock.stop();
  const auto log = log_by_id(dir + "/log.jsonl");
  ASSERT_EQ(log.size(), static_cast<std::size_t>(n));

  const std::map<std::string, ErrorKind> expected = {
      {"none", ErrorKind::kNone},          {"http500", ErrorKind::kHttpStatus},
      {"http429", ErrorKind::kHttpStatus}, {"drop", ErrorKind::kConnectionDropped},
      {"stall", ErrorKind::kTimeout},      {"malformed", ErrorKind::kMalformedResponse},
      {"role_only_first", ErrorKind::kNone}, {"empty_chunks", ErrorKind::kNone},
      {"usage_mismatch", ErrorKind::kNone}};
  std::map<std::string, int> faults_logged;
  for (const auto& [id, j] : log) ++faults_logged[j["fault"].get<std::string>()];
  for (const auto& [fault, count] : faults_logged) EXPECT_TRUE(expected.count(fault)) << fault;
  EXPECT_GE(faults_logged.size(), 6u);  // 10% each of 120: nearly all kinds occur

  int completed = 0, failed = 0, status500 = 0, status429 = 0, matched = 0;
  for (const auto& r : recs) {
    (r.ok() ? completed : failed)++;
    EXPECT_GT(r.end_ns, 0);
    if (!r.ok()) EXPECT_FALSE(r.error_message.empty());
    if (r.http_status == 500) ++status500;
    if (r.http_status == 429) ++status429;
    if (r.response_id.empty()) {
      EXPECT_EQ(r.error, ErrorKind::kHttpStatus) << "only an HTTP error reply has no chunk id";
      continue;
    }
    const std::string fault = log.at(r.response_id)["fault"];
    EXPECT_EQ(r.error, expected.at(fault)) << fault << ": " << r.error_message;
    EXPECT_EQ(r.token_count_mismatch(), fault == "usage_mismatch") << fault;
    ++matched;
  }
  EXPECT_EQ(completed + failed, n);
  EXPECT_EQ(status500, faults_logged["http500"]);
  EXPECT_EQ(status429, faults_logged["http429"]);
  EXPECT_EQ(matched + status500 + status429, n);
}

}  // namespace
}  // namespace qmeter::client
