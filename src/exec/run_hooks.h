#pragma once
// Where the other capabilities join a run: energy telemetry (and later server-metric scraping)
// as load observers, and the quality phase. Kept in one place so the run loop stays readable.
#include <memory>
#include <vector>

#include "qmeter/backend/backend.h"
#include "qmeter/exec/energy_observer.h"
#include "qmeter/exec/study_runner.h"
#include "qmeter/loadgen/loadgen.h"
#include "qmeter/spec/study_spec.h"
#include "qmeter/store/store.h"
#include "server_metrics_observer.h"

namespace qmeter::exec {

struct PointSideData {
  std::vector<store::TelemetrySampleRow> samples;
  std::vector<store::ServerMetricSampleRow> server_metrics;
};

// The instruments of one run: opened once (one idle baseline per run), observing every point.
class RunInstruments {
 public:
  RunInstruments(const spec::RunConfig& run, backend::Backend& backend);
  std::vector<loadgen::RunObserver*> observers();
  // Idle-baseline samples (stored once per run).
  std::vector<store::TelemetrySampleRow> idle_samples() const;
  // The raw samples of the point just measured, for its transaction.
  PointSideData point_side_data() const;
  // Copies each request's attributed energy into its row.
  void attach_request_energy(std::vector<store::RequestRow>& rows) const;

 private:
  std::unique_ptr<EnergyObserver> energy_;
  std::unique_ptr<ServerMetricsObserver> server_metrics_;
};

// Runs the spec's quality tasks against the backend and stores their results and items.
void run_quality_phase(const spec::RunConfig& run, backend::Backend& backend, store::Store& db,
                       const StudyOptions& options);

}  // namespace qmeter::exec
