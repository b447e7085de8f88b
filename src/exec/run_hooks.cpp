#include "run_hooks.h"

#include "qmeter/core/error.h"
#include "qmeter/core/text.h"
#include "embedded_backend_options.h"
#include "qmeter/quality/eval.h"
#include "qmeter/quality/task_options.h"
#include "qmeter/quant/quantize.h"

namespace qmeter::exec {

spec::KnownNames known_names() {
  // Method options are checked as the embedded backend will load them (calib is a file, read
  // later), so a bad value (e.g. kv_cache_dtype: int4) fails at its spec line before any run;
  // each option table is its owner's (quant registry, quality tasks, the embedded backend).
  spec::KnownNames known{quant::method_names(), quality::task_kinds(),
                         [](const std::string& method, const std::map<std::string, std::string>& options) {
                           quant::parse_options(method, options);
                         }};
  known.method_option_schema = quant::method_option_schema();
  known.backend_option_schema = embedded_backend_option_schema();
  known.quality_option_schema = quality::task_option_schema();
  return known;
}

RunInstruments::RunInstruments(const spec::RunConfig& run, backend::Backend& backend) {
  if (run.energy.source != "none") {
    energy_ = std::make_unique<EnergyObserver>(EnergyOptions{run.energy.source, run.energy.interval_ms, run.energy.idle_s});
    energy_->prepare();
  }
  // /metrics lives at the server's root, also when the base URL names the API (".../v1").
  server_metrics_ = std::make_unique<ServerMetricsObserver>(server_root_url(backend.base_url()) + "/metrics");
}

std::vector<loadgen::RunObserver*> RunInstruments::observers() {
  std::vector<loadgen::RunObserver*> out;
  if (energy_) out.push_back(energy_.get());
  out.push_back(server_metrics_.get());
  return out;
}

std::vector<store::TelemetrySampleRow> RunInstruments::idle_samples() const {
  return energy_ ? energy_->idle_sample_rows() : std::vector<store::TelemetrySampleRow>{};
}

PointSideData RunInstruments::point_side_data() const {
  PointSideData d;
  if (energy_) d.samples = energy_->load_sample_rows();
  d.server_metrics = server_metrics_->point_rows();
  return d;
}

void RunInstruments::attach_request_energy(std::vector<store::RequestRow>& rows) const {
  if (!energy_) return;
  for (auto& r : rows) r.energy_j = energy_->request_energy_j(r.index);
}

}  // namespace qmeter::exec
