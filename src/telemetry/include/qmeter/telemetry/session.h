#pragma once
// A telemetry session: one thread samples every source at a fixed interval and keeps every
// sample; afterwards the session computes energy over any window (counter deltas, trapezoidal
// integration as a cross-check), the idle baseline, and the intervals that attribution splits.
//
// Typical use around a load run (see attribution.h for the per-request split):
//   std::vector<std::string> notes;
//   TelemetrySession session(open_samplers("auto", {}, notes), {.interval_ns = ms_to_ns(50)});
//   session.start();
//   session.measure_idle_baseline(2.0);      // blocks 2 s, sampling an idle machine
//   Nanos t0 = steady_now_ns(); /* run the load */ Nanos t1 = steady_now_ns();
//   session.stop();
//   EnergyReport report = session.report(t0, t1);
//   AttributionResult per_request = attribute_energy(session.energy_intervals(t0, t1), requests);
#include <memory>
#include <string>
#include <vector>

#include "qmeter/telemetry/attribution.h"
#include "qmeter/telemetry/sampler.h"

namespace qmeter::telemetry {

struct SessionOptions {
  Nanos interval_ns = 50'000'000;  // --power-interval-ms (50 ms = 20 Hz)
};

// Energy of one device over a window.
struct DeviceEnergy {
  DeviceInfo device;
  double counter_j = kNotMeasured;     // counter delta (interpolated at the window's edges)
  double integrated_j = kNotMeasured;  // trapezoidal integral of the power samples
  double energy_j = 0;                 // the figure used: counter where there is one
  EnergyOrigin origin = EnergyOrigin::kSampled;
  double avg_power_w = kNotMeasured;   // energy_j / duration
  double peak_power_w = kNotMeasured;  // highest power sample in the window
  double idle_power_w = kNotMeasured;  // mean power over the idle baseline (NaN: no baseline)
  double above_idle_j = kNotMeasured;  // energy_j - idle_power_w * duration
  std::size_t samples = 0;             // samples inside the window
};

// Totals of one source (all its devices).
struct SourceEnergy {
  std::string source;
  EnergyOrigin origin = EnergyOrigin::kCounter;  // the weakest origin among its devices
  double energy_j = 0;
  double above_idle_j = kNotMeasured;
  double avg_power_w = kNotMeasured;
  double peak_power_w = kNotMeasured;  // highest sum over devices of one sampling tick
  double idle_power_w = kNotMeasured;
};

struct EnergyReport {
  Nanos t0_ns = 0, t1_ns = 0;
  double duration_s = 0;
  double interval_ms = 0;
  std::vector<DeviceEnergy> devices;
  std::vector<SourceEnergy> sources;
  double total_j = 0;                   // sum over sources
  double above_idle_j = kNotMeasured;   // NaN without an idle baseline
  double idle_baseline_s = 0;
  double sampler_cpu_s = 0;             // CPU time the sampling thread used so far
  std::vector<std::string> notes;       // from the samplers and the session
};

class TelemetrySession {
 public:
  TelemetrySession(std::vector<std::unique_ptr<Sampler>> samplers, SessionOptions options = {});
  ~TelemetrySession();  // stops the thread
  TelemetrySession(const TelemetrySession&) = delete;
  TelemetrySession& operator=(const TelemetrySession&) = delete;

  // Starts the sampling thread; the first tick happens at once.
  void start();
  // Samples an idle machine for `seconds` (blocking) and keeps that window as the idle baseline.
  // Starts the thread if needed. 0 or less does nothing.
  void measure_idle_baseline(double seconds);
  // Takes a last sample and joins the thread. Idempotent.
  void stop();

  bool empty() const;  // no source
  // Devices of all samplers, in order; PowerSample::device indexes this list.
  const std::vector<DeviceInfo>& devices() const;
  // A copy of every sample so far (safe while running).
  std::vector<PowerSample> samples() const;
  // Energy over [t0, t1] (steady ns). Window edges between samples are interpolated; a window
  // reaching outside the samples is clipped to them (and a note says so).
  EnergyReport report(Nanos t0_ns, Nanos t1_ns) const;
  // Per-device sample intervals clipped to [t0, t1], for attribute_energy().
  std::vector<EnergyInterval> energy_intervals(Nanos t0_ns, Nanos t1_ns) const;
  // CPU time used by the sampling thread (seconds).
  double sampler_cpu_seconds() const;
  std::size_t ticks() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// JSON text of a report and (optionally) an attribution, for `--output-json` and `bench serve`
// (nlohmann stays out of this header). Keys: "duration_s", "total_energy_j",
// "above_idle_energy_j", "sources": [...], "devices": [...], "notes", and with an attribution
// "per_request": {"mean_energy_per_request_j", "p99_...", "energy_per_output_token_j", ...}.
std::string energy_report_json(const EnergyReport& report, const AttributionResult* attribution = nullptr,
                               bool include_samples = false, const std::vector<PowerSample>* samples = nullptr);
// Human-readable summary lines.
std::vector<std::string> energy_summary_lines(const EnergyReport& report,
                                              const AttributionResult* attribution = nullptr);

}  // namespace qmeter::telemetry
