// Datasets: random prompts of exact word counts, ShareGPT / JSONL / GSM8K / Azure parsing on
// files the tests write and on the real files in the shared data folder, and trace replay.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "qmeter/workload/registry.h"
#include "qmeter/workload/schedule.h"
#include "workload_test_util.h"

using namespace qmeter::workload;
using qmeter::workload::testing::count_words;
using qmeter::workload::testing::write_file;

namespace {

Schedule all_at_once(const DatasetOptions& d) {
  ArrivalOptions a;
  a.kind = "inf";
  return build_schedule(d, a);
}

bool lowercase_words(const std::string& s) {
  for (char c : s)
    if (!(c == ' ' || (c >= 'a' && c <= 'z'))) return false;
  return s.front() != ' ' && s.back() != ' ' && s.find("  ") == std::string::npos;
}

}  // namespace

// ---- random ----

TEST(RandomDataset, ExactLengthsWithoutRangeRatio) {
  DatasetOptions d;
  d.num_prompts = 50;
  d.input_len = 37;
  d.output_len = 11;
  const Schedule s = all_at_once(d);
  ASSERT_EQ(s.requests.size(), 50u);
  std::set<std::string> distinct;
  for (const auto& r : s.requests) {
    // The mock server counts whitespace-separated words: exactly input_len of them.
    EXPECT_EQ(count_words(r.prompt.text), 37);
    EXPECT_EQ(r.prompt.prompt_tokens, 37);
    EXPECT_EQ(r.prompt.max_tokens, 11);
    EXPECT_TRUE(lowercase_words(r.prompt.text)) << r.prompt.text;
    distinct.insert(r.prompt.text);
  }
  // Every prompt differs (a server's prefix cache must not make them free).
  EXPECT_EQ(distinct.size(), 50u);
}

TEST(RandomDataset, LengthsStayInsideTheRangeAndCoverIt) {
  DatasetOptions d;
  d.num_prompts = 2000;
  d.input_len = 100;
  d.output_len = 10;
  d.range_ratio = 0.5;
  const Schedule s = all_at_once(d);
  int in_lo = 1 << 30, in_hi = 0, out_lo = 1 << 30, out_hi = 0;
  double in_sum = 0;
  for (const auto& r : s.requests) {
    const int words = count_words(r.prompt.text);
    ASSERT_EQ(words, r.prompt.prompt_tokens);
    in_lo = std::min(in_lo, words);
    in_hi = std::max(in_hi, words);
    out_lo = std::min(out_lo, r.prompt.max_tokens);
    out_hi = std::max(out_hi, r.prompt.max_tokens);
    in_sum += words;
  }
  // Uniform integers on [50, 150] and [5, 15]; 2000 draws reach both ends (miss chance < 1e-8).
  EXPECT_EQ(in_lo, 50);
  EXPECT_EQ(in_hi, 150);
  EXPECT_EQ(out_lo, 5);
  EXPECT_EQ(out_hi, 15);
  // Mean 100, sd of one draw sqrt((101^2 - 1) / 12) = 29.15; 5 standard errors.
  EXPECT_NEAR(in_sum / 2000, 100, 5 * 29.15 / std::sqrt(2000.0));
}

TEST(RandomDataset, RangeBoundsIgnoreFloatNoise) {
  // 10 * (1 + 0.1) = 11.000000000000002 must not widen the range to 12.
  DatasetOptions d;
  d.num_prompts = 500;
  d.input_len = 10;
  d.output_len = 10;
  d.range_ratio = 0.1;
  for (const auto& r : all_at_once(d).requests) {
    EXPECT_GE(count_words(r.prompt.text), 9);
    EXPECT_LE(count_words(r.prompt.text), 11);
    EXPECT_GE(r.prompt.max_tokens, 9);
    EXPECT_LE(r.prompt.max_tokens, 11);
  }
}

TEST(RandomDataset, PromptIDoesNotDependOnHowManyPrompts) {
  DatasetOptions small, large;
  small.num_prompts = 10;
  large.num_prompts = 30;
  small.seed = large.seed = 77;
  const Schedule a = all_at_once(small), b = all_at_once(large);
  for (std::size_t i = 0; i < 10; ++i) EXPECT_EQ(a.requests[i].prompt.text, b.requests[i].prompt.text);
}

