// The load over time for `plan schedule`: the Azure trace binned per slot, or a CSV of rates.
#include <fmt/core.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <optional>
#include <sstream>

#include "qmeter/core/error.h"
#include "qmeter/plan/schedule.h"

namespace qmeter::plan {

namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r");
  const auto e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

std::vector<std::string> split_commas(const std::string& line) {
  std::vector<std::string> out;
  std::stringstream ss(line);
  std::string f;
  while (std::getline(ss, f, ',')) out.push_back(trim(f));
  if (!line.empty() && line.back() == ',') out.push_back("");
  return out;
}

std::optional<double> parse_number(const std::string& s) {
  try {
    std::size_t used = 0;
    const double v = std::stod(s, &used);
    if (used != s.size() || !std::isfinite(v)) return std::nullopt;
    return v;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::ifstream open_or_throw(const std::string& what, const std::string& path) {
  std::ifstream in(path);
  if (!in) throw UsageError(fmt::format("{}: cannot open '{}'", what, path));
  return in;
}

// Seconds since 1970 of "YYYY-MM-DD HH:MM:SS[.f]" (or 'T' between), or plain seconds "123.4".
std::optional<double> parse_time_s(const std::string& s) {
  if (s.find('-') == std::string::npos) return parse_number(s);
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, consumed = 0;
  double sec = 0;
  char sep = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2d%c%2d:%2d:%lf%n", &y, &mo, &d, &sep, &h, &mi, &sec, &consumed) != 7 ||
      static_cast<std::size_t>(consumed) != s.size() || (sep != ' ' && sep != 'T') || mo < 1 || mo > 12 || d < 1 ||
      d > 31 || h > 23 || mi > 59 || sec < 0 || sec >= 61)
    return std::nullopt;
  // Days since 1970-01-01 (civil calendar, years starting in March so the leap day is last).
  const int yy = y - (mo <= 2);
  const int era = (yy >= 0 ? yy : yy - 399) / 400;
  const int yoe = yy - era * 400;
  const int doy = (153 * (mo > 2 ? mo - 3 : mo + 9) + 2) / 5 + d - 1;
  const int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  const double days = static_cast<double>(era) * 146097 + doe - 719468;
  return ((days * 24 + h) * 60 + mi) * 60 + sec;
}

void check_slot(double slot_seconds, double rate_scale) {
  if (!(slot_seconds > 0 && std::isfinite(slot_seconds)))
    throw UsageError(fmt::format("--slot-minutes: the slot length must be positive (got {} s)", slot_seconds));
  if (!(rate_scale > 0 && std::isfinite(rate_scale)))
    throw UsageError(fmt::format("--rate-scale {}: must be positive", rate_scale));
}

}  // namespace

LoadTrace bin_azure_trace(const std::string& path, double slot_seconds, double rate_scale) {
  check_slot(slot_seconds, rate_scale);
  auto in = open_or_throw("--trace azure", path);
  std::string line;
  int line_no = 0;
  std::optional<std::size_t> time_col;
  std::vector<double> times;
  while (std::getline(in, line)) {
    ++line_no;
    if (trim(line).empty()) continue;
    const auto fields = split_commas(line);
    if (!time_col) {
      for (std::size_t i = 0; i < fields.size(); ++i) {
        std::string lower = fields[i];
        for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        if (lower == "timestamp") time_col = i;
      }
      if (!time_col)
        throw UsageError(fmt::format("{}:{}: no TIMESTAMP column in the header '{}' (expected "
                                     "TIMESTAMP,ContextTokens,GeneratedTokens)",
                                     path, line_no, trim(line)));
      continue;
    }
    if (*time_col >= fields.size())
      throw UsageError(fmt::format("{}:{}: the row has {} fields, no TIMESTAMP field", path, line_no, fields.size()));
    const auto t = parse_time_s(fields[*time_col]);
    if (!t)
      throw UsageError(fmt::format("{}:{}: TIMESTAMP '{}' is not 'YYYY-MM-DD HH:MM:SS[.fraction]' or seconds", path,
                                   line_no, fields[*time_col]));
    times.push_back(*t);
  }
  if (times.empty()) throw UsageError(fmt::format("--trace azure:{}: the trace has no requests", path));
  const double first = *std::min_element(times.begin(), times.end());
  const double last = *std::max_element(times.begin(), times.end());
  LoadTrace trace;
  trace.slot_seconds = slot_seconds;
  const auto slots = static_cast<std::size_t>(std::floor((last - first) / slot_seconds)) + 1;
  std::vector<double> counts(slots, 0);
  for (double t : times) counts[static_cast<std::size_t>(std::floor((t - first) / slot_seconds))] += 1;
  for (double n : counts) trace.rates.push_back(n / slot_seconds * rate_scale);
  trace.description = fmt::format("azure:{} ({} requests over {:.0f} s, {} slots of {:.4g} s{})", path, times.size(),
                                  last - first, slots, slot_seconds,
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
    const std::string t = trim(line);
    if (t.empty() || t[0] == '#') continue;
    const auto fields = split_commas(t);
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
