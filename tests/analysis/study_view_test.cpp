#include <gtest/gtest.h>

#include "qmeter/analysis/knee.h"
#include "qmeter/analysis/study_view.h"
#include "qmeter/core/error.h"
#include "test_support.h"

using namespace qmeter;

TEST(StudyView, ReadsConfigsPointsSlosAndQualityFromTheStore) {
  auto dir = qmeter::testing::test_output_dir("study_view");
  auto db = store::Store::open(dir + "/v.db");
  db->put_study("s1", "spec text");
  store::RunRow run;
  run.id = "r1";
  run.study = "s1";
  run.model = "tiny";
  run.method = "gptq(bits=3,group_size=64)";
  run.config_json = R"({"method":{"name":"gptq","options":{"bits":"3","group_size":"64"}},"tp":2,
    "hardware":{"power_limit_w":250.0,"locked_clock_mhz":-1.0},
    "slos":[{"name":"interactive","ttft_ms":200.0,"tpot_ms":50.0,"e2e_ms":-1.0,"itl_ms":-1.0}]})";
  db->begin_run(run);
  store::LoadPointRow p;
  p.run_id = "r1";
  p.target_kind = "rate";
  p.target_value = 4;
  p.energy_per_token_j = 0.5;
  p.metrics_json = R"({"workload":"chat","p99_tpot_ms":12.5,"request_throughput":3.9,
    "slo":{"interactive":{"attainment":0.97,"request_goodput":3.8}},"energy_per_request_j":32.0})";
  db->write_load_point(p, {}, {}, {});
  db->write_quality("r1", "perplexity:x", {{"r1", "perplexity:x", "perplexity", 5.25, 0.1, 100}}, {});
  db->finish_run("r1", store::RunStatus::kComplete);

  auto v = analysis::load_study(*db, "s1");
  ASSERT_EQ(v.configs.size(), 1u);
  const auto& c = v.configs[0];
  EXPECT_EQ(c.method_name, "gptq");
  EXPECT_EQ(c.tp, 2);
  EXPECT_EQ(c.power_limit_w, 250);
  EXPECT_EQ(c.hardware, "pl250W");
  EXPECT_DOUBLE_EQ(c.bits_per_weight, 3 + 24.0 / 64);  // f16 scale + u8 zero point per group
  EXPECT_EQ(c.method, "gptq(bits=3,group_size=64)");
  EXPECT_EQ(c.label(), "tiny / gptq-w3g64 / tp=2 / pl250W");
  ASSERT_EQ(c.points.size(), 1u);
  EXPECT_EQ(c.points[0].workload, "chat");
  EXPECT_DOUBLE_EQ(c.points[0].metric("p99_tpot_ms"), 12.5);
  EXPECT_DOUBLE_EQ(c.points[0].attainment.at("interactive"), 0.97);
  EXPECT_DOUBLE_EQ(c.points[0].goodput.at("interactive"), 3.8);
  EXPECT_DOUBLE_EQ(c.points[0].energy_per_request_j, 32.0);
  EXPECT_DOUBLE_EQ(c.quality.at("perplexity").value, 5.25);
  EXPECT_EQ(c.quality.at("perplexity:x.perplexity").n, 100);
  ASSERT_EQ(v.slos.size(), 1u);
  EXPECT_EQ(v.slos[0].tpot_ms, 50);
  EXPECT_THROW(analysis::load_study(*db, "nope"), UsageError);
}

