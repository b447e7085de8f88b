#pragma once
// Building blocks shared by the tokenizers (private to the engine): UTF-8 helpers, the
// byte-fallback piece syntax, GPT-2's byte-to-unicode map, the BPE merge loop, the special-token
// splitter and the PCRE2 pre-tokenizer splitter.
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <queue>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "qmeter/core/text.h"  // append_utf8

namespace qmeter::engine::detail {

// U+2581 LOWER ONE EIGHTH BLOCK: SentencePiece's visible space.
inline constexpr std::string_view kSpmSpace = "\xE2\x96\x81";

// Length of the UTF-8 sequence a lead byte announces (1 for ASCII and for stray bytes).
inline int utf8_sequence_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead & 0xE0) == 0xC0) return 2;
  if ((lead & 0xF0) == 0xE0) return 3;
  if ((lead & 0xF8) == 0xF0) return 4;
  return 1;
}
// Byte length of the (possibly invalid) character starting at text[pos], never past the end.
std::size_t utf8_char_length_at(std::string_view text, std::size_t pos);
// Length of the longest prefix of `s` that is valid UTF-8 made of whole characters.
std::size_t valid_utf8_prefix(std::string_view s);

// "<0x41>" -> 0x41; anything else -> nullopt.
std::optional<uint8_t> parse_byte_piece(std::string_view piece);
std::string byte_piece_name(uint8_t b);  // 0x41 -> "<0x41>"

std::string replace_all(std::string_view s, std::string_view from, std::string_view to);

// GPT-2's reversible map from bytes to printable code points (byte-level BPE vocabularies).
const std::array<std::string, 256>& byte_level_chars();
// Inverse of byte_level_chars on a whole piece; characters outside the map are kept as they are.
std::string byte_level_decode(std::string_view piece);

// Hash map keyed by std::string that can be probed with a string_view.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
using PieceIndex = std::unordered_map<std::string, int, StringHash, std::equal_to<>>;

// Scores-based BPE merges a pair when the concatenation of the two pieces is itself a piece.
// Precomputing every such pair (split each piece in two at every byte) turns the per-candidate
// string concatenation and lookup into one integer-key probe.
struct ConcatPairTable {
  std::unordered_map<uint64_t, int> merged;  // (canonical left, canonical right) -> merged id
  std::vector<int> canonical;                // id -> the id the index holds for its string
  static uint64_t key(int a, int b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  // `index` maps each piece string to the one id that concatenations resolve to.
  void build(const std::vector<std::string>& pieces, const PieceIndex& index);
  int find(int a, int b) const {
    auto it = merged.find(key(canonical[a], canonical[b]));
    return it == merged.end() ? -1 : it->second;
  }
};

// The BPE merge loop shared by every tokenizer here. `ids` are the initial symbols in order;
// `lookup(left_id, right_id, &priority, &merged_id)` says whether that adjacent pair may merge,
// into what, and with what priority (lower merges first). The pair with the lowest priority is
// merged first, the leftmost one on ties: exactly the "scan all pairs, merge the best" loop of
// llama2.c / SentencePiece / Hugging Face, but with a priority queue over a linked list, so a long
// text costs O(n log n) instead of O(n^2).
template <class Priority, class Lookup>
void bpe_merge(std::vector<int>& ids, const Lookup& lookup) {
  const int n = static_cast<int>(ids.size());
  if (n < 2) return;
  struct Symbol {
    int id, prev, next;
  };
  struct Candidate {
    Priority priority;
    int left, right, left_id, right_id, merged_id;
  };
  struct Later {  // std::priority_queue pops the "largest": make that the best candidate
    bool operator()(const Candidate& a, const Candidate& b) const {
      if (a.priority != b.priority) return b.priority < a.priority;
      return a.left > b.left;
    }
  };
  std::vector<Symbol> syms(n);
  for (int i = 0; i < n; ++i) syms[i] = {ids[i], i - 1, i + 1 < n ? i + 1 : -1};
  std::vector<Candidate> storage;
  storage.reserve(n);
  std::priority_queue<Candidate, std::vector<Candidate>, Later> queue(Later{}, std::move(storage));
  auto consider = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    Priority priority;
    int merged;
    if (lookup(syms[left].id, syms[right].id, &priority, &merged))
      queue.push({priority, left, right, syms[left].id, syms[right].id, merged});
  };
  for (int i = 0; i + 1 < n; ++i) consider(i, i + 1);
  while (!queue.empty()) {
    Candidate c = queue.top();
    queue.pop();
    Symbol& l = syms[c.left];
    // Stale entries: a side was merged away or changed since the candidate was queued.
    if (l.id != c.left_id || l.next != c.right || syms[c.right].id != c.right_id) continue;
    Symbol& r = syms[c.right];
    l.id = c.merged_id;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = c.left;
    r.id = -1;
    consider(l.prev, c.left);
    consider(c.left, l.next);
  }
  int out = 0;
  for (int i = 0; i >= 0; i = syms[i].next) ids[out++] = syms[i].id;
  ids.resize(out);
}