TEST(RandomDataset, TokenCounterWithBosGetsTheRequestedCount) {
  // A server that counts words plus one BOS token: the prompt needs input_len - 1 words.
  std::function<int(const std::string&)> counter = [](const std::string& s) { return count_words(s) + 1; };
  DatasetOptions d;
  d.num_prompts = 40;
  d.input_len = 64;
  d.range_ratio = 0.25;
  d.token_counter = &counter;
  DatasetOptions plain = d;
  plain.token_counter = nullptr;
  const Schedule s = all_at_once(d), lengths = all_at_once(plain);
  for (std::size_t i = 0; i < s.requests.size(); ++i) {
    const auto& p = s.requests[i].prompt;
    const int wanted = lengths.requests[i].prompt.prompt_tokens;  // the drawn length
    EXPECT_EQ(counter(p.text), wanted);
    EXPECT_EQ(p.prompt_tokens, wanted);
    EXPECT_EQ(count_words(p.text), wanted - 1);
  }
}

TEST(RandomDataset, TokenCounterWithMultiTokenWordsLandsOnOrNextToTheTarget) {
  // Words of 4+ letters count as 2 tokens, so some totals can be stepped over; the prompt's
  // prompt_tokens is always what the counter says, and exact whenever a word count gives it.
  std::function<int(const std::string&)> counter = [](const std::string& s) {
    int tokens = 0;
    std::istringstream in(s);
    for (std::string w; in >> w;) tokens += w.size() >= 4 ? 2 : 1;
    return tokens;
  };
  DatasetOptions d;
  d.num_prompts = 200;
  d.input_len = 50;
  d.token_counter = &counter;
  int exact = 0;
  for (const auto& r : all_at_once(d).requests) {
    EXPECT_EQ(r.prompt.prompt_tokens, counter(r.prompt.text));
    EXPECT_LE(std::abs(r.prompt.prompt_tokens - 50), 1);
    exact += r.prompt.prompt_tokens == 50;
  }
  // A sequence misses 50 only if the word crossing it is a 2-token one (about 1 in 3 words, and
  // then only when it jumps from 49 to 51): most land exactly.
  EXPECT_GT(exact, 120);
}

// ---- sharegpt ----

namespace {
std::string turn(const std::string& from, const std::string& value) {
  return nlohmann::json{{"from", from}, {"value", value}}.dump();
}
std::string item(const std::vector<std::string>& turns) {
  std::string s = "{\"id\": \"x\", \"conversations\": [";
  for (std::size_t i = 0; i < turns.size(); ++i) s += (i ? ", " : "") + turns[i];
  return s + "]}";
}
}  // namespace

TEST(ShareGptDataset, FirstHumanTurnPromptAndReplyLengthWithVllmFilters) {
  const auto dir = qmeter::testing::test_output_dir("sharegpt_basic");
  const std::string reply40(40, 'r');  // 40 characters -> 10 estimated tokens
  const std::string items[] = {
      item({turn("human", "Explain how a hash map handles collisions."), turn("gpt", reply40)}),  // usable: out 10
      item({turn("human", "hi"), turn("gpt", reply40)}),                                         // prompt < 4 tokens
      item({turn("gpt", "I only answer.")}),                                                      // no human turn
      item({turn("human", "Tell me a long story please."), turn("gpt", "ok")}),                  // reply < 4 tokens
      item({turn("human", std::string(4100, 'x'))}),                                              // prompt > 1024 tokens
      item({turn("system", "be brief"), turn("human", "What is the capital of France?"), turn("gpt", reply40 + reply40)}),
      item({turn("human", "Write a haiku about the sea.")}),  // no reply: --output-len
  };
  std::string json = "[\n";
  for (std::size_t i = 0; i < std::size(items); ++i) json += (i ? ",\n" : "") + items[i];
  const std::string path = write_file(dir, "conv.json", json + "\n]\n");

  DatasetOptions d;
  d.spec = "sharegpt:" + path;
  d.num_prompts = 3;
  d.output_len = 33;
  std::map<std::string, int> max_tokens;
  for (const auto& r : all_at_once(d).requests) max_tokens[r.prompt.text] = r.prompt.max_tokens;
  EXPECT_EQ(max_tokens, (std::map<std::string, int>{{"Explain how a hash map handles collisions.", 10},
                                                    {"What is the capital of France?", 20},
                                                    {"Write a haiku about the sea.", 33}}));

  // More prompts than usable items: each is used k or k+1 times (reshuffled cycles).
  d.num_prompts = 8;
  std::map<std::string, int> uses;
  for (const auto& r : all_at_once(d).requests) ++uses[r.prompt.text];
  ASSERT_EQ(uses.size(), 3u);
  for (const auto& [text, n] : uses) EXPECT_TRUE(n == 2 || n == 3) << text << " " << n;

  // fixed_output_len: --output-len for every request.
  d.fixed_output_len = true;
  for (const auto& r : all_at_once(d).requests) EXPECT_EQ(r.prompt.max_tokens, 33);
}

