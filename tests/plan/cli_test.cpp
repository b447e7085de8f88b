// `qmeter plan ...` through the real binary: exit codes, the table on stdout, --output-json.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "qmeter/core/paths.h"
#include "qmeter/core/process.h"
#include "study_builder.h"
#include "run_qmeter.h"
#include "test_support.h"

using namespace qmeter;

namespace {

int run_cli(const std::vector<std::string>& args, const std::string& log) {
  return qmeter::testing::run_qmeter(args, log, 60);
}

// Two configurations: fast (capacity 10 req/s, 150 W at 10) and lean (capacity 4, 60 W at 4).
void build(const std::string& path) {
  qmeter::testing::StudyBuilder b(path, "cli");
  auto fast = qmeter::testing::make_run("fast", "fp16");
  for (auto [r, att] : {std::pair{2.0, 1.0}, {10.0, 0.99}, {20.0, 0.5}}) {
    auto p = qmeter::testing::make_point(r, {{"chat", att}}, 100 + 5 * r);
    p.metrics["p99_tpot_ms"] = 10 + r;
    p.energy_per_token_j = 1.0 - 0.02 * r;
    fast.points.push_back(p);
  }
  fast.quality = {{"perplexity", 5.0}};
  auto lean = qmeter::testing::make_run("lean", "w4a16-rtn");
  for (auto [r, att] : {std::pair{2.0, 1.0}, {4.0, 0.99}, {8.0, 0.0}}) {
    auto p = qmeter::testing::make_point(r, {{"chat", att}}, 20 + 10 * r);
    p.metrics["p99_tpot_ms"] = 20 + r;
    p.energy_per_token_j = 0.2 + 0.01 * r;
    lean.points.push_back(p);
  }
  lean.quality = {{"perplexity", 5.5}};
  b.add(fast);
  b.add(lean);
}

}  // namespace

TEST(PlanCli, CapacityPrintsTheTableAndWritesJson) {
  auto dir = qmeter::testing::test_output_dir("plan_cli_capacity");
  build(dir + "/r.db");
  ASSERT_EQ(run_cli({"plan", "capacity", "--db", dir + "/r.db", "--target-rate", "12", "--slo", "chat",
                     "--gpu-cost-per-hour", "1.5", "--output-json", dir + "/cap.json"},
                    dir + "/log.txt"),
            0)
      << read_file(dir + "/log.txt");
  const auto out = read_file(dir + "/log.txt");
  EXPECT_NE(out.find("configuration"), std::string::npos) << out;
  EXPECT_NE(out.find("[10, 20]"), std::string::npos) << out;  // fast: 0.99 at 10 meets, 0.5 at 20 misses
  auto j = nlohmann::json::parse(read_file(dir + "/cap.json"));
  ASSERT_EQ(j["ranked"].size(), 2u);
  EXPECT_EQ(j["ranked"][0]["run_id"], "fast");  // 2 GPUs against lean's 3
  EXPECT_EQ(j["ranked"][0]["instances"], 2);
  EXPECT_DOUBLE_EQ(j["ranked"][0]["cost_per_hour"].get<double>(), 3.0);
  EXPECT_DOUBLE_EQ(j["ranked"][0]["energy_kwh_per_hour"].get<double>(), 2 * 130 / 1000.0);
  EXPECT_EQ(j["ranked"][1]["instances"], 3);
}

TEST(PlanCli, ScheduleFromARatesCsvAndTuneWithAConstraint) {
  auto dir = qmeter::testing::test_output_dir("plan_cli_schedule");
  build(dir + "/r.db");
  std::ofstream(dir + "/rates.csv") << "minute,rate\n0,2\n1,10\n2,3\n";
  ASSERT_EQ(run_cli({"plan", "schedule", "--db", dir + "/r.db", "--trace", "rates:" + dir + "/rates.csv", "--slo",
                     "chat", "--switch-cost-s", "0", "--output-json", dir + "/s.json"},
                    dir + "/log.txt"),
            0)
      << read_file(dir + "/log.txt");
  auto s = nlohmann::json::parse(read_file(dir + "/s.json"));
  // lean x1 (40 W), fast x1 (150 W), lean x1 (50 W), 60 s each.
  EXPECT_DOUBLE_EQ(s["total_energy_j"].get<double>(), (40 + 150 + 50) * 60.0);
  EXPECT_EQ(s["slots"][1]["configuration"], "m / fp16");
  EXPECT_NE(read_file(dir + "/log.txt").find("solved exactly"), std::string::npos);

  ASSERT_EQ(run_cli({"plan", "tune", "--db", dir + "/r.db", "--objectives", "p99_tpot,energy_per_token,perplexity",
                     "--at-rate", "4", "--constraint", "perplexity<=5.2", "--output-json", dir + "/t.json"},
                    dir + "/log2.txt"),
            0)
      << read_file(dir + "/log2.txt");
  auto t = nlohmann::json::parse(read_file(dir + "/t.json"));
  EXPECT_EQ(t["pareto_front"].size(), 2u);  // fast is faster and better, lean uses less energy
  EXPECT_EQ(t["recommended"], "m / fp16");  // the only one within the perplexity constraint
}

