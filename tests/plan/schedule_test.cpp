// `plan schedule`: the exact solver against brute force, and the whole planner on a study whose
// optimal schedule and energy are known by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "qmeter/analysis/study_view.h"
#include "qmeter/core/error.h"
#include "qmeter/plan/schedule.h"
#include "study_builder.h"
#include "test_support.h"

using namespace qmeter;
using qmeter::testing::RunSpec;

namespace {

// Every sequence of states, enumerated: the independent ground truth for the DP.
double brute_force(const std::vector<std::vector<double>>& cost, const std::function<double(int, int, int)>& transition) {
  const int T = static_cast<int>(cost.size()), S = static_cast<int>(cost[0].size());
  std::vector<int> seq(T, 0);
  double best = plan::kInfeasible;
  for (;;) {
    double total = 0;
    for (int t = 0; t < T; ++t) total += cost[t][seq[t]] + (t ? transition(t, seq[t - 1], seq[t]) : 0);
    best = std::min(best, total);
    int t = 0;
    while (t < T && ++seq[t] == S) seq[t++] = 0;
    if (t == T) return best;
  }
}

}  // namespace

TEST(CheapestPath, MatchesBruteForceOnRandomSmallProblems) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> u(0, 10);
  for (int trial = 0; trial < 200; ++trial) {
    const int T = 1 + trial % 5, S = 1 + (trial / 5) % 4;
    std::vector<std::vector<double>> cost(T, std::vector<double>(S));
    for (auto& row : cost)
      for (auto& c : row) c = u(rng) < 2 ? plan::kInfeasible : u(rng);
    std::vector<std::vector<std::vector<double>>> sw(T, std::vector<std::vector<double>>(S, std::vector<double>(S)));
    for (auto& a : sw)
      for (auto& b : a)
        for (auto& c : b) c = u(rng);
    auto transition = [&](int t, int from, int to) { return from == to ? 0.0 : sw[t][from][to]; };
    const double expected = brute_force(cost, transition);
    const auto got = plan::cheapest_path(cost, transition);
    if (expected == plan::kInfeasible) {
      EXPECT_FALSE(got.feasible) << "trial " << trial;
      continue;
    }
    ASSERT_TRUE(got.feasible) << "trial " << trial;
    EXPECT_NEAR(got.total, expected, 1e-9) << "trial " << trial;
    // The returned path really costs what it claims.
    double recomputed = 0;
    for (int t = 0; t < T; ++t) recomputed += cost[t][got.states[t]] + (t ? transition(t, got.states[t - 1], got.states[t]) : 0);
    EXPECT_NEAR(recomputed, got.total, 1e-9) << "trial " << trial;
  }
}

namespace {

// X: capacity 10 req/s (attainment 0.99 at 10, 0.5 at 20), power 100 + 5 r W.
// Y: capacity 4 req/s (0.99 at 4, 0 at 8), power 20 + 10 r W. Z never meets the SLO.
void build_schedule_study(const std::string& path) {
  qmeter::testing::StudyBuilder b(path, "sched");
  RunSpec x = qmeter::testing::make_run("x", "fp16");
  for (auto [r, att] : {std::pair{2.0, 1.0}, {5.0, 1.0}, {10.0, 0.99}, {20.0, 0.5}})
    x.points.push_back(qmeter::testing::make_point(r, {{"chat", att}}, 100 + 5 * r));
  RunSpec y = qmeter::testing::make_run("y", "w4a16-rtn");
  for (auto [r, att] : {std::pair{2.0, 1.0}, {4.0, 0.99}, {8.0, 0.0}}) y.points.push_back(qmeter::testing::make_point(r, {{"chat", att}}, 20 + 10 * r));
  RunSpec z = qmeter::testing::make_run("z", "gptq");
  z.points.push_back(qmeter::testing::make_point(1.0, {{"chat", 0.5}}, 10));
  for (const auto& r : {x, y, z}) b.add(r);
}

analysis::StudyView schedule_study(const std::string& dir) {
  build_schedule_study(dir + "/s.db");
  auto db = store::Store::open(dir + "/s.db");
  return analysis::load_study(*db, "sched");
}

plan::LoadTrace trace(std::vector<double> rates) {
  plan::LoadTrace t;
  t.slot_seconds = 60;
  t.rates = std::move(rates);
  t.description = "test";
  return t;
}

}  // namespace

