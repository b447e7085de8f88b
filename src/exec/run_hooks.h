#pragma once
// Where the other capabilities join a run: energy telemetry and server-metric scraping as load
// observers, and the quality phase. Kept in one place so the run loop stays readable.
#include <memory>
#include <vector>

#include "qmeter/backend/backend.h"
#include "qmeter/exec/study_runner.h"
#include "qmeter/loadgen/loadgen.h"
#include "qmeter/spec/study_spec.h"
#include "qmeter/store/store.h"

namespace qmeter::exec {

// Observers attached to one load point (energy session, /metrics scraper).
std::vector<std::unique_ptr<loadgen::RunObserver>> make_point_observers(const spec::RunConfig& run,
                                                                        backend::Backend& backend);
struct PointSideData {
  std::vector<store::TelemetrySampleRow> samples;
  std::vector<store::ServerMetricSampleRow> server_metrics;
};
// The raw samples the observers gathered, for the load point's transaction.
PointSideData collect_side_data(const std::vector<std::unique_ptr<loadgen::RunObserver>>& observers);

// Runs the spec's quality tasks against the backend and stores their results and items.
void run_quality_phase(const spec::RunConfig& run, backend::Backend& backend, store::Store& db,
                       const StudyOptions& options);

}  // namespace qmeter::exec
