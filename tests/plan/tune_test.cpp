// `plan tune`: the exact Pareto set, dominators and the recommendation on a study built with known
// objective values.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "qmeter/analysis/study_view.h"
#include "qmeter/core/error.h"
#include "qmeter/plan/tune.h"
#include "study_builder.h"
#include "test_support.h"

using namespace qmeter;
using qmeter::testing::RunSpec;

namespace {

struct Known {
  const char* id;
  const char* method;
  double tpot, ept, ppl;
};
// At 4 req/s (midway between the points at 2 and 6): p99_tpot_ms, energy per token, perplexity.
// Front: A, B, D, E. C is dominated by A, B and E; F by A, B, C and E.
constexpr Known kKnown[] = {
    {"a", "fp16", 10, 0.50, 5.0}, {"b", "w8a16", 12, 0.40, 5.2}, {"c", "w4a16-rtn", 12, 0.50, 5.2},
    {"d", "gptq", 8, 0.70, 5.5},  {"e", "awq", 11, 0.45, 5.0},   {"f", "w3a16-rtn", 13, 0.60, 5.6},
};

analysis::StudyView tune_study(const std::string& dir) {
  {
    qmeter::testing::StudyBuilder b(dir + "/t.db", "tune");
    for (const auto& k : kKnown) {
      RunSpec r = qmeter::testing::make_run(k.id, k.method);
      for (double rate : {2.0, 6.0}) {
        auto p = qmeter::testing::make_point(rate, {{"chat", rate < 4 ? 1.0 : 0.9}}, 100);
        const double side = rate < 4 ? -1 : 1;
        p.metrics["p99_tpot_ms"] = k.tpot + side;
        p.metrics["request_throughput"] = rate;
        p.energy_per_token_j = k.ept - 0.1 * side;
        r.points.push_back(p);
      }
      r.quality = {{"perplexity", k.ppl}};
      b.add(r);
    }
  }
  auto db = store::Store::open(dir + "/t.db");
  return analysis::load_study(*db, "tune");
}

plan::TuneOptions options() {
  plan::TuneOptions o;
  o.objectives = {"p99_tpot", "energy_per_token", "perplexity"};
  o.at_rate = 4;
  return o;
}

std::vector<std::string> labels(const plan::TunePlan& p, const std::vector<int>& rows) {
  std::vector<std::string> out;
  for (int i : rows) out.push_back(p.rows[i].run_id);
  return out;
}

}  // namespace

TEST(PlanTune, ParetoSetAndDominatorsAreExact) {
  auto s = tune_study(qmeter::testing::test_output_dir("plan_tune"));
  const auto p = plan::plan_tune(s, options());
  ASSERT_EQ(p.rows.size(), 6u);
  EXPECT_EQ(labels(p, p.front), (std::vector<std::string>{"a", "b", "d", "e"}));
  EXPECT_DOUBLE_EQ(p.rows[0].values[0], 10);    // interpolated midway
  EXPECT_DOUBLE_EQ(p.rows[1].values[1], 0.40);
  EXPECT_DOUBLE_EQ(p.rows[3].values[2], 5.5);
  EXPECT_EQ(labels(p, p.rows[2].dominated_by), (std::vector<std::string>{"a", "b", "e"}));
  EXPECT_EQ(labels(p, p.rows[5].dominated_by), (std::vector<std::string>{"a", "b", "c", "e"}));
  EXPECT_TRUE(p.rows[4].dominated_by.empty());
  // No constraint, equal weights: scores over all six; A is best (0 in perplexity, 2/5 in tpot,
  // 1/3 in energy).
  EXPECT_EQ(p.rows[p.recommended].run_id, "a");
  EXPECT_NEAR(p.rows[0].score, (2.0 / 5 + 0.1 / 0.3 + 0) / 3, 1e-12);
}

