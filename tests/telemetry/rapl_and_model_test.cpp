// RAPL through a powercap folder the test builds, and the CPU model through a /proc/stat the test
// writes: sample times are given explicitly, so the expected figures are exact.
#include <fmt/core.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "qmeter/telemetry/sampler.h"
#include "telemetry_test_support.h"
#include "test_support.h"

namespace qmeter::telemetry {
namespace {

namespace fs = std::filesystem;
using testing::write_text;

void make_zone(const fs::path& root, const std::string& folder, const std::string& name, const std::string& energy,
               const std::string& max_range = "262143328850") {
  fs::create_directories(root / folder);
  write_text((root / folder / "name").string(), name + "\n");
  if (!energy.empty()) write_text((root / folder / "energy_uj").string(), energy + "\n");
  if (!max_range.empty()) write_text((root / folder / "max_energy_range_uj").string(), max_range + "\n");
}

constexpr Nanos kSec = 1'000'000'000;

TEST(Rapl, ReadsPackageAndDramAndHandlesWraparound) {
  fs::path root = qmeter::testing::test_output_dir("rapl_wrap");
  // Package counter near its wrap point (range 1,000,000 uJ); DRAM far from it. A core zone
  // (part of the package) must be ignored.
  make_zone(root, "intel-rapl:0", "package-0", "990000", "1000000");
  make_zone(root, "intel-rapl:0:0", "core", "5");
  make_zone(root, "intel-rapl:0:1", "dram", "1000");
  SamplerConfig c;
  c.rapl_root = root.string();
  auto s = make_rapl_sampler(c);
  ASSERT_EQ(s->devices().size(), 2u);
  EXPECT_EQ(s->devices()[0].name, "package-0");
  EXPECT_EQ(s->devices()[1].name, "dram");
  EXPECT_TRUE(s->devices()[0].has_energy_counter);

  std::vector<PowerSample> out;
  Nanos t = steady_now_ns() + kSec;
  write_text((root / "intel-rapl:0/energy_uj").string(), "995000\n");   // +5,000 uJ
  write_text((root / "intel-rapl:0:1/energy_uj").string(), "3000\n");   // +2,000 uJ
  s->sample(t, out);
  write_text((root / "intel-rapl:0/energy_uj").string(), "4000\n");     // wrapped: +5,000 + 4,000 uJ
  write_text((root / "intel-rapl:0:1/energy_uj").string(), "5000\n");   // +2,000 uJ
  s->sample(t + kSec / 2, out);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_NEAR(out[0].energy_j, 0.005, 1e-12);
  EXPECT_NEAR(out[1].energy_j, 0.002, 1e-12);
  EXPECT_NEAR(out[2].energy_j, 0.014, 1e-12);  // 5,000 + 9,000 uJ since open, not a negative jump
  EXPECT_NEAR(out[3].energy_j, 0.004, 1e-12);
  EXPECT_NEAR(out[2].power_w, 0.009 / 0.5, 1e-9);  // mean power over the last interval
  EXPECT_EQ(out[2].device, 0);
  EXPECT_EQ(out[3].device, 1);
}

TEST(Rapl, MissingZoneFileIsSkippedWithAMessage) {
  fs::path root = qmeter::testing::test_output_dir("rapl_missing");
  make_zone(root, "intel-rapl:0", "package-0", "100");
  make_zone(root, "intel-rapl:0:1", "dram", "");  // no energy_uj
  SamplerConfig c;
  c.rapl_root = root.string();
  auto s = make_rapl_sampler(c);
  ASSERT_EQ(s->devices().size(), 1u);
  auto notes = s->notes();
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("dram"), std::string::npos) << notes[0];
  EXPECT_NE(notes[0].find("energy_uj unreadable"), std::string::npos) << notes[0];
}

TEST(Rapl, NoReadableZoneFallsBackToTheModelWithAMessage) {
  fs::path root = qmeter::testing::test_output_dir("rapl_unreadable");
  make_zone(root, "intel-rapl:0", "package-0", "not-a-number");
  SamplerConfig c;
  c.rapl_root = root.string();
  EXPECT_THROW(make_rapl_sampler(c), SamplerUnavailable);
  std::vector<std::string> notes;
  auto samplers = open_samplers("rapl", c, notes);
  ASSERT_EQ(samplers.size(), 1u);
  EXPECT_EQ(samplers[0]->source(), "model");
  EXPECT_EQ(samplers[0]->devices()[0].power_origin, EnergyOrigin::kModelled);
  ASSERT_GE(notes.size(), 2u);
  EXPECT_NE(notes[0].find("falling back to the CPU power model"), std::string::npos) << notes[0];
  EXPECT_NE(notes[0].find("package-0"), std::string::npos) << notes[0];
  EXPECT_NE(notes[0].find("not a number"), std::string::npos) << notes[0];
}

TEST(Rapl, MissingPowercapFolderFallsBack) {
  SamplerConfig c;
  c.rapl_root = "/nonexistent-powercap";
  std::vector<std::string> notes;
  auto samplers = open_samplers("rapl", c, notes);
  ASSERT_EQ(samplers.size(), 1u);
  EXPECT_EQ(samplers[0]->source(), "model");
  EXPECT_NE(notes[0].find("/nonexistent-powercap"), std::string::npos) << notes[0];
}

std::string proc_stat(unsigned long long user, unsigned long long system, unsigned long long idle,
                      unsigned long long iowait, int cores) {
  std::string s = fmt::format("cpu  {} 0 {} {} {} 0 0 0 0 0\n", user, system, idle, iowait);
  for (int i = 0; i < cores; ++i) s += fmt::format("cpu{} 0 0 0 0 0 0 0 0 0 0\n", i);
  return s + "intr 0\nctxt 0\n";
}

TEST(CpuModel, PowerFollowsTheConfiguredWattsForAKnownLoad) {
  fs::path dir = qmeter::testing::test_output_dir("cpu_model");
  std::string stat = (dir / "stat").string();
  write_text(stat, proc_stat(1000, 500, 8000, 500, 4));
  SamplerConfig c;
  c.proc_stat = stat;
  c.idle_watts_per_core = 2.0;
  c.busy_watts_per_core = 10.0;
  auto s = make_cpu_model_sampler(c);
  ASSERT_EQ(s->devices().size(), 1u);
  EXPECT_EQ(s->devices()[0].power_origin, EnergyOrigin::kModelled);
  EXPECT_NE(s->devices()[0].name.find("modelled"), std::string::npos);

  std::vector<PowerSample> out;
  Nanos t = steady_now_ns();
  s->sample(t, out);  // nothing changed: utilization unknown -> idle power
  // Next 2 s: 400 busy jiffies (300 user + 100 system) of 800: 50 % of 4 cores busy.
  write_text(stat, proc_stat(1300, 600, 8350, 550, 4));
  s->sample(t + 2 * kSec, out);
  // Next 1 s: all 400 jiffies busy: 4 cores at 10 W.
  write_text(stat, proc_stat(1700, 600, 8350, 550, 4));
  s->sample(t + 3 * kSec, out);
  // Next 1 s: all idle: 4 cores at 2 W.
  write_text(stat, proc_stat(1700, 600, 8750, 550, 4));
  s->sample(t + 4 * kSec, out);
  ASSERT_EQ(out.size(), 4u);
  const double p_half = 4 * 2.0 + 0.5 * 4 * (10.0 - 2.0);  // 24 W
  EXPECT_NEAR(out[1].power_w, p_half, 1e-9);
  EXPECT_NEAR(out[2].power_w, 40.0, 1e-9);
  EXPECT_NEAR(out[3].power_w, 8.0, 1e-9);
  // The modelled energy integrates exactly: 24 W * 2 s + 40 W * 1 s + 8 W * 1 s after the first sample.
  EXPECT_NEAR(out[3].energy_j - out[0].energy_j, 48 + 40 + 8, 1e-9);
}

TEST(CpuModel, BadInputsAreClearErrors) {
  fs::path dir = qmeter::testing::test_output_dir("cpu_model_bad");
  SamplerConfig c;
  c.proc_stat = (dir / "absent").string();
  EXPECT_THROW(make_cpu_model_sampler(c), SamplerUnavailable);
  write_text((dir / "stat").string(), "cpu 1 2\n");
  c.proc_stat = (dir / "stat").string();
  try {
    make_cpu_model_sampler(c);
    FAIL();
  } catch (const SamplerUnavailable& e) {
    EXPECT_NE(std::string(e.what()).find(":1: the cpu line has 2 fields"), std::string::npos) << e.what();
  }
  write_text((dir / "stat").string(), proc_stat(1, 1, 1, 1, 1));
  c.idle_watts_per_core = 5;
  c.busy_watts_per_core = 2;
  EXPECT_THROW(make_cpu_model_sampler(c), UsageError);
}

TEST(Registry, ListsTheThreeSourcesAndModes) {
  auto reg = sampler_registry();
  ASSERT_EQ(reg.size(), 3u);
  EXPECT_EQ(reg[0].name, "nvml");
  EXPECT_EQ(reg[1].name, "rapl");
  EXPECT_EQ(reg[2].name, "model");
  std::vector<std::string> notes;
  EXPECT_TRUE(open_samplers("none", {}, notes).empty());
  auto model = open_samplers("model", {}, notes);  // the real /proc/stat
  ASSERT_EQ(model.size(), 1u);
  EXPECT_EQ(model[0]->source(), "model");
}

}  // namespace
}  // namespace qmeter::telemetry
