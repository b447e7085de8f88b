// NVML through the fake libnvidia-ml, loaded by the real dlopen path. Ground truth: the scripted
// power trace, integrated here independently by a fine Riemann sum over the same time origin.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <thread>

#include "qmeter/telemetry/nvml.h"
#include "qmeter/telemetry/session.h"
#include "telemetry_test_support.h"
#include "test_support.h"

namespace qmeter::telemetry {
namespace {

using testing::ScopedEnv;

// Power as a function of seconds since the trace origin; the test's own description of the trace.
using PowerFn = std::function<double(double)>;

PowerFn square(double high, double low, double period, double duty) {
  return [=](double t) {
    double phase = std::fmod(t, period);
    return phase < duty * period ? high : low;
  };
}

// Energy of `p` over [a, b] seconds by a midpoint sum at 10 us steps (error ~ dP * 10 us per edge).
double reference_energy(const PowerFn& p, double a, double b) {
  const double step = 1e-5;
  double e = 0;
  for (double t = a; t < b; t += step) e += p(std::min(t + step / 2, b)) * std::min(step, b - t);
  return e;
}

SamplerConfig fake_config() {
  SamplerConfig c;
  c.nvml_library = QMETER_FAKE_NVML_PATH;
  return c;
}

// Runs a session for `run_s` seconds and checks each device's window energy, from the counter and
// from integration, against the reference; the window is the run minus 0.1 s at each end.
// counter_interval_ns: how often the sampler reads the (slow) energy counter; 0 = every tick.
void check_square_waves(int devices, const std::string& trace, const std::vector<PowerFn>& truth,
                        Nanos counter_interval_ns = 1'000'000'000) {
  std::string dir = qmeter::testing::test_output_dir("nvml_square_" + std::to_string(devices));
  testing::write_text(dir + "/trace.txt", trace);
  ScopedEnv n("QMETER_FAKE_NVML_DEVICES", std::to_string(devices));
  ScopedEnv t("QMETER_FAKE_NVML_TRACE", dir + "/trace.txt");
  std::vector<std::unique_ptr<Sampler>> samplers;
  SamplerConfig config = fake_config();
  config.nvml_energy_counter_interval_ns = counter_interval_ns;
  samplers.push_back(make_nvml_sampler(config));
  ASSERT_EQ(samplers[0]->devices().size(), static_cast<std::size_t>(devices));
  Nanos origin = testing::fake_nvml_origin_ns();
  ASSERT_GT(origin, 0);
  TelemetrySession session(std::move(samplers), {.interval_ns = ms_to_ns(5)});
  session.start();
  Nanos start = steady_now_ns();
  std::this_thread::sleep_for(std::chrono::milliseconds(1300));
  session.stop();
  Nanos t0 = start + ms_to_ns(100), t1 = start + ms_to_ns(1200);
  EnergyReport r = session.report(t0, t1);
  ASSERT_EQ(r.devices.size(), static_cast<std::size_t>(devices));
  double a = ns_to_s(t0 - origin), b = ns_to_s(t1 - origin);
  double total = 0;
  for (int d = 0; d < devices; ++d) {
    const DeviceEnergy& e = r.devices[d];
    double expected = reference_energy(truth[d], a, b);
    total += expected;
    SCOPED_TRACE("device " + std::to_string(d) + " expected " + std::to_string(expected) + " J");
    EXPECT_EQ(e.device.name, "Fake NVIDIA GPU " + std::to_string(d));
    EXPECT_EQ(e.device.power_kind, "instant");
    EXPECT_TRUE(e.device.has_energy_counter);
    EXPECT_EQ(e.origin, EnergyOrigin::kCounter);
    EXPECT_NEAR(e.counter_j, expected, 0.01 * expected);
    EXPECT_NEAR(e.integrated_j, expected, 0.01 * expected);
    EXPECT_DOUBLE_EQ(e.energy_j, e.counter_j);
    EXPECT_NEAR(e.avg_power_w, expected / (b - a), 0.01 * expected / (b - a));
    EXPECT_GT(e.samples, 20u);  // 1.1 s at 5 ms is 220 nominal; a loaded machine ticks less often
  }
  // The counter is read on the first and last tick and every counter_interval_ns in between.
  std::size_t counter_reads = 0, power_reads = 0;
  for (const auto& s : session.samples()) {
    if (s.device != 0) continue;
    counter_reads += measured(s.energy_j);
    power_reads += measured(s.power_w);
  }
  if (counter_interval_ns == 0) {
    EXPECT_EQ(counter_reads, power_reads);
  } else {
    EXPECT_GE(counter_reads, 2u);
    EXPECT_LE(counter_reads, 2u + static_cast<std::size_t>(1.3e9 / counter_interval_ns));
  }
  ASSERT_EQ(r.sources.size(), 1u);
  EXPECT_NEAR(r.total_j, total, 0.01 * total);
  EXPECT_EQ(r.sources[0].origin, EnergyOrigin::kCounter);
}

TEST(NvmlFake, SquareWaveEnergyFromCounterAndIntegrationOnOneDevice) {
  check_square_waves(1, "square 300 200 0.5 0.5\n", {square(300, 200, 0.5, 0.5)});
}

TEST(NvmlFake, SquareWaveEnergyWithTheCounterReadEveryTick) {
  check_square_waves(1, "square 300 200 0.5 0.5\n", {square(300, 200, 0.5, 0.5)}, 0);
}

TEST(NvmlFake, SquareWaveEnergyOnFourDevicesWithDifferentTraces) {
  std::string trace =
      "# four GPUs, each its own wave\n"
      "device 0\nsquare 300 200 0.5 0.5\n"
      "device 1\nsquare 250 150 0.4 0.25\n"
      "device 2,3\nsquare 400 350 0.3\n"
      "device 3\nsquare 130 100 0.4 0.75\n";
  check_square_waves(4, trace,
                     {square(300, 200, 0.5, 0.5), square(250, 150, 0.4, 0.25), square(400, 350, 0.3, 0.5),
                      square(130, 100, 0.4, 0.75)});
}

TEST(NvmlFake, DescribesDevicesAndReadsClocksMemoryAndPeak) {
  ScopedEnv n("QMETER_FAKE_NVML_DEVICES", "2");
  NvmlSampler s(fake_config());
  ASSERT_EQ(s.devices().size(), 2u);
  EXPECT_EQ(s.devices()[1].uuid, "GPU-fa4e0000-0000-0000-0000-000000000001");
  EXPECT_EQ(s.devices()[1].pci_bus_id, "00000000:02:00.0");
  EXPECT_DOUBLE_EQ(s.devices()[0].power_limit_w, 400.0);
  std::vector<PowerSample> out;
  s.sample(steady_now_ns(), out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_DOUBLE_EQ(out[0].power_w, 50.0);  // the fake's default trace
  EXPECT_DOUBLE_EQ(out[0].sm_clock_mhz, 1410);
  EXPECT_DOUBLE_EQ(out[0].mem_clock_mhz, 1593);
  EXPECT_DOUBLE_EQ(out[1].mem_used_bytes, static_cast<double>((1ULL << 30) + (1ULL << 20)));
  EXPECT_DOUBLE_EQ(out[0].gpu_util_pct, 12);  // 50 W of a 400 W limit
  EXPECT_DOUBLE_EQ(out[0].temperature_c, 35);
  EXPECT_GE(out[0].energy_j, 0.0);
  EXPECT_LT(out[0].energy_j, 1.0);  // energy since the sampler opened, not the driver's total
}

TEST(NvmlFake, WithoutTheInstantFieldUsesTheOneSecondAverageAndSaysSo) {
  std::string dir = qmeter::testing::test_output_dir("nvml_average");
  testing::write_text(dir + "/trace.txt", "square 300 200 0.5 0.5\n");
  ScopedEnv t("QMETER_FAKE_NVML_TRACE", dir + "/trace.txt");
  ScopedEnv i("QMETER_FAKE_NVML_NO_INSTANT", "1");
  NvmlSampler s(fake_config());
  EXPECT_EQ(s.devices()[0].power_kind, "average_1s");
  bool noted = false;
  for (const auto& n : s.notes()) noted |= n.find("1 s moving average") != std::string::npos;
  EXPECT_TRUE(noted);
  // A 1 s moving average of a 0.5 s-period 300/200 W square wave is 250 W once a second has passed,
  // whatever the phase; the instantaneous value would be 300 or 200.
  std::this_thread::sleep_for(std::chrono::milliseconds(1050));
  for (int k = 0; k < 5; ++k) {
    std::vector<PowerSample> out;
    s.sample(steady_now_ns(), out);
    EXPECT_NEAR(out[0].power_w, 250.0, 0.002);
    std::this_thread::sleep_for(std::chrono::milliseconds(37));
  }
}

TEST(NvmlFake, WithoutAnEnergyCounterIntegratesSampledPower) {
  std::string dir = qmeter::testing::test_output_dir("nvml_no_counter");
  testing::write_text(dir + "/trace.txt", "0 100\n0.3 200\n0.6 150\n");
  ScopedEnv t("QMETER_FAKE_NVML_TRACE", dir + "/trace.txt");
  ScopedEnv e("QMETER_FAKE_NVML_NO_ENERGY", "1");
  std::vector<std::unique_ptr<Sampler>> samplers;
  samplers.push_back(make_nvml_sampler(fake_config()));
  EXPECT_FALSE(samplers[0]->devices()[0].has_energy_counter);
  Nanos origin = testing::fake_nvml_origin_ns();
  TelemetrySession session(std::move(samplers), {.interval_ns = ms_to_ns(5)});
  session.start();
  std::this_thread::sleep_for(std::chrono::milliseconds(900));
  session.stop();
  Nanos t0 = origin + ms_to_ns(50), t1 = origin + ms_to_ns(850);
  EnergyReport r = session.report(t0, t1);
  // 100 W * 0.25 s + 200 W * 0.3 s + 150 W * 0.25 s
  const double expected = 25 + 60 + 37.5;
  EXPECT_TRUE(std::isnan(r.devices[0].counter_j));
  EXPECT_EQ(r.devices[0].origin, EnergyOrigin::kSampled);
  EXPECT_NEAR(r.devices[0].integrated_j, expected, 0.01 * expected);
  EXPECT_NEAR(r.devices[0].energy_j, expected, 0.01 * expected);
  EXPECT_DOUBLE_EQ(r.devices[0].peak_power_w, 200.0);
}

TEST(NvmlFake, ControlsRecordTheirValues) {
  NvmlSampler s(fake_config());
  ControlResult limit = s.set_power_limit(0, 250);
  EXPECT_TRUE(limit.ok) << limit.message;
  EXPECT_DOUBLE_EQ(s.power_limit_w(0), 250.0);
  ControlResult lock = s.lock_gpu_clocks(0, 900, 1200);
  EXPECT_TRUE(lock.ok) << lock.message;
  std::vector<PowerSample> out;
  s.sample(steady_now_ns(), out);
  EXPECT_DOUBLE_EQ(out[0].sm_clock_mhz, 1200);
  EXPECT_TRUE(s.reset_gpu_clocks(0).ok);
  out.clear();
  s.sample(steady_now_ns(), out);
  EXPECT_DOUBLE_EQ(out[0].sm_clock_mhz, 1410);
  ControlResult out_of_range = s.set_power_limit(0, 5000);
  EXPECT_FALSE(out_of_range.ok);
  EXPECT_NE(out_of_range.message.find("Invalid Argument"), std::string::npos);
  EXPECT_THROW(s.set_power_limit(3, 200), UsageError);
  EXPECT_THROW(s.lock_gpu_clocks(0, 1500, 900), UsageError);
}

TEST(NvmlFake, MissingPermissionIsAClearNonFatalMessage) {
  ScopedEnv p("QMETER_FAKE_NVML_NO_PERMISSION", "1");
  NvmlSampler s(fake_config());
  ControlResult r = s.set_power_limit(0, 250);
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.message.find("refused"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("Insufficient Permissions"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("root"), std::string::npos) << r.message;
  EXPECT_DOUBLE_EQ(s.power_limit_w(0), 400.0);  // unchanged
  EXPECT_FALSE(s.lock_gpu_clocks(0, 900, 1200).ok);
  EXPECT_FALSE(s.reset_gpu_clocks(0).ok);
  std::vector<PowerSample> out;
  s.sample(steady_now_ns(), out);  // sampling goes on
  EXPECT_DOUBLE_EQ(out[0].power_w, 50.0);
}

TEST(NvmlFake, UnavailableLibraryOrDriverSaysWhy) {
  SamplerConfig missing;
  missing.nvml_library = "/nonexistent/libnvidia-ml.so.1";
  try {
    NvmlSampler s(missing);
    FAIL() << "opened a missing library";
  } catch (const SamplerUnavailable& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/libnvidia-ml.so.1"), std::string::npos) << e.what();
  }
  ScopedEnv f("QMETER_FAKE_NVML_FAIL_INIT", "1");
  try {
    NvmlSampler s(fake_config());
    FAIL() << "init should fail";
  } catch (const SamplerUnavailable& e) {
    EXPECT_NE(std::string(e.what()).find("Driver Not Loaded"), std::string::npos) << e.what();
  }
}

TEST(NvmlFake, LibraryPathComesFromTheEnvironment) {
  ScopedEnv lib("QMETER_NVML_LIBRARY", QMETER_FAKE_NVML_PATH);
  EXPECT_EQ(nvml_library_path({}), QMETER_FAKE_NVML_PATH);
  std::vector<std::string> notes;
  SamplerConfig c;
  c.rapl_root = "/nonexistent-powercap";
  auto samplers = open_samplers("auto", c, notes);
  ASSERT_EQ(samplers.size(), 2u);
  EXPECT_EQ(samplers[0]->source(), "nvml");
  EXPECT_EQ(samplers[1]->source(), "model");
  ASSERT_FALSE(notes.empty());
  EXPECT_NE(notes.back().find("nvml (1 device, Fake NVIDIA GPU 0) + model"), std::string::npos) << notes.back();
}

TEST(NvmlFake, ExplicitNvmlModeFailsWithoutADriver) {
  ScopedEnv lib("QMETER_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1");
  std::vector<std::string> notes;
  EXPECT_THROW(open_samplers("nvml", {}, notes), SamplerUnavailable);
  EXPECT_THROW(open_samplers("gpu", {}, notes), UsageError);
  SamplerConfig c;
  c.rapl_root = "/nonexistent-powercap";
  auto samplers = open_samplers("auto", c, notes);
  ASSERT_EQ(samplers.size(), 1u);
  EXPECT_EQ(samplers[0]->source(), "model");
}

}  // namespace
}  // namespace qmeter::telemetry
