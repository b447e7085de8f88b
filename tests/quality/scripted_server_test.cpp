// Multiple-choice and GSM8K scoring against a scripted OpenAI-compatible server on loopback, whose
// log-probabilities and replies are chosen by the test, so the right scores are known by
// construction: ties, length normalization, and the answer-extraction edge cases.
//
// The scripted server tokenizes one character per token. For a prompt it knows, the characters of
// the scripted continuation carry the scripted log-likelihood between them (dyadic shares, so sums
// are exact) and every context character gets -1, so a client that counted one context token too
// many, or one too few, would be off.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "qmeter/core/error.h"
#include "scripted_server.h"
#include "qmeter/quality/eval.h"
#include "test_support.h"

namespace qmeter::quality {
namespace {

using nlohmann::json;
using testing::Script;
using testing::ScriptedServer;
using testing::write_file;

TEST(MultipleChoice, AccAndAccNormFollowTheScriptedLogLikelihoods) {
  const auto dir = qmeter::testing::test_output_dir("quality_mc");
  // Item 0 (ARC layout): choice 1 has the highest log-likelihood: acc right. Per character, the
  //   long choice 2 wins: acc_norm picks 2 (wrong).
  // Item 1 (PIQA layout): a raw tie between choices 0 and 2: the first (0, gold) wins; per
  //   character choice 2 wins (wrong).
  // Item 2 (generic layout): choice 0 wins raw; normalized, the gold 1 wins.
  // Item 3 (ARC): a context longer than the continuation; gold 0 is best both ways.
  const std::string ctx0 = "Question: Which is a fruit?\nAnswer:";
  const std::string ctx1 = "Question: Open a jar?\nAnswer:";
  const std::string ctx2 = "The sky is";
  const std::string ctx3 = "Question: A question with a rather long context to be sure it is excluded from the sum?\nAnswer:";
  Script s;
  auto add = [&](const std::string& ctx, const std::string& choice, double ll) {
    s.loglik[ctx + " " + choice] = {choice.size() + 1, ll};
  };
  add(ctx0, "rock", -9.0);
  add(ctx0, "apple", -3.0);          // raw best; per char -3/5 = -0.6
  add(ctx0, "banana split", -4.0);   // per char -4/12 = -0.333: normalized best
  add(ctx1, "twist", -2.0);          // tie (raw) with "tap": first wins
  add(ctx1, "smash", -5.0);
  add(ctx1, "tap it", -2.0);         // per char: twist -0.4, tap it -0.333 -> normalized best is 2
  add(ctx2, "a", -1.0);              // raw best; per char -1
  add(ctx2, "blue", -2.0);           // per char -0.5: normalized best (gold)
  add(ctx3, "yes", -0.5);
  add(ctx3, "no", -6.0);
  const std::string file = write_file(dir + "/mc.jsonl",
                                      R"({"prompt": "Which is a fruit?", "choices": ["rock", "apple", "banana split"], "answer_idx": 1})" "\n"
                                      R"({"query": "Question: Open a jar?", "choices": ["twist", "smash", "tap it"], "gold": 0})" "\n"
                                      "\n"
                                      R"({"context": "The sky is", "choices": ["a", "blue"], "answer": 1})" "\n"
                                      R"({"prompt": "A question with a rather long context to be sure it is excluded from the sum?", "choices": ["yes", "no"], "answer_idx": 0})" "\n");
  ScriptedServer server(s);
  auto scorer = make_server_scorer({server.url(), "m", "", 30});
  EvalOptions o;
  o.concurrency = 4;
  const auto r = run_task(parse_task_spec("mc:" + file), *scorer, o);
  ASSERT_EQ(r.items.size(), 4u);
  // acc: items 0, 1, 3 right (3/4); acc_norm: items 2, 3 right (2/4; item 1's normalized best is 2).
  EXPECT_DOUBLE_EQ(r.find("acc")->value, 0.75);
  EXPECT_DOUBLE_EQ(r.find("acc_norm")->value, 0.5);
  EXPECT_NEAR(r.find("acc")->stderr_, std::sqrt(0.75 * 0.25 / 3), 1e-12);
  EXPECT_NEAR(r.find("acc_norm")->stderr_, std::sqrt(0.5 * 0.5 / 3), 1e-12);
  EXPECT_EQ(r.find("acc")->n, 4);
  const json item0 = json::parse(r.items[0].json);
  EXPECT_EQ(item0["pred"], 1);
  EXPECT_EQ(item0["pred_norm"], 2);
  // Exactly the continuation's scripted log-likelihood: no context token (each -1) leaked in.
  EXPECT_NEAR(item0["loglikelihoods"][0].get<double>(), -9.0, 1e-9);
  EXPECT_NEAR(item0["loglikelihoods"][2].get<double>(), -4.0, 1e-9);
  const json item1 = json::parse(r.items[1].json);
  EXPECT_EQ(item1["pred"], 0) << "ties go to the first choice";
  EXPECT_EQ(item1["pred_norm"], 2);
  EXPECT_EQ(s.echo_requests, 10);
}

TEST(MultipleChoice, BadLinesNameTheFileAndLine) {
  const auto dir = qmeter::testing::test_output_dir("quality_mc_bad");
  Script s;
  ScriptedServer server(s);
  auto scorer = make_server_scorer({server.url(), "m", "", 30});
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"prompt": "q", "choices": ["a", "b"], "answer_idx": 0})" "\n{not json\n", "bad.jsonl:2"},
      {R"({"prompt": "q", "choices": ["a", "b"], "answer_idx": 5})" "\n", "bad.jsonl:1: field 'answer_idx'"},
      {R"({"prompt": "q", "choices": ["a"], "answer_idx": 0})" "\n", "field 'choices'"},
      {R"({"question": "q"})" "\n", "unknown layout"},
  };
  for (const auto& [text, expect] : cases) {
    const std::string file = write_file(dir + "/bad.jsonl", text);
    try {
      run_task(parse_task_spec("mc:" + file), *scorer, EvalOptions{});
      ADD_FAILURE() << "accepted: " << text;
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find(expect), std::string::npos) << e.what();
    }
  }
  // A server that returns no prompt log-probabilities: the message says what the task needs.
  s.without_logprobs = true;
  const std::string ok = write_file(dir + "/ok.jsonl", R"({"prompt": "q", "choices": ["a", "b"], "answer_idx": 0})" "\n");
  try {
    run_task(parse_task_spec("mc:" + ok), *scorer, EvalOptions{});
    ADD_FAILURE() << "scored without log-probabilities";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no prompt log-probabilities"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("echo"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_task_spec("nope:x"), UsageError);
  EXPECT_THROW(parse_task_spec("mc"), UsageError);
}

