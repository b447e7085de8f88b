#include "sharegpt_input.h"

#include <fmt/format.h>

#include "dataset_input.h"
#include "json_input.h"

namespace qmeter::workload::detail {

std::size_t read_sharegpt(const std::string& spec, const std::string& path,
                          const std::function<void(std::size_t, const std::vector<ShareGptMessage>&)>& conversation) {
  const std::string text = read_dataset_file(spec, path);
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) fail(spec, "empty file (expected a JSON list of conversations)");
  const nlohmann::json root = parse_json(spec, text);
  if (!root.is_array())
    fail_at(spec, line_of_offset(text, text.find_first_not_of(" \t\r\n")),
            "expected a JSON list of conversations, got " + json_kind(root));
  const std::vector<std::size_t> item_lines = array_element_lines(text);
  std::vector<ShareGptMessage> messages;
  for (std::size_t i = 0; i < root.size(); ++i) {
    const std::size_t line = i < item_lines.size() ? item_lines[i] : 1;
    auto bad = [&](const std::string& what) { fail_at(spec, line, fmt::format("item {}: {}", i, what)); };
    const nlohmann::json& item = root[i];
    if (!item.is_object()) bad("expected an object with a 'conversations' list, got " + json_kind(item));
    auto conv = item.find("conversations");
    if (conv == item.end() || !conv->is_array()) bad("missing list field 'conversations'");
    messages.clear();
    for (std::size_t j = 0; j < conv->size(); ++j) {
      const nlohmann::json& turn = (*conv)[j];
      if (!turn.is_object()) bad(fmt::format("conversations[{}]: expected an object, got {}", j, json_kind(turn)));
      for (const char* field : {"from", "value"}) {
        auto f = turn.find(field);
        if (f == turn.end() || !f->is_string()) bad(fmt::format("conversations[{}]: missing string field '{}'", j, field));
      }
      const auto& from = turn["from"].get_ref<const std::string&>();
      const auto kind = from == "human" || from == "user"                          ? ShareGptMessage::From::kHuman
                        : from == "gpt" || from == "assistant" || from == "chatgpt" ? ShareGptMessage::From::kModel
                                                                                    : ShareGptMessage::From::kOther;
      messages.push_back({kind, &turn["value"].get_ref<const std::string&>()});
    }
    conversation(i, messages);
  }
  return root.size();
}

}  // namespace qmeter::workload::detail
