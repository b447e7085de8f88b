#include "qmeter/net/request_body.h"

#include <fmt/core.h>

namespace qmeter::net {

namespace {

// Length of the UTF-8 sequence starting at s[i], or 0 when it is not valid UTF-8 (overlong
// forms, surrogates and code points past U+10FFFF included).
std::size_t utf8_sequence_length(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return 1;
  std::size_t n = 0;
  unsigned lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (b(i + 1) < lo || b(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k) {
    if (b(i + k) < 0x80 || b(i + k) > 0xBF) return 0;
  }
  return n;
}

}  // namespace

std::optional<std::string> json_body_problem(std::string_view body, int max_nesting) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (std::size_t i = 0; i < body.size();) {
    const std::size_t n = utf8_sequence_length(body, i);
    if (n == 0) return fmt::format("the request body is not valid UTF-8 (byte {})", i);
    if (n == 1) {
      const char c = body[i];
      if (in_string) {
        if (escaped) {
          escaped = false;
        } else if (c == '\\') {
          escaped = true;
        } else if (c == '"') {
          in_string = false;
        }
      } else if (c == '"') {
        in_string = true;
      } else if (c == '[' || c == '{') {
        if (++depth > max_nesting) {
          return fmt::format("the request body nests arrays and objects deeper than {} levels", max_nesting);
        }
      } else if (c == ']' || c == '}') {
        --depth;
      }
    }
    i += n;
  }
  return std::nullopt;
}

}  // namespace qmeter::net
