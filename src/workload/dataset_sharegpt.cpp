// `sharegpt:PATH`: ShareGPT JSON, a list of {"conversations": [{"from": ..., "value": ...}, ...]}.
// The prompt is the first human turn, the output length the first gpt reply after it (its token
// count, estimated when no counter is given) or --output-len when there is none or when
// fixed_output_len is set. Like vLLM's sampler, items whose prompt is under 4 tokens, whose
// reply is under 4 tokens, whose prompt is over 1024 tokens or whose prompt + output is over
// 2048 tokens are skipped; num_prompts are then drawn with the seed (a shuffle, reshuffled when
// the usable items run out).
#include <fmt/format.h>

#include "dataset_input.h"
#include "datasets.h"
#include "json_input.h"

namespace qmeter::workload::detail {

namespace {

constexpr int kMinTokens = 4, kMaxPromptTokens = 1024, kMaxTotalTokens = 2048;

bool is_human(const std::string& from) { return from == "human" || from == "user"; }
bool is_model(const std::string& from) { return from == "gpt" || from == "assistant" || from == "chatgpt"; }

struct Usable {
  std::string prompt;
  int output_len;
};

}  // namespace

DatasetSample load_sharegpt(const std::string& spec, const std::string& path, const DatasetOptions& options) {
  const std::string text = read_dataset_file(spec, path);
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) fail(spec, "empty file (expected a JSON list of conversations)");
  const nlohmann::json root = parse_json(spec, text);
  if (!root.is_array())
    fail_at(spec, line_of_offset(text, text.find_first_not_of(" \t\r\n")),
            "expected a JSON list of conversations, got " + json_kind(root));
  const std::vector<std::size_t> item_lines = array_element_lines(text);

  auto token_len = [&](const std::string& s) {
    const int counted = counted_tokens(options, s);
    return counted >= 0 ? counted : estimate_tokens(s);
  };
  std::vector<Usable> usable;
  std::size_t no_human = 0, too_short = 0, too_long = 0;
  for (std::size_t i = 0; i < root.size(); ++i) {
    const std::size_t line = i < item_lines.size() ? item_lines[i] : 1;
    auto bad = [&](const std::string& what) { fail_at(spec, line, fmt::format("item {}: {}", i, what)); };
    const nlohmann::json& item = root[i];
    if (!item.is_object()) bad("expected an object with a 'conversations' list, got " + json_kind(item));
    auto conv = item.find("conversations");
    if (conv == item.end() || !conv->is_array()) bad("missing list field 'conversations'");

    const std::string* prompt = nullptr;
    const std::string* reply = nullptr;
    for (std::size_t j = 0; j < conv->size(); ++j) {
      const nlohmann::json& turn = (*conv)[j];
      if (!turn.is_object()) bad(fmt::format("conversations[{}]: expected an object, got {}", j, json_kind(turn)));
      for (const char* field : {"from", "value"}) {
        auto f = turn.find(field);
        if (f == turn.end() || !f->is_string()) bad(fmt::format("conversations[{}]: missing string field '{}'", j, field));
      }
      const auto& from = turn["from"].get_ref<const std::string&>();
      const auto& value = turn["value"].get_ref<const std::string&>();
      if (!prompt && is_human(from)) prompt = &value;
      else if (prompt && !reply && is_model(from)) reply = &value;
    }
    if (!prompt) {
      ++no_human;
      continue;
    }
    const int prompt_len = token_len(*prompt);
    const bool from_reply = reply && !options.fixed_output_len;
    const int output_len = from_reply ? token_len(*reply) : options.output_len;
    if (prompt_len < kMinTokens || (from_reply && output_len < kMinTokens)) {
      ++too_short;
      continue;
    }
    if (prompt_len > kMaxPromptTokens || prompt_len + output_len > kMaxTotalTokens) {
      ++too_long;
      continue;
    }
    usable.push_back({*prompt, output_len});
  }
  const std::string skipped = fmt::format("{} items; skipped {} without a human turn, {} too short (< {} tokens), "
                                          "{} too long (prompt > {} or prompt + output > {} tokens)",
                                          root.size(), no_human, too_short, kMinTokens, too_long, kMaxPromptTokens, kMaxTotalTokens);
  if (usable.empty()) fail(spec, "no usable conversations (" + skipped + ")");

  SeededRng rng(derive_seed(options.seed, kPickStream));
  DatasetSample sample;
  for (std::size_t pick : shuffled_picks(usable.size(), static_cast<std::size_t>(options.num_prompts), rng)) {
    Prompt p;
    p.text = usable[pick].prompt;
    p.prompt_tokens = counted_tokens(options, p.text);
    p.max_tokens = usable[pick].output_len;
    sample.prompts.push_back(std::move(p));
  }
  sample.description = fmt::format("{} ({} usable of {})", spec, usable.size(), skipped);
  return sample;
}

}  // namespace qmeter::workload::detail
