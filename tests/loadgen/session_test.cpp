// Multi-turn sessions through the real client: each turn waits for the previous reply plus the
// think time and carries the exact history (checked against the mock's request log and, byte for
// byte, against a scripted server), and the session metrics count what the dataset holds.
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "client/mock_server_process.h"
#include "client/scripted_server.h"
#include "qmeter/loadgen/loadgen.h"
#include "qmeter/workload/schedule.h"

namespace qmeter::loadgen {
namespace {

using nlohmann::json;

int count_words(const std::string& s) {
  int n = 0;
  bool in = false;
  for (char c : s) {
    const bool sp = c == ' ' || c == '\n' || c == '\t' || c == '\r';
    if (!sp && !in) ++n;
    in = !sp;
  }
  return n;
}

// Three conversations of 3, 1 and 2 human turns; reply lengths 8, 4 (4 characters a token) etc.
constexpr const char* kConversations = R"([
  {"conversations": [{"from": "human", "value": "hello there friend"}, {"from": "gpt", "value": "hi, how can I help you today?"},
                     {"from": "human", "value": "tell me a story"}, {"from": "gpt", "value": "once upon a time"},
                     {"from": "human", "value": "thanks a lot"}, {"from": "gpt", "value": "you are welcome"}]},
  {"conversations": [{"from": "human", "value": "what is two plus two"}, {"from": "gpt", "value": "four, I think"}]},
  {"conversations": [{"from": "human", "value": "name a color"}, {"from": "gpt", "value": "blue"},
                     {"from": "human", "value": "another one please"}, {"from": "gpt", "value": "green, or maybe red"}]}
])";

workload::Schedule conversation_schedule(const std::string& dir, double think_s, int conversations) {
  const std::string path = dir + "/conv.json";
  std::ofstream(path) << kConversations;
  workload::DatasetOptions d;
  d.spec = "sharegpt-multiturn:" + path;
  d.num_prompts = conversations;
  d.think_time_s = think_s;
  workload::ArrivalOptions a;
  a.kind = "constant";
  a.request_rate = 50;
  return workload::build_schedule(d, a);
}

TEST(Sessions, TurnsWaitForTheReplyPlusThinkTimeAndCarryTheHistory) {
  const std::string dir = qmeter::testing::test_output_dir("sessions_mock");
  const std::string log = dir + "/requests.jsonl";
  qmeter::testing::MockServerProcess mock(dir, {"--ttft-ms", "20", "--itl-ms", "2", "--request-log", log});
  const double think_s = 0.1;
  const workload::Schedule schedule = conversation_schedule(dir, think_s, 6);  // the 3 conversations twice
  ASSERT_EQ(schedule.requests.size(), 12u);
  LoadgenOptions opt;
  opt.client.base_url = mock.base_url();
  opt.client.model = "m";
  const LoadgenResult result = run_load(schedule, opt, {});
  ASSERT_EQ(mock.stop(), 0);
  ASSERT_EQ(result.metrics.completed, 12);

  std::map<std::string, json> by_id;  // the mock's log, by reply id
  for (const auto& line : qmeter::testing::read_lines(log)) {
    json j = json::parse(line);
    by_id[j["id"].get<std::string>()] = j;
  }
  ASSERT_EQ(by_id.size(), 12u);
  const Nanos think_ns = 100'000'000;
  std::string history;  // the completions text so far in this conversation
  for (std::size_t i = 0; i < result.records.size(); ++i) {
    const auto& r = result.records[i];
    const auto& s = schedule.requests[i];
    ASSERT_TRUE(by_id.count(r.response_id)) << r.response_id;
    const json& logged = by_id[r.response_id];
    EXPECT_EQ(r.session, s.prompt.session);
    EXPECT_EQ(r.turn, s.prompt.turn);
    // The reply asks for the dataset's reply length; the mock generates exactly that.
    EXPECT_EQ(logged["max_tokens"].get<int>(), s.prompt.max_tokens) << i;
    EXPECT_EQ(r.output_tokens(), s.prompt.max_tokens) << i;
    if (s.follows < 0) {
      history = s.prompt.text;
    } else {
      const auto& prev = result.records[static_cast<std::size_t>(s.follows)];
      // Never before the previous reply ended + think time (the mock's arrival clock is ours).
      EXPECT_GE(logged["arrival_ns"].get<Nanos>(), prev.end_ns + think_ns) << i;
      EXPECT_GE(r.sent_ns, prev.end_ns + think_ns) << i;
      EXPECT_EQ(r.scheduled_ns, prev.end_ns + think_ns) << i;
      history += prev.generated_text + "\n\n" + s.prompt.text;
    }
    // The server saw the whole history: previous prompts, the real replies, this turn.
    EXPECT_EQ(logged["prompt_tokens"].get<int>(), count_words(history)) << i;
    EXPECT_EQ(r.server_prompt_tokens, count_words(history)) << i;
  }

  // Session metrics: 6 conversations, 12 turns, turn counts 3 1 2 3 1 2.
  const SessionMetrics& m = result.sessions;
  ASSERT_TRUE(m.defined);
  EXPECT_EQ(m.sessions, 6);
  EXPECT_EQ(m.completed_sessions, 6);
  EXPECT_DOUBLE_EQ(m.mean_turns, 2.0);
  EXPECT_EQ(m.max_turns, 3);
  ASSERT_EQ(m.by_turn.size(), 3u);
  EXPECT_EQ(m.by_turn[0].requests, 6);
  EXPECT_EQ(m.by_turn[1].requests, 4);
  EXPECT_EQ(m.by_turn[2].requests, 2);
  EXPECT_GT(m.by_turn[2].mean_context_tokens, m.by_turn[1].mean_context_tokens);
  EXPECT_GT(m.by_turn[1].mean_context_tokens, m.by_turn[0].mean_context_tokens);
  const json out = json::parse(output_json_text(result, opt.metrics));
  ASSERT_TRUE(out.contains("sessions"));
  EXPECT_EQ(out["sessions"]["sessions"], 6);
  EXPECT_EQ(out["sessions"]["by_turn"][2]["requests"], 2);
  EXPECT_EQ(out["sessions"]["by_turn"][0]["ttft"]["median_ms"].is_number(), true);
}

