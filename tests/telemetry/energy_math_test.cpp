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

TEST(EnergyMath, CounterDeltaInterpolatesAtWindowEdges) {
  DeviceSeries s;
  s.energy = {{0, 0.0}, {100 * kMs, 10.0}, {200 * kMs, 30.0}};
  s.power = {{0, 100}, {100 * kMs, 100}, {200 * kMs, 200}};
  WindowEnergy w = window_energy(s, 50 * kMs, 150 * kMs, true);
  EXPECT_NEAR(w.counter_j, 20.0 - 5.0, 1e-9);
  EXPECT_NEAR(w.integrated_j, 0.05 * 100 + 0.5 * (100 + 150) * 0.05, 1e-9);
  EXPECT_EQ(w.samples_inside, 1u);
  EXPECT_FALSE(w.clipped);
  EXPECT_TRUE(window_energy(s, -kMs, 150 * kMs, true).clipped);
  EXPECT_TRUE(std::isnan(window_energy(s, 0, 150 * kMs, false).counter_j));
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
