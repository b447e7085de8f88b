#pragma once
// Small text helpers every parser of flags, CSV rows and config values needs, written once.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace qmeter {

// `s` without leading and trailing ASCII whitespace (space, \t, \n, \v, \f, \r). The view points
// into `s`: keep the string alive or copy the result.
std::string_view trim(std::string_view s);

// Every field between `sep`s, trimmed; empty fields are kept ("a,,b," -> a, "", b, ""), so a
// row's field count is what it says. The views point into `s`.
std::vector<std::string_view> split(std::string_view s, char sep);
// The same fields as strings (for callers that keep them after `s` is gone).
std::vector<std::string> split_strings(std::string_view s, char sep);
// Only the non-empty fields, as strings ("a, ,b," -> a, b): list-valued flags.
std::vector<std::string> split_nonempty(std::string_view s, char sep);

// Appends the UTF-8 encoding of a code point (tokenizer byte maps, JSON/Jinja \u escapes).
void append_utf8(std::string& out, std::uint32_t code_point);

// ASCII case-insensitive equality (header names, enum spellings).
bool iequals(std::string_view a, std::string_view b);

// A server's base URL ("http://h:8000", "http://h:8000/", "http://h:8000/v1") joined with an API
// path ("/v1/completions", "/metrics"): no doubled '/', and no doubled "/v1" when the base
// already ends in /v1 (OpenAI SDK style base URLs).
std::string join_url(std::string_view base_url, std::string_view path);
// The server's root ("http://h:8000/v1/" -> "http://h:8000"): where /metrics, /health and
// /tokenize live beside the OpenAI API (vLLM's layout), whichever form of base URL was given.
std::string server_root_url(std::string_view base_url);

}  // namespace qmeter
