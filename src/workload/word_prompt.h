#pragma once
// Synthetic prompts of an exact token count (the random and azure datasets).
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

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

// Exact token blocks (the prefix and mooncake datasets). Prompts built from words that are each
// exactly one token have a known tokenization: n such words, space-separated, are n tokens,
// and blocks joined by a space tokenize as the concatenation of the blocks' tokens (both
// tokenizer families keep each word's leading space inside its token and never merge across
// it). So two prompts that share a word block share exactly that token block.
class TokenBlockWords {
 public:
  // The words of prompt_words() that `counter` counts as one token (all of them without a
  // counter: the mock counts words). Throws qmeter::Error when fewer than 8 are.
  explicit TokenBlockWords(const std::function<int(const std::string&)>* counter);
  // `tokens` words drawn with the seed: the same seed gives the same block, and the first k
  // words of a longer block equal the block of k words of the same seed.
  std::string block(std::uint64_t seed, int tokens) const;
  std::size_t size() const { return words_.size(); }

 private:
  std::vector<std::string_view> words_;
};

}  // namespace qmeter::workload::detail
