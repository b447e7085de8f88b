#include "qmeter/workload/schedule.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

#include "qmeter/core/error.h"
#include "qmeter/workload/registry.h"

namespace qmeter::workload {

namespace {

void check_arrival_options(const ArrivalOptions& o) {
  if (!(o.burstiness > 0 && std::isfinite(o.burstiness)))
    throw UsageError(fmt::format("--burstiness must be a positive number, got {}", o.burstiness));
  if (o.max_concurrency < 0) throw UsageError(fmt::format("--max-concurrency must be >= 0, got {}", o.max_concurrency));
  if (!(o.trace_time_scale > 0 && std::isfinite(o.trace_time_scale)))
    throw UsageError(fmt::format("--trace-time-scale must be a positive number, got {}", o.trace_time_scale));
  if (std::isnan(o.request_rate)) throw UsageError("--request-rate must be a number or inf");
}

}  // namespace

Schedule build_schedule(const DatasetOptions& dataset_options, const ArrivalOptions& arrival_options) {
  check_arrival_options(arrival_options);
  DatasetSample dataset = load_dataset(dataset_options);

  const std::string kind = resolve_arrival_kind(arrival_options, dataset);
  const ArrivalProcess* process = nullptr;
  std::string known;
  for (const ArrivalProcess& a : arrival_table()) {
    if (a.name == kind) process = &a;
    known += (known.empty() ? "" : ", ") + std::string(a.name);
  }
  if (!process) throw UsageError(fmt::format("--arrival {}: unknown arrival process (known: {})", kind, known));
  // The arrival process times the units: requests, or the first turns of conversations (a
  // session's later turns follow its own replies). unit_begin[u] = the unit's first prompt.
  std::vector<std::size_t> unit_begin;
  for (std::size_t i = 0; i < dataset.prompts.size(); ++i)
    if (dataset.prompts[i].session < 0 || dataset.prompts[i].turn == 0) unit_begin.push_back(i);
  const std::size_t units = unit_begin.size();
  unit_begin.push_back(dataset.prompts.size());
  const std::vector<Nanos> offsets = process->offsets(units, arrival_options, dataset);

  // Sort by send time (a trace may be out of order); stable, so ties keep the dataset's order.
  std::vector<std::size_t> order(offsets.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return offsets[a] < offsets[b]; });

  Schedule schedule;
  schedule.max_concurrency = arrival_options.max_concurrency;
  schedule.arrival_kind = kind;
  schedule.requests.reserve(dataset.prompts.size());
  for (std::size_t u : order) {
    for (std::size_t k = unit_begin[u]; k < unit_begin[u + 1]; ++k) {
      ScheduledRequest r;
      r.index = static_cast<std::int64_t>(schedule.requests.size());
      r.offset_ns = offsets[u];
      if (k > unit_begin[u]) r.follows = r.index - 1;
      r.prompt = std::move(dataset.prompts[k]);
      schedule.requests.push_back(std::move(r));
    }
  }
  schedule.description = fmt::format("{}, {}, ", process->describe(arrival_options), dataset.description);
  schedule.description += dataset_options.seed == arrival_options.seed
                              ? fmt::format("seed {}", dataset_options.seed)
                              : fmt::format("dataset seed {}, arrival seed {}", dataset_options.seed, arrival_options.seed);
  if (schedule.max_concurrency > 0 && kind != "closed")
    schedule.description += fmt::format(", max concurrency {}", schedule.max_concurrency);
  return schedule;
}

}  // namespace qmeter::workload
