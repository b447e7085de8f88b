#include "word_prompt.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <map>
#include <vector>

#include <fmt/format.h>

#include "qmeter/core/error.h"

namespace qmeter::workload::detail {

namespace {

// Common English words of 2 to 5 letters; all are whole-word tokens (" the" -> one token) in
// the LLaMA-2/3, GPT-2 and cl100k vocabularies. No word is a prefix-merge risk because both
// tokenizer families keep the space that starts each word inside that word's token.
constexpr std::array<std::string_view, 128> kWords = {
    "the",   "of",    "and",   "to",    "in",    "is",    "you",   "that",  "it",    "he",
    "was",   "for",   "on",    "are",   "as",    "with",  "his",   "they",  "at",    "be",
    "this",  "have",  "from",  "or",    "one",   "had",   "by",    "but",   "not",   "what",
    "all",   "were",  "we",    "when",  "your",  "can",   "said",  "there", "use",   "an",
    "each",  "which", "she",   "do",    "how",   "their", "if",    "will",  "up",    "other",
    "about", "out",   "many",  "then",  "them",  "these", "so",    "some",  "her",   "would",
    "make",  "like",  "him",   "into",  "time",  "has",   "look",  "two",   "more",  "go",
    "see",   "no",    "way",   "could", "people", "my",   "than",  "first", "water", "been",
    "call",  "who",   "its",   "now",   "find",  "long",  "down",  "day",   "did",   "get",
    "come",  "made",  "may",   "part",  "over",  "new",   "take",  "only",  "little", "work",
    "know",  "place", "year",  "live",  "me",    "back",  "give",  "most",  "very",  "after",
    "our",   "just",  "name",  "good",  "man",   "think", "say",   "great", "where", "help",
    "much",  "before", "line", "right", "too",   "old",   "same",  "tell",
};

static_assert(kWords.size() == 128, "words are drawn with 7 random bits each");

// A prompt's random word sequence, extended lazily: each engine draw gives 9 words (7 bits each,
// exactly uniform over the 128 words), so the first n words never depend on how many are asked.
class WordSequence {
 public:
  explicit WordSequence(SeededRng& rng) : rng_(rng) {}
  // The first n words, joined by single spaces.
  std::string text(int n) {
    while (static_cast<int>(words_.size()) < n) {
      std::uint64_t bits = rng_.next_u64();
      for (int k = 0; k < 9; ++k, bits >>= 7) words_.push_back(static_cast<std::uint8_t>(bits & 127));
    }
    std::string out;
    out.reserve(static_cast<std::size_t>(n) * 6);
    for (int i = 0; i < n; ++i) {
      if (i) out.push_back(' ');
      out.append(kWords[words_[static_cast<std::size_t>(i)]]);
    }
    return out;
  }

 private:
  SeededRng& rng_;
  std::vector<std::uint8_t> words_;
};

}  // namespace

std::span<const std::string_view> prompt_words() { return kWords; }

WordPrompt build_word_prompt(int target, SeededRng& rng, const std::function<int(const std::string&)>* counter) {
  WordSequence words(rng);
  if (target < 1) target = 1;
  if (!counter || !*counter) return {words.text(target), target};

  std::map<int, int> counts;  // word count -> token count, each evaluated once
  auto count = [&](int n) {
    auto it = counts.find(n);
    if (it == counts.end()) it = counts.emplace(n, (*counter)(words.text(n))).first;
    return it->second;
  };
  auto best = [&] {  // the word count whose token count is closest to target (fewest words on ties)
    auto best_it = counts.begin();
    for (auto it = counts.begin(); it != counts.end(); ++it)
      if (std::abs(it->second - target) < std::abs(best_it->second - target)) best_it = it;
    return best_it->first;
  };
  // Tokens are roughly a * words + b (b: BOS, a chat template; a: tokens per word, 1 for the
  // LLaMA and GPT vocabularies, more for a small vocabulary): the first step corrects the offset,
  // later ones are secant steps through the last two counts.
  int n = target, prev_n = -1, prev_c = 0;
  for (int step = 0; step < 12; ++step) {
    const int c = count(n);
    if (c == target) return {words.text(n), c};
    int next = n + (target - c);
    if (prev_n >= 0 && c != prev_c)
      next = n + static_cast<int>(std::lround(static_cast<double>(target - c) * (n - prev_n) / (c - prev_c)));
    if (next < 1) next = 1;
    if (counts.count(next)) break;
    prev_n = n;
    prev_c = c;
    n = next;
  }
  // Counters where some words take two tokens: scan outward from the closest word count.
  const int centre = best();
  for (int d = 1; d <= 16; ++d)
    for (int cand : {centre - d, centre + d})
      if (cand >= 1 && count(cand) == target) return {words.text(cand), target};
  const int n_best = best();
  return {words.text(n_best), counts.at(n_best)};
}

TokenBlockWords::TokenBlockWords(const std::function<int(const std::string&)>* counter) {
  if (!counter || !*counter) {
    words_.assign(kWords.begin(), kWords.end());
    return;
  }
  // Whatever the counter adds on its own (a BOS token) is counted once on the empty text.
  const int base = (*counter)("");
  for (std::string_view w : kWords)
    if ((*counter)(std::string(w)) - base == 1) words_.push_back(w);
  if (words_.size() < 8)
    throw Error(fmt::format("the server's tokenizer splits {} of the {} prompt words into several tokens; exact token "
                            "blocks need at least 8 single-token words",
                            kWords.size() - words_.size(), kWords.size()));
}

std::string TokenBlockWords::block(std::uint64_t seed, int tokens) const {
  SeededRng rng(seed);
  std::string out;
  out.reserve(static_cast<std::size_t>(std::max(tokens, 0)) * 6);
  const auto n = static_cast<std::int64_t>(words_.size());
  for (int i = 0; i < tokens; ++i) {
    if (i) out.push_back(' ');
    out.append(words_[static_cast<std::size_t>(rng.uniform_int(0, n - 1))]);
  }
  return out;
}

}  // namespace qmeter::workload::detail
