#pragma once
// Training text: read, split into train and held-out parts, tokenized with SentencePiece.
#include <cstdint>
#include <string>
#include <vector>

namespace qmeter::train {

struct CorpusSplit {
  std::vector<std::string> train_lines, heldout_lines;
  std::uint64_t fingerprint = 0;  // FNV-1a of every file's bytes, in order
};

// Reads the files (UTF-8 text; a NUL byte or an unreadable/empty file is a UsageError naming it),
// keeps non-blank lines (trimmed), and splits deterministically: lines go in consecutive blocks
// of clamp(lines/200, 1, 100) and every 20th block (index % 20 == 19) is held out (5%).
CorpusSplit load_corpus(const std::vector<std::string>& paths);

// FNV-1a over the bytes of the files (the cache key part that identifies the corpus).
std::uint64_t corpus_fingerprint(const std::vector<std::string>& paths);

// Trains a byte-fallback BPE SentencePiece model on `lines`; returns the serialized model.
std::string train_sentencepiece(const std::vector<std::string>& lines, int vocab_size);

// Encodes lines one by one and concatenates the ids (no BOS/EOS). SentencePiece turns a line
// break into the same U+2581 word boundary a space gives, so this equals encoding the lines
// joined by newlines in one piece.
std::vector<std::int32_t> encode_lines(const std::string& serialized_model, const std::vector<std::string>& lines);

}  // namespace qmeter::train
