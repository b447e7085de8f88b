#include "json_input.h"

#include <cctype>

#include "dataset_input.h"

namespace qmeter::workload::detail {

nlohmann::json parse_json(std::string_view spec, std::string_view text, std::size_t first_line) {
  try {
    return nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::parse_error& e) {
    // e.byte is the 1-based index of the byte where parsing stopped.
    const std::size_t offset = e.byte > 0 ? e.byte - 1 : 0;
    std::string reason = e.what();
    // Drop nlohmann's "[json.exception.parse_error.101] parse error at line 1, column 5: " prefix:
    // the line is ours (it counts from the file, not from this fragment).
    if (auto colon = reason.find(": ", reason.find("parse error")); colon != std::string::npos) reason = reason.substr(colon + 2);
    const std::size_t line_start = offset == 0 ? std::string_view::npos : text.rfind('\n', offset - 1);
    const std::size_t column = line_start == std::string_view::npos ? offset + 1 : offset - line_start;
    fail_at(spec, first_line + line_of_offset(text, offset) - 1, "invalid JSON at column " + std::to_string(column) + ": " + reason);
  }
}

std::vector<std::size_t> array_element_lines(std::string_view text) {
  std::vector<std::size_t> lines;
  std::size_t line = 1;
  int depth = 0;
  bool in_string = false, expect_element = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\n') ++line;
    if (in_string) {
      if (c == '\\') ++i;  // an escaped character (never a newline in valid JSON)
      else if (c == '"') in_string = false;
      continue;
    }
    if (std::isspace(static_cast<unsigned char>(c))) continue;
    if (depth == 1 && expect_element && c != ']') {
      lines.push_back(line);
      expect_element = false;
    }
    switch (c) {
      case '"': in_string = true; break;
      case '[': case '{':
        if (++depth == 1) expect_element = true;
        break;
      case ']': case '}': --depth; break;
      case ',':
        if (depth == 1) expect_element = true;
        break;
      default: break;
    }
  }
  return lines;
}

std::string json_kind(const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::null: return "null";
    case nlohmann::json::value_t::object: return "an object";
    case nlohmann::json::value_t::array: return "a list";
    case nlohmann::json::value_t::string: return "a string";
    case nlohmann::json::value_t::boolean: return "a boolean";
    default: return "a number";
  }
}

}  // namespace qmeter::workload::detail
