#include "tokenizer_bpe.h"

#include <algorithm>

#include "qmeter/core/error.h"

namespace qmeter::engine::detail {
namespace {

class BpeTokenizer final : public Tokenizer {
 public:
  explicit BpeTokenizer(BpeConfig cfg) : cfg_(std::move(cfg)) {
    const int n = static_cast<int>(cfg_.pieces.size());
    if (static_cast<int>(cfg_.classes.size()) != n) cfg_.classes.resize(n, TokenClass::kNormal);
    for (int rank = 0; rank < static_cast<int>(cfg_.merges.size()); ++rank) {
      auto [a, b] = cfg_.merges[rank];
      auto merged = cfg_.symbol_index.find(cfg_.pieces[a] + cfg_.pieces[b]);
      if (merged == cfg_.symbol_index.end()) continue;  // loaders check this where the format demands it
      merge_ranks_.try_emplace(pair_key(a, b), rank, merged->second);
    }
    if (!cfg_.scores.empty()) scored_.init(cfg_.pieces, cfg_.scores, cfg_.symbol_index, kSpmSpace);
    byte_symbol_.fill(-1);
    byte_token_.fill(-1);
    for (int b = 0; b < 256; ++b) {
      if (cfg_.byte_level) {
        auto it = cfg_.symbol_index.find(byte_level_chars()[b]);
        if (it != cfg_.symbol_index.end()) byte_symbol_[b] = it->second;
      }
    }
    for (int id = 0; id < n; ++id) {
      if (cfg_.classes[id] != TokenClass::kByte) continue;
      if (auto b = parse_byte_piece(cfg_.pieces[id]); b && byte_token_[*b] < 0) byte_token_[*b] = id;
    }
    bytes_.resize(n);
    for (int id = 0; id < n; ++id) {
      const std::string& p = cfg_.pieces[id];
      switch (cfg_.classes[id]) {
        case TokenClass::kControl:
        case TokenClass::kUnknown:
        case TokenClass::kUnused:
          break;
        case TokenClass::kUserDefined:
          bytes_[id] = p;
          break;
        case TokenClass::kByte:
          if (auto b = parse_byte_piece(p)) bytes_[id] = std::string(1, static_cast<char>(*b));
          break;
        case TokenClass::kNormal:
          bytes_[id] = cfg_.byte_level ? byte_level_decode(p) : replace_all(p, kSpmSpace, " ");
          break;
      }
    }
    for (auto& t : cfg_.added) splitter_.add(t);
    stop_ids_.clear();
    if (cfg_.eos_id >= 0) stop_ids_.push_back(cfg_.eos_id);
    for (int id : cfg_.extra_stop_ids)
      if (std::find(stop_ids_.begin(), stop_ids_.end(), id) == stop_ids_.end()) stop_ids_.push_back(id);
  }

  std::string_view kind() const override { return cfg_.kind; }
  int vocab_size() const override { return static_cast<int>(cfg_.pieces.size()); }

  std::vector<int> encode(std::string_view text, bool add_bos, bool parse_special) const override {
    std::vector<int> ids;
    ids.reserve(text.size() / 3 + 2);
    if (add_bos && cfg_.bos_id >= 0) ids.push_back(cfg_.bos_id);
    if (splitter_.empty()) {
      encode_segment(text, true, true, ids);
      return ids;
    }
    bool prev_special = true;
    for (const auto& seg : splitter_.split(text, parse_special)) {
      if (seg.id >= 0) {
        ids.push_back(seg.id);
        prev_special = true;
      } else {
        encode_segment(seg.text, seg.at_text_start, prev_special, ids);
        prev_special = false;
      }
    }
    return ids;
  }

  std::string token_bytes(int id) const override {
    return id >= 0 && id < vocab_size() ? bytes_[id] : std::string();
  }

  std::string decode(std::span<const int> ids) const override {
    std::string out;
    for (int id : ids) {
      if (id < 0 || id >= vocab_size())
        throw Error(cfg_.kind + " tokenizer '" + cfg_.source + "': token id " + std::to_string(id) +
                    " outside the vocabulary of " + std::to_string(vocab_size()));
      out += bytes_[id];
    }
    if (cfg_.decode_strips_leading_space && !out.empty() && out[0] == ' ') out.erase(0, 1);
    return out;
  }

  std::string piece(int id) const override {
    if (id < 0 || id >= vocab_size())
      throw Error(cfg_.kind + " tokenizer '" + cfg_.source + "': token id " + std::to_string(id) +
                  " outside the vocabulary");
    return cfg_.pieces[id];
  }
  std::optional<int> piece_id(std::string_view piece) const override {
    if (auto it = cfg_.symbol_index.find(piece); it != cfg_.symbol_index.end()) return it->second;
    for (const auto& t : cfg_.added)
      if (t.content == piece) return t.id;
    return std::nullopt;
  }
  int bos_id() const override { return cfg_.bos_id; }
  int eos_id() const override { return cfg_.eos_id; }
  bool add_bos_by_default() const override { return cfg_.add_bos && cfg_.bos_id >= 0; }
  bool is_special(int id) const override {
    if (id < 0 || id >= vocab_size()) return false;
    auto c = cfg_.classes[id];
    return c == TokenClass::kControl || c == TokenClass::kUnknown;
  }
  std::vector<int> stop_ids() const override { return stop_ids_; }

 private:
  static uint64_t pair_key(int a, int b) { return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b); }

