// Session datasets (sharegpt-multiturn, multiturn) and the shared-prefix dataset: what they
// build and how build_schedule lays conversations out (the client side is in tests/loadgen).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <sstream>

#include "qmeter/workload/registry.h"
#include "workload_test_util.h"

namespace qmeter::workload {
namespace {

using ::testing::HasSubstr;
using testing::count_words;
using testing::usage_error;
using testing::write_file;

constexpr const char* kConversations = R"([
  {"id": "a", "conversations": [
    {"from": "human", "value": "hello there"}, {"from": "gpt", "value": "hi, how can I help you today?"},
    {"from": "human", "value": "tell me a story"}, {"from": "gpt", "value": "once upon a time"},
    {"from": "human", "value": "thanks"}]},
  {"id": "b", "conversations": [{"from": "gpt", "value": "no human here"}]},
  {"id": "c", "conversations": [
    {"from": "system", "value": "be nice"}, {"from": "human", "value": "what is two plus two"},
    {"from": "gpt", "value": "four"}]}
])";

TEST(SharegptMultiturn, EveryHumanTurnInOrder) {
  const std::string dir = qmeter::testing::test_output_dir("sharegpt_multiturn");
  DatasetOptions d;
  d.spec = "sharegpt-multiturn:" + write_file(dir, "conv.json", kConversations);
  d.num_prompts = 3;  // 2 usable conversations: the third starts over at the first
  d.output_len = 9;
  d.think_time_s = 0.25;
  ArrivalOptions a;
  a.kind = "constant";
  a.request_rate = 2;
  const Schedule s = build_schedule(d, a);
  // (session, turn, text, max_tokens: reply tokens at 4 characters each, or --output-len)
  struct Turn {
    std::int64_t session;
    int turn;
    std::string text;
    int max_tokens;
    Nanos offset;
  };
  const std::vector<Turn> expect = {
      {0, 0, "hello there", 8, 0},         {0, 1, "tell me a story", 4, 0}, {0, 2, "thanks", 9, 0},
      {1, 0, "what is two plus two", 1, 500'000'000},
      {2, 0, "hello there", 8, 1'000'000'000}, {2, 1, "tell me a story", 4, 1'000'000'000}, {2, 2, "thanks", 9, 1'000'000'000},
  };
  ASSERT_EQ(s.requests.size(), expect.size());
  for (std::size_t i = 0; i < expect.size(); ++i) {
    const auto& r = s.requests[i];
    EXPECT_EQ(r.index, static_cast<std::int64_t>(i));
    EXPECT_EQ(r.prompt.session, expect[i].session) << i;
    EXPECT_EQ(r.prompt.turn, expect[i].turn) << i;
    EXPECT_EQ(r.prompt.text, expect[i].text) << i;
    EXPECT_EQ(r.prompt.max_tokens, expect[i].max_tokens) << i;
    EXPECT_EQ(r.offset_ns, expect[i].offset) << i;
    EXPECT_EQ(r.follows, expect[i].turn == 0 ? -1 : static_cast<std::int64_t>(i) - 1) << i;
    EXPECT_EQ(r.prompt.think_ns, expect[i].turn == 0 ? 0 : 250'000'000) << i;
  }
}

TEST(SharegptMultiturn, RealFileHasOneTurnPerConversation) {
  QMETER_REQUIRE_SHARED_DATA(path, "workloads/sharegpt_v3_filtered_500.json");
  DatasetOptions d;
  d.spec = "sharegpt-multiturn:" + path;
  d.num_prompts = 500;
  const DatasetSample s = load_dataset(d);
  // The file keeps the first human turn of each conversation only (shared/data/README.md).
  ASSERT_EQ(s.prompts.size(), 500u);
  for (std::size_t i = 0; i < s.prompts.size(); ++i) {
    EXPECT_EQ(s.prompts[i].session, static_cast<std::int64_t>(i));
    EXPECT_EQ(s.prompts[i].turn, 0);
  }
}

TEST(Multiturn, ConversationsOfTurnsWithLengths) {
  DatasetOptions d;
  d.spec = "multiturn";
  d.num_prompts = 5;
  d.turns = 3;
  d.input_len = 20;
  d.output_len = 7;
  d.think_time_s = 1.5;
  ArrivalOptions a;
  a.request_rate = 10;
  a.kind = "poisson";
  const Schedule s = build_schedule(d, a);
  ASSERT_EQ(s.requests.size(), 15u);
  std::set<std::string> texts;
  for (std::size_t i = 0; i < s.requests.size(); ++i) {
    const auto& r = s.requests[i];
    EXPECT_EQ(r.prompt.turn, static_cast<int>(i % 3));
    EXPECT_EQ(count_words(r.prompt.text), 20);
    EXPECT_EQ(r.prompt.max_tokens, 7);
    EXPECT_EQ(r.prompt.think_ns, i % 3 ? 1'500'000'000 : 0);
    if (i % 3) {
      EXPECT_EQ(r.prompt.session, s.requests[i - 1].prompt.session);
      EXPECT_EQ(r.offset_ns, s.requests[i - 1].offset_ns);
      EXPECT_EQ(r.follows, static_cast<std::int64_t>(i) - 1);
    } else if (i) {
      EXPECT_GE(r.offset_ns, s.requests[i - 1].offset_ns);  // conversations in arrival order
    }
    texts.insert(r.prompt.text);
  }
  EXPECT_EQ(texts.size(), 15u);  // every user turn its own words
  // The arrival process times the 5 conversations: the same offsets as 5 single requests.
  DatasetOptions single;
  single.num_prompts = 5;
  single.input_len = 3;
  const Schedule plain = build_schedule(single, a);
  for (int c = 0; c < 5; ++c) EXPECT_EQ(s.requests[c * 3].offset_ns, plain.requests[c].offset_ns);
  d.turns = 0;
  EXPECT_EQ(usage_error([&] { build_schedule(d, a); }), "--turns must be at least 1, got 0");
  d.turns = 2;
  d.think_time_s = -1;
  EXPECT_EQ(usage_error([&] { build_schedule(d, a); }), "--think-time must be >= 0 seconds, got -1");
}

std::vector<std::string> words_of(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> w;
  for (std::string x; in >> x;) w.push_back(x);
  return w;
}

TEST(Prefix, GroupsShareExactlyTheirPrefix) {
  DatasetOptions d;
  d.spec = "prefix";
  d.num_prefixes = 3;
  d.prefix_len = 40;
  d.input_len = 6;
  d.num_prompts = 12;
  d.output_len = 5;
  const DatasetSample s = load_dataset(d);
  ASSERT_EQ(s.prompts.size(), 12u);
  std::map<std::string, int> groups;
  std::set<std::string> suffixes;
  std::vector<std::string> order;
  for (const auto& p : s.prompts) {
    const auto w = words_of(p.text);
    ASSERT_EQ(w.size(), 46u);
    EXPECT_EQ(p.prompt_tokens, 46);
    EXPECT_EQ(p.max_tokens, 5);
    const std::string prefix = p.text.substr(0, p.text.size() - p.messages[1].content.size() - 1);
    EXPECT_EQ(count_words(prefix), 40);
    ASSERT_EQ(p.messages.size(), 2u);
    EXPECT_EQ(p.messages[0].role, "system");
    EXPECT_EQ(p.messages[0].content, prefix);
    EXPECT_EQ(p.text, prefix + " " + p.messages[1].content);
    ++groups[prefix];
    suffixes.insert(p.messages[1].content);
    order.push_back(prefix);
  }
  ASSERT_EQ(groups.size(), 3u);
  for (const auto& [prefix, n] : groups) EXPECT_EQ(n, 4);
  EXPECT_EQ(suffixes.size(), 12u);
  // Interleaved: not all of one group first.
  EXPECT_FALSE(order[0] == order[1] && order[1] == order[2] && order[2] == order[3]);
  d.num_prompts = 10;
  EXPECT_EQ(usage_error([&] { load_dataset(d); }),
            "--num-prompts 10 must be a multiple of --num-prefixes 3 (each prefix is shared by the same number of requests)");
}

}  // namespace
}  // namespace qmeter::workload

