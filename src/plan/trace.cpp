// The load over time for `plan schedule`: the Azure trace binned per slot, or a CSV of rates.
#include <fmt/core.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <optional>
#include <sstream>

#include "qmeter/core/error.h"
#include "qmeter/core/parse_number.h"
#include "qmeter/core/text.h"
#include "qmeter/workload/azure_trace.h"
#include "qmeter/plan/schedule.h"

namespace qmeter::plan {

namespace {

// A finite number, the whole of `s`.
std::optional<double> parse_number(std::string_view s) {
  const auto v = parse_double(s);
  return v && std::isfinite(*v) ? v : std::nullopt;
}

std::ifstream open_or_throw(const std::string& what, const std::string& path) {
  std::ifstream in(path);
  if (!in) throw UsageError(fmt::format("{}: cannot open '{}'", what, path));
  return in;
}

void check_slot(double slot_seconds, double rate_scale) {
  if (!(slot_seconds > 0 && std::isfinite(slot_seconds)))
    throw UsageError(fmt::format("--slot-min: the slot length must be positive (got {} s)", slot_seconds));
  if (!(rate_scale > 0 && std::isfinite(rate_scale)))
    throw UsageError(fmt::format("--rate-scale {}: must be positive", rate_scale));
}

}  // namespace

LoadTrace bin_azure_trace(const std::string& path, double slot_seconds, double rate_scale) {
  check_slot(slot_seconds, rate_scale);
  // The workload module's reader: the same parser as the azure:PATH dataset, errors naming the line.
  std::vector<Nanos> times;
  workload::read_azure_trace("--trace azure:" + path, path, [&](const workload::AzureTraceRow& r) {
    times.push_back(r.time_ns);
    return true;
  });
  if (times.empty()) throw UsageError(fmt::format("--trace azure:{}: the trace has no requests", path));
  // Offsets from the first arrival in exact nanoseconds, then seconds (seconds since 1970 as a
  // double would keep only about 0.2 us).
  const Nanos first = *std::min_element(times.begin(), times.end());
  const double span_s = ns_to_s(*std::max_element(times.begin(), times.end()) - first);
  LoadTrace trace;
  trace.slot_seconds = slot_seconds;
  const auto slots = static_cast<std::size_t>(std::floor(span_s / slot_seconds)) + 1;
  std::vector<double> counts(slots, 0);
  for (Nanos t : times) counts[static_cast<std::size_t>(std::floor(ns_to_s(t - first) / slot_seconds))] += 1;
  for (double n : counts) trace.rates.push_back(n / slot_seconds * rate_scale);
  trace.description = fmt::format("azure:{} ({} requests over {:.0f} s, {} slots of {:.4g} s{})", path, times.size(),
                                  span_s, slots, slot_seconds,
                                  rate_scale == 1 ? "" : fmt::format(", rates x {:.4g}", rate_scale));
  return trace;
}

LoadTrace read_rates_csv(const std::string& path, double slot_seconds, double rate_scale) {
  check_slot(slot_seconds, rate_scale);
  auto in = open_or_throw("--trace rates", path);
  LoadTrace trace;
  trace.slot_seconds = slot_seconds;
  std::string line;
  int line_no = 0;
  bool first_row = true;
  while (std::getline(in, line)) {
    ++line_no;
    const std::string_view t = trim(line);
    if (t.empty() || t[0] == '#') continue;
    const auto fields = split(t, ',');
    const auto rate = parse_number(fields.back());
    if (!rate) {
      if (first_row) {  // a header
        first_row = false;
        continue;
      }
      throw UsageError(fmt::format("{}:{}: '{}' is not a request rate (req/s)", path, line_no, fields.back()));
    }
    first_row = false;
    if (*rate < 0) throw UsageError(fmt::format("{}:{}: negative request rate {}", path, line_no, *rate));
    trace.rates.push_back(*rate * rate_scale);
  }
  if (trace.rates.empty()) throw UsageError(fmt::format("--trace rates:{}: no rates in the file", path));
  trace.description = fmt::format("rates:{} ({} slots of {:.4g} s{})", path, trace.rates.size(), slot_seconds,
                                  rate_scale == 1 ? "" : fmt::format(", rates x {:.4g}", rate_scale));
  return trace;
}

LoadTrace load_trace(const std::string& spec, double slot_seconds, double rate_scale) {
  if (spec.rfind("azure:", 0) == 0) return bin_azure_trace(spec.substr(6), slot_seconds, rate_scale);
  if (spec.rfind("rates:", 0) == 0) return read_rates_csv(spec.substr(6), slot_seconds, rate_scale);
  throw UsageError(fmt::format("--trace '{}': expected azure:PATH or rates:PATH", spec));
}

}  // namespace qmeter::plan