TEST(PlanCli, MissingDataExitsWithUsageErrors) {
  auto dir = qmeter::testing::test_output_dir("plan_cli_errors");
  build(dir + "/r.db");
  EXPECT_EQ(run_cli({"plan", "capacity", "--db", dir + "/r.db", "--target-rate", "5", "--slo", "batch"}, dir + "/a.txt"), 2);
  EXPECT_NE(read_file(dir + "/a.txt").find("--slo 'batch'"), std::string::npos) << read_file(dir + "/a.txt");
  EXPECT_EQ(run_cli({"plan", "capacity", "--db", dir + "/r.db", "--target-rate", "5", "--slo", "chat",
                     "--quality-floor", "acc=0.5"},
                    dir + "/b.txt"),
            2);
  EXPECT_NE(read_file(dir + "/b.txt").find("no configuration has a quality result named 'acc'"), std::string::npos);
  EXPECT_EQ(run_cli({"plan", "tune", "--db", dir + "/r.db", "--objectives", "p99_tpot,perplexity", "--at-rate", "50"},
                    dir + "/c.txt"),
            2);
  EXPECT_NE(read_file(dir + "/c.txt").find("no load points bracketing 50 req/s"), std::string::npos)
      << read_file(dir + "/c.txt");
  EXPECT_EQ(run_cli({"plan", "capacity", "--db", dir + "/none.db", "--target-rate", "5", "--slo", "chat"}, dir + "/d.txt"), 2);
}

// A point whose latency met the SLO while the server fell behind (half the offered rate served,
// the queue growing) is not capacity: `plan capacity` ignores it unless asked.
TEST(PlanCli, CapacityIgnoresAPointThatDidNotSustainItsLoad) {
  auto dir = qmeter::testing::test_output_dir("plan_cli_sustainable");
  {
    qmeter::testing::StudyBuilder b(dir + "/r.db", "cli");
    auto fast = qmeter::testing::make_run("fast", "fp16");
    for (auto [r, att] : {std::pair{2.0, 1.0}, {10.0, 0.99}, {20.0, 0.5}}) {
      auto p = qmeter::testing::make_point(r, {{"chat", att}}, 100 + 5 * r);
      if (r == 10.0) {
        p.extra = {{"request_throughput", 5.0},
                   {"sustainable", false},
                   {"client_bound", false},
                   {"server_saturated", true},
                   {"saturation_evidence", {{"reason", "steady-state throughput 5 req/s is below 90% of the offered 10"}}}};
      }
      fast.points.push_back(p);
    }
    b.add(fast);
  }
  ASSERT_EQ(run_cli({"plan", "capacity", "--db", dir + "/r.db", "--target-rate", "12", "--slo", "chat", "--output-json",
                     dir + "/cap.json"},
                    dir + "/log.txt"),
            0)
      << read_file(dir + "/log.txt");
  EXPECT_NE(read_file(dir + "/log.txt").find("[2, 10]"), std::string::npos) << read_file(dir + "/log.txt");
  const auto j = nlohmann::json::parse(read_file(dir + "/cap.json"));
  const double sustainable_capacity = j["ranked"][0]["capacity_rps"].get<double>();
  EXPECT_NEAR(sustainable_capacity, 2 + 8 * (1 - 0.99) / 1.0, 1e-9);  // 1.0 at 2, 0 at 10 (unsustainable)
  ASSERT_EQ(run_cli({"plan", "capacity", "--db", dir + "/r.db", "--target-rate", "12", "--slo", "chat",
                     "--include-unsustainable", "--output-json", dir + "/raw.json"},
                    dir + "/raw.txt"),
            0)
      << read_file(dir + "/raw.txt");
  EXPECT_NE(read_file(dir + "/raw.txt").find("[10, 20]"), std::string::npos) << read_file(dir + "/raw.txt");
  EXPECT_DOUBLE_EQ(nlohmann::json::parse(read_file(dir + "/raw.json"))["ranked"][0]["capacity_rps"].get<double>(), 10.0);
}

// `qmeter ls` takes its headline figures from sustainable points and counts the others.
TEST(LsCli, HeadlineFiguresComeFromSustainablePointsOnly) {
  auto dir = qmeter::testing::test_output_dir("ls_sustainable");
  {
    auto db = qmeter::store::Store::open(dir + "/r.db");
    db->put_study("s", "study: s\n");
    qmeter::store::RunRow run;
    run.id = "run1";
    run.study = "s";
    run.model = "m";
    run.method = "fp16";
    run.config_json = "{}";
    db->begin_run(run);
    auto point = [&](int idx, double rate, double tput, bool sustainable) {
      qmeter::store::LoadPointRow p;
      p.run_id = "run1";
      p.index = idx;
      p.target_kind = "rate";
      p.target_value = rate;
      p.achieved_rate = rate;
      p.output_throughput = tput;
      p.metrics_json = nlohmann::json{{"request_throughput", rate}, {"sustainable", sustainable},
                                      {"client_bound", false}, {"server_saturated", !sustainable},
                                      {"saturation_evidence", {{"reason", "queue grew"}}}}
                           .dump();
      db->write_load_point(p, {}, {}, {});
    };
    point(0, 2, 111.5, true);
    point(1, 4, 222.5, true);
    point(2, 8, 999.5, false);  // the highest throughput, but not sustainable
    db->finish_run("run1", qmeter::store::RunStatus::kComplete);
  }
  ASSERT_EQ(run_cli({"ls", "--db", dir + "/r.db", "--output-json", dir + "/ls.json"}, dir + "/ls.txt"), 0)
      << read_file(dir + "/ls.txt");
  const std::string out = read_file(dir + "/ls.txt");
  EXPECT_NE(out.find("3(1!)"), std::string::npos) << out;
  EXPECT_NE(out.find("222.5"), std::string::npos) << out;
  EXPECT_EQ(out.find("999.5"), std::string::npos) << out;
  const auto j = nlohmann::json::parse(read_file(dir + "/ls.json"));
  EXPECT_EQ(j["runs"][0]["unsustainable_points"], 1);
  EXPECT_DOUBLE_EQ(j["runs"][0]["max_output_throughput"].get<double>(), 222.5);
  EXPECT_EQ(j["runs"][0]["where"], "local");
}
