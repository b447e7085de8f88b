// `qmeter energy -- CMD`: exit status pass-through, the JSON report against a constant-power fake
// GPU, control refusals, and flag errors. Runs the real binary.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "qmeter/core/paths.h"
#include "telemetry_test_support.h"
#include "test_support.h"

namespace qmeter::telemetry {
namespace {

struct QmeterRun {
  int status = -1;
  std::string err;
};

// Runs `env qmeter args` in a shell (the test's shell, not qmeter's), stderr captured to a file.
QmeterRun run_qmeter(const std::string& dir, const std::string& env, const std::string& args) {
  std::string err = dir + "/stderr.txt";
  std::string cmd = env + " " + qmeter::testing::qmeter_bin() + " " + args + " 2>" + err + " >" + dir + "/stdout.txt";
  int raw = std::system(cmd.c_str());
  QmeterRun r;
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  r.err = qmeter::read_file(err);
  return r;
}

const std::string kFakeEnv = std::string("QMETER_NVML_LIBRARY=") + QMETER_FAKE_NVML_PATH;

TEST(EnergyVerb, PassesTheExitStatusThrough) {
  std::string dir = qmeter::testing::test_output_dir("energy_verb_status");
  QmeterRun r = run_qmeter(dir, "", "energy --energy model --power-interval-ms 20 -- /bin/sh -c 'exit 3'");
  EXPECT_EQ(r.status, 3) << r.err;
  EXPECT_NE(r.err.find("exited with status 3"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("modelled"), std::string::npos) << r.err;
  r = run_qmeter(dir, "", "energy --energy none -- /bin/true");
  EXPECT_EQ(r.status, 0) << r.err;
  r = run_qmeter(dir, "", "energy --energy none -- /bin/sh -c 'kill -TERM $$'");
  EXPECT_EQ(r.status, 128 + 15) << r.err;
}

TEST(EnergyVerb, ACommandThatCannotRunGives127AndSaysWhy) {
  std::string dir = qmeter::testing::test_output_dir("energy_verb_missing");
  QmeterRun r = run_qmeter(dir, "", "energy --energy none -- /nonexistent/program --flag");
  EXPECT_EQ(r.status, 127);
  EXPECT_NE(r.err.find("cannot start '/nonexistent/program': No such file or directory"), std::string::npos) << r.err;
}

TEST(EnergyVerb, ReportsCounterAndIntegratedEnergyOfAFakeGpuAsJson) {
  std::string dir = qmeter::testing::test_output_dir("energy_verb_json");
  testing::write_text(dir + "/trace.txt", "device all\n0 200\n");  // constant 200 W
  std::string env = kFakeEnv + " QMETER_FAKE_NVML_DEVICES=2 QMETER_FAKE_NVML_TRACE=" + dir + "/trace.txt";
  QmeterRun r = run_qmeter(dir, env,
                     "energy --energy nvml --power-interval-ms 10 --idle-seconds 0.2 --include-samples --output-json " +
                         dir + "/energy.json -- /bin/sleep 0.4");
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(qmeter::read_file(dir + "/energy.json"));
  double duration = j["duration_s"];
  EXPECT_GE(duration, 0.4);
  EXPECT_EQ(j["exit_status"], 0);
  EXPECT_EQ(j["command"][0], "/bin/sleep");
  ASSERT_EQ(j["devices"].size(), 2u);
  for (const auto& d : j["devices"]) {
    EXPECT_EQ(d["source"], "nvml");
    EXPECT_EQ(d["energy_used"], "counter");
    EXPECT_NEAR(d["counter_energy_j"].get<double>(), 200 * duration, 0.01 * 200 * duration);
    EXPECT_NEAR(d["integrated_energy_j"].get<double>(), 200 * duration, 0.01 * 200 * duration);
    EXPECT_NEAR(d["avg_power_w"].get<double>(), 200, 2);
    EXPECT_DOUBLE_EQ(d["peak_power_w"].get<double>(), 200);
    EXPECT_NEAR(d["idle_power_w"].get<double>(), 200, 2);  // the fake draws 200 W when "idle" too
    EXPECT_NEAR(d["above_idle_energy_j"].get<double>(), 0, 0.01 * 200 * duration);
  }
  ASSERT_EQ(j["sources"].size(), 1u);
  EXPECT_NEAR(j["sources"][0]["peak_power_w"].get<double>(), 400, 1e-9);  // two GPUs in one tick
  EXPECT_NEAR(j["total_energy_j"].get<double>(), 400 * duration, 0.01 * 400 * duration);
  // Every sample is kept: 0.2 s idle + 0.4 s at 10 ms on two devices is 120 nominal; a loaded
  // machine ticks less often.
  EXPECT_GE(j["samples"]["t_s"].size(), 2u * 15u);
  EXPECT_EQ(j["samples"]["t_s"].size(), j["samples"]["sm_clock_mhz"].size());
  EXPECT_NE(r.err.find("total energy:"), std::string::npos) << r.err;
}

TEST(EnergyVerb, RefusedGpuControlsFailBeforeTheCommandRuns) {
  std::string dir = qmeter::testing::test_output_dir("energy_verb_controls");
  // Refused (as `qmeter run` fails a run whose hardware setting is refused): energy measured at
  // another setting than the one asked for would be a wrong figure, so the command never runs.
  std::string env = kFakeEnv + " QMETER_FAKE_NVML_NO_PERMISSION=1";
  QmeterRun r = run_qmeter(dir, env,
                     "energy --energy nvml --gpu-power-limit 250 --gpu-lock-clocks 900,1200 -- /bin/sh -c 'touch " +
                         dir + "/ran'");
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("--gpu-power-limit 250 --gpu-lock-clocks 900,1200: nvml: setting the power limit to 250 W on GPU 0 was refused"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir + "/ran")) << "the command ran at a setting it did not ask for";
  // Out of the card's range (the fake allows 100..700 W): refused too, and nothing was changed.
  // (A refusal after part was applied restores that part: exec's HardwareSettings tests.)
  r = run_qmeter(dir, kFakeEnv + " QMETER_FAKE_NVML_CONTROL_LOG=" + dir + "/nvml.log",
                 "energy --energy nvml --gpu-power-limit 800 -- /bin/sh -c 'touch " + dir + "/ran'");
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("--gpu-power-limit 800: nvml: setting the power limit to 800 W on GPU 0 failed: Invalid Argument"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir + "/ran"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/nvml.log")) << "nothing was changed";
  // Allowed: applied, then undone after the command.
  r = run_qmeter(dir, kFakeEnv, "energy --energy nvml --gpu-power-limit 250 --gpu-lock-clocks 900,1200 -- /bin/true");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("GPU 0 power limit set to 250 W"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("restoring: nvml: GPU 0 power limit set to 400 W"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("GPU 0 clocks unlocked"), std::string::npos) << r.err;
}

TEST(EnergyVerb, BadFlagsExitWith2) {
  std::string dir = qmeter::testing::test_output_dir("energy_verb_flags");
  EXPECT_EQ(run_qmeter(dir, "", "energy --energy gpu -- /bin/true").status, 2);
  EXPECT_EQ(run_qmeter(dir, "", "energy --energy none").status, 2);
  QmeterRun r = run_qmeter(dir, "", "energy --energy model --power-interval-ms 0 -- /bin/true");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--power-interval-ms must be at least 1"), std::string::npos) << r.err;
  r = run_qmeter(dir, kFakeEnv, "energy --energy nvml --gpu-lock-clocks 1200 -- /bin/true");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--gpu-lock-clocks: expected MIN,MAX"), std::string::npos) << r.err;
  r = run_qmeter(dir, "QMETER_NVML_LIBRARY=/nonexistent/libnvidia-ml.so.1", "energy --energy nvml -- /bin/true");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("cannot load '/nonexistent/libnvidia-ml.so.1'"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace qmeter::telemetry
