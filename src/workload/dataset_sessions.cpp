// Multi-turn conversations (each conversation is a session; num_prompts = conversations):
//   sharegpt-multiturn:PATH  every human turn of each ShareGPT conversation, in file order; a turn
//                            asks for as many tokens as the gpt reply after it had (--output-len
//                            when there is none or with fixed_output_len). Conversations without a
//                            human turn are skipped; they start over when num_prompts exceeds them.
//   multiturn                `turns` turns per conversation: user turns of --input-len tokens and
//                            replies of --output-len tokens (each +- --range-ratio), random words.
// Every turn after the first waits think_time_s after the previous reply. Each Prompt holds only
// its own user message: the client sends it after the history (schedule.h, Prompt::session).
#include <cmath>

#include <fmt/format.h>

#include "dataset_input.h"
#include "qmeter/core/error.h"
#include "datasets.h"
#include "sharegpt_input.h"
#include "word_prompt.h"

namespace qmeter::workload::detail {

namespace {

Nanos think_ns(const DatasetOptions& o) {
  if (!(o.think_time_s >= 0 && std::isfinite(o.think_time_s)))
    throw UsageError(fmt::format("--think-time must be >= 0 seconds, got {}", o.think_time_s));
  return static_cast<Nanos>(std::llround(o.think_time_s * 1e9));
}

Prompt turn_prompt(std::string text, int max_tokens, std::int64_t session, int turn, Nanos think) {
  Prompt p;
  p.text = std::move(text);
  p.max_tokens = max_tokens;
  p.session = session;
  p.turn = turn;
  p.think_ns = turn == 0 ? 0 : think;
  return p;
}

}  // namespace

DatasetSample load_sharegpt_multiturn(const std::string& spec, const std::string& path, const DatasetOptions& options) {
  const Nanos think = think_ns(options);
  struct Turn {
    std::string user;
    int reply_tokens;  // -1: no reply in the data
  };
  std::vector<std::vector<Turn>> conversations;
  const std::size_t items = read_sharegpt(spec, path, [&](std::size_t, const std::vector<ShareGptMessage>& conv) {
    std::vector<Turn> turns;
    for (const auto& m : conv) {
      if (m.from == ShareGptMessage::From::kHuman) {
        turns.push_back({*m.value, -1});
      } else if (m.from == ShareGptMessage::From::kModel && !turns.empty() && turns.back().reply_tokens < 0) {
        const int counted = counted_tokens(options, *m.value);
        turns.back().reply_tokens = std::max(1, counted >= 0 ? counted : estimate_tokens(*m.value));
      }
    }
    if (!turns.empty()) conversations.push_back(std::move(turns));
  });
  if (conversations.empty()) fail(spec, fmt::format("no conversations with a human turn ({} items)", items));

  DatasetSample sample;
  std::int64_t session = 0;
  std::size_t turns_total = 0;
  for (std::size_t pick : in_order_picks(conversations.size(), static_cast<std::size_t>(options.num_prompts))) {
    const auto& conv = conversations[pick];
    for (std::size_t k = 0; k < conv.size(); ++k) {
      const int out = conv[k].reply_tokens < 0 || options.fixed_output_len ? options.output_len : conv[k].reply_tokens;
      Prompt p = turn_prompt(conv[k].user, out, session, static_cast<int>(k), think);
      p.prompt_tokens = counted_tokens(options, p.text);
      sample.prompts.push_back(std::move(p));
    }
    turns_total += conv.size();
    ++session;
  }
  sample.description = fmt::format("{} ({} conversations, {} turns; {} of {} items have a human turn), think {} s", spec,
                                   session, turns_total, conversations.size(), items, options.think_time_s);
  return sample;
}

DatasetSample load_multiturn(const std::string& spec, const std::string& path, const DatasetOptions& options) {
  const Nanos think = think_ns(options);
  if (options.turns < 1) throw UsageError(fmt::format("{} must be at least 1, got {}", options.field_names("turns"), options.turns));
  if (options.input_len < 1)
    throw UsageError(fmt::format("{} must be at least 1, got {}", options.field_names("input_len"), options.input_len));
  const LengthRange in = length_range(options.input_len, options.range_ratio);
  const LengthRange out = length_range(options.output_len, options.range_ratio);
  SeededRng lengths(derive_seed(options.seed, kSessionLengthStream));
  const TokenBlockWords words(options.token_counter);
  DatasetSample sample;
  std::uint64_t prompt_index = 0;
  for (std::int64_t s = 0; s < options.num_prompts; ++s) {
    for (int k = 0; k < options.turns; ++k) {
      const int input_len = static_cast<int>(lengths.uniform_int(in.lo, in.hi));
      const int output_len = static_cast<int>(lengths.uniform_int(out.lo, out.hi));
      // Single-token words: exactly input_len tokens, with or without a counter.
      std::string text = words.block(derive_seed(options.seed, kPromptWordsBase + prompt_index++), input_len);
      Prompt p = turn_prompt(std::move(text), output_len, s, k, think);
      p.prompt_tokens = input_len;
      sample.prompts.push_back(std::move(p));
    }
  }
  sample.description = fmt::format("multiturn {} conversations x {} turns, user in={} reply out={}{}, think {} s",
                                   options.num_prompts, options.turns, options.input_len, options.output_len,
                                   options.range_ratio > 0 ? fmt::format(" range={}", options.range_ratio) : "",
                                   options.think_time_s);
  return sample;
}

DatasetSample load_prefix(const std::string& spec, const std::string& path, const DatasetOptions& options) {
  const int groups = options.num_prefixes;
  const FieldNames& names = options.field_names;
  if (groups < 1) throw UsageError(fmt::format("{} must be at least 1, got {}", names("num_prefixes"), groups));
  if (options.prefix_len < 1)
    throw UsageError(fmt::format("{} must be at least 1, got {}", names("prefix_len"), options.prefix_len));
  if (options.input_len < 1)
    throw UsageError(fmt::format("{} (the suffix length) must be at least 1, got {}", names("input_len"), options.input_len));
  if (options.num_prompts % groups != 0)
    throw UsageError(fmt::format("{} {} must be a multiple of {} {} (each prefix is shared by the same number of requests)",
                                 names("num_prompts"), options.num_prompts, names("num_prefixes"), groups));
  const TokenBlockWords words(options.token_counter);
  std::vector<std::string> prefixes;
  for (int g = 0; g < groups; ++g)
    prefixes.push_back(words.block(derive_seed(options.seed, kPrefixBase + static_cast<std::uint64_t>(g)), options.prefix_len));
  // Request i belongs to group i % groups; a seeded shuffle then interleaves the groups, so the
  // arrival process sends them mixed (as in a server shared by several applications).
  std::vector<std::size_t> order(static_cast<std::size_t>(options.num_prompts));
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  SeededRng shuffle(derive_seed(options.seed, kShuffleStream));
  for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[static_cast<std::size_t>(shuffle.uniform_int(0, static_cast<std::int64_t>(i) - 1))]);

  DatasetSample sample;
  for (std::size_t i : order) {
    const std::size_t g = i % static_cast<std::size_t>(groups);
    const std::string suffix = words.block(derive_seed(options.seed, kPromptWordsBase + i), options.input_len);
    Prompt p;
    p.text = prefixes[g] + " " + suffix;
    p.messages = {{"system", prefixes[g]}, {"user", suffix}};
    p.prompt_tokens = options.prefix_len + options.input_len;
    p.max_tokens = options.output_len;
    sample.prompts.push_back(std::move(p));
  }
  sample.description = fmt::format("prefix {} prefixes of {} tokens x {} requests each, suffix {} tokens, out={}", groups,
                                   options.prefix_len, options.num_prompts / groups, options.input_len, options.output_len);
  return sample;
}

}  // namespace qmeter::workload::detail
