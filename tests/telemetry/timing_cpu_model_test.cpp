// Timing: the CPU model on the real /proc/stat while this test keeps one core busy. Other work on
// the machine also shows up as utilization, so only generous bounds are checked: at least the
// configured power of one busy core above the all-idle floor, at most every core busy.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "qmeter/telemetry/sampler.h"

namespace qmeter::telemetry {
namespace {

TEST(TimingCpuModel, RealBusyLoopRaisesModelledPowerByAboutOneCore) {
  SamplerConfig c;
  c.idle_watts_per_core = 1.0;
  c.busy_watts_per_core = 11.0;
  auto s = make_cpu_model_sampler(c);
  int cores = static_cast<int>(std::thread::hardware_concurrency());
  std::vector<PowerSample> out;
  s->sample(steady_now_ns(), out);
  std::atomic<bool> stop{false};
  std::thread spinner([&] {
    volatile unsigned long x = 0;
    while (!stop.load(std::memory_order_relaxed)) x = x + 1;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  s->sample(steady_now_ns(), out);
  stop = true;
  spinner.join();
  ASSERT_EQ(out.size(), 2u);
  double floor = cores * 1.0;
  // One core at 100 % adds 10 W; allow 40 % slack for a busy scheduler and jiffy granularity.
  EXPECT_GE(out[1].power_w, floor + 0.6 * 10.0) << "cores " << cores;
  EXPECT_LE(out[1].power_w, cores * 11.0 + 1e-9);
  // The modelled energy covers at least the 0.8 s slept at the modelled power.
  EXPECT_GE(out[1].energy_j, out[1].power_w * 0.8 * 0.999);
}

}  // namespace
}  // namespace qmeter::telemetry