TEST(ShareGptDataset, TheSeedPicksTheSample) {
  const auto dir = qmeter::testing::test_output_dir("sharegpt_seed");
  std::string json = "[";
  for (int i = 0; i < 50; ++i) json += (i ? "," : "") + item({turn("human", "Question number " + std::to_string(i) + " here")});
  const std::string path = write_file(dir, "conv.json", json + "]");
  auto order = [&](std::uint64_t seed) {
    DatasetOptions d;
    d.spec = "sharegpt:" + path;
    d.num_prompts = 10;
    d.seed = seed;
    std::vector<std::string> texts;
    for (const auto& r : all_at_once(d).requests) texts.push_back(r.prompt.text);
    return texts;
  };
  EXPECT_EQ(order(1), order(1));
  EXPECT_NE(order(1), order(2));
  const auto o = order(3);
  EXPECT_EQ(std::set<std::string>(o.begin(), o.end()).size(), 10u);  // without replacement
}

TEST(ShareGptDataset, RealFileUsesExactlyTheItemsTheFiltersKeep) {
  QMETER_REQUIRE_SHARED_DATA(path, "workloads/sharegpt_v3_filtered_500.json");
  // Ground truth by an independent pass: first human turn, kept when 4 <= ceil(bytes/4) <= 1024
  // and prompt + 64 output tokens <= 2048 (the file has no gpt replies).
  std::ifstream in(path);
  const auto root = nlohmann::json::parse(in);
  std::multiset<std::string> kept;  // a multiset: the file repeats a few prompts
  for (const auto& it : root) {
    for (const auto& t : it["conversations"]) {
      if (t["from"] != "human") continue;
      const std::string v = t["value"];
      const std::size_t tokens = (v.size() + 3) / 4;
      if (tokens >= 4 && tokens <= 1024 && tokens + 64 <= 2048) kept.insert(v);
      break;
    }
  }
  ASSERT_GT(kept.size(), 400u);

  DatasetOptions d;
  d.spec = "sharegpt:" + path;
  d.output_len = 64;
  d.num_prompts = static_cast<int>(kept.size());
  const Schedule s = all_at_once(d);
  std::multiset<std::string> used;
  for (const auto& r : s.requests) {
    EXPECT_EQ(r.prompt.max_tokens, 64);
    used.insert(r.prompt.text);
  }
  EXPECT_TRUE(used == kept);  // one full shuffle uses each kept item exactly once
}

// ---- jsonl / gsm8k ----

TEST(JsonlDataset, PromptsMaxTokensAndReferencesInFileOrder) {
  const auto dir = qmeter::testing::test_output_dir("jsonl_basic");
  const std::string path = write_file(dir, "p.jsonl",
                                      "{\"prompt\": \"first prompt\", \"max_tokens\": 5}\r\n"
                                      "\n"
                                      "{\"prompt\": \"second \\\"quoted\\\" prompt\", \"reference\": \"42\"}\n"
                                      "   \n"
                                      "{\"prompt\": \"third\", \"max_tokens\": 300, \"extra\": [1, 2]}");
  DatasetOptions d;
  d.spec = "jsonl:" + path;
  d.num_prompts = 5;
  d.output_len = 17;
  const Schedule s = all_at_once(d);
  ASSERT_EQ(s.requests.size(), 5u);
  const std::vector<std::string> texts = {"first prompt", "second \"quoted\" prompt", "third", "first prompt",
                                          "second \"quoted\" prompt"};
  const std::vector<int> max_tokens = {5, 17, 300, 5, 17};
  for (std::size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(s.requests[i].prompt.text, texts[i]);
    EXPECT_EQ(s.requests[i].prompt.max_tokens, max_tokens[i]);
    EXPECT_EQ(s.requests[i].prompt.prompt_tokens, -1);  // unknown without a counter
  }
  EXPECT_EQ(s.requests[1].prompt.reference, "42");
  EXPECT_EQ(s.requests[0].prompt.reference, "");

  d.fixed_output_len = true;
  for (const auto& r : all_at_once(d).requests) EXPECT_EQ(r.prompt.max_tokens, 17);

  std::function<int(const std::string&)> counter = [](const std::string& t) { return static_cast<int>(t.size()); };
  d.token_counter = &counter;
  EXPECT_EQ(all_at_once(d).requests[0].prompt.prompt_tokens, 12);  // "first prompt"
}