TEST(PlanSchedule, OptimalScheduleWithoutSwitchCostSwitchesToXAtThePeak) {
  auto s = schedule_study(qmeter::testing::test_output_dir("plan_schedule_free"));
  plan::ScheduleOptions o;
  o.slo = "chat";
  o.switch_cost_s = 0;
  const auto p = plan::plan_schedule(s, trace({2, 10, 3}), o);
  ASSERT_EQ(p.configs.size(), 2u);
  EXPECT_EQ(p.states, 1 + 3);  // X needs 1 instance at the peak, Y 3
  ASSERT_EQ(p.excluded.size(), 1u);
  EXPECT_NE(p.excluded[0].find("cannot meet the SLO"), std::string::npos);
  // Slot energies by hand: Y1 at 2 req/s = 40 W, X1 at 10 = 150 W, Y1 at 3 = 50 W, 60 s each.
  ASSERT_EQ(p.slots.size(), 3u);
  EXPECT_EQ(p.configs[p.slots[0].config].label, "m / rtn-w4g128");
  EXPECT_EQ(p.slots[0].instances, 1);
  EXPECT_EQ(p.configs[p.slots[1].config].label, "m / fp16");
  EXPECT_EQ(p.slots[1].instances, 1);
  EXPECT_EQ(p.configs[p.slots[2].config].label, "m / rtn-w4g128");
  EXPECT_DOUBLE_EQ(p.slots[0].energy_j, 2400);
  EXPECT_DOUBLE_EQ(p.slots[1].energy_j, 9000);
  EXPECT_DOUBLE_EQ(p.slots[2].energy_j, 3000);
  EXPECT_DOUBLE_EQ(p.total_energy_j, 14400);
  EXPECT_EQ(p.switches, 2);
  // Best static: X1 throughout (110 + 150 + 115 W) x 60 s = 22500 J, beating Y3 (24000 J).
  ASSERT_TRUE(p.best_static.feasible);
  EXPECT_EQ(p.configs[p.best_static.config].label, "m / fp16");
  EXPECT_EQ(p.best_static.instances, 1);
  EXPECT_DOUBLE_EQ(p.best_static.energy_j, 22500);
  EXPECT_DOUBLE_EQ(p.saving_vs_static, 1 - 14400.0 / 22500);
  // Y alone, autoscaled: Y1, Y3 (3 x 53.33 W), Y1 = 2400 + 9600 + 3000.
  EXPECT_EQ(p.configs[p.best_single_config_autoscaled.config].label, "m / rtn-w4g128");
  EXPECT_NEAR(p.best_single_config_autoscaled.energy_j, 15000, 1e-9);
  EXPECT_TRUE(p.unserved_slots.empty());
}

TEST(PlanSchedule, SwitchCostMakesStayingOnOneConfigurationCheaper) {
  auto s = schedule_study(qmeter::testing::test_output_dir("plan_schedule_switch"));
  plan::ScheduleOptions o;
  o.slo = "chat";
  o.switch_cost_s = 30;
  const auto p = plan::plan_schedule(s, trace({2, 10, 3}), o);
  // Y1 -> X1 -> Y1 would cost 14400 + 30 x 150 + 30 x 50 = 20400 J; Y1 -> Y3 -> Y1 costs
  // 15000 + 2 started instances x 30 s x 53.33 W = 18200 J, the optimum over all 4^3 sequences
  // of (X1, Y1, Y2, Y3) (enumerated outside the project when the test was written).
  EXPECT_NEAR(p.total_energy_j, 18200, 1e-9);
  EXPECT_EQ(p.configs[p.slots[1].config].label, "m / rtn-w4g128");
  EXPECT_EQ(p.slots[1].instances, 3);
  EXPECT_NEAR(p.slots[1].switch_j, 3200, 1e-9);
  EXPECT_EQ(p.slots[2].instances, 1);
  EXPECT_DOUBLE_EQ(p.slots[2].switch_j, 0);
}

