#include "qmeter/client/sse_parser.h"

namespace qmeter::client {

namespace {
constexpr std::string_view kBom = "\xEF\xBB\xBF";
}

void SseParser::reset() {
  line_.clear();
  data_.clear();
  event_type_.clear();
  last_id_.clear();
  data_lines_ = 0;
  has_event_type_ = false;
  skip_lf_ = false;
  at_start_ = true;
  unknown_field_lines_ = 0;
}

void SseParser::feed(std::string_view bytes) {
  if (at_start_) {
    // Hold back the first bytes until we know whether they are a BOM (it may arrive split).
    line_.append(bytes);
    const std::size_t n = std::min(line_.size(), kBom.size());
    if (line_.compare(0, n, kBom.substr(0, n)) == 0 && line_.size() < kBom.size()) return;
    at_start_ = false;
    std::string start = std::move(line_);
    line_.clear();
    std::string_view rest = start;
    if (rest.substr(0, kBom.size()) == kBom) rest.remove_prefix(kBom.size());
    feed(rest);
    return;
  }
  while (!bytes.empty()) {
    if (skip_lf_) {
      skip_lf_ = false;
      if (bytes.front() == '\n') {
        bytes.remove_prefix(1);
        continue;
      }
    }
    const std::size_t eol = bytes.find_first_of("\r\n");
    if (eol == std::string_view::npos) {
      line_.append(bytes);
      return;
    }
    skip_lf_ = bytes[eol] == '\r';
    if (line_.empty()) {
      process_line(bytes.substr(0, eol));  // fast path: the whole line is in this read
    } else {
      line_.append(bytes.substr(0, eol));
      process_line(line_);
      line_.clear();
    }
    bytes.remove_prefix(eol + 1);
  }
}

void SseParser::process_line(std::string_view line) {
  if (line.empty()) {
    dispatch();
    return;
  }
  if (line.front() == ':') return;  // comment (servers use them as keep-alive pings)
  std::string_view field = line, value;
  if (const auto colon = line.find(':'); colon != std::string_view::npos) {
    field = line.substr(0, colon);
    value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  }
  if (field == "data") {
    data_.append(value);
    data_.push_back('\n');
    ++data_lines_;
  } else if (field == "event") {
    event_type_.assign(value);
    has_event_type_ = true;
  } else if (field == "id") {
    if (value.find('\0') == std::string_view::npos) last_id_.assign(value);
  } else if (field == "retry") {
    // reconnection delay: meaningless for a one-shot request
  } else {
    ++unknown_field_lines_;
  }
}

void SseParser::dispatch() {
  if (data_lines_ == 0) {
    // Per the spec an event without data is not dispatched; its event type is dropped.
    event_type_.clear();
    has_event_type_ = false;
    return;
  }
  std::string_view data = data_;
  data.remove_suffix(1);  // the \n appended after the last data line
  SseEvent ev{has_event_type_ && !event_type_.empty() ? std::string_view(event_type_) : std::string_view("message"),
              data, last_id_};
  on_event_(ev);
  data_.clear();
  event_type_.clear();
  has_event_type_ = false;
  data_lines_ = 0;
}

}  // namespace qmeter::client
