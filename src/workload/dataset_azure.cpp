// `azure:PATH`: the Azure LLM inference trace (Azure/AzurePublicDataset, 2023 and 2024 layouts):
//   TIMESTAMP,ContextTokens,GeneratedTokens
//   2023-11-16 18:15:46.6805900,374,44
// The first num_prompts rows become prompts of ContextTokens tokens (built like `random`) asking
// for GeneratedTokens tokens, and the rows' timestamps, relative to the earliest, drive trace
// replay (--arrival trace). Columns are found by name in the header, in any order.
#include <algorithm>
#include <limits>
#include <cctype>
#include <optional>

#include <fmt/format.h>

#include "dataset_input.h"
#include "qmeter/core/parse_number.h"
#include "qmeter/workload/azure_trace.h"
#include "datasets.h"
#include "trace_rows.h"

namespace qmeter::workload::detail {

namespace {

// Days since 1970-01-01 of a proleptic Gregorian date (the era-based civil-calendar arithmetic:
// 400-year eras of 146097 days, years starting in March so the leap day is last).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

class Cursor {
 public:
  explicit Cursor(std::string_view s) : s_(s) {}
  bool done() const { return pos_ == s_.size(); }
  bool eat(char c) {
    if (pos_ < s_.size() && s_[pos_] == c) return ++pos_, true;
    return false;
  }
  // Exactly `digits` decimal digits (digits = 0: one or more).
  std::optional<std::int64_t> number(int digits) {
    std::int64_t v = 0;
    int n = 0;
    while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_])) && (digits == 0 || n < digits)) {
      v = v * 10 + (s_[pos_++] - '0');
      if (++n > 18) return std::nullopt;
    }
    if (n == 0 || (digits && n != digits)) return std::nullopt;
    return v;
  }
  // ".fffffffff" (any number of digits, kept to ns) -> ns; absent -> 0.
  std::optional<std::int64_t> fraction_ns() {
    if (!eat('.')) return 0;
    std::int64_t ns = 0, scale = 100000000;
    int n = 0;
    while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) {
      ns += (s_[pos_++] - '0') * scale;
      scale /= 10;
      ++n;
    }
    return n ? std::optional<std::int64_t>(ns) : std::nullopt;
  }

 private:
  std::string_view s_;
  std::size_t pos_ = 0;
};

constexpr std::int64_t kMaxTraceSeconds = 9'000'000'000;  // < INT64_MAX / 1e9, year 2255

// "YYYY-MM-DD HH:MM:SS[.f...]" (or 'T' between date and time), or plain seconds "123.456".
std::optional<Nanos> parse_timestamp(std::string_view s) {
  Cursor c(s);
  if (s.find('-') == std::string_view::npos) {  // seconds
    auto sec = c.number(0);
    if (!sec) return std::nullopt;
    auto frac = c.fraction_ns();
    // Nanoseconds fit int64 up to ~292 years of seconds: larger is no trace time (and would overflow).
    if (!frac || !c.done() || *sec > kMaxTraceSeconds) return std::nullopt;
    return *sec * 1'000'000'000 + *frac;
  }
  auto y = c.number(4);
  if (!y || !c.eat('-')) return std::nullopt;
  auto mo = c.number(2);
  if (!mo || !c.eat('-')) return std::nullopt;
  auto d = c.number(2);
  if (!d || !(c.eat(' ') || c.eat('T'))) return std::nullopt;
  auto h = c.number(2);
  if (!h || !c.eat(':')) return std::nullopt;
  auto mi = c.number(2);
  if (!mi || !c.eat(':')) return std::nullopt;
  auto se = c.number(2);
  if (!se) return std::nullopt;
  auto frac = c.fraction_ns();
  if (!frac || !c.done()) return std::nullopt;
  if (*mo < 1 || *mo > 12 || *d < 1 || *d > 31 || *h > 23 || *mi > 59 || *se > 60) return std::nullopt;
  // Years whose nanoseconds since 1970 fit int64 (found by fuzz_dataset: year 1011 overflowed).
  if (*y < 1970 || *y > 2261) return std::nullopt;
  const std::int64_t days = days_from_civil(*y, static_cast<unsigned>(*mo), static_cast<unsigned>(*d));
  return ((days * 24 + *h) * 60 + *mi) * 60 * 1'000'000'000 + *se * 1'000'000'000 + *frac;
}

std::optional<int> parse_positive_int(std::string_view s) {
  const auto v = parse_int64(s);
  if (!v || *v < 1 || *v > std::numeric_limits<int>::max()) return std::nullopt;
  return static_cast<int>(*v);
}

}  // namespace

}  // namespace qmeter::workload::detail

namespace qmeter::workload {

std::size_t read_azure_trace(const std::string& spec, const std::string& path,
                             const std::function<bool(const AzureTraceRow&)>& row) {
  using namespace detail;
  const std::string text = read_dataset_file(spec, path);
  const CsvTrace csv(spec, text, "TIMESTAMP,ContextTokens,GeneratedTokens");
  const std::size_t col_time = csv.column("TIMESTAMP"), col_context = csv.column("ContextTokens"),
                    col_generated = csv.column("GeneratedTokens");
  std::size_t seen = 0;
  csv.rows([&](std::size_t line, const std::vector<std::string_view>& fields) {
    const auto time = parse_timestamp(fields[col_time]);
    if (!time)
      fail_at(spec, line, fmt::format("field '{}': expected 'YYYY-MM-DD HH:MM:SS[.fraction]' or seconds, got '{}'",
                                      csv.column_name(col_time), fields[col_time]));
    const auto context = parse_positive_int(fields[col_context]);
    if (!context)
      fail_at(spec, line, fmt::format("field '{}': expected a positive integer, got '{}'", csv.column_name(col_context), fields[col_context]));
    const auto generated = parse_positive_int(fields[col_generated]);
    if (!generated)
      fail_at(spec, line, fmt::format("field '{}': expected a positive integer, got '{}'", csv.column_name(col_generated),
                                      fields[col_generated]));
    ++seen;
    return row(AzureTraceRow{line, *time, *context, *generated});
  });
  return seen;
}

}  // namespace qmeter::workload

namespace qmeter::workload::detail {

DatasetSample load_azure(const std::string& spec, const std::string& path, const DatasetOptions& options) {
  TraceWindow window(options);
  std::vector<TraceRow> rows;
  const auto wanted = static_cast<std::size_t>(options.num_prompts);
  // Only the rows used are parsed: a 100-request run of a long trace reads its first 100 rows.
  const std::size_t seen = read_azure_trace(spec, path, [&](const AzureTraceRow& r) {
    const auto verdict = window.offer(r.time_ns);
    if (verdict == TraceWindow::Verdict::kStop) return false;
    if (verdict == TraceWindow::Verdict::kTake) rows.push_back({r.line, r.time_ns, r.context_tokens, r.generated_tokens, {}});
    return rows.size() < wanted;
  });
  if (seen == 0) fail(spec, "no requests (the file has a header but no rows)");
  return trace_sample(spec, std::move(rows), options, seen, window);
}

}  // namespace qmeter::workload::detail
