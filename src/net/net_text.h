#pragma once
// Small text helpers shared by the net module's sources.
#include <string>
#include <string_view>
#include <vector>

#include "qmeter/net/http_server.h"

namespace qmeter::net {

// ASCII case-insensitive equality (HTTP header names and tokens).
inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// The HTTP server's response framing (http_text.cpp).
std::string json_escape(std::string_view s);
// An OpenAI-style error body: {"error": {"message", "type", "code"}}.
std::string error_json(int status, std::string_view message);
std::string status_line(int status);  // "HTTP/1.1 404 Not Found\r\n"
void append_headers(std::string& out, const std::vector<HttpHeader>& headers);

}  // namespace qmeter::net
