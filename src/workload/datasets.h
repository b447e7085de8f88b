#pragma once
// The dataset load functions listed in the table in datasets.cpp (one file each).
#include <string>

#include "qmeter/workload/registry.h"

namespace qmeter::workload::detail {

DatasetSample load_random(const std::string& spec, const std::string& path, const DatasetOptions& options);
DatasetSample load_sharegpt(const std::string& spec, const std::string& path, const DatasetOptions& options);
DatasetSample load_jsonl(const std::string& spec, const std::string& path, const DatasetOptions& options);
DatasetSample load_gsm8k(const std::string& spec, const std::string& path, const DatasetOptions& options);
DatasetSample load_azure(const std::string& spec, const std::string& path, const DatasetOptions& options);
DatasetSample load_mooncake(const std::string& spec, const std::string& path, const DatasetOptions& options);
DatasetSample load_burstgpt(const std::string& spec, const std::string& path, const DatasetOptions& options);
DatasetSample load_trace(const std::string& spec, const std::string& path, const DatasetOptions& options);
DatasetSample load_sharegpt_multiturn(const std::string& spec, const std::string& path, const DatasetOptions& options);
DatasetSample load_multiturn(const std::string& spec, const std::string& path, const DatasetOptions& options);
DatasetSample load_longdoc(const std::string& spec, const std::string& path, const DatasetOptions& options);
DatasetSample load_prefix(const std::string& spec, const std::string& path, const DatasetOptions& options);

// Inclusive bounds of a length drawn with --range-ratio r: [floor(len (1 - r)), ceil(len (1 + r))],
// at least 1 (vLLM's random dataset bounds).
struct LengthRange {
  int lo, hi;
};
LengthRange length_range(int len, double range_ratio);

}  // namespace qmeter::workload::detail
