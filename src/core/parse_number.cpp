#include "qmeter/core/parse_number.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>

#include "qmeter/core/error.h"
#include "qmeter/core/text.h"

namespace qmeter {

namespace {

// from_chars refuses a leading '+', which people write ("+3", "1e+3" is fine already).
std::string_view without_plus(std::string_view s) {
  if (s.size() > 1 && s.front() == '+' && s[1] != '-' && s[1] != '+') s.remove_prefix(1);
  return s;
}

template <typename T>
std::optional<T> parse_integer(std::string_view text) {
  const std::string_view s = without_plus(trim(text));
  T v{};
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 10);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

std::optional<double> parse_double(std::string_view text) {
  const std::string_view s = without_plus(trim(text));
  double v = 0;
  // std::chars_format::general: no hex floats ("0x1p3" would otherwise read as 0).
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, std::chars_format::general);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || std::isnan(v)) return std::nullopt;
  return v;
}

std::optional<std::int64_t> parse_int64(std::string_view text) { return parse_integer<std::int64_t>(text); }
std::optional<std::uint64_t> parse_uint64(std::string_view text) {
  if (trim(text).starts_with('-')) return std::nullopt;  // from_chars would refuse it too; say so plainly
  return parse_integer<std::uint64_t>(text);
}

double parse_double_field(std::string_view text, std::string_view field) {
  if (auto v = parse_double(text)) return *v;
  throw UsageError(fmt::format("{}: '{}' is not a number", field, text));
}

std::int64_t parse_int_field(std::string_view text, std::string_view field, std::int64_t lo, std::int64_t hi) {
  const auto v = parse_int64(text);
  if (!v) throw UsageError(fmt::format("{}: '{}' is not an integer", field, text));
  if (*v < lo || *v > hi) throw UsageError(fmt::format("{}: {} is out of range [{}, {}]", field, *v, lo, hi));
  return *v;
}

std::uint64_t parse_uint_field(std::string_view text, std::string_view field) {
  if (auto v = parse_uint64(text)) return *v;
  throw UsageError(fmt::format("{}: '{}' is not a non-negative integer", field, text));
}

}  // namespace qmeter
