#pragma once
// Server-Sent Events parser (WHATWG "event stream interpretation"), incremental: bytes can be fed
// in any split (a line, a CRLF pair or an event divided across reads) and the events come out the
// same. Lines end in \n, \r\n or \r; ':' lines are comments; fields data (multi-line, joined by
// \n), event and id are kept, retry is ignored; a blank line dispatches the event.
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace qmeter::client {

struct SseEvent {
  std::string_view type;  // "message" unless an `event:` field said otherwise
  std::string_view data;  // the data lines joined by \n (no trailing \n)
  std::string_view id;    // last event id seen so far in the stream ("" if none)
};

class SseParser {
 public:
  // Called for each dispatched event; the views are valid only during the call.
  using EventHandler = std::function<void(const SseEvent&)>;
  explicit SseParser(EventHandler on_event) : on_event_(std::move(on_event)) {}

  void feed(std::string_view bytes);
  // Lines whose field name is not data/event/id/retry. The spec says to ignore them; an
  // OpenAI-compatible server never sends one, so the client treats them as a malformed stream.
  std::int64_t unknown_field_lines() const { return unknown_field_lines_; }
  // True when bytes of an unfinished line or event are buffered (the stream ended mid-event).
  bool has_partial_event() const { return !line_.empty() || data_lines_ > 0 || has_event_type_; }
  void reset();

 private:
  void process_line(std::string_view line);
  void dispatch();

  EventHandler on_event_;
  std::string line_;        // the unfinished line carried over from the previous feed
  std::string data_;        // data buffer of the event being built
  std::string event_type_;  // `event:` field of the event being built
  std::string last_id_;
  int data_lines_ = 0;
  bool has_event_type_ = false;
  bool skip_lf_ = false;    // the previous byte was \r: a following \n belongs to the same line end
  bool at_start_ = true;    // a UTF-8 BOM is skipped only at the very start of the stream
  std::int64_t unknown_field_lines_ = 0;
};

}  // namespace qmeter::client
