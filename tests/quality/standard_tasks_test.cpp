// winogrande, lambada, mmlu, truthfulqa_mc and the HellaSwag-style mc layout: the prompts sent are
// the exact strings lm-evaluation-harness builds (written out here from its task definitions), and
// the scores follow scripted log-likelihoods (ties, acc_norm, greedy, mc2's probability mass).
// The readers are run over the whole shared files.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "qmeter/core/error.h"
#include "qmeter/quality/eval.h"
#include "scripted_server.h"
#include "test_support.h"

namespace qmeter::quality {
namespace {

using nlohmann::json;
using testing::Script;
using testing::ScriptedServer;
using testing::write_file;

std::multiset<std::string> prompts_of(const Script& s) { return {s.echo_prompts.begin(), s.echo_prompts.end()}; }

struct Scripted {
  Script script;
  void add(const std::string& context, const std::string& continuation, double ll, bool greedy = false) {
    script.loglik[context + continuation] = {continuation.size(), ll};
    if (greedy) script.greedy.insert(context + continuation);
  }
};

TEST(Winogrande, PartialEvaluationPromptsAndAcc) {
  const auto dir = qmeter::testing::test_output_dir("quality_winogrande");
  const std::string file = write_file(
      dir + "/w.jsonl",
      R"({"qID": "a", "sentence": "The trophy doesn't fit into the brown suitcase because the _ is too large.", "option1": "trophy", "option2": "suitcase", "answer": "1"})" "\n"
      R"({"qID": "b", "sentence": "Sarah was a much better surgeon than Maria so _ always got the harder cases.", "option1": "Sarah", "option2": "Maria", "answer": "2"})" "\n");
  Scripted s;
  // lm-eval: contexts = the sentence up to the blank + each option; continuation = " " + the rest.
  s.add("The trophy doesn't fit into the brown suitcase because the trophy", " is too large.", -2.0);
  s.add("The trophy doesn't fit into the brown suitcase because the suitcase", " is too large.", -3.0);
  s.add("Sarah was a much better surgeon than Maria so Sarah", " always got the harder cases.", -4.0);  // tie:
  s.add("Sarah was a much better surgeon than Maria so Maria", " always got the harder cases.", -4.0);  // first wins
  ScriptedServer server(s.script);
  auto scorer = make_server_scorer({server.url(), "m", "", 30});
  EvalOptions o;
  o.concurrency = 2;
  const auto r = run_task(parse_task_spec("winogrande:" + file), *scorer, o);
  EXPECT_EQ(prompts_of(s.script).size(), 4u);
  EXPECT_DOUBLE_EQ(r.find("acc")->value, 0.5) << "item a right; item b's tie goes to option1 (gold is 2)";
  EXPECT_NEAR(r.find("acc")->stderr_, std::sqrt(0.5 * 0.5 / (2 - 1)), 1e-12) << "lm-eval: sample stddev / sqrt(n)";
  EXPECT_EQ(json::parse(r.items[1].json)["pred"], 0);
}

TEST(Lambada, LastWordGreedyAccAndPerplexity) {
  const auto dir = qmeter::testing::test_output_dir("quality_lambada");
  const std::string file = write_file(dir + "/l.jsonl",
                                      R"({"text": "She opened the door and saw her dog"})" "\n"
                                      R"({"text": "He ate the red apple"})" "\n");
  Scripted s;
  // lm-eval lambada_openai: context = text before the last space, target = " " + last word.
  s.add("She opened the door and saw her", " dog", -1.5, /*greedy=*/true);
  s.add("He ate the red", " apple", -2.5, /*greedy=*/false);
  ScriptedServer server(s.script);
  auto scorer = make_server_scorer({server.url(), "m", "", 30});
  EvalOptions o;
  o.bootstrap_resamples = 50;
  const auto r = run_task(parse_task_spec("lambada:" + file), *scorer, o);
  EXPECT_DOUBLE_EQ(r.find("acc")->value, 0.5);
  EXPECT_NEAR(r.find("perplexity")->value, std::exp(2.0), 1e-9) << "exp(-mean(-1.5, -2.5))";
  EXPECT_EQ(json::parse(r.items[0].json)["is_greedy"], true);
  EXPECT_EQ(json::parse(r.items[1].json)["is_greedy"], false);
}

TEST(Mmlu, FiveShotPromptFromTheDevSplitAndMicroMacroAverages) {
  const auto dir = qmeter::testing::test_output_dir("quality_mmlu");
  auto q = [](const std::string& subject, const std::string& question, const std::string& answer) {
    return json{{"subject", subject}, {"question", question}, {"choices", {"w", "x", "y", "z"}}, {"answer", answer}}.dump() + "\n";
  };
  write_file(dir + "/mmlu_dev.jsonl", q("high_school_physics", "Dev one?", "B") + q("high_school_physics", "Dev two?", "D") +
                                          q("virology", "Vdev one?", "A") + q("virology", "Vdev two?", "C"));
  const std::string test = write_file(dir + "/mmlu_test.jsonl", q("high_school_physics", " Which is heavier?\n", "A") +
                                                                    q("high_school_physics", "Second?", "C") +
                                                                    q("virology", "Third?", "B"));
  // The exact prompt lm-eval builds for the first test question with 2 shots (first_n from dev).
  const std::string physics1 =
      "The following are multiple choice questions (with answers) about high school physics.\n\n"
      "Dev one?\nA. w\nB. x\nC. y\nD. z\nAnswer: B\n\n"
      "Dev two?\nA. w\nB. x\nC. y\nD. z\nAnswer: D\n\n"
      "Which is heavier?\nA. w\nB. x\nC. y\nD. z\nAnswer:";
  const std::string physics2 =
      "The following are multiple choice questions (with answers) about high school physics.\n\n"
      "Dev one?\nA. w\nB. x\nC. y\nD. z\nAnswer: B\n\n"
      "Dev two?\nA. w\nB. x\nC. y\nD. z\nAnswer: D\n\n"
      "Second?\nA. w\nB. x\nC. y\nD. z\nAnswer:";
  const std::string virology =
      "The following are multiple choice questions (with answers) about virology.\n\n"
      "Vdev one?\nA. w\nB. x\nC. y\nD. z\nAnswer: A\n\n"
      "Vdev two?\nA. w\nB. x\nC. y\nD. z\nAnswer: C\n\n"
      "Third?\nA. w\nB. x\nC. y\nD. z\nAnswer:";
  Scripted s;
  const std::vector<double> lls1 = {-1, -2, -3, -4}, lls2 = {-2, -2, -1, -3}, lls3 = {-1, -2, -2, -2};
  const char* letters[] = {" A", " B", " C", " D"};
  for (int i = 0; i < 4; ++i) {
    s.add(physics1, letters[i], lls1[static_cast<std::size_t>(i)]);  // A: right
    s.add(physics2, letters[i], lls2[static_cast<std::size_t>(i)]);  // C: right
    s.add(virology, letters[i], lls3[static_cast<std::size_t>(i)]);  // A: wrong (gold B)
  }
  ScriptedServer server(s.script);
  auto scorer = make_server_scorer({server.url(), "m", "", 30});
  EvalOptions o;
  o.num_fewshot = 2;
  o.concurrency = 4;
  const auto r = run_task(parse_task_spec("mmlu:" + test), *scorer, o);
  EXPECT_EQ(prompts_of(s.script).size(), 12u);
  EXPECT_EQ(prompts_of(s.script).count(physics1 + " A"), 1u);
  EXPECT_DOUBLE_EQ(r.find("acc")->value, 2.0 / 3) << "micro: 2 of 3 questions";
  EXPECT_DOUBLE_EQ(r.find("acc_macro")->value, 0.5) << "macro: physics 1.0, virology 0.0";
  EXPECT_DOUBLE_EQ(r.find("mmlu_high_school_physics.acc")->value, 1.0);
  EXPECT_DOUBLE_EQ(r.find("mmlu_virology.acc")->value, 0.0);
  EXPECT_EQ(r.find("acc")->n, 3);
  // Too few dev questions for the shots asked: a clear error naming the dev file and subject.
  o.num_fewshot = 3;
  try {
    run_task(parse_task_spec("mmlu:" + test), *scorer, o);
    ADD_FAILURE() << "accepted 3 shots from 2 dev questions";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("mmlu_dev.jsonl: subject 'high_school_physics' has 2"), std::string::npos) << e.what();
  }
}

TEST(TruthfulQa, Mc1AndMc2ProbabilityMass) {
  const auto dir = qmeter::testing::test_output_dir("quality_truthfulqa");
  const std::string file = write_file(
      dir + "/t.jsonl",
      json{{"question", "Is the sky blue?"},
           {"mc1_targets", {{"choices", {"Yes.", "No.", "Green."}}, {"labels", {1, 0, 0}}}},
           {"mc2_targets", {{"choices", {"Yes.", "Mostly.", "No."}}, {"labels", {1, 1, 0}}}}}
              .dump() + "\n" +
      json{{"question", "Q2?"},
           {"mc1_targets", {{"choices", {"T.", "F."}}, {"labels", {1, 0}}}},
           {"mc2_targets", {{"choices", {"T.", "F.", "T2."}}, {"labels", {1, 0, 1}}}}}  // split at the first 0
              .dump() + "\n");
  const std::string preamble =
      "Q: What is human life expectancy in the United States?\n"
      "A: Human life expectancy in the United States is 78 years.\n\n"
      "Q: Who was president of the United States in 1955?\n"
      "A: Dwight D. Eisenhower was president of the United States in 1955.\n\n"
      "Q: Which party did he belong to?\n"
      "A: He belonged to the Republican Party.\n\n"
      "Q: What is the square root of banana?\n"
      "A: I have no comment.\n\n"
      "Q: How does a telescope work?\n"
      "A: Telescopes use lenses or mirrors to focus light and make objects appear closer.\n\n"
      "Q: Where were the 1992 Olympics held?\n"
      "A: The 1992 Olympics were held in Barcelona, Spain.";
  const std::string c1 = preamble + "\n\nQ: Is the sky blue?\nA:", c2 = preamble + "\n\nQ: Q2?\nA:";
  Scripted s;
  s.add(c1, " Yes.", -1.0);    // mc1 and mc2 share this prompt
  s.add(c1, " No.", -1.0);     // a tie with the true answer: the first (true) wins mc1
  s.add(c1, " Green.", -5.0);
  s.add(c1, " Mostly.", -2.0);
  s.add(c2, " T.", -3.0);
  s.add(c2, " F.", -1.0);      // mc1 wrong
  s.add(c2, " T2.", -1.0);     // true, but after the first 0: counted as false by lm-eval's split
  ScriptedServer server(s.script);
  auto scorer = make_server_scorer({server.url(), "m", "", 30});
  const auto r = run_task(parse_task_spec("truthfulqa_mc:" + file), *scorer, EvalOptions{});
  EXPECT_DOUBLE_EQ(r.find("mc1")->value, 0.5);
  const double m1 = (std::exp(-1.0) + std::exp(-2.0)) / (std::exp(-1.0) + std::exp(-2.0) + std::exp(-1.0));
  const double m2 = std::exp(-3.0) / (std::exp(-3.0) + std::exp(-1.0) + std::exp(-1.0));
  EXPECT_NEAR(r.find("mc2")->value, (m1 + m2) / 2, 1e-12);
  EXPECT_NEAR(json::parse(r.items[0].json)["mc2"].get<double>(), m1, 1e-12);
}

TEST(HellaSwag, PreprocessingAndTheCtxEndingsLabelLayout) {
  EXPECT_EQ(hellaswag_preprocess("  Making a sandwich: [header] How to make a sandwich [title] Get bread.  "),
            "Making a sandwich: How to make a sandwich. Get bread.");
  EXPECT_EQ(hellaswag_preprocess("a [step] b [substeps] c"), "a b c");
  const auto dir = qmeter::testing::test_output_dir("quality_hellaswag");
  const std::string file = write_file(
      dir + "/h.jsonl",
      json{{"activity_label", "Removing ice from car"},
           {"ctx_a", "Then, the man writes over the snow covering the window of a car, and a woman wearing winter clothes smiles."},
           {"ctx_b", "then"},
           {"ctx", "Then, the man writes over the snow covering the window of a car, and a woman wearing winter clothes smiles. then"},
           {"endings", {", the man adds wax to the windshield and cuts it.", ", a person board a ski lift, while two men supporting the head of the person wearing winter clothes snow as the we girls sled.",
                        ", the man puts on a christmas coat, knitted with netting.", ", the man continues removing the snow on his car."}},
           {"label", "1"}}
              .dump() + "\n");
  // lm-eval hellaswag: query = preprocess(activity_label + ": " + ctx_a + " " + ctx_b.capitalize()).
  const std::string ctx =
      "Removing ice from car: Then, the man writes over the snow covering the window of a car, and a woman wearing "
      "winter clothes smiles. Then";
  Scripted s;
  // Ending lengths (lm-eval's acc_norm divides by len(ending)): 49, 126, 57, 49 characters.
  s.add(ctx, " , the man adds wax to the windshield and cuts it.", -10.0);  // raw best, tied with ending 3
  s.add(ctx, " , a person board a ski lift, while two men supporting the head of the person wearing winter clothes snow as the we girls sled.", -25.0);  // -0.198 per char: normalized best (gold)
  s.add(ctx, " , the man puts on a christmas coat, knitted with netting.", -40.0);
  s.add(ctx, " , the man continues removing the snow on his car.", -10.0);  // -0.204 per char, as ending 0
  ScriptedServer server(s.script);
  auto scorer = make_server_scorer({server.url(), "m", "", 30});
  EvalOptions o;
  o.preprocess = "hellaswag";
  const auto r = run_task(parse_task_spec("mc:" + file), *scorer, o);
  const json item = json::parse(r.items[0].json);
  EXPECT_EQ(item["pred"], 0) << "a raw tie goes to the first ending";
  EXPECT_EQ(item["pred_norm"], 1);
  EXPECT_DOUBLE_EQ(r.find("acc")->value, 0.0);
  EXPECT_DOUBLE_EQ(r.find("acc_norm")->value, 1.0);
  o.preprocess = "nope";
  EXPECT_THROW(run_task(parse_task_spec("mc:" + file), *scorer, o), UsageError);
}

// A scorer in-process with a fixed rule (one byte per token, log-probability -(byte % 3 + 1),
// always the top-1), so the readers run over the whole shared files in seconds.
class ByteScorer final : public Scorer {
 public:
  std::vector<ScoredToken> score_text(const std::string& text, int top_n) override {
    std::vector<ScoredToken> out;
    for (unsigned char c : text) {
      ScoredToken t;
      t.text = std::string(1, static_cast<char>(c));
      t.logprob = out.empty() ? NAN : -(c % 3 + 1.0);
      if (top_n > 0) t.top = {{t.text, t.logprob}};
      out.push_back(std::move(t));
    }
    return out;
  }
  std::vector<ScoredToken> score_tokens(const std::vector<int>&, int) override { throw Error("unused"); }
  std::vector<int> tokenize(const std::string&, bool) override { throw Error("unused"); }
  int context_length() override { return 1 << 30; }
  std::string generate(const GenerateRequest&) override { return ""; }
  int max_concurrency() const override { return 1; }
  std::string describe() const override { return "bytes"; }
};

TEST(StandardTaskReaders, TheSharedFilesParseWhole) {
  QMETER_REQUIRE_SHARED_DATA(wino, "eval/winogrande_dev.jsonl");
  QMETER_REQUIRE_SHARED_DATA(lambada, "eval/lambada_openai_test.jsonl");
  QMETER_REQUIRE_SHARED_DATA(mmlu, "eval/mmlu_test.jsonl");
  QMETER_REQUIRE_SHARED_DATA(tqa, "eval/truthfulqa_mc.jsonl");
  ByteScorer scorer;
  EvalOptions o;
  o.bootstrap_resamples = 10;
  EXPECT_EQ(run_task(parse_task_spec(std::string("winogrande:") + wino), scorer, o).find("acc")->n, 1267);
  const auto l = run_task(parse_task_spec(std::string("lambada:") + lambada), scorer, o);
  EXPECT_EQ(l.find("acc")->n, 5153);
  EXPECT_DOUBLE_EQ(l.find("acc")->value, 1.0) << "the byte scorer is always greedy";
  const auto t = run_task(parse_task_spec(std::string("truthfulqa_mc:") + tqa), scorer, o);
  EXPECT_EQ(t.find("mc1")->n, 817);
  EXPECT_GT(t.find("mc2")->value, 0.0);
  o.limit = 1;  // one question per subject, 5-shot from mmlu_dev.jsonl beside the test file
  const auto m = run_task(parse_task_spec(std::string("mmlu:") + mmlu), scorer, o);
  EXPECT_EQ(m.find("acc")->n, 57);
  int subjects = 0;
  for (const auto& metric : m.metrics) subjects += metric.name.rfind("mmlu_", 0) == 0;
  EXPECT_EQ(subjects, 57);
}

}  // namespace
}  // namespace qmeter::quality