  // Normalizes and pre-tokenizes one text segment, then encodes its words.
  void encode_segment(std::string_view text, bool at_text_start, bool after_special, std::vector<int>& ids) const {
    if (text.empty()) return;
    std::string buffer(text);
    std::vector<std::string_view> pieces{buffer};
    std::string next;
    std::vector<std::pair<std::size_t, std::size_t>> spans;
    for (const TextStep& step : cfg_.steps) {
      if (step.kind == TextStep::Kind::kSplit) {
        step.splitter->split(pieces);
        continue;
      }
      // A transform: rebuild the buffer from the transformed pieces.
      next.clear();
      spans.clear();
      for (std::size_t i = 0; i < pieces.size(); ++i) {
        std::size_t begin = next.size();
        std::string_view p = pieces[i];
        if (step.kind == TextStep::Kind::kReplace) {
          next += replace_all(p, step.from, step.text);
        } else {
          bool applies = step.when == PrependWhen::kAlways ? true
                         : step.when == PrependWhen::kAtTextStart ? at_text_start
                                                                  : after_special;
          if (step.first_piece_only && i > 0) applies = false;
          if (step.unless_present && p.substr(0, step.text.size()) == step.text) applies = false;
          if (applies) next += step.text;
          next += p;
        }
        spans.emplace_back(begin, next.size() - begin);
      }
      buffer.swap(next);
      pieces.clear();
      for (auto [b, n] : spans) pieces.push_back(std::string_view(buffer).substr(b, n));
    }
    for (std::string_view word : pieces)
      if (!word.empty()) encode_word(word, ids);
  }

  void encode_word(std::string_view word, std::vector<int>& ids) const {
    const bool cacheable = cfg_.scores.empty() && word.size() <= WordCache::kMaxKeyBytes;
    if (cacheable && cache_.get(word, ids)) return;
    const std::size_t start = ids.size();
    std::vector<int> symbols;
    symbols.reserve(word.size());
    if (cfg_.byte_level) {
      if (cfg_.ignore_merges) {
        std::string mapped;
        for (unsigned char c : word) mapped += byte_level_chars()[c];
        if (auto it = cfg_.symbol_index.find(mapped); it != cfg_.symbol_index.end()) {
          ids.push_back(it->second);
          if (cacheable) cache_.put(word, ids.data() + start, 1);
          return;
        }
      }
      for (unsigned char c : word) push_symbol(byte_symbol_[c] >= 0 ? byte_symbol_[c] : cfg_.unk_id, symbols);
    } else {
      if (cfg_.ignore_merges) {
        if (auto it = cfg_.symbol_index.find(word); it != cfg_.symbol_index.end()) {
          ids.push_back(it->second);
          if (cacheable) cache_.put(word, ids.data() + start, 1);
          return;
        }
      }
      for (std::size_t pos = 0; pos < word.size();) {
        std::size_t len = utf8_char_length_at(word, pos);
        std::string_view ch = word.substr(pos, len);
        if (auto it = cfg_.symbol_index.find(ch); it != cfg_.symbol_index.end()) {
          symbols.push_back(it->second);
        } else if (cfg_.byte_fallback && std::all_of(ch.begin(), ch.end(), [&](char c) {
                     return byte_token_[static_cast<unsigned char>(c)] >= 0;
                   })) {
          for (unsigned char c : ch) symbols.push_back(byte_token_[c]);
        } else {
          push_symbol(cfg_.unk_id, symbols);
        }
        pos += len;
      }
    }
    if (cfg_.scores.empty()) {
      bpe_merge<int>(symbols, [&](int a, int b, int* rank, int* merged) {
        if (a < 0 || b < 0) return false;
        auto it = merge_ranks_.find(pair_key(a, b));
        if (it == merge_ranks_.end()) return false;
        *rank = it->second.first;
        *merged = it->second.second;
        return true;
      });
    } else {
      scored_.merge(symbols);
    }
    for (int s : symbols) {
      if (s < 0)
        throw Error(cfg_.kind + " tokenizer '" + cfg_.source +
                    "': text has a character with no token, and the vocabulary has neither byte fallback nor <unk>");
      ids.push_back(s);
    }
    if (cacheable) cache_.put(word, ids.data() + start, ids.size() - start);
  }

  // Adds an <unk> symbol, fusing it with a preceding one when the model says so.
  void push_symbol(int id, std::vector<int>& symbols) const {
    if (id == cfg_.unk_id && cfg_.fuse_unk && !symbols.empty() && symbols.back() == id) return;
    symbols.push_back(id);
  }

  BpeConfig cfg_;
  std::unordered_map<uint64_t, std::pair<int, int>> merge_ranks_;  // pair -> (rank, merged id)
  ScoredBpe scored_;                                                // scored mode
  std::array<int, 256> byte_symbol_{};  // byte-level: byte -> id of its character
  std::array<int, 256> byte_token_{};   // byte fallback: byte -> id of <0xXX>
  std::vector<std::string> bytes_;
  std::vector<int> stop_ids_;
  SpecialTokenSplitter splitter_;
  mutable WordCache cache_;
};

}  // namespace

std::unique_ptr<Tokenizer> make_bpe_tokenizer(BpeConfig cfg) { return std::make_unique<BpeTokenizer>(std::move(cfg)); }

std::vector<int> conventional_stop_ids(const std::vector<std::string>& pieces, const std::vector<TokenClass>& classes) {
  static const char* const kNames[] = {"<|eot_id|>", "<|eom_id|>", "<|end_of_text|>", "<|im_end|>", "<|endoftext|>",
                                       "<|end|>",    "</s>",        "<end_of_turn>",   "<|EOT|>"};
  std::vector<int> out;
  for (int id = 0; id < static_cast<int>(pieces.size()); ++id) {
    bool special = id < static_cast<int>(classes.size()) &&
                   (classes[id] == TokenClass::kControl || classes[id] == TokenClass::kUserDefined);
    if (!special) continue;
    for (const char* name : kNames)
      if (pieces[id] == name) out.push_back(id);
  }
  return out;
}

}  // namespace qmeter::engine::detail
