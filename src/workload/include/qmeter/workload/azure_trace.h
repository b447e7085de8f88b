#pragma once
// The Azure LLM inference trace (Azure/AzurePublicDataset, 2023 and 2024 layouts), read in one
// place for both its users: the `azure:PATH` dataset (prompts and arrival times) and
// `plan schedule --trace azure:PATH` (arrivals binned per slot).
//   TIMESTAMP,ContextTokens,GeneratedTokens
//   2023-11-16 18:15:46.6805900,374,44
#include <cstddef>
#include <functional>
#include <string>

#include "qmeter/core/clock.h"

namespace qmeter::workload {

struct AzureTraceRow {
  std::size_t line = 0;  // 1-based line of the file
  Nanos time_ns = 0;     // the trace's own clock (ns since 1970, or the seconds column as written)
  int context_tokens = 0;
  int generated_tokens = 0;
};

// Calls `row` for each data row in file order until it returns false; returns the rows read.
// Columns are found by name in the header, in any order; TIMESTAMP is "YYYY-MM-DD HH:MM:SS[.f]"
// (or 'T' between date and time) or plain seconds. A malformed file throws UsageError
// "<spec> line N: field 'NAME': ..." (`spec` names the file as the user wrote it).
std::size_t read_azure_trace(const std::string& spec, const std::string& path,
                             const std::function<bool(const AzureTraceRow&)>& row);

}  // namespace qmeter::workload