TEST(PlanSchedule, PlannerOptimumEqualsBruteForceOverTheSameCostModel) {
  auto s = schedule_study(qmeter::testing::test_output_dir("plan_schedule_brute"));
  // Power per instance at rate r, from the study's measured points (interpolated, clamped below).
  auto px = [](double r) { return 100 + 5 * std::max(r, 2.0); };
  auto py = [](double r) { return 20 + 10 * std::max(r, 2.0); };
  const std::vector<double> rates = {1, 7, 12, 3.5};
  for (double switch_s : {0.0, 10.0, 120.0}) {
    plan::ScheduleOptions o;
    o.slo = "chat";
    o.switch_cost_s = switch_s;
    o.max_instances = 3;
    const auto p = plan::plan_schedule(s, trace(rates), o);
    // Enumerate every (config, n) per slot: config 0 = X (capacity 10), 1 = Y (capacity 4).
    struct St { int c, n; };
    std::vector<St> all;
    for (int c = 0; c < 2; ++c)
      for (int n = 1; n <= 3; ++n) all.push_back({c, n});
    double best = INFINITY;
    std::vector<int> seq(rates.size(), 0);
    for (;;) {
      double total = 0;
      for (std::size_t t = 0; t < rates.size() && total < INFINITY; ++t) {
        const St& st = all[seq[t]];
        const double cap = st.c == 0 ? 10 : 4;
        if (rates[t] > st.n * cap) {
          total = INFINITY;
          break;
        }
        const double w = st.c == 0 ? px(rates[t] / st.n) : py(rates[t] / st.n);
        total += st.n * w * 60;
        if (t > 0) {
          const St& prev = all[seq[t - 1]];
          const int started = prev.c != st.c ? st.n : std::max(0, st.n - prev.n);
          total += started * switch_s * w;
        }
      }
      best = std::min(best, total);
      std::size_t t = 0;
      while (t < seq.size() && ++seq[t] == static_cast<int>(all.size())) seq[t++] = 0;
      if (t == seq.size()) break;
    }
    EXPECT_NEAR(p.total_energy_j, best, 1e-6) << "switch cost " << switch_s;
  }
}

TEST(PlanSchedule, SlotsNothingCanServeAreReported) {
  auto s = schedule_study(qmeter::testing::test_output_dir("plan_schedule_unserved"));
  plan::ScheduleOptions o;
  o.slo = "chat";
  o.switch_cost_s = 0;
  o.max_instances = 2;  // X serves 20 req/s at most, Y 8
  const auto p = plan::plan_schedule(s, trace({2, 25, 3}), o);
  ASSERT_EQ(p.unserved_slots, std::vector<int>{1});
  EXPECT_FALSE(p.slots[1].served);
  EXPECT_DOUBLE_EQ(p.total_energy_j, 2400 + 3000);
  const auto table = plan::schedule_table(p);
  EXPECT_NE(table.find("UNSERVED"), std::string::npos) << table;
  EXPECT_NE(table.find("solved exactly"), std::string::npos) << table;
  auto j = nlohmann::json::parse(plan::schedule_json(p));
  EXPECT_EQ(j["unserved_slots"], nlohmann::json::array({1}));
  EXPECT_EQ(j["solver"], "exact dynamic programming");
  EXPECT_DOUBLE_EQ(j["total_energy_j"].get<double>(), 5400);
}

