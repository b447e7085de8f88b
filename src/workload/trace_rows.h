#pragma once
// Shared by the trace datasets (azure, mooncake, burstgpt, trace): the rows a reader parsed, the
// --trace-window that selects them, and the prompts built from them.
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "dataset_input.h"
#include "qmeter/core/text.h"
#include "qmeter/workload/registry.h"

namespace qmeter::workload::detail {

struct TraceRow {
  std::size_t line = 0;  // 1-based line of the file
  Nanos time_ns = 0;     // the trace's own clock
  int input_tokens = 0;
  int output_tokens = 0;
  // Mooncake: ids of the prompt's 512-token blocks (equal ids = identical blocks). Empty for
  // traces without prefix information: the prompt is then random words.
  std::vector<std::int64_t> hash_ids;
};

// Mooncake's block size: hash_ids[k] names tokens [512 k, 512 (k + 1)) of the prompt.
inline constexpr int kMooncakeBlockTokens = 512;

// Picks the rows of a run as a reader walks the file: rows before the window are skipped, the
// first row past it (or the num_prompts-th taken row) ends the walk. The window is relative to
// the first row's time (the trace's start).
class TraceWindow {
 public:
  explicit TraceWindow(const DatasetOptions& options);
  enum class Verdict { kTake, kSkip, kStop };
  Verdict offer(Nanos time_ns);
  std::string describe() const;  // "" without a window, else "window 60 s + 30 s"

 private:
  Nanos start_ns_, duration_ns_;  // duration < 0: to the end
  bool have_origin_ = false;
  Nanos origin_ns_ = 0;
};

// The prompts of the taken rows: ContextTokens-long random words (or Mooncake's hash blocks),
// asking for the rows' output lengths (--output-len when fixed_output_len), with arrival times
// relative to the earliest taken row. `rows_seen` = rows read (for the error when too few).
DatasetSample trace_sample(const std::string& spec, std::vector<TraceRow> rows, const DatasetOptions& options,
                           std::size_t rows_seen, const TraceWindow& window);

// A CSV trace (no quoting: the trace files have none): the header, columns found by name in any
// order, and the data rows with their field count checked (errors name the file and line).
class CsvTrace {
 public:
  // `expected_header` is named in the errors; `text` must outlive this.
  CsvTrace(const std::string& spec, std::string_view text, std::string_view expected_header);
  std::size_t column(std::string_view name) const;
  std::string_view column_name(std::size_t c) const { return header_[c]; }
  // Calls row(line number, fields) for each non-blank data row until it returns false.
  void rows(const std::function<bool(std::size_t, const std::vector<std::string_view>&)>& row) const;

 private:
  const std::string& spec_;
  std::string_view expected_;
  std::vector<NumberedLine> lines_;
  std::vector<std::string_view> header_;
};

// CSV plumbing (no quoting: the trace files have none): core's trim / split / iequals.
using qmeter::iequals;
using qmeter::trim;
inline std::vector<std::string_view> split_commas(std::string_view line) { return qmeter::split(line, ','); }

}  // namespace qmeter::workload::detail
