#pragma once
// One BPE tokenizer, configured by its loaders: Hugging Face tokenizer.json (tokenizer_hf.cpp)
// and the GGUF vocabulary (tokenizer_gguf.cpp). The text pipeline is the one Hugging Face uses:
// split out added/special tokens, normalize each text segment, pre-tokenize it into words, run
// BPE on each word, map the final symbols to ids (byte fallback or <unk> when a symbol has none).
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "qmeter/engine/tokenizer.h"
#include "tokenizer_util.h"

namespace qmeter::engine::detail {

enum class TokenClass : uint8_t { kNormal, kControl, kUserDefined, kByte, kUnknown, kUnused };

// When a Prepend applies to a text segment (segments are the text between special tokens).
enum class PrependWhen : uint8_t {
  kAlways,             // every segment (HF Prepend normalizer, Metaspace "always")
  kAtTextStart,        // only the segment that begins the text (Metaspace "first")
  kAfterSpecialOrStart  // llama.cpp SentencePiece: the first segment and every one after a special token
};

// One step of the text pipeline, applied to every piece of a segment in order.
struct TextStep {
  enum class Kind : uint8_t {
    kPrepend,    // prepend `text` (when `when` says so; `unless_present`: not if already there)
    kReplace,    // replace every `from` by `text`
    kSplit,      // split pieces with `splitter`
  };
  explicit TextStep(Kind k) : kind(k) {}
  Kind kind;
  std::string text, from;
  PrependWhen when = PrependWhen::kAlways;
  bool unless_present = false;
  bool first_piece_only = false;  // Prepend only the first piece of the segment
  std::shared_ptr<RegexSplitter> splitter;
};

struct BpeConfig {
  std::string kind;    // what Tokenizer::kind() reports
  std::string source;  // file the tokenizer came from, for messages
  std::vector<std::string> pieces;  // id -> vocabulary string as stored
  std::vector<TokenClass> classes;  // id -> class
  PieceIndex symbol_index;          // strings a BPE symbol may stand for -> id
  // Ranked merges (Hugging Face / GGUF gpt2): (left id, right id) in rank order.
  std::vector<std::pair<int, int>> merges;
  // Scored merges (GGUF llama / SentencePiece BPE): the pair whose concatenation is the
  // highest-scoring piece merges first. Used when `scores` is not empty.
  std::vector<float> scores;
  bool byte_level = false;     // symbols are GPT-2 byte-to-unicode characters
  bool byte_fallback = false;  // characters without a piece become <0xXX> tokens
  int unk_id = -1;
  bool fuse_unk = false;
  bool ignore_merges = false;  // a word that is a whole piece is taken as is
  std::vector<TextStep> steps;
  std::vector<SpecialTokenSplitter::Token> added;  // matched in text before everything else
  int bos_id = -1, eos_id = -1;
  bool add_bos = false;
  std::vector<int> extra_stop_ids;  // besides EOS
  bool decode_strips_leading_space = false;
};

// A tokenizer.json (+ its side configs) as a BpeConfig, before make_bpe_tokenizer (GGUF export
// reads the configuration itself); throws UsageError naming the file and field.
BpeConfig load_hf_bpe_config(const std::string& tokenizer_json_path);

// Builds the tokenizer; throws UsageError naming cfg.source when the configuration is unusable.
std::unique_ptr<Tokenizer> make_bpe_tokenizer(BpeConfig cfg);

// Ids of the usual end-of-turn tokens present in a vocabulary (<|eot_id|>, <|im_end|>, ...).
std::vector<int> conventional_stop_ids(const std::vector<std::string>& pieces, const std::vector<TokenClass>& classes);

}  // namespace qmeter::engine::detail
