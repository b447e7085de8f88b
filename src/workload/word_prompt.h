#pragma once
// Synthetic prompts of an exact token count (the random and azure datasets).
#include <functional>
#include <span>
#include <string>
#include <string_view>

#include "qmeter/workload/sampling.h"

namespace qmeter::workload::detail {

// The built-in vocabulary: common short lowercase English words, each a single token (with its
// leading space) in the LLaMA SentencePiece and GPT BPE vocabularies, and each one
// whitespace-separated word for the mock server, which counts words.
std::span<const std::string_view> prompt_words();

struct WordPrompt {
  std::string text;
  int tokens = 0;  // what the counter said for `text` (== target unless it could not be reached)
};

// `target` random words from prompt_words() joined by single spaces, drawn with `rng`. With a
// counter, the word count is adjusted (secant steps on the count's offset, then a scan of the
// nearest word counts) until counter(text) == target; if no word count gives exactly target (a
// counter that jumps over it), the closest is kept and `tokens` says what it counts.
WordPrompt build_word_prompt(int target, SeededRng& rng, const std::function<int(const std::string&)>* counter);

}  // namespace qmeter::workload::detail
