#pragma once
// The ShareGPT JSON layout shared by `sharegpt` and `sharegpt-multiturn`: a list of
// {"conversations": [{"from": ..., "value": ...}, ...]}, validated with errors naming line and item.
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace qmeter::workload::detail {

struct ShareGptMessage {
  enum class From { kHuman, kModel, kOther };  // human/user, gpt/assistant/chatgpt, anything else
  From from;
  const std::string* value;  // valid during the callback
};

// Calls `conversation` for each item in file order; returns the number of items. Throws
// UsageError naming the file, line and item of a malformed one.
std::size_t read_sharegpt(const std::string& spec, const std::string& path,
                          const std::function<void(std::size_t item, const std::vector<ShareGptMessage>&)>& conversation);

}  // namespace qmeter::workload::detail
