#pragma once
// Joins energy telemetry to a load run: samples every source during the run (after an idle
// baseline), attributes the window's energy to the requests, and adds the figures to the run's
// outputs (energy_per_output_token_j, energy_per_request_j, per-phase and per-SLO-class joules,
// the source of every figure). Used by `qmeter run` and `qmeter bench serve --energy`.
#include <memory>
#include <string>
#include <vector>

#include "qmeter/loadgen/loadgen.h"
#include "qmeter/store/rows.h"

namespace qmeter::exec {

struct EnergyOptions {
  std::string source = "auto";  // auto | nvml | rapl | model | none
  double interval_ms = 50;
  double idle_s = 2;
};

class EnergyObserver : public loadgen::RunObserver {
 public:
  explicit EnergyObserver(EnergyOptions options);
  ~EnergyObserver() override;

  // Starts sampling and measures the idle baseline (blocking idle_s). Call once, before the
  // first run_load; the same session then serves every load point of a run (one idle baseline
  // per run, each point's window reported from it).
  void prepare();
  bool active() const;  // false for `none` or when no source opened
  const std::vector<std::string>& notes() const;

  void on_run_stop(std::span<const client::RequestRecord> records, Nanos start_ns, Nanos stop_ns,
                   loadgen::ResultExtras& extras) override;

  // The idle-baseline samples, and the samples of the last load window, as store rows.
  std::vector<store::TelemetrySampleRow> idle_sample_rows() const;
  std::vector<store::TelemetrySampleRow> load_sample_rows() const;
  // Attributed energy per request index (after on_run_stop), -1 where none.
  double request_energy_j(std::int64_t index) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qmeter::exec