TEST(PlanTune, ConstraintsAndWeightsDecideTheRecommendation) {
  auto s = tune_study(qmeter::testing::test_output_dir("plan_tune_weights"));
  auto o = options();
  o.constraints = {"p99_tpot<=11"};  // leaves A (10), D (8), E (11)
  auto p = plan::plan_tune(s, o);
  EXPECT_EQ(p.rows[p.recommended].run_id, "a");
  // Normalized over A, D, E: A = (2/3 + 0.2 + 0) / 3, D = (0 + 1 + 1) / 3, E = (1 + 0 + 0) / 3.
  EXPECT_NEAR(p.rows[0].score, (2.0 / 3 + 0.2) / 3, 1e-12);
  EXPECT_NEAR(p.rows[3].score, 2.0 / 3, 1e-12);
  EXPECT_NEAR(p.rows[4].score, 1.0 / 3, 1e-12);
  EXPECT_EQ(p.rows[1].violations.size(), 1u);
  o.weights = "p99_tpot=5";  // A = (10/3 + 0.2) / 7, D = 2 / 7, E = 5 / 7
  p = plan::plan_tune(s, o);
  EXPECT_EQ(p.rows[p.recommended].run_id, "d");
  EXPECT_NEAR(p.rows[3].score, 2.0 / 7, 1e-12);
  o.weights = "0,1,0";  // energy only: E (0.45) among A, D, E
  p = plan::plan_tune(s, o);
  EXPECT_EQ(p.rows[p.recommended].run_id, "e");
  o.constraints = {"p99_tpot<=5"};
  p = plan::plan_tune(s, o);
  EXPECT_EQ(p.recommended, -1);
  EXPECT_NE(plan::tune_table(p).find("no configuration meets every constraint"), std::string::npos);
}

TEST(PlanTune, MaximizedObjectivesAndTheDefaultRate) {
  auto s = tune_study(qmeter::testing::test_output_dir("plan_tune_max"));
  plan::TuneOptions o;
  o.objectives = {"perplexity", "p99_tpot:max"};  // perverse on purpose: the front flips in tpot
  auto p = plan::plan_tune(s, o);
  EXPECT_DOUBLE_EQ(p.at_rate, 6);  // the highest rate every configuration measured
  EXPECT_DOUBLE_EQ(p.rows[0].values[1], 11);
  // (ppl min, tpot+1 max): A (5.0, 11), E (5.0, 12) -> E dominates A; F (5.6, 14) is the max tpot.
  // B, C (5.2, 13) tie and are not dominated by E (12 < 13); D (5.5, 9) dominated.
  EXPECT_EQ(labels(p, p.front), (std::vector<std::string>{"b", "c", "e", "f"}));
  EXPECT_TRUE(p.objectives[1].maximize);
}

TEST(PlanTune, SaysWhatTheDatabaseLacks) {
  auto s = tune_study(qmeter::testing::test_output_dir("plan_tune_errors"));
  auto o = options();
  o.objectives = {"p99_tpot", "bleu"};
  try {
    plan::plan_tune(s, o);
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("'bleu'"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("perplexity"), std::string::npos) << e.what();
  }
  o = options();
  o.at_rate = 10;
  try {
    plan::plan_tune(s, o);
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("no load points bracketing 10 req/s"), std::string::npos) << e.what();
  }
  o = options();
  o.objectives = {"capacity", "perplexity"};
  EXPECT_THROW(plan::plan_tune(s, o), UsageError);  // capacity needs --slo
  o.slo = "interactive";
  EXPECT_THROW(plan::plan_tune(s, o), UsageError);  // no such class
  o.slo = "chat";
  o.attainment = 0.95;  // every configuration: 1.0 at 2, 0.9 at 6 -> 2 + 4 x 0.05 / 0.1 = 4
  const auto p = plan::plan_tune(s, o);
  EXPECT_DOUBLE_EQ(p.rows[0].values[0], 4);
  o = options();
  o.objectives = {"p99_tpot"};
  EXPECT_THROW(plan::plan_tune(s, o), UsageError);
  o = options();
  o.weights = "1,2";
  EXPECT_THROW(plan::plan_tune(s, o), UsageError);
  o.weights = "";
  o.constraints = {"p99_tpot=3"};
  EXPECT_THROW(plan::plan_tune(s, o), UsageError);
}

TEST(PlanTune, JsonListsFrontDominatorsAndRecommendation) {
  auto s = tune_study(qmeter::testing::test_output_dir("plan_tune_json"));
  const auto p = plan::plan_tune(s, options());
  auto j = nlohmann::json::parse(plan::tune_json(p));
  // Configurations by their short labels (the registry's: w8a16 is rtn-w8, gptq / awq 4-bit groups of 128).
  EXPECT_EQ(j["pareto_front"], nlohmann::json::array({"m / fp16", "m / rtn-w8", "m / gptq-w4g128", "m / awq-w4g128"}));
  EXPECT_EQ(j["configurations"][2]["dominated_by"], nlohmann::json::array({"m / fp16", "m / rtn-w8", "m / awq-w4g128"}));
  EXPECT_EQ(j["recommended"], "m / fp16");
  EXPECT_EQ(j["objectives"][0]["direction"], "min");
  const auto table = plan::tune_table(p);
  EXPECT_NE(table.find("dominated by 1, 2, 5"), std::string::npos) << table;
}
