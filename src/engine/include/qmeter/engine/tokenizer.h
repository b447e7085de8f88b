#pragma once
// Tokenizers of the embedded engine behind one interface: llama2.c's scores-based BPE, a
// SentencePiece tokenizer.model (libsentencepiece), Hugging Face tokenizer.json BPE (byte-level
// with PCRE2 pre-tokenizer regexes, or SentencePiece-style with byte fallback), and the vocab
// stored in GGUF metadata.
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace qmeter::engine {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::string_view kind() const = 0;  // "llama2c", "sentencepiece", "hf-bpe", ...
  virtual int vocab_size() const = 0;
  // Encodes text; special-token strings in the text are matched when `parse_special` is true.
  virtual std::vector<int> encode(std::string_view text, bool add_bos, bool parse_special = false) const = 0;
  // The raw bytes one token stands for in running text (byte-fallback and byte-level pieces
  // become their bytes, SentencePiece's U+2581 becomes a space). Special tokens give "".
  virtual std::string token_bytes(int id) const = 0;
  // Decodes a whole sequence (drops BOS/special tokens and the leading dummy-prefix space the
  // way the tokenizer's own decoder does).
  virtual std::string decode(std::span<const int> ids) const = 0;
  virtual std::string piece(int id) const = 0;  // the vocabulary string itself
  virtual std::optional<int> piece_id(std::string_view piece) const = 0;
  virtual int bos_id() const = 0;  // -1 when the tokenizer has none
  virtual int eos_id() const = 0;
  // Whether prompts for this model start with BOS (tokenizer_config.json add_bos_token, the
  // post-processor template, GGUF add_bos_token); pass it as encode()'s add_bos.
  virtual bool add_bos_by_default() const { return bos_id() >= 0; }
  virtual bool is_special(int id) const = 0;
  // Every id that ends generation (EOS plus e.g. <|eot_id|>, <|im_end|>).
  virtual std::vector<int> stop_ids() const { return {eos_id()}; }
};

// Streams text out of generated tokens without ever emitting broken UTF-8: bytes of an
// incomplete multi-byte character are held back until the character completes.
class IncrementalDetokenizer {
 public:
  explicit IncrementalDetokenizer(const Tokenizer& tok, bool strip_leading_space = false);
  std::string push(int id);  // text that became complete with this token (may be empty)
  std::string flush();       // whatever is left (invalid trailing bytes become U+FFFD)
 private:
  const Tokenizer* tok_;
  std::string pending_;
  bool strip_leading_space_;
  bool first_ = true;
};

// The vocabulary as stored in GGUF metadata (tokenizer.ggml.*).
struct TokenizerVocab {
  std::string model;  // "llama" (SentencePiece scores + byte fallback) or "gpt2" (byte-level BPE)
  std::string pre;    // pre-tokenizer name for "gpt2" ("llama-bpe", "qwen2", "gpt2", ...)
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int> token_types;  // 1 normal, 2 unknown, 3 control, 4 user-defined, 6 byte
  std::vector<std::string> merges;
  int bos_id = -1, eos_id = -1, unk_id = -1;
  bool add_bos = true;
  bool add_space_prefix = true;  // "llama": tokenizer.ggml.add_space_prefix (SentencePiece dummy prefix)
  std::string source;            // the file it came from, named in error messages
};

std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const std::string& path, int vocab_size);
std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& path);
// tokenizer.json (+ optional tokenizer_config.json beside it for BOS/EOS/add_bos).
std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& tokenizer_json_path);
std::unique_ptr<Tokenizer> make_vocab_tokenizer(TokenizerVocab vocab);

}  // namespace qmeter::engine
