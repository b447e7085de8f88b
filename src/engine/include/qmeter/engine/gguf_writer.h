#pragma once
// Writes a loaded (possibly quantized) model as a GGUF v3 file that load_gguf_model() and
// llama.cpp read: llama.cpp's tensor names and metadata keys for the "llama" / "qwen2"
// architectures, tensors in their stored type (F32, F16, BF16, or any block type of
// gguf_blocks.h, byte for byte), 32-byte alignment. q/k rows go in GGUF's order: a "llama"
// model whose engine rows are rotate-half (synthetic) has them permuted to the interleaved pairs
// GGUF llama stores; "qwen2" keeps rotate-half, as llama.cpp's qwen2 does. The qmeter-only packed
// formats (packed_formats.h) have no GGUF type and are refused.
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "qmeter/engine/model.h"
#include "qmeter/engine/tokenizer.h"

namespace qmeter::engine {

struct GgufWriteOptions {
  std::string name;                               // general.name
  const TokenizerVocab* vocab = nullptr;          // tokenizer.ggml.* (none: the file has no tokenizer)
  std::map<std::string, std::string> extra;       // more string metadata (e.g. qmeter.method)
  int file_type = -1;  // general.file_type (llama_ftype of a preset); -1: from the layers' type
};

// Throws qmeter::Error naming `path` (cannot write) or the tensor (a type GGUF cannot hold).
void write_gguf_model(const Model& model, const std::string& path, const GgufWriteOptions& options);

// The ggml type id of a matrix dtype (F32 0, F16 1, BF16 30, Q4_0 2, Q8_0 8, Q4_K 12); throws for
// the qmeter-only packed formats.
std::uint32_t ggml_type_of(DType d);

// The tokenizer files qmeter reads, as GGUF's tokenizer.ggml.* vocabulary, the way llama.cpp's
// converters store them (make_vocab_tokenizer() on the result encodes as the original does):
// A llama2.c tok.bin as GGUF's SentencePiece ("llama") vocabulary: pieces with U+2581 for spaces,
// id 0 <unk>, 1 <s>, 2 </s> (control), 3..258 byte pieces <0xXX> (type 6), scores as stored.
TokenizerVocab llama2c_vocab_for_gguf(const std::string& tok_bin, int vocab_size);
// A SentencePiece BPE tokenizer.model as "llama": pieces, scores and piece types as stored, BOS /
// EOS / UNK ids, add_space_prefix = the normalizer's add_dummy_prefix, add_bos from
// tokenizer_config.json beside it (default on). Unigram models are refused (UsageError): GGUF's
// "llama" tokenizer is BPE by score. The model's text normalization (e.g. NFKC, collapsing
// repeated spaces) has no GGUF key and is not applied, as in llama.cpp.
TokenizerVocab sentencepiece_vocab_for_gguf(const std::string& tokenizer_model);
// A Hugging Face tokenizer.json BPE (+ tokenizer_config.json): byte-level as "gpt2" with its merges
// and tokenizer.ggml.pre named from its pre-tokenizer regexes; SentencePiece-style (byte fallback,
// Prepend/Replace or Metaspace "▁") as "llama" with score -rank for the piece each merge makes.
// UsageError for configurations GGUF cannot state (an unknown pre-tokenizer, no byte fallback).
TokenizerVocab hf_vocab_for_gguf(const std::string& tokenizer_json);

// The vocabulary to embed when writing model `source_spec` as GGUF: a GGUF source's own, the
// llama2.c tok<vocab>.bin / tokenizer.bin beside a .bin, an HF folder's tokenizer.model (as
// llama.cpp's converter prefers it), else its tokenizer.json, else its tokenizer.bin. nullopt when
// there is none or it cannot be stated in GGUF; *why_none (if given) then says why.
std::optional<TokenizerVocab> gguf_vocab_for_source(const Model& model, const std::string& source_spec,
                                                    std::string* why_none = nullptr);
// The tokenizer.ggml.* vocabulary of a GGUF file (throws when it has none).
TokenizerVocab read_gguf_vocab(const std::string& path);
// A string metadata value of a GGUF file (e.g. tokenizer.chat_template); "" when absent.
std::string read_gguf_string(const std::string& path, const std::string& key);

}  // namespace qmeter::engine
