#pragma once
// Writes a loaded (possibly quantized) model as a GGUF v3 file that load_gguf_model() and
// llama.cpp read: llama.cpp's tensor names and metadata keys for the "llama" / "qwen2"
// architectures, tensors in their stored type (F32, F16, BF16, or the Q8_0 / Q4_0 / Q4_K blocks
// of gguf_blocks.h, byte for byte), 32-byte alignment. q/k rows go in GGUF's order: a "llama"
// model whose engine rows are rotate-half (synthetic) has them permuted to the interleaved pairs
// GGUF llama stores; "qwen2" keeps rotate-half, as llama.cpp's qwen2 does. The qmeter-only packed
// formats (packed_formats.h) have no GGUF type and are refused.
#include <map>
#include <string>
#include <vector>

#include "qmeter/engine/model.h"
#include "qmeter/engine/tokenizer.h"

namespace qmeter::engine {

struct GgufWriteOptions {
  std::string name;                               // general.name
  const TokenizerVocab* vocab = nullptr;          // tokenizer.ggml.* (none: the file has no tokenizer)
  std::map<std::string, std::string> extra;       // more string metadata (e.g. qmeter.method)
};

// Throws qmeter::Error naming `path` (cannot write) or the tensor (a type GGUF cannot hold).
void write_gguf_model(const Model& model, const std::string& path, const GgufWriteOptions& options);

// The ggml type id of a matrix dtype (F32 0, F16 1, BF16 30, Q4_0 2, Q8_0 8, Q4_K 12); throws for
// the qmeter-only packed formats.
std::uint32_t ggml_type_of(DType d);

// A llama2.c tok.bin as GGUF's SentencePiece ("llama") vocabulary: pieces with U+2581 for spaces,
// id 0 <unk>, 1 <s>, 2 </s> (control), 3..258 byte pieces <0xXX> (type 6), scores as stored.
TokenizerVocab llama2c_vocab_for_gguf(const std::string& tok_bin, int vocab_size);
// The tokenizer.ggml.* vocabulary of a GGUF file (throws when it has none).
TokenizerVocab read_gguf_vocab(const std::string& path);

}  // namespace qmeter::engine
