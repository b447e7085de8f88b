// `plan capacity` on a study whose knees, instance counts and energies are known by hand.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "qmeter/analysis/study_view.h"
#include "qmeter/core/error.h"
#include "qmeter/plan/capacity.h"
#include "study_builder.h"
#include "test_support.h"

using namespace qmeter;
using qmeter::testing::PointSpec;
using qmeter::testing::RunSpec;

namespace {

// A: knee between 6 (0.995) and 8 (0.95): 6 + 2 x 0.005/0.045 = 6.2222 req/s; power 100 + 10 r W.
// B: tp 2, knee exactly at 10 (attainment 0.99 there), bracket [10, 15]; power 200 + 5 r W.
// C: misses the SLO at its lowest rate. D: meets it at every rate: capacity >= 3, energy from
// energy per request only (30 J per request).
void build_capacity_study(const std::string& path) {
  qmeter::testing::StudyBuilder b(path, "cap");
  RunSpec a = qmeter::testing::make_run("a", "fp16");
  for (auto [r, att] : {std::pair{2.0, 1.0}, {4.0, 1.0}, {6.0, 0.995}, {8.0, 0.95}})
    a.points.push_back(qmeter::testing::make_point(r, {{"chat", att}, {"batch", 1.0}}, 100 + 10 * r));
  a.quality = {{"perplexity", 5.0}, {"acc", 0.6}};
  RunSpec bb = qmeter::testing::make_run("b", "w4a16-rtn", 2);
  for (auto [r, att] : {std::pair{5.0, 1.0}, {10.0, 0.99}, {15.0, 0.90}})
    bb.points.push_back(qmeter::testing::make_point(r, {{"chat", att}}, 200 + 5 * r));
  bb.quality = {{"perplexity", 5.4}, {"acc", 0.5}};
  RunSpec c = qmeter::testing::make_run("c", "gptq");
  for (auto [r, att] : {std::pair{2.0, 0.8}, {4.0, 0.5}}) c.points.push_back(qmeter::testing::make_point(r, {{"chat", att}}, 90));
  c.quality = {{"perplexity", 6.0}};
  RunSpec d = qmeter::testing::make_run("d", "w8a16");
  for (double r : {1.0, 3.0}) {
    PointSpec p = qmeter::testing::make_point(r, {{"chat", 1.0}});
    p.energy_per_request_j = 30;
    d.points.push_back(p);
  }
  d.quality = {{"perplexity", 5.1}};
  for (const auto& r : {a, bb, c, d}) b.add(r);
}

analysis::StudyView study(const std::string& dir) {
  build_capacity_study(dir + "/cap.db");
  auto db = store::Store::open(dir + "/cap.db");
  return analysis::load_study(*db, "cap");
}

plan::CapacityOptions options(double rate) {
  plan::CapacityOptions o;
  o.slo = "chat";
  o.attainment = 0.99;
  o.target_rate = rate;
  o.gpu_cost_per_hour = 2.0;
  return o;
}

}  // namespace

TEST(PlanCapacity, KneesInstancesCostAndEnergyMatchHandComputedValues) {
  auto s = study(qmeter::testing::test_output_dir("plan_capacity"));
  const auto p = plan::plan_capacity(s, options(20));
  ASSERT_EQ(p.ranked.size(), 3u);
  // B and A both need 4 GPUs; B draws less (2 x 250 W < 4 x 150 W). D needs 7.
  const auto& b = p.ranked[0];
  EXPECT_EQ(b.run_id, "b");
  EXPECT_EQ(b.status, plan::CapacityRow::Status::kBracketed);
  EXPECT_DOUBLE_EQ(b.capacity_rps, 10);
  EXPECT_DOUBLE_EQ(b.bracket_lo_rps, 10);
  EXPECT_DOUBLE_EQ(b.bracket_hi_rps, 15);
  EXPECT_EQ(b.instances, 2);
  EXPECT_EQ(b.gpus, 4);
  EXPECT_DOUBLE_EQ(b.cost_per_hour, 8);
  EXPECT_DOUBLE_EQ(b.power_per_instance_w, 250);
  EXPECT_DOUBLE_EQ(b.energy_kwh_per_hour, 0.5);
  EXPECT_DOUBLE_EQ(b.quality, 5.4);

  const auto& a = p.ranked[1];
  EXPECT_EQ(a.run_id, "a");
  EXPECT_NEAR(a.capacity_rps, 6 + 2 * 0.005 / 0.045, 1e-12);
  EXPECT_DOUBLE_EQ(a.bracket_lo_rps, 6);
  EXPECT_DOUBLE_EQ(a.bracket_hi_rps, 8);
  EXPECT_DOUBLE_EQ(a.attainment_lo, 0.995);
  EXPECT_DOUBLE_EQ(a.attainment_hi, 0.95);
  EXPECT_EQ(a.instances, 4);  // ceil(20 / 6.222)
  EXPECT_EQ(a.gpus, 4);
  EXPECT_DOUBLE_EQ(a.rate_per_instance_rps, 5);
  EXPECT_DOUBLE_EQ(a.power_per_instance_w, 150);  // interpolated between 140 W at 4 and 160 W at 6
  EXPECT_DOUBLE_EQ(a.energy_kwh_per_hour, 0.6);

  const auto& d = p.ranked[2];
  EXPECT_EQ(d.run_id, "d");
  EXPECT_EQ(d.status, plan::CapacityRow::Status::kLowerBound);
  EXPECT_DOUBLE_EQ(d.capacity_rps, 3);
  EXPECT_EQ(d.instances, 7);
  EXPECT_NEAR(d.power_per_instance_w, 30 * 20.0 / 7, 1e-9);  // 30 J per request x 20/7 req/s
  EXPECT_NEAR(d.energy_kwh_per_hour, 0.6, 1e-12);
  EXPECT_NE(d.note.find("not bracketed"), std::string::npos);

  ASSERT_EQ(p.never_meets.size(), 1u);
  EXPECT_EQ(p.never_meets[0].run_id, "c");
  EXPECT_DOUBLE_EQ(p.never_meets[0].lowest_rate_rps, 2);
  EXPECT_DOUBLE_EQ(p.never_meets[0].lowest_attainment, 0.8);
  EXPECT_EQ(p.quality_metric, "perplexity");
}

