#pragma once
// Window energy from one device's samples: counter deltas with linear interpolation at the window
// edges, and the trapezoidal integral of power (piecewise linear between samples). Both clip a
// window to the span of the samples: nothing is extrapolated.
#include <vector>

#include "qmeter/telemetry/attribution.h"
#include "qmeter/telemetry/sampler.h"

namespace qmeter::telemetry {

struct TimedValue {
  Nanos t = 0;
  double v = 0;
};

struct DeviceSeries {
  std::vector<TimedValue> power;   // W, sorted by time
  std::vector<TimedValue> energy;  // cumulative J, sorted by time
};

struct WindowEnergy {
  double counter_j = kNotMeasured;
  double integrated_j = kNotMeasured;
  double peak_power_w = kNotMeasured;
  std::size_t samples_inside = 0;
  bool clipped = false;  // the window reached outside the samples
};

// Linear interpolation of a sorted series at t, clamped to its ends. Needs a non-empty series.
double value_at(const std::vector<TimedValue>& series, Nanos t);
// Integral over [a, b] (clipped to the series) of the piecewise-linear curve through the points,
// in value-seconds. 0 for fewer than two points.
double trapezoid(const std::vector<TimedValue>& series, Nanos a, Nanos b);

WindowEnergy window_energy(const DeviceSeries& series, Nanos t0, Nanos t1, bool use_counter);
// One EnergyInterval per pair of consecutive samples overlapping [t0, t1], clipped to it
// (above_idle_j is left to the caller).
std::vector<EnergyInterval> split_intervals(const DeviceSeries& series, Nanos t0, Nanos t1, bool use_counter);

}  // namespace qmeter::telemetry
