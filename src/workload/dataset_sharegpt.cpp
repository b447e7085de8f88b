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
#include "sharegpt_input.h"

namespace qmeter::workload::detail {

namespace {

constexpr int kMinTokens = 4, kMaxPromptTokens = 1024, kMaxTotalTokens = 2048;

struct Usable {
  std::string prompt;
  int output_len;
};

}  // namespace

DatasetSample load_sharegpt(const std::string& spec, const std::string& path, const DatasetOptions& options) {
  auto token_len = [&](const std::string& s) {
    const int counted = counted_tokens(options, s);
    return counted >= 0 ? counted : estimate_tokens(s);
  };
  std::vector<Usable> usable;
  std::size_t no_human = 0, too_short = 0, too_long = 0;
  const std::size_t items = read_sharegpt(spec, path, [&](std::size_t, const std::vector<ShareGptMessage>& conv) {
    const std::string* prompt = nullptr;
    const std::string* reply = nullptr;
    for (const auto& m : conv) {
      if (!prompt && m.from == ShareGptMessage::From::kHuman) prompt = m.value;
      else if (prompt && !reply && m.from == ShareGptMessage::From::kModel) reply = m.value;
    }
    if (!prompt) {
      ++no_human;
      return;
    }
    const int prompt_len = token_len(*prompt);
    const bool from_reply = reply && !options.fixed_output_len;
    const int output_len = from_reply ? token_len(*reply) : options.output_len;
    if (prompt_len < kMinTokens || (from_reply && output_len < kMinTokens)) {
      ++too_short;
      return;
    }
    if (prompt_len > kMaxPromptTokens || prompt_len + output_len > kMaxTotalTokens) {
      ++too_long;
      return;
    }
    usable.push_back({*prompt, output_len});
  });
  const std::string skipped = fmt::format("{} items; skipped {} without a human turn, {} too short (< {} tokens), "
                                          "{} too long (prompt > {} or prompt + output > {} tokens)",
                                          items, no_human, too_short, kMinTokens, too_long, kMaxPromptTokens, kMaxTotalTokens);
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
