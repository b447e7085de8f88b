// Window energy arithmetic on hand-made series.
#include <gtest/gtest.h>

#include <cmath>

#include "energy_math.h"

namespace qmeter::telemetry {
namespace {

constexpr Nanos kMs = 1'000'000;

TEST(EnergyMath, TrapezoidMatchesTheAreaUnderALinearRamp) {
  // Power rises linearly 0 -> 100 W over 1 s, sampled every 100 ms: the trapezoid rule is exact.
  std::vector<TimedValue> p;
  for (int k = 0; k <= 10; ++k) p.push_back({k * 100 * kMs, 10.0 * k});
  EXPECT_NEAR(trapezoid(p, 0, 1000 * kMs), 50.0, 1e-9);
  // Sub-window [250 ms, 750 ms]: area = (25 + 75) / 2 * 0.5 s = 25 J (edges interpolated).
  EXPECT_NEAR(trapezoid(p, 250 * kMs, 750 * kMs), 25.0, 1e-9);
  // Windows outside the samples are clipped, never extrapolated.
  EXPECT_NEAR(trapezoid(p, -500 * kMs, 100 * kMs), 0.5, 1e-9);
  EXPECT_DOUBLE_EQ(trapezoid(p, 2000 * kMs, 3000 * kMs), 0.0);
}

TEST(EnergyMath, CounterDeltaAtWindowEdges) {
  DeviceSeries s;
  s.energy = {{0, 0.0}, {100 * kMs, 10.0}, {200 * kMs, 30.0}};
  s.power = {{0, 100}, {100 * kMs, 100}, {200 * kMs, 200}};
  WindowEnergy w = window_energy(s, 50 * kMs, 150 * kMs, true);
  // Anchored on the reads at 100 and 200 ms: C(200) - C(100) + power over [50, 100] minus power
  // over [150, 200] (the sampled ramp 150 -> 200 W): 20 + 5 - 8.75.
  EXPECT_NEAR(w.counter_j, 20.0 + 5.0 - 8.75, 1e-9);
  DeviceSeries counter_only = s;
  counter_only.power.clear();
  EXPECT_NEAR(window_energy(counter_only, 50 * kMs, 150 * kMs, true).counter_j, 20.0 - 5.0, 1e-9);
  EXPECT_NEAR(w.integrated_j, 0.05 * 100 + 0.5 * (100 + 150) * 0.05, 1e-9);
  EXPECT_EQ(w.samples_inside, 1u);
  EXPECT_FALSE(w.clipped);
  EXPECT_TRUE(window_energy(s, -kMs, 150 * kMs, true).clipped);
  EXPECT_TRUE(std::isnan(window_energy(s, 0, 150 * kMs, false).counter_j));
}

TEST(EnergyMath, SparseCounterReadsAreCorrectedBySampledPowerAtTheEdges) {
  // Power 100 W until 150 ms, then 200 W (samples every 50 ms); the counter is read every 100 ms
  // and agrees with that power. Window [60, 240] ms: 100 W * 0.09 s + 200 W * 0.09 s = 27 J, with
  // the counter giving the exact [100, 200] part and the power samples the edges.
  DeviceSeries s;
  for (int k = 0; k <= 6; ++k) s.power.push_back({k * 50 * kMs, k * 50 < 150 ? 100.0 : 200.0});
  s.energy = {{0, 0.0}, {100 * kMs, 10.0}, {200 * kMs, 27.5}, {300 * kMs, 47.5}};
  // Trapezoid between the 100 W sample at 100 ms and the 200 W one at 150 ms: the ramp is the
  // sampled curve, so the reference uses it too: [60,100] 4 J, counter [100,200] 17.5 J,
  // [200,240] 8 J.
  WindowEnergy w = window_energy(s, 60 * kMs, 240 * kMs, true);
  EXPECT_NEAR(w.counter_j, 4.0 + 17.5 + 8.0, 1e-9);
  // A window between two reads: anchored on the nearest reads, with signed edge corrections.
  w = window_energy(s, 110 * kMs, 190 * kMs, true);
  EXPECT_NEAR(w.counter_j, 27.5 - 10.0 - trapezoid(s.power, 100 * kMs, 110 * kMs) - trapezoid(s.power, 190 * kMs, 200 * kMs), 1e-9);
}

TEST(EnergyMath, SplitIntervalsAreScaledToTheCounter) {
  // Constant 100 W sampled every 50 ms (5 J per interval by trapezoid); the counter says 12 J over
  // [0, 100] ms and 8 J over [100, 200] ms: the intervals inside each counter interval are scaled.
  DeviceSeries s;
  for (int k = 0; k <= 4; ++k) s.power.push_back({k * 50 * kMs, 100.0});
  s.energy = {{0, 0.0}, {100 * kMs, 12.0}, {200 * kMs, 20.0}};
  auto iv = split_intervals(s, 0, 200 * kMs, true);
  ASSERT_EQ(iv.size(), 4u);
  EXPECT_NEAR(iv[0].energy_j, 6.0, 1e-9);
  EXPECT_NEAR(iv[1].energy_j, 6.0, 1e-9);
  EXPECT_NEAR(iv[2].energy_j, 4.0, 1e-9);
  EXPECT_NEAR(iv[3].energy_j, 4.0, 1e-9);
  // Clipped to [25, 175] ms: half of the first and last intervals.
  iv = split_intervals(s, 25 * kMs, 175 * kMs, true);
  ASSERT_EQ(iv.size(), 4u);
  EXPECT_NEAR(iv[0].energy_j, 3.0, 1e-9);
  EXPECT_NEAR(iv[3].energy_j, 2.0, 1e-9);
  // Without a counter, the trapezoids as they are.
  iv = split_intervals(s, 0, 200 * kMs, false);
  EXPECT_NEAR(iv[0].energy_j, 5.0, 1e-9);
}

TEST(EnergyMath, SplitIntervalsCoverTheWindowExactly) {
  DeviceSeries s;
  s.energy = {{0, 0.0}, {100 * kMs, 10.0}, {200 * kMs, 30.0}, {300 * kMs, 31.0}};
  auto iv = split_intervals(s, 50 * kMs, 250 * kMs, true);
  ASSERT_EQ(iv.size(), 3u);
  EXPECT_EQ(iv[0].t0_ns, 50 * kMs);
  EXPECT_EQ(iv[0].t1_ns, 100 * kMs);
  EXPECT_NEAR(iv[0].energy_j, 5.0, 1e-9);
  EXPECT_NEAR(iv[1].energy_j, 20.0, 1e-9);
  EXPECT_NEAR(iv[2].energy_j, 0.5, 1e-9);
  EXPECT_EQ(iv[2].t1_ns, 250 * kMs);
}

}  // namespace
}  // namespace qmeter::telemetry