TEST(Gsm8kDataset, QuestionAndFinalAnswer) {
  const auto dir = qmeter::testing::test_output_dir("gsm8k_basic");
  const std::string path = write_file(dir, "g.jsonl",
                                      "{\"question\": \"What is 2+3?\", \"answer\": \"2+3=<<2+3=5>>5\\n#### 5\"}\n"
                                      "{\"question\": \"Big?\", \"answer\": \"lots\\n#### 1,234 \"}\n");
  DatasetOptions d;
  d.spec = "gsm8k:" + path;
  d.num_prompts = 2;
  const Schedule s = all_at_once(d);
  EXPECT_EQ(s.requests[0].prompt.text, "What is 2+3?");
  EXPECT_EQ(s.requests[0].prompt.reference, "5");
  EXPECT_EQ(s.requests[1].prompt.reference, "1,234");
}

TEST(Gsm8kDataset, RealFileEveryReferenceIsTheTextAfterTheMarks) {
  QMETER_REQUIRE_SHARED_DATA(path, "eval/gsm8k_test.jsonl");
  std::vector<std::pair<std::string, std::string>> expected;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const auto j = nlohmann::json::parse(line);
    const std::string answer = j["answer"];
    expected.emplace_back(j["question"], answer.substr(answer.rfind("#### ") + 5));
  }
  ASSERT_EQ(expected.size(), 1319u);
  DatasetOptions d;
  d.spec = "gsm8k:" + path;
  d.num_prompts = 1319;
  const Schedule s = all_at_once(d);
  for (std::size_t i = 0; i < expected.size(); ++i) {
    ASSERT_EQ(s.requests[i].prompt.text, expected[i].first) << i;
    ASSERT_EQ(s.requests[i].prompt.reference, expected[i].second) << i;
  }
  EXPECT_EQ(s.requests[0].prompt.reference, "18");  // Janet's ducks
}

TEST(JsonlDataset, RealArcFileLoadsItsPromptField) {
  // A real JSONL file with a `prompt` field (ARC-Easy) loads as a jsonl dataset.
  QMETER_REQUIRE_SHARED_DATA(path, "eval/arc_easy_test.jsonl");
  DatasetOptions d;
  d.spec = "jsonl:" + path;
  d.num_prompts = 2376;
  const Schedule s = all_at_once(d);
  std::ifstream in(path);
  std::string first;
  std::getline(in, first);
  EXPECT_EQ(s.requests[0].prompt.text, nlohmann::json::parse(first)["prompt"].get<std::string>());
  EXPECT_EQ(s.requests.size(), 2376u);
}

// ---- azure trace ----

namespace {
const char* kSmallTrace =
    "TIMESTAMP,ContextTokens,GeneratedTokens\n"
    "2024-02-28 23:59:59.5000000,5,7\n"
    "2024-02-29 00:00:00.2500000,3,2\n"   // +0.75 s, across midnight
    "2024-03-01 00:00:00.0000001,10,4\n"  // +1 day (leap day) +0.5000001 s
    "2024-02-29 00:00:00.0000000,1,1\n";  // out of order: +0.5 s
}

