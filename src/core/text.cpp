#include "qmeter/core/text.h"

#include <algorithm>

namespace qmeter {

namespace {
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }
char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }
}  // namespace

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> fields;
  for (;;) {
    const std::size_t at = s.find(sep);
    fields.push_back(trim(s.substr(0, at)));
    if (at == std::string_view::npos) return fields;
    s.remove_prefix(at + 1);
  }
}

std::vector<std::string> split_strings(std::string_view s, char sep) {
  const auto views = split(s, sep);
  return {views.begin(), views.end()};
}

std::vector<std::string> split_nonempty(std::string_view s, char sep) {
  std::vector<std::string> out;
  for (const std::string_view f : split(s, sep))
    if (!f.empty()) out.emplace_back(f);
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return ascii_lower(x) == ascii_lower(y); });
}

std::string server_root_url(std::string_view base_url) {
  std::string_view base = base_url;
  while (!base.empty() && base.back() == '/') base.remove_suffix(1);
  if (base.ends_with("/v1")) base.remove_suffix(3);
  return std::string(base);
}

std::string join_url(std::string_view base_url, std::string_view path) {
  std::string_view base = base_url;
  while (!base.empty() && base.back() == '/') base.remove_suffix(1);
  if (base.ends_with("/v1") && (path == "/v1" || path.starts_with("/v1/"))) base.remove_suffix(3);
  std::string out(base);
  if (!path.empty() && path.front() != '/') out += '/';
  out += path;
  return out;
}

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace qmeter
