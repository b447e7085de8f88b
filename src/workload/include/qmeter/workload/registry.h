#pragma once
// The two extension points of the workload module (DESIGN.md): a Dataset (what to send) and an
// ArrivalProcess (when to send it). Adding one = one new .cpp defining the load / offsets
// function + one row in the table in datasets.cpp or arrivals.cpp. build_schedule (schedule.h)
// picks the rows by name: `--dataset KIND[:PATH]` and `--arrival KIND`.
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "qmeter/workload/schedule.h"

namespace qmeter::workload {

// What a dataset produced for one run.
struct DatasetSample {
  std::vector<Prompt> prompts;  // exactly num_prompts, in the dataset's order
  // Per prompt, its arrival time relative to the earliest one: only datasets that are traces
  // (azure) fill this; trace replay needs it. Empty otherwise.
  std::vector<Nanos> trace_offsets_ns;
  std::string description;  // "random in=128 out=64 range=0.5", "sharegpt:/x.json (490 usable of 500)"
};

struct Dataset {
  std::string_view name;  // the KIND in --dataset KIND[:PATH]
  bool needs_path;        // KIND:PATH (true) or a bare KIND (false)
  std::string_view help;
  // `spec` is the whole --dataset value (for error messages), `path` the part after "KIND:".
  // Throws UsageError naming the file and line for bad input.
  DatasetSample (*load)(const std::string& spec, const std::string& path, const DatasetOptions& options);
};

struct ArrivalProcess {
  std::string_view name;  // --arrival NAME
  std::string_view help;
  // Send offsets for `count` requests, in ns relative to the start of the run (not necessarily
  // sorted: build_schedule sorts). Throws UsageError for bad options.
  std::vector<Nanos> (*offsets)(std::size_t count, const ArrivalOptions& options, const DatasetSample& dataset);
  // Human-readable: "poisson 20 req/s".
  std::string (*describe)(const ArrivalOptions& options);
};

std::span<const Dataset> dataset_table();
std::span<const ArrivalProcess> arrival_table();

// Loads DatasetOptions::spec through the dataset table (validates the common options first).
DatasetSample load_dataset(const DatasetOptions& options);
// The arrival kind build_schedule uses for these options: ArrivalOptions::kind when set, else
// "trace" for a dataset with arrival times and no --request-rate, "gamma" when burstiness != 1,
// "poisson" for a finite positive rate (vLLM's default), else "inf".
std::string resolve_arrival_kind(const ArrivalOptions& options, const DatasetSample& dataset);

}  // namespace qmeter::workload
