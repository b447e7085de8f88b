// SSE stream parser + stream decoder: the bytes are one streamed response body. Checks that the
// parser gives the same events whether the body arrives whole or one byte at a time (its
// documented property), and that the decoder's fast and general paths agree on every event.
#include <string>
#include <vector>

#include "decoder_agreement.h"
#include "fuzz_support.h"
#include "qmeter/client/sse_parser.h"

namespace {

struct Event {
  std::string type, data, id;
  bool operator==(const Event&) const = default;
};

std::vector<Event> parse(std::string_view body, std::size_t piece, qmeter::fuzz::DecoderPair* decoders,
                         std::int64_t& unknown, bool& partial) {
  std::vector<Event> events;
  qmeter::client::SseParser parser([&](const qmeter::client::SseEvent& e) {
    events.push_back({std::string(e.type), std::string(e.data), std::string(e.id)});
    if (decoders) decoders->on_event(e.type, e.data, static_cast<qmeter::Nanos>(events.size()));
  });
  for (std::size_t at = 0; at < body.size(); at += piece) parser.feed(body.substr(at, piece));
  unknown = parser.unknown_field_lines();
  partial = parser.has_partial_event();
  return events;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto body = qmeter::fuzz::as_text(data, size);
  qmeter::fuzz::DecoderPair decoders;
  std::int64_t unknown_whole = 0, unknown_bytes = 0;
  bool partial_whole = false, partial_bytes = false;
  const auto whole = parse(body, body.size() ? body.size() : 1, &decoders, unknown_whole, partial_whole);
  const auto bytewise = parse(body, 1, nullptr, unknown_bytes, partial_bytes);
  if (whole != bytewise || unknown_whole != unknown_bytes || partial_whole != partial_bytes) {
    std::fprintf(stderr, "fuzz: SSE events differ between a whole feed (%zu) and byte-by-byte feeds (%zu)\n",
                 whole.size(), bytewise.size());
    std::abort();
  }
  return 0;
}
