// Response framing text of the HTTP server (status lines, headers, JSON error bodies).
#include <fmt/core.h>

#include <boost/beast/http/status.hpp>

#include "net_text.h"

namespace qmeter::net {

namespace http = boost::beast::http;

std::string json_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<int>(c));
        } else {
          out += c;
        }
    }
  }
  return out;
}

std::string error_json(int status, std::string_view message) {
  return fmt::format(R"({{"error":{{"message":"{}","type":"{}","code":{}}}}})", json_escape(message),
                     status >= 500 ? "InternalServerError" : "BadRequestError", status);
}

std::string status_line(int status) {
  const auto beast_reason = http::obsolete_reason(http::int_to_status(static_cast<unsigned>(status)));
  std::string_view reason(beast_reason.data(), beast_reason.size());
  if (reason.empty() || reason.front() == '<') reason = "Unknown";
  return fmt::format("HTTP/1.1 {} {}\r\n", status, reason);
}

void append_headers(std::string& out, const std::vector<HttpHeader>& headers) {
  for (const auto& h : headers) {
    out += h.name;
    out += ": ";
    out += h.value;
    out += "\r\n";
  }
}

}  // namespace qmeter::net
