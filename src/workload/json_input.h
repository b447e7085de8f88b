#pragma once
// JSON helpers for the JSON datasets (private: keeps nlohmann out of public headers).
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace qmeter::workload::detail {

// Parses `text`; on a syntax error throws UsageError "<spec> line <n>: invalid JSON: <reason>",
// with n = first_line + the line of the error inside `text`.
nlohmann::json parse_json(std::string_view spec, std::string_view text, std::size_t first_line = 1);

// For a valid JSON document whose top level is an array: the 1-based line on which each element
// starts (nlohmann keeps no positions, so this is a small scan that skips strings).
std::vector<std::size_t> array_element_lines(std::string_view text);

// "string", "number", ... for messages like "expected an object, got a string".
std::string json_kind(const nlohmann::json& value);

}  // namespace qmeter::workload::detail
