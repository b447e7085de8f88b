#include <gtest/gtest.h>

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
  EXPECT_DOUBLE_EQ(c.bits_per_weight, 3 + 32.0 / 64);
  EXPECT_EQ(c.label(), "tiny / gptq(bits=3,group_size=64) / tp=2 / pl250W");
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