// Remembers the encoding of short words (running text repeats them a lot). Bounded, thread-safe.
class WordCache {
 public:
  static constexpr std::size_t kMaxKeyBytes = 64;
  static constexpr std::size_t kMaxEntries = 1 << 16;
  // Appends the cached ids of `key` to `out`; false when absent.
  bool get(std::string_view key, std::vector<int>& out) const;
  void put(std::string_view key, const int* ids, std::size_t n);

 private:
  mutable std::shared_mutex mutex_;
  std::unordered_map<std::string, std::vector<int>, StringHash, std::equal_to<>> map_;
};

// Scores-based BPE (llama2.c, SentencePiece BPE): the adjacent pair whose concatenation is the
// highest-scoring piece merges first, over the whole text. To stay fast on long texts, the symbol
// sequence is cut before every space symbol that no merge can ever cross: a merge across it would
// create a piece holding the left symbol's last byte followed by the space, and the vocabulary
// says which bytes ever do. The parts are then independent (same result as one global loop) and
// short enough to cache.
class ScoredBpe {
 public:
  // `space` is the space symbol's piece (" " for llama2.c, U+2581 for SentencePiece).
  void init(const std::vector<std::string>& pieces, const std::vector<float>& scores, const PieceIndex& index,
            std::string_view space);
  void merge(std::vector<int>& ids) const;

 private:
  void merge_part(const int* begin, std::size_t n, std::vector<int>& out) const;
  const std::vector<std::string>* pieces_ = nullptr;
  const std::vector<float>* scores_ = nullptr;
  ConcatPairTable pairs_;
  int space_id_ = -1;
  std::array<bool, 256> joins_space_{};  // byte b: some piece has b immediately before the space
  mutable WordCache cache_;
};

// Splits text around added/special tokens. Non-special added tokens are always matched;
// special ones only when asked (parse_special). Longest match wins at a position.
class SpecialTokenSplitter {
 public:
  struct Token {
    std::string content;
    int id;
    bool special;  // matched only with parse_special
    bool lstrip = false, rstrip = false;  // swallow whitespace on that side (HF added tokens)
  };
  struct Segment {
    std::string_view text;  // valid when id < 0
    int id = -1;
    bool at_text_start = false;  // the segment begins at offset 0 of the input
  };
  void add(Token token);
  bool empty() const { return tokens_.empty(); }
  std::vector<Segment> split(std::string_view text, bool parse_special) const;

 private:
  std::vector<Token> tokens_;
  std::array<std::vector<int>, 256> by_first_byte_;  // indexes into tokens_, longest first
};

// How a pre-tokenizer's matches become pieces (Hugging Face SplitDelimiterBehavior).
enum class SplitBehavior { kIsolated, kRemoved, kMergedWithPrevious, kMergedWithNext };

// A PCRE2 regex (UTF + UCP, JIT when available) that cuts text into pieces. Invalid UTF-8 bytes
// never match, so they land in the gaps and survive as pieces of their own.
class RegexSplitter {
 public:
  // Throws UsageError naming `context` when the pattern does not compile.
  RegexSplitter(const std::string& pattern, const std::string& context, bool invert = false,
                SplitBehavior behavior = SplitBehavior::kIsolated);
  ~RegexSplitter();
  RegexSplitter(RegexSplitter&&) noexcept;
  RegexSplitter& operator=(RegexSplitter&&) noexcept;
  // Replaces every piece by its sub-pieces (views into the same storage).
  void split(std::vector<std::string_view>& pieces) const;
  // The pattern as compiled (GGUF export names a pre-tokenizer by its regexes).
  const std::string& pattern() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Patterns of the pre-tokenizers in common use.
namespace regex {
// GPT-2 (ByteLevel with use_regex).
inline constexpr const char* kGpt2 =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
// LLaMA-3: case-insensitive contractions, letters with one leading non-letter, digits in 1-3.
inline constexpr const char* kLlama3 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Qwen2: like LLaMA-3 but single digits.
inline constexpr const char* kQwen2 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
}  // namespace regex

}  // namespace qmeter::engine::detail
