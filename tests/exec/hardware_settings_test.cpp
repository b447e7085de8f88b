// exec::AppliedHardwareSetting in-process against the fake libnvidia-ml: what it sets, what it
// restores, and that a refusal fails with everything applied before it restored (the behaviour
// `qmeter run` and `qmeter energy` share). The fake logs every successful control call.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "qmeter/core/error.h"
#include "qmeter/core/paths.h"
#include "qmeter/exec/hardware_settings.h"
#include "test_support.h"

using namespace qmeter;

namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// The fake with two GPUs (400 W limit each), logging to dir/nvml.log, for the test's scope.
struct FakeNvml {
  explicit FakeNvml(const std::string& dir, bool refuse = false) : log(dir + "/nvml.log") {
    setenv("QMETER_NVML_LIBRARY", QMETER_FAKE_NVML_PATH, 1);
    setenv("QMETER_FAKE_NVML_DEVICES", "2", 1);
    setenv("QMETER_FAKE_NVML_CONTROL_LOG", log.c_str(), 1);
    if (refuse) setenv("QMETER_FAKE_NVML_NO_PERMISSION", "1", 1);
  }
  ~FakeNvml() {
    for (const char* v : {"QMETER_NVML_LIBRARY", "QMETER_FAKE_NVML_DEVICES", "QMETER_FAKE_NVML_CONTROL_LOG",
                          "QMETER_FAKE_NVML_NO_PERMISSION"})
      unsetenv(v);
  }
  std::vector<std::string> calls() const { return lines_of(read_file(log)); }
  std::string log;
};

std::string error_of(const exec::GpuSettings& s) {
  try {
    exec::AppliedHardwareSetting applied(s);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(HardwareSettings, AppliesToEveryGpuAndRestoresOnce) {
  const auto dir = qmeter::testing::test_output_dir("hardware_settings_apply");
  FakeNvml fake(dir);
  {
    exec::AppliedHardwareSetting applied(exec::GpuSettings{250, 900, 1200, "test"});
    EXPECT_EQ(applied.notes(), (std::vector<std::string>{"nvml: GPU 0 power limit set to 250 W (was 400 W)",
                                                         "nvml: GPU 1 power limit set to 250 W (was 400 W)",
                                                         "nvml: GPU 0 clocks locked to 900..1200 MHz",
                                                         "nvml: GPU 1 clocks locked to 900..1200 MHz"}));
    EXPECT_EQ(applied.restore(), (std::vector<std::string>{"restoring: nvml: GPU 0 power limit set to 400 W",
                                                           "restoring: nvml: GPU 1 power limit set to 400 W",
                                                           "nvml: GPU 0 clocks unlocked", "nvml: GPU 1 clocks unlocked"}));
    EXPECT_TRUE(applied.restore().empty()) << "a second restore has nothing left to undo";
  }  // nor has the destructor
  EXPECT_EQ(fake.calls(), (std::vector<std::string>{"power_limit 0 250000", "power_limit 1 250000",
                                                    "locked_clocks 0 900 1200", "locked_clocks 1 900 1200",
                                                    "power_limit 0 400000", "power_limit 1 400000", "reset_clocks 0",
                                                    "reset_clocks 1"}));
}

TEST(HardwareSettings, ASpecSettingLocksOneClockAndIsRestoredByTheDestructor) {
  const auto dir = qmeter::testing::test_output_dir("hardware_settings_spec");
  FakeNvml fake(dir);
  spec::HardwareSetting h;
  h.locked_clock_mhz = 1410;
  const auto g = exec::gpu_settings(h);
  EXPECT_EQ(g.min_clock_mhz, 1410u);
  EXPECT_EQ(g.max_clock_mhz, 1410u);
  EXPECT_FALSE(g.power_limit_w > 0);
  { exec::AppliedHardwareSetting applied(h); }
  EXPECT_EQ(fake.calls(), (std::vector<std::string>{"locked_clocks 0 1410 1410", "locked_clocks 1 1410 1410",
                                                    "reset_clocks 0", "reset_clocks 1"}));
}

TEST(HardwareSettings, ARefusalFailsAndRestoresWhatWasAlreadyApplied) {
  const auto dir = qmeter::testing::test_output_dir("hardware_settings_partial");
  FakeNvml fake(dir);
  // The limits are accepted on both GPUs, then the clock range is refused (MIN > MAX: the NVML
  // wrapper throws before calling the driver): the limits must be back at 400 W and the error
  // must name the setting.
  const std::string e = error_of(exec::GpuSettings{250, 1300, 1200, "--gpu-power-limit 250 --gpu-lock-clocks 1300,1200"});
  EXPECT_EQ(e, "--gpu-power-limit 250 --gpu-lock-clocks 1300,1200: nvml: locked clock range 1300..1200 MHz has min above max");
  EXPECT_EQ(fake.calls(), (std::vector<std::string>{"power_limit 0 250000", "power_limit 1 250000",
                                                    "power_limit 0 400000", "power_limit 1 400000"}));
}

TEST(HardwareSettings, NoPermissionFailsWithNvmlsReasonAndChangesNothing) {
  const auto dir = qmeter::testing::test_output_dir("hardware_settings_refused");
  FakeNvml fake(dir, true);
  const std::string e = error_of(exec::GpuSettings{250, 0, 0, "hardware setting pl250W"});
  EXPECT_NE(e.find("hardware setting pl250W: nvml: setting the power limit to 250 W on GPU 0 was refused"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("needs root"), std::string::npos) << e;
  EXPECT_FALSE(std::filesystem::exists(fake.log));
}

TEST(HardwareSettings, AnEmptySettingOpensNothingAndAMissingNvmlIsNamed) {
  setenv("QMETER_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1", 1);
  { exec::AppliedHardwareSetting nothing(exec::GpuSettings{}); }  // no NVML needed: nothing to set
  const std::string e = error_of(exec::GpuSettings{250, 0, 0, "--gpu-power-limit 250"});
  unsetenv("QMETER_NVML_LIBRARY");
  EXPECT_NE(e.find("--gpu-power-limit 250 needs NVML: "), std::string::npos) << e;
  EXPECT_NE(e.find("/nonexistent/libnvidia-ml.so.1"), std::string::npos) << e;
}
