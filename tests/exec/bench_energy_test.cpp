// `qmeter bench serve --energy`: the energy figures join the JSON output, labelled by source.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "qmeter/core/clock.h"
#include "qmeter/core/paths.h"
#include "qmeter/core/process.h"
#include "test_support.h"

using namespace qmeter;

TEST(BenchServeEnergy, ModelledEnergyJoinsTheJsonOutput) {
  auto dir = qmeter::testing::test_output_dir("bench_energy");
  SpawnOptions mo;
  mo.argv = {qmeter::testing::qmeter_bin(), "mock-server", "--port", "0", "--ttft-ms", "5", "--itl-ms", "2", "--output-len", "16"};
  mo.log_path = dir + "/mock.log";
  auto mock = ChildProcess::spawn(mo);
  std::string url;
  const Nanos deadline = steady_now_ns() + s_to_ns(20);
  while (url.empty() && steady_now_ns() < deadline) {
    const std::string log = file_tail(mo.log_path, 4096);
    if (auto p = log.find("listening on "); p != std::string::npos) url = log.substr(p + 13, log.find('\n', p) - p - 13);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_FALSE(url.empty()) << file_tail(mo.log_path);
  SpawnOptions bo;
  bo.argv = {qmeter::testing::qmeter_bin(), "bench", "serve", "--base-url", url, "--model", "m", "--input-len", "8",
             "--output-len", "16", "--num-prompts", "30", "--request-rate", "50", "--energy", "model",
             "--idle-s", "0.3", "--power-interval-ms", "20", "--output-json", dir + "/out.json"};
  bo.log_path = dir + "/bench.log";
  auto bench = ChildProcess::spawn(bo);
  ASSERT_EQ(bench.wait(120), 0) << file_tail(bo.log_path);
  mock.stop(2);
  auto j = nlohmann::json::parse(read_file(dir + "/out.json"));
  EXPECT_EQ(j["completed"], 30);
  EXPECT_EQ(j["energy_source"], "modelled");
  ASSERT_TRUE(j.contains("energy_per_output_token_j"));
  const double jpt = j["energy_per_output_token_j"].get<double>();
  const double total = j["total_energy_j"].get<double>();
  EXPECT_GT(jpt, 0);
  // Attribution splits the window's energy over the requests; what it cannot place is reported as
  // unattributed, so the two together hold the window's energy. The window total is the counter
  // estimate with edge corrections and the attribution splits power-shaped intervals, so the two
  // estimators agree to within a fraction of a percent on a quiet machine, not bit for bit; under
  // a loaded CI machine a late 20 ms sample reshapes an interval and the gap reached 1.4%, so the
  // bound is 2.5% (a lost or doubled request would be 1/30 = 3.3%).
  const double attributed = jpt * 30 * 16;
  const double unattributed = j["unattributed_energy_j"].get<double>();
  EXPECT_GE(unattributed, 0);
  EXPECT_NEAR(attributed + unattributed, total, total * 0.025);
  EXPECT_LE(attributed, total * 1.025);
  EXPECT_GT(j["avg_power_w"].get<double>(), 0);
  // Over the steady-state window: its energy per output token of the requests completed in it
  // (29 of them after the first, 16 tokens each), and its mean power.
  ASSERT_TRUE(j.contains("steady_energy_per_output_token_j"));
  const double ss_window = j["steady_state"]["duration_s"].get<double>();
  const double ss_power = j["steady_avg_power_w"].get<double>();
  EXPECT_GT(ss_power, 0);
  EXPECT_NEAR(j["steady_energy_per_output_token_j"].get<double>(), ss_power * ss_window / (29 * 16),
              1e-6 * ss_power * ss_window);
}
