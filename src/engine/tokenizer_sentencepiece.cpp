// A SentencePiece tokenizer.model through libsentencepiece: the library does the encoding (BPE or
// unigram, normalization, byte fallback, user-defined symbols) and the decoding; this wrapper adds
// BOS, matching of control pieces in the text (parse_special), and per-token bytes for streaming.
#include <sentencepiece_processor.h>

#include <filesystem>

#include "qmeter/core/error.h"
#include "qmeter/engine/tokenizer.h"
#include "tokenizer_util.h"

namespace qmeter::engine {
namespace {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  SentencePieceTokenizer(std::unique_ptr<sentencepiece::SentencePieceProcessor> sp, std::string path)
      : sp_(std::move(sp)), path_(std::move(path)) {
    int n = sp_->GetPieceSize();
    bytes_.resize(n);
    special_.assign(n, 0);
    for (int id = 0; id < n; ++id) {
      const std::string& p = sp_->IdToPiece(id);
      if (sp_->IsControl(id) || sp_->IsUnknown(id)) {
        special_[id] = 1;
        splitter_.add({p, id, /*special=*/true});
        // libsentencepiece writes an unknown piece as " ⁇ " (its default unk_surface).
        if (sp_->IsUnknown(id)) bytes_[id] = " \xE2\x81\x87 ";
      } else if (sp_->IsByte(id)) {
        auto b = detail::parse_byte_piece(p);
        bytes_[id] = b ? std::string(1, static_cast<char>(*b)) : std::string();
      } else {
        bytes_[id] = detail::replace_all(p, detail::kSpmSpace, " ");
      }
    }
  }

  std::string_view kind() const override { return "sentencepiece"; }
  int vocab_size() const override { return sp_->GetPieceSize(); }

  std::vector<int> encode(std::string_view text, bool add_bos, bool parse_special) const override {
    std::vector<int> ids;
    if (add_bos && bos_id() >= 0) ids.push_back(bos_id());
    auto encode_text = [&](std::string_view part) {
      std::vector<int> part_ids;
      auto status = sp_->Encode(part, &part_ids);
      if (!status.ok()) throw Error("sentencepiece '" + path_ + "': encode failed: " + status.ToString());
      ids.insert(ids.end(), part_ids.begin(), part_ids.end());
    };
    if (!parse_special) {
      encode_text(text);
      return ids;
    }
    for (const auto& seg : splitter_.split(text, true)) {
      if (seg.id >= 0)
        ids.push_back(seg.id);
      else
        encode_text(seg.text);
    }
    return ids;
  }

  std::string token_bytes(int id) const override {
    return id >= 0 && id < vocab_size() ? bytes_[id] : std::string();
  }

  std::string decode(std::span<const int> ids) const override {
    std::vector<int> v(ids.begin(), ids.end());
    for (int id : v)
      if (id < 0 || id >= vocab_size())
        throw Error("sentencepiece '" + path_ + "': token id " + std::to_string(id) + " outside the vocabulary of " +
                    std::to_string(vocab_size()));
    std::string out;
    auto status = sp_->Decode(v, &out);
    if (!status.ok()) throw Error("sentencepiece '" + path_ + "': decode failed: " + status.ToString());
    return out;
  }

  std::string piece(int id) const override {
    if (id < 0 || id >= vocab_size())
      throw Error("sentencepiece '" + path_ + "': token id " + std::to_string(id) + " outside the vocabulary");
    return sp_->IdToPiece(id);
  }
  std::optional<int> piece_id(std::string_view piece) const override {
    int id = sp_->PieceToId(piece);  // unknown pieces map to unk_id
    if (id < 0 || sp_->IdToPiece(id) != piece) return std::nullopt;
    return id;
  }
  int bos_id() const override { return sp_->bos_id(); }
  int eos_id() const override { return sp_->eos_id(); }
  bool is_special(int id) const override { return id >= 0 && id < vocab_size() && special_[id]; }

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::string path_;
  std::vector<std::string> bytes_;
  std::vector<uint8_t> special_;
  detail::SpecialTokenSplitter splitter_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) throw Error("cannot open SentencePiece model '" + path + "'");
  auto sp = std::make_unique<sentencepiece::SentencePieceProcessor>();
  auto status = sp->Load(path);
  if (!status.ok())
    throw UsageError("SentencePiece model '" + path + "' is not a valid tokenizer.model: " + status.ToString());
  return std::make_unique<SentencePieceTokenizer>(std::move(sp), path);
}

}  // namespace qmeter::engine