TEST(AzureTrace, ReplayReproducesRelativeTimestampsAndLengths) {
  const auto dir = qmeter::testing::test_output_dir("azure_small");
  DatasetOptions d;
  d.spec = "azure:" + write_file(dir, "trace.csv", kSmallTrace);
  d.num_prompts = 4;
  ArrivalOptions a;  // no kind, no rate: a trace dataset replays itself
  const Schedule s = build_schedule(d, a);
  ASSERT_EQ(s.requests.size(), 4u);
  const std::vector<std::int64_t> offsets = {0, 500'000'000, 750'000'000, 86'400'500'000'100};
  const std::vector<int> context = {5, 1, 3, 10}, generated = {7, 1, 2, 4};
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(s.requests[i].offset_ns, offsets[i]) << i;
    EXPECT_EQ(count_words(s.requests[i].prompt.text), context[i]);
    EXPECT_EQ(s.requests[i].prompt.prompt_tokens, context[i]);
    EXPECT_EQ(s.requests[i].prompt.max_tokens, generated[i]);
  }
  EXPECT_EQ(s.description.rfind("trace replay, azure:", 0), 0u) << s.description;
  EXPECT_EQ(s.arrival_kind, "trace");

  a.kind = "trace";
  a.trace_time_scale = 4;  // four times faster
  const Schedule fast = build_schedule(d, a);
  for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(fast.requests[i].offset_ns, offsets[i] / 4) << i;

  // The same trace under another arrival process keeps its lengths only.
  a.kind = "constant";
  a.request_rate = 2;
  const Schedule constant = build_schedule(d, a);
  EXPECT_EQ(constant.requests[3].offset_ns, 1'500'000'000);
  EXPECT_EQ(constant.requests[3].prompt.max_tokens, 1);  // the 4th row, in file order
}

TEST(AzureTrace, PlainSecondsTimestampsAndColumnsInAnyOrder) {
  const auto dir = qmeter::testing::test_output_dir("azure_seconds");
  DatasetOptions d;
  d.spec = "azure:" + write_file(dir, "t.csv", "GeneratedTokens,TIMESTAMP,ContextTokens\n9,100.25,3\n8,101,2\n");
  d.num_prompts = 2;
  const Schedule s = build_schedule(d, ArrivalOptions{});
  EXPECT_EQ(s.requests[1].offset_ns, 750'000'000);
  EXPECT_EQ(s.requests[1].prompt.max_tokens, 8);
  EXPECT_EQ(count_words(s.requests[1].prompt.text), 2);
}

TEST(AzureTrace, RealTraceFirstRowsReplayExactly) {
  QMETER_REQUIRE_SHARED_DATA(path, "workloads/azure_llm_inference_conv_2023.csv");
  // Independent ground truth: the first 1000 rows are all on 2023-11-16, so the offset is the
  // difference of "HH:MM:SS.fffffff" read as integer 100 ns ticks.
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  std::vector<std::int64_t> ticks;
  std::vector<int> context, generated;
  for (int i = 0; i < 1000 && std::getline(in, line); ++i) {
    ASSERT_EQ(line.substr(0, 11), "2023-11-16 ");
    const std::int64_t h = std::stoll(line.substr(11, 2)), m = std::stoll(line.substr(14, 2)),
                       sec = std::stoll(line.substr(17, 2)), frac = std::stoll(line.substr(20, 7));
    ticks.push_back(((h * 60 + m) * 60 + sec) * 10'000'000 + frac);
    const auto c1 = line.find(','), c2 = line.find(',', c1 + 1);
    context.push_back(std::stoi(line.substr(c1 + 1, c2 - c1 - 1)));
    generated.push_back(std::stoi(line.substr(c2 + 1)));
  }
  DatasetOptions d;
  d.spec = "azure:" + path;
  d.num_prompts = 1000;
  ArrivalOptions a;
  a.kind = "trace";
  const Schedule s = build_schedule(d, a);
  ASSERT_EQ(s.requests.size(), 1000u);
  for (std::size_t i = 0; i < 1000; ++i) {
    ASSERT_EQ(s.requests[i].offset_ns, (ticks[i] - ticks[0]) * 100) << i;
    ASSERT_EQ(count_words(s.requests[i].prompt.text), context[i]) << i;
    ASSERT_EQ(s.requests[i].prompt.max_tokens, generated[i]) << i;
  }
  // Cross-check with Python's datetime: row 2 is 4.314579 s and row 1000 216.027393 s after row 1.
  EXPECT_EQ(s.requests[1].offset_ns, 4'314'579'000);
  EXPECT_EQ(s.requests[999].offset_ns, 216'027'393'000);
}