TEST(Gsm8k, StrictAndFlexibleExtractionOnScriptedReplies) {
  const auto dir = qmeter::testing::test_output_dir("quality_gsm8k");
  std::string lines;
  auto problem = [&](const std::string& q, const std::string& answer) {
    lines += json{{"question", q}, {"answer", "Reasoning.\n#### " + answer}}.dump() + "\n";
  };
  problem("shot one", "1");
  problem("shot two", "2");
  problem("q1", "1,000");   // strict "#### 1000" right; flexible right
  problem("q2", "-5");      // strict right with a negative number
  problem("q3", "18");      // no "####": strict wrong, flexible takes the last number (18) right
  problem("q4", "7");       // "#### 7." trailing period: both right
  problem("q5", "42");      // wrong number everywhere
  problem("q6", "3");       // strict "#### $3.00" right by value; flexible right
  problem("q7", "12");      // strict right (12) but the last number is 2: flexible wrong
  const std::string file = write_file(dir + "/gsm8k.jsonl", lines);
  Script s;
  s.replies = {{"q1", " 500 + 500 = 1,000.\n#### 1,000"},
               {"q2", " It drops by 5.\n#### -5"},
               {"q3", " 9 * 2 = 18 dollars."},
               {"q4", " So #### 7."},
               {"q5", " #### 41"},
               {"q6", " #### $3.00"},
               {"q7", " #### 12 because 10 + 2"}};
  ScriptedServer server(s);
  auto scorer = make_server_scorer({server.url(), "m", "", 30});
  EvalOptions o;
  o.num_fewshot = 2;
  o.concurrency = 3;
  const auto r = run_task(parse_task_spec("gsm8k:" + file), *scorer, o);
  ASSERT_EQ(r.items.size(), 7u) << "the 2 exemplars are not scored";
  // strict right: q1 q2 q4 q6 q7 = 5/7; flexible right: q1 q2 q3 q4 q6 = 5/7 (q7's last number is 2).
  EXPECT_DOUBLE_EQ(r.find("exact_match_strict")->value, 5.0 / 7);
  EXPECT_DOUBLE_EQ(r.find("exact_match_flexible")->value, 5.0 / 7);
  std::vector<int> strict, flex;
  for (const auto& it : r.items) {
    const json j = json::parse(it.json);
    strict.push_back(j["exact_match_strict"]);
    flex.push_back(j["exact_match_flexible"]);
  }
  EXPECT_EQ(strict, (std::vector<int>{1, 1, 0, 1, 0, 1, 1}));
  EXPECT_EQ(flex, (std::vector<int>{1, 1, 1, 1, 0, 1, 0}));
  // The prompt is 2-shot in the documented format, greedy, with the stop sequences.
  ASSERT_FALSE(s.generate_bodies.empty());
  const json& b = s.generate_bodies.front();
  const std::string p = b["prompt"];
  EXPECT_EQ(p.rfind("Question: shot one\nAnswer: Reasoning.\n#### 1\n\nQuestion: shot two\nAnswer: Reasoning.\n#### 2\n\nQuestion: ", 0), 0u) << p;
  EXPECT_EQ(b["temperature"], 0);
  EXPECT_EQ(b["stop"][0], "Question:");
}

TEST(Gsm8k, AnswerExtractionEdgeCases) {
  EXPECT_EQ(gsm8k_strict_answer("x #### 1,000"), "1000");
  EXPECT_EQ(gsm8k_strict_answer("#### -3.5"), "-3.5");
  EXPECT_EQ(gsm8k_strict_answer("#### $1,234.50."), "1234.50");
  EXPECT_EQ(gsm8k_strict_answer("#### the answer is 4"), "") << "strict needs the number right after ####";
  EXPECT_EQ(gsm8k_strict_answer("no marker 5"), "");
  EXPECT_EQ(gsm8k_flexible_answer("first 3, then -12, finally 1,500."), "1500");
  EXPECT_EQ(gsm8k_flexible_answer("It costs -$7 in total"), "-7");
  EXPECT_EQ(gsm8k_flexible_answer("a list: 1, 2, 3"), "3") << "a comma followed by a space separates numbers";
  EXPECT_EQ(gsm8k_flexible_answer("none here"), "");
  EXPECT_EQ(gsm8k_target("Step 48/2=<<48/2=24>>24\n#### 72"), "72");
  EXPECT_TRUE(gsm8k_numbers_equal("1000", "1000.0"));
  EXPECT_TRUE(gsm8k_numbers_equal("-5", "-5"));
  EXPECT_FALSE(gsm8k_numbers_equal("5", "-5"));
  EXPECT_FALSE(gsm8k_numbers_equal("", "0"));
}

}  // namespace
}  // namespace qmeter::quality
