#include "run_hooks.h"

#include "qmeter/core/error.h"

namespace qmeter::exec {

spec::KnownNames known_names() { return {}; }

std::vector<std::unique_ptr<loadgen::RunObserver>> make_point_observers(const spec::RunConfig& run,
                                                                        backend::Backend& backend) {
  return {};
}

PointSideData collect_side_data(const std::vector<std::unique_ptr<loadgen::RunObserver>>& observers) { return {}; }

void run_quality_phase(const spec::RunConfig& run, backend::Backend& backend, store::Store& db,
                       const StudyOptions& options) {
  if (!run.quality.empty()) {
    throw Error("quality tasks are not available in this build yet");
  }
}

}  // namespace qmeter::exec
