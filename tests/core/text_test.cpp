// trim / split / join_url / strict number parsing: hand-written cases, including the inputs the
// old std::stoi / std::stod parsing accepted by mistake ("12abc").
#include <gtest/gtest.h>

#include <cmath>

#include "qmeter/core/error.h"
#include "qmeter/core/parse_number.h"
#include "qmeter/core/text.h"

namespace qmeter {
namespace {

TEST(Text, TrimRemovesAsciiWhitespaceOnBothSides) {
  EXPECT_EQ(trim("  a b \t\r\n"), "a b");
  EXPECT_EQ(trim("\v\f x"), "x");
  EXPECT_EQ(trim(" \t "), "");
  EXPECT_EQ(trim(""), "");
}

TEST(Text, SplitKeepsEmptyFieldsAndTrimsEach) {
  EXPECT_EQ(split("a, b ,,c,", ','), (std::vector<std::string_view>{"a", "b", "", "c", ""}));
  EXPECT_EQ(split("", ','), (std::vector<std::string_view>{""}));
  EXPECT_EQ(split_strings("x;y", ';'), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(split_nonempty(" a, ,b,", ','), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(split_nonempty("", ',').empty());
}

TEST(Text, IequalsIgnoresAsciiCaseOnly) {
  EXPECT_TRUE(iequals("TimeStamp", "timestamp"));
  EXPECT_FALSE(iequals("timestamp", "timestamps"));
  EXPECT_FALSE(iequals("a", "b"));
}

TEST(Text, JoinUrlNeitherDoublesSlashesNorV1) {
  EXPECT_EQ(join_url("http://h:8000", "/v1/completions"), "http://h:8000/v1/completions");
  EXPECT_EQ(join_url("http://h:8000//", "/metrics"), "http://h:8000/metrics");
  EXPECT_EQ(join_url("http://h:8000/v1", "/v1/models"), "http://h:8000/v1/models");
  EXPECT_EQ(join_url("http://h:8000/v1/", "/v1/models"), "http://h:8000/v1/models");
  EXPECT_EQ(join_url("http://h:8000/v1", "/health"), "http://h:8000/v1/health");
  EXPECT_EQ(join_url("http://h:8000", "tokenize"), "http://h:8000/tokenize");
  EXPECT_EQ(join_url("http://h/x/v10", "/v1/models"), "http://h/x/v10/v1/models");
}

TEST(Text, ServerRootUrlDropsTheApiPrefix) {
  EXPECT_EQ(server_root_url("http://h:8000/v1/"), "http://h:8000");
  EXPECT_EQ(server_root_url("http://h:8000/v1"), "http://h:8000");
  EXPECT_EQ(server_root_url("http://h:8000/"), "http://h:8000");
  EXPECT_EQ(server_root_url("http://h:8000/x/v10"), "http://h:8000/x/v10");
}

TEST(ParseNumber, AcceptsWholeNumbersOnly) {
  EXPECT_EQ(parse_int64("12"), 12);
  EXPECT_EQ(parse_int64(" -7 "), -7);
  EXPECT_EQ(parse_int64("+3"), 3);
  EXPECT_EQ(parse_int64("12abc"), std::nullopt);
  EXPECT_EQ(parse_int64("1.5"), std::nullopt);
  EXPECT_EQ(parse_int64(""), std::nullopt);
  EXPECT_EQ(parse_int64("+-3"), std::nullopt);
  EXPECT_EQ(parse_int64("0x10"), std::nullopt);
  EXPECT_EQ(parse_int64("9223372036854775808"), std::nullopt);  // INT64_MAX + 1
  EXPECT_EQ(parse_uint64("18446744073709551615"), 18446744073709551615ULL);
  EXPECT_EQ(parse_uint64("-1"), std::nullopt);
  EXPECT_EQ(parse_double("2.5e-3"), 2.5e-3);
  EXPECT_EQ(parse_double("-0.5"), -0.5);
  EXPECT_EQ(parse_double("+4"), 4.0);
  EXPECT_EQ(parse_double("12abc"), std::nullopt);
  EXPECT_EQ(parse_double("1e"), std::nullopt);
  EXPECT_EQ(parse_double("0x1p3"), std::nullopt);
  EXPECT_EQ(parse_double("nan"), std::nullopt);
  EXPECT_EQ(parse_double("1e999"), std::nullopt);
  EXPECT_EQ(parse_double(". "), std::nullopt);
  EXPECT_TRUE(std::isinf(*parse_double("inf")));
  EXPECT_TRUE(std::isinf(*parse_double("-Infinity")));
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const UsageError& e) {
    return e.what();
  }
  return "(no UsageError)";
}

TEST(ParseNumber, FieldFormsNameTheFieldAndTheText) {
  EXPECT_EQ(parse_int_field("8", "threads", 1, 1024), 8);
  EXPECT_EQ(message_of([] { parse_int_field("12abc", "backend.options.threads"); }),
            "backend.options.threads: '12abc' is not an integer");
  EXPECT_EQ(message_of([] { parse_int_field("0", "threads", 1, 64); }), "threads: 0 is out of range [1, 64]");
  EXPECT_EQ(message_of([] { parse_double_field("1.5x", "kv_cache_mb"); }), "kv_cache_mb: '1.5x' is not a number");
  EXPECT_EQ(parse_double_field("1.5", "kv_cache_mb"), 1.5);
  EXPECT_EQ(message_of([] { parse_uint_field("-2", "seed"); }), "seed: '-2' is not a non-negative integer");
}

}  // namespace
}  // namespace qmeter
