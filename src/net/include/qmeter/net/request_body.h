#pragma once
// Checks a server makes on a JSON request body before handing it to a JSON parser. nlohmann's
// values copy and destroy recursively, so 100,000 nested brackets in a request would overflow an
// io thread's stack; and text that is not UTF-8 parses but fails later, on the way out, as a 500.
#include <optional>
#include <string>
#include <string_view>

namespace qmeter::net {

inline constexpr int kMaxJsonNesting = 64;  // OpenAI request bodies nest 4 or 5 levels deep

// Why `body` must be refused (a message for a 400 reply), or nullopt when it may be parsed.
// Checks that it is UTF-8 and that its arrays and objects nest at most `max_nesting` deep
// (brackets inside strings do not count). Does not check that it is JSON.
std::optional<std::string> json_body_problem(std::string_view body, int max_nesting = kMaxJsonNesting);

}  // namespace qmeter::net