TEST(PlanSchedule, SaysWhatTheDatabaseLacks) {
  auto s = schedule_study(qmeter::testing::test_output_dir("plan_schedule_errors"));
  plan::ScheduleOptions o;
  o.slo = "batch";
  EXPECT_THROW(plan::plan_schedule(s, trace({1}), o), UsageError);
  o.slo = "chat";
  o.quality_floors = {plan::parse_quality_floor("perplexity<=6")};
  try {
    plan::plan_schedule(s, trace({1}), o);
    FAIL() << "no error for a floor without quality results";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("no configuration has a quality result named 'perplexity'"), std::string::npos);
  }
  o.quality_floors.clear();
  o.attainment = 1.0;  // nothing meets 100% at any rate except X and Y at their lower points
  EXPECT_NO_THROW(plan::plan_schedule(s, trace({1}), o));
}

TEST(LoadTrace, AzureArrivalsAreCountedPerSlotAcrossADateChange) {
  auto dir = qmeter::testing::test_output_dir("plan_trace");
  std::ofstream(dir + "/a.csv") << "TIMESTAMP,ContextTokens,GeneratedTokens\n"
                                   "2023-12-31 23:59:00.5,10,5\n"
                                   "2023-12-31 23:59:10,10,5\n"
                                   "2023-12-31 23:59:59.9,10,5\n"
                                   "2024-01-01 00:00:05,10,5\n"
                                   "2024-01-01 00:01:59,10,5\n";
  const auto t = plan::bin_azure_trace(dir + "/a.csv", 60, 1);
  // Offsets from the first: 0, 9.5, 59.4, 64.5, 178.5 s -> slots 0, 0, 0, 1, 2.
  ASSERT_EQ(t.rates.size(), 3u);
  EXPECT_DOUBLE_EQ(t.rates[0], 3.0 / 60);
  EXPECT_DOUBLE_EQ(t.rates[1], 1.0 / 60);
  EXPECT_DOUBLE_EQ(t.rates[2], 1.0 / 60);
  const auto scaled = plan::load_trace("azure:" + dir + "/a.csv", 120, 10);
  ASSERT_EQ(scaled.rates.size(), 2u);
  EXPECT_DOUBLE_EQ(scaled.rates[0], 4.0 / 120 * 10);

  std::ofstream(dir + "/bad.csv") << "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,1,1\nyesterday,1,1\n";
  try {
    plan::bin_azure_trace(dir + "/bad.csv", 60, 1);
    FAIL() << "no error for a bad timestamp";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.csv line 3: field 'TIMESTAMP'"), std::string::npos) << e.what();
  }
  std::ofstream(dir + "/r.csv") << "minute,rate\n0,1.5\n1,2\n\n# comment\n2,0\n";
  const auto r = plan::read_rates_csv(dir + "/r.csv", 60, 2);
  EXPECT_EQ(r.rates, (std::vector<double>{3, 4, 0}));
  std::ofstream(dir + "/r2.csv") << "1\n2\nx\n";
  try {
    plan::read_rates_csv(dir + "/r2.csv", 60, 1);
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("r2.csv:3"), std::string::npos) << e.what();
  }
  EXPECT_THROW(plan::load_trace("csv:" + dir + "/r.csv", 60, 1), UsageError);
  EXPECT_THROW(plan::load_trace("rates:" + dir + "/missing.csv", 60, 1), UsageError);
}

TEST(LoadTrace, RealAzureTraceCountsEveryRequest) {
  QMETER_REQUIRE_SHARED_DATA(path, "workloads/azure_llm_inference_conv_2023.csv");
  const auto t = plan::bin_azure_trace(path, 300, 1);
  double requests = 0;
  for (double r : t.rates) requests += r * 300;
  EXPECT_NEAR(requests, 19366, 1e-6);  // rows after the header
  EXPECT_EQ(t.rates.size(), 12u);      // 18:15:46 .. 19:14:08 is 58 min 22 s
}