// The sustainable rule: a point whose percentiles meet the SLO but that did not sustain its
// offered load (half of it achieved, the queue growing) meets no SLO; nor does a client-bound one.
TEST(StudyView, APointThatDidNotSustainItsLoadMeetsNoSlo) {
  auto dir = qmeter::testing::test_output_dir("study_view_sustainable");
  auto db = store::Store::open(dir + "/v.db");
  db->put_study("s1", "spec text");
  store::RunRow run;
  run.id = "r1";
  run.study = "s1";
  run.model = "tiny";
  run.method = "fp32";
  run.config_json = R"({"method":{"name":"fp32","options":{}},"tp":1,"hardware":{},
    "slos":[{"name":"interactive","ttft_ms":200.0}]})";
  db->begin_run(run);
  auto point = [&](int idx, double rate, const std::string& json) {
    store::LoadPointRow p;
    p.run_id = "r1";
    p.index = idx;
    p.target_kind = "rate";
    p.target_value = rate;
    p.achieved_rate = rate;
    p.metrics_json = json;
    db->write_load_point(p, {}, {}, {});
  };
  // 1: sustainable, steady-state attainment preferred over the whole run's.
  point(0, 2, R"({"request_throughput":2.0,"slo":{"interactive":{"attainment":0.9,"request_goodput":1.8}},
    "sustainable":true,"client_bound":false,"server_saturated":false,
    "steady_state":{"defined":true,"slo":{"interactive":{"attainment":1.0,"request_goodput":2.0}}}})");
  // 2: p99 meets the SLO (attainment 1) but only half the offered rate was served, queue growing.
  point(1, 8, R"({"request_throughput":4.0,"slo":{"interactive":{"attainment":1.0,"request_goodput":4.0}},
    "sustainable":false,"client_bound":false,"server_saturated":true,
    "saturation_evidence":{"reason":"steady-state throughput 4 req/s is below 90% of the offered 8 req/s"},
    "steady_state":{"defined":true,"slo":{"interactive":{"attainment":1.0,"request_goodput":4.0}}}})");
  // 3: client-bound.
  point(2, 3, R"({"request_throughput":3.0,"slo":{"interactive":{"attainment":1.0,"request_goodput":3.0}},
    "sustainable":false,"client_bound":true,"server_saturated":false,
    "client_bound_evidence":{"reason":"p99 client lag 5 ms > 1 ms"}})");
  // 4: stored before the verdicts existed, achieved half of the offered rate (the old rule).
  point(3, 16, R"({"request_throughput":7.9,"slo":{"interactive":{"attainment":0.95,"request_goodput":7.5}}})");
  db->finish_run("r1", store::RunStatus::kComplete);

  const auto v = analysis::load_study(*db, "s1");
  const auto& pts = v.configs.at(0).points;
  ASSERT_EQ(pts.size(), 4u);
  EXPECT_TRUE(pts[0].sustainable);
  EXPECT_DOUBLE_EQ(pts[0].attainment.at("interactive"), 1.0);
  EXPECT_DOUBLE_EQ(pts[0].goodput.at("interactive"), 2.0);
  for (std::size_t i = 1; i < 4; ++i) {
    EXPECT_FALSE(pts[i].sustainable) << i;
    EXPECT_DOUBLE_EQ(pts[i].attainment.at("interactive"), 0.0) << i;
    EXPECT_DOUBLE_EQ(pts[i].goodput.at("interactive"), 0.0) << i;
    EXPECT_GT(pts[i].raw_attainment.at("interactive"), 0.9) << i;
    EXPECT_FALSE(pts[i].verdict.empty()) << i;
  }
  EXPECT_TRUE(pts[1].server_saturated);
  EXPECT_TRUE(pts[2].client_bound);
  EXPECT_NE(pts[2].verdict.find("client-bound"), std::string::npos);
  // The knee over these points: only the sustainable 2 req/s meets the SLO.
  std::vector<std::pair<double, double>> curve;
  for (const auto& p : pts) curve.emplace_back(p.target, p.attainment.at("interactive"));
  const auto knee = analysis::slo_knee(curve, 0.9);
  EXPECT_EQ(knee.kind, analysis::KneeResult::Kind::kBracketed);
  EXPECT_EQ(knee.bracket_lo, 2);
  EXPECT_EQ(knee.bracket_hi, 3);
  // Asked for, the raw figures stay.
  analysis::LoadStudyOptions keep;
  keep.include_unsustainable = true;
  const auto raw = analysis::load_study(*db, "s1", keep);
  EXPECT_DOUBLE_EQ(raw.configs[0].points[1].attainment.at("interactive"), 1.0);
  EXPECT_FALSE(raw.configs[0].points[1].sustainable);
}