TEST(PlanCapacity, ExactMultipleOfCapacityNeedsNoExtraInstanceAndLowerAttainmentRaisesCapacity) {
  auto s = study(qmeter::testing::test_output_dir("plan_capacity_exact"));
  auto p = plan::plan_capacity(s, options(30));
  // A: ceil(30 / 6.22) = 5 instances = 5 GPUs; B: 30 / 10 = 3 instances exactly = 6 GPUs (tp 2).
  ASSERT_EQ(p.ranked.size(), 3u);
  EXPECT_EQ(p.ranked[0].run_id, "a");
  EXPECT_EQ(p.ranked[0].gpus, 5);
  EXPECT_EQ(p.ranked[1].run_id, "b");
  EXPECT_EQ(p.ranked[1].instances, 3);
  EXPECT_EQ(p.ranked[1].gpus, 6);
  auto o = options(30);
  o.attainment = 0.95;  // A now meets it at 8 exactly (0.95); B between 10 (0.99) and 15 (0.90)
  p = plan::plan_capacity(s, o);
  for (const auto& r : p.ranked) {
    if (r.run_id == "a") {
      EXPECT_DOUBLE_EQ(r.capacity_rps, 8);
    }
    if (r.run_id == "b") {
      EXPECT_NEAR(r.capacity_rps, 10 + 5 * 0.04 / 0.09, 1e-12);
    }
  }
}

TEST(PlanCapacity, QualityFloorsMoveConfigurationsToTheirOwnList) {
  auto s = study(qmeter::testing::test_output_dir("plan_capacity_floor"));
  auto o = options(20);
  o.quality_floors = {plan::parse_quality_floor("perplexity=5.3")};  // at most 5.3 (lower is better)
  auto p = plan::plan_capacity(s, o);
  ASSERT_EQ(p.below_floor.size(), 1u);
  EXPECT_EQ(p.below_floor[0].run_id, "b");
  EXPECT_EQ(p.below_floor[0].note, "perplexity 5.4 > 5.3");
  EXPECT_EQ(p.ranked.size(), 2u);
  EXPECT_EQ(p.ranked[0].run_id, "a");

  o.quality_floors = {plan::parse_quality_floor("acc=0.55")};  // at least 0.55
  p = plan::plan_capacity(s, o);
  ASSERT_EQ(p.ranked.size(), 1u);
  EXPECT_EQ(p.ranked[0].run_id, "a");
  ASSERT_EQ(p.below_floor.size(), 2u);
  EXPECT_EQ(p.below_floor[0].note, "acc 0.5 < 0.55");
  EXPECT_EQ(p.below_floor[1].note, "no result for acc");
  EXPECT_EQ(p.quality_metric, "acc");
}

TEST(PlanCapacity, SaysWhatTheDatabaseLacks) {
  auto s = study(qmeter::testing::test_output_dir("plan_capacity_errors"));
  auto o = options(20);
  o.slo = "interactive";
  try {
    plan::plan_capacity(s, o);
    FAIL() << "no error for an unknown SLO class";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("'interactive'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("batch, chat"), std::string::npos) << e.what();
  }
  o = options(20);
  o.quality_floors = {plan::parse_quality_floor("exact_match_strict>=0.3")};
  try {
    plan::plan_capacity(s, o);
    FAIL() << "no error for a floor without quality results";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("no configuration has a quality result named 'exact_match_strict'"),
              std::string::npos)
        << e.what();
  }
  o = options(20);
  o.workload = "code";
  EXPECT_THROW(plan::plan_capacity(s, o), UsageError);
  EXPECT_THROW(plan::plan_capacity(s, options(0)), UsageError);
  EXPECT_THROW(plan::parse_quality_floor("perplexity"), UsageError);
  EXPECT_THROW(plan::parse_quality_floor("acc=high"), UsageError);
}

TEST(PlanCapacity, TableAndJsonCarryTheSameResult) {
  auto s = study(qmeter::testing::test_output_dir("plan_capacity_output"));
  const auto p = plan::plan_capacity(s, options(20));
  const auto table = plan::capacity_table(p);
  EXPECT_NE(table.find("[10, 15]"), std::string::npos) << table;
  EXPECT_NE(table.find(">= 3.000"), std::string::npos) << table;
  EXPECT_NE(table.find("cannot meet the SLO at any measured rate"), std::string::npos) << table;
  auto j = nlohmann::json::parse(plan::capacity_json(p));
  ASSERT_EQ(j["ranked"].size(), 3u);
  EXPECT_EQ(j["ranked"][0]["run_id"], "b");
  EXPECT_EQ(j["ranked"][0]["instances"], 2);
  EXPECT_EQ(j["ranked"][2]["status"], "lower_bound");
  EXPECT_FALSE(j["ranked"][2].contains("bracket_hi_rps"));
  EXPECT_EQ(j["never_meets_slo"][0]["run_id"], "c");
}
