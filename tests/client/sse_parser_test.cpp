// The SSE parser must give the same events for every way the byte stream can be split into reads.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "qmeter/client/sse_parser.h"

namespace qmeter::client {
namespace {

struct Ev {
  std::string type, data, id;
  bool operator==(const Ev&) const = default;
};
std::ostream& operator<<(std::ostream& os, const Ev& e) {
  return os << "{" << e.type << "|" << e.data << "|" << e.id << "}";
}

struct Collected {
  std::vector<Ev> events;
  std::int64_t unknown = 0;
  bool partial = false;
};

Collected parse_in_pieces(const std::string& stream, const std::vector<std::size_t>& cuts) {
  Collected c;
  SseParser p([&](const SseEvent& e) { c.events.push_back({std::string(e.type), std::string(e.data), std::string(e.id)}); });
  std::size_t prev = 0;
  for (std::size_t cut : cuts) {
    p.feed(std::string_view(stream).substr(prev, cut - prev));
    prev = cut;
  }
  p.feed(std::string_view(stream).substr(prev));
  c.unknown = p.unknown_field_lines();
  c.partial = p.has_partial_event();
  return c;
}

// Every feature at once: BOM, CRLF / LF / lone CR line ends, comments, multi-line data, event and
// id fields, retry, a field without a colon, an event without data, [DONE], and a trailing
// unfinished event.
const std::string kStream =
    "\xEF\xBB\xBF: a comment\r\n"
    "data: {\"a\":1}\r\n\r\n"
    "event: error\ndata: line1\ndata:  line2\n\n"
    "id: 7\ndata:no-space\r\r"
    "retry: 100\n"
    "event: ignored-no-data\n\n"
    ": ping\n\n"
    "data\n\n"
    "data: [DONE]\r\n\r\n"
    "data: unfinished";

const std::vector<Ev> kExpected = {
    {"message", "{\"a\":1}", ""},
    {"error", "line1\n line2", ""},
    {"message", "no-space", "7"},
    {"message", "", "7"},
    {"message", "[DONE]", "7"},
};

TEST(SseParser, ParsesEveryFieldKindInOneRead) {
  const Collected c = parse_in_pieces(kStream, {});
  EXPECT_EQ(c.events, kExpected);
  EXPECT_EQ(c.unknown, 0);
  EXPECT_TRUE(c.partial);  // "data: unfinished" never got its blank line
}

TEST(SseParser, EverySingleSplitGivesTheSameEvents) {
  for (std::size_t i = 0; i <= kStream.size(); ++i) {
    const Collected c = parse_in_pieces(kStream, {i});
    ASSERT_EQ(c.events, kExpected) << "split at " << i;
    ASSERT_TRUE(c.partial);
  }
}

TEST(SseParser, EveryPairOfSplitsGivesTheSameEvents) {
  for (std::size_t i = 0; i <= kStream.size(); ++i)
    for (std::size_t j = i; j <= kStream.size(); ++j) ASSERT_EQ(parse_in_pieces(kStream, {i, j}).events, kExpected) << i << "," << j;
}

TEST(SseParser, ByteByByteGivesTheSameEvents) {
  std::vector<std::size_t> cuts;
  for (std::size_t i = 1; i < kStream.size(); ++i) cuts.push_back(i);
  EXPECT_EQ(parse_in_pieces(kStream, cuts).events, kExpected);
}

TEST(SseParser, CrLfSplitAcrossReadsIsOneLineEnd) {
  // "\r" ends a read and "\n" starts the next: one line end, not an extra blank line that would
  // dispatch early. Here the data line is followed by CR | LF then a second data line.
  const Collected c = parse_in_pieces("data: a\r\ndata: b\r\n\r\n", {8});
  ASSERT_EQ(c.events.size(), 1u);
  EXPECT_EQ(c.events[0].data, "a\nb");
}

TEST(SseParser, CountsUnknownFieldLines) {
  const Collected c = parse_in_pieces("data: x\nthis is garbage\nfoo: bar\n\n", {});
  ASSERT_EQ(c.events.size(), 1u);
  EXPECT_EQ(c.unknown, 2);
}

TEST(SseParser, BomOnlySkippedAtStart) {
  const Collected c = parse_in_pieces("data: a\n\n\xEF\xBB\xBF" "data: b\n\n", {1, 2});
  ASSERT_EQ(c.events.size(), 1u);  // a BOM later in the stream makes an unknown field name
  EXPECT_EQ(c.unknown, 1);
}

TEST(SseParser, CompleteStreamLeavesNothingPartial) {
  const Collected c = parse_in_pieces("data: a\n\ndata: [DONE]\n\n", {3});
  EXPECT_FALSE(c.partial);
  EXPECT_EQ(c.events.size(), 2u);
}

}  // namespace
}  // namespace qmeter::client