namespace qmeter::workload {
namespace {

TEST(Longdoc, CutsRealTextToExactWordCounts) {
  const std::string dir = qmeter::testing::test_output_dir("longdoc");
  const std::string doc = "One two three four five six seven.\n\nEight nine ten eleven twelve.\n";
  DatasetOptions d;
  d.spec = "longdoc:" + write_file(dir, "doc.txt", doc);
  d.num_prompts = 20;
  d.input_len = 30;  // longer than the file: it wraps around
  d.output_len = 3;
  const DatasetSample s = load_dataset(d);
  const std::string twice = doc + "\n" + doc + "\n" + doc + "\n" + doc;
  auto squash = [](const std::string& t) {
    std::string out;
    for (const auto& w : [&] { std::vector<std::string> v; std::istringstream in(t); for (std::string x; in >> x;) v.push_back(x); return v; }())
      out += w + " ";
    return out;
  };
  std::set<std::string> firsts;
  for (const auto& p : s.prompts) {
    EXPECT_EQ(count_words(p.text), 30);
    EXPECT_EQ(p.max_tokens, 3);
    // The words are the file's, in order, from some word on.
    EXPECT_NE(squash(twice).find(squash(p.text)), std::string::npos) << p.text;
    firsts.insert(p.text.substr(0, p.text.find(' ')));
  }
  EXPECT_GT(firsts.size(), 3u);  // seeded starting points
}

}  // namespace
}  // namespace qmeter::workload
