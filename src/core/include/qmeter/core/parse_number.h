#pragma once
// Strict number parsing, written once: the whole text (surrounding whitespace aside) must be the
// number, so "12abc", "1e", "0x10" and "" are refused instead of read as 12, 1, 0 (std::stoi and
// std::stod stop at the first character they cannot use). The *_field forms throw a UsageError
// that names the field the caller was given ("backend.options.threads: 'x' is not an integer").
#include <cstdint>
#include <limits>
#include <optional>
#include <string_view>

namespace qmeter {

// Decimal or scientific ("12", "-0.5", "2.5e-3", "+3"); "inf" / "infinity" in any case, with a
// sign; NaN is refused. Values past the double range are refused, not rounded to infinity.
std::optional<double> parse_double(std::string_view text);
// Base-10 integers with an optional sign; values outside the type are refused.
std::optional<std::int64_t> parse_int64(std::string_view text);
std::optional<std::uint64_t> parse_uint64(std::string_view text);

// Throw UsageError "FIELD: 'TEXT' is not a number" (or "... is not an integer", or "... is out of
// range [LO, HI]").
double parse_double_field(std::string_view text, std::string_view field);
std::int64_t parse_int_field(std::string_view text, std::string_view field,
                             std::int64_t lo = std::numeric_limits<std::int64_t>::min(),
                             std::int64_t hi = std::numeric_limits<std::int64_t>::max());
std::uint64_t parse_uint_field(std::string_view text, std::string_view field);

}  // namespace qmeter