// Chat: the exact messages on the wire, with the replies the server really sent.
TEST(Sessions, ChatHistoryIsTheExactMessages) {
  const std::string dir = qmeter::testing::test_output_dir("sessions_chat");
  std::atomic<int> replies{0};
  testing::ScriptedServer server([&](const std::string&, testing::ScriptedConnection& c) {
    const std::string text = "reply number " + std::to_string(replies++);
    c.sse_headers();
    c.write("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"" + text +
            "\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n");
  });
  const workload::Schedule schedule = conversation_schedule(dir, 0.0, 3);
  LoadgenOptions opt;
  opt.client.base_url = server.base_url();
  opt.client.endpoint = "/v1/chat/completions";
  opt.client.model = "m";
  opt.check_server = false;
  const LoadgenResult result = run_load(schedule, opt, {});
  ASSERT_EQ(result.metrics.completed, 6);

  // Request bodies by the first user message + turn: rebuild each expected list independently.
  std::vector<json> bodies;
  for (const auto& raw : server.requests()) bodies.push_back(json::parse(raw.substr(raw.find("\r\n\r\n") + 4)));
  ASSERT_EQ(bodies.size(), 6u);
  const std::vector<std::vector<std::string>> user_turns = {
      {"hello there friend", "tell me a story", "thanks a lot"}, {"what is two plus two"}, {"name a color", "another one please"}};
  for (const auto& rec : result.records) {
    const auto& s = schedule.requests[static_cast<std::size_t>(rec.index)];
    const auto& users = user_turns[static_cast<std::size_t>(s.prompt.session)];
    json expect = json::array();
    std::size_t k = static_cast<std::size_t>(rec.index) - static_cast<std::size_t>(s.prompt.turn);
    for (int t = 0; t < s.prompt.turn; ++t, ++k) {
      expect.push_back({{"role", "user"}, {"content", users[static_cast<std::size_t>(t)]}});
      expect.push_back({{"role", "assistant"}, {"content", result.records[k].generated_text}});
    }
    expect.push_back({{"role", "user"}, {"content", users[static_cast<std::size_t>(s.prompt.turn)]}});
    int found = 0;
    for (const auto& b : bodies) found += b["messages"] == expect;
    EXPECT_EQ(found, 1) << "request " << rec.index << " expected messages " << expect.dump();
  }
}

// A failed turn ends its conversation: the later turns are not sent.
TEST(Sessions, AFailedTurnCancelsTheRestOfItsConversation) {
  const std::string dir = qmeter::testing::test_output_dir("sessions_fail");
  testing::ScriptedServer server([&](const std::string& req, testing::ScriptedConnection& c) {
    if (req.find("tell me a story") != std::string::npos) {
      c.write("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}");
      return;
    }
    c.sse_headers();
    c.write("data: {\"choices\":[{\"text\":\" ok\",\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n");
  });
  const workload::Schedule schedule = conversation_schedule(dir, 0.0, 3);
  LoadgenOptions opt;
  opt.client.base_url = server.base_url();
  opt.client.model = "m";
  opt.check_server = false;
  const LoadgenResult result = run_load(schedule, opt, {});
  // Conversation 0: turn 1 fails (500), turn 2 is never sent; the others complete.
  ASSERT_EQ(result.records.size(), 6u);
  EXPECT_TRUE(result.records[0].ok());
  EXPECT_EQ(result.records[1].error, client::ErrorKind::kHttpStatus);
  EXPECT_EQ(result.records[2].error, client::ErrorKind::kCancelled);
  EXPECT_EQ(result.records[2].sent_ns, 0);
  EXPECT_EQ(server.requests().size(), 5u);
  EXPECT_EQ(result.sessions.completed_sessions, 2);
}

}  // namespace
}  // namespace qmeter::loadgen
