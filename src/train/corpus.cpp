#include "corpus.h"

#include <fmt/format.h>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <fstream>
#include <iterator>

#include "qmeter/core/error.h"
#include "qmeter/core/hash.h"
#include "qmeter/core/text.h"
#include "qmeter/train/train.h"

namespace qmeter::train {
namespace {

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError(fmt::format("--corpus: cannot read '{}'", path));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text.find('\0') != std::string::npos)
    throw UsageError(fmt::format("--corpus: '{}' is not a text file (contains NUL bytes)", path));
  return text;
}

// Feeds lines to the SentencePiece trainer without writing a temporary file.
class LineIterator : public sentencepiece::SentenceIterator {
 public:
  explicit LineIterator(const std::vector<std::string>& lines) : lines_(lines) {}
  bool done() const override { return i_ >= lines_.size(); }
  void Next() override { ++i_; }
  const std::string& value() const override { return lines_[i_]; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  const std::vector<std::string>& lines_;
  std::size_t i_ = 0;
};

}  // namespace

std::uint64_t corpus_fingerprint(const std::vector<std::string>& paths) {
  std::uint64_t h = fnv1a64("corpus");
  for (const auto& p : paths) {
    const std::string text = read_text_file(p);
    const std::uint64_t n = text.size();
    h = fnv1a64_bytes(&n, sizeof n, h);
    h = fnv1a64(text, h);
  }
  return h;
}

CorpusSplit load_corpus(const std::vector<std::string>& paths) {
  if (paths.empty()) throw UsageError("--corpus: no corpus files given");
  CorpusSplit split;
  split.fingerprint = corpus_fingerprint(paths);
  std::vector<std::string> lines;
  for (const auto& p : paths) {
    const std::string text = read_text_file(p);
    std::size_t kept = 0, pos = 0;
    while (pos <= text.size()) {
      const std::size_t end = std::min(text.find('\n', pos), text.size());
      std::string line(trim(std::string_view(text).substr(pos, end - pos)));
      if (!line.empty()) {
        lines.push_back(std::move(line));
        ++kept;
      }
      pos = end + 1;
    }
    if (kept == 0) throw UsageError(fmt::format("--corpus: '{}' has no text", p));
  }
  const std::size_t block = std::clamp<std::size_t>(lines.size() / 200, 1, 100);
  for (std::size_t i = 0; i < lines.size(); ++i)
    ((i / block) % 20 == 19 ? split.heldout_lines : split.train_lines).push_back(std::move(lines[i]));
  if (split.heldout_lines.empty() || split.train_lines.size() < 20)
    throw UsageError(fmt::format("--corpus: {} non-blank lines are too few to split into train and held-out parts "
                                 "(need at least 40)",
                                 lines.size()));
  return split;
}

std::string train_sentencepiece(const std::vector<std::string>& lines, int vocab_size) {
  LineIterator it(lines);
  std::string model;
  const std::unordered_map<std::string, std::string> args = {
      {"model_type", "bpe"},
      {"vocab_size", std::to_string(vocab_size)},
      {"byte_fallback", "true"},     // any byte sequence stays encodable
      {"character_coverage", "0.9995"},
      {"split_digits", "true"},
      {"unk_id", "0"},
      {"bos_id", "1"},
      {"eos_id", "2"},
      {"pad_id", "-1"},
      {"num_threads", "1"},          // deterministic
      {"shuffle_input_sentence", "false"},
      {"input_sentence_size", "0"},
      {"max_sentence_length", "16384"},
      {"hard_vocab_limit", "false"},  // a small corpus may not support the full vocabulary
      {"minloglevel", "2"},
  };
  const auto status = sentencepiece::SentencePieceTrainer::Train(args, &it, &model);
  if (!status.ok()) throw Error("SentencePiece tokenizer training failed: " + status.ToString());
  return model;
}

std::vector<std::int32_t> encode_lines(const std::string& serialized_model, const std::vector<std::string>& lines) {
  sentencepiece::SentencePieceProcessor sp;
  const auto status = sp.LoadFromSerializedProto(serialized_model);
  if (!status.ok()) throw Error("cannot load the SentencePiece model: " + status.ToString());
  std::vector<std::vector<int>> per_line(lines.size());
#pragma omp parallel for schedule(dynamic, 256)
  for (std::size_t i = 0; i < lines.size(); ++i) (void)sp.Encode(lines[i], &per_line[i]);
  std::vector<std::int32_t> ids;
  for (const auto& v : per_line) ids.insert(ids.end(), v.begin(), v.end());
  return ids;
}

}  // namespace qmeter::train
