// A SentencePiece tokenizer.model through libsentencepiece: the library does the encoding (BPE or
// unigram, normalization, byte fallback, user-defined symbols) and the decoding; this wrapper adds
// BOS, matching of control pieces in the text (parse_special), and per-token bytes for streaming.
#include <sentencepiece_processor.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "qmeter/core/error.h"
#include "qmeter/core/paths.h"
#include "qmeter/engine/gguf_writer.h"
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

std::unique_ptr<sentencepiece::SentencePieceProcessor> open_model(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) throw Error("cannot open SentencePiece model '" + path + "'");
  auto sp = std::make_unique<sentencepiece::SentencePieceProcessor>();
  auto status = sp->Load(path);
  if (!status.ok())
    throw UsageError("SentencePiece model '" + path + "' is not a valid tokenizer.model: " + status.ToString());
  return sp;
}

// The few ModelProto fields GGUF export needs that libsentencepiece's processor API does not
// give (the installed headers do not carry sentencepiece_model.pb.h), read from the protobuf wire
// format of the model libsentencepiece already validated:
//   ModelProto  1: pieces (repeated SentencePiece {3: type}), 2: trainer_spec {3: model_type},
//               3: normalizer_spec {3: add_dummy_prefix}
struct ProtoFacts {
  std::vector<int> piece_types;  // SentencePiece.Type, which GGUF's token types copy (1..6)
  int model_type = 1;            // TrainerSpec.ModelType: 1 unigram (the default), 2 bpe
  bool add_dummy_prefix = true;
};

class WireReader {
 public:
  explicit WireReader(std::string_view b) : b_(b) {}
  bool done() const { return pos_ >= b_.size(); }
  std::uint64_t varint() {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= b_.size()) throw Error("truncated varint");
      const auto c = static_cast<std::uint8_t>(b_[pos_++]);
      v |= static_cast<std::uint64_t>(c & 0x7F) << shift;
      if (!(c & 0x80)) return v;
    }
    throw Error("overlong varint");
  }
  // Reads one field's key; the value is then read by value() (or skipped by it).
  std::pair<std::uint32_t, std::uint32_t> key() {
    const std::uint64_t k = varint();
    return {static_cast<std::uint32_t>(k >> 3), static_cast<std::uint32_t>(k & 7)};
  }
  // The payload of a length-delimited field, or the number of a varint field; fixed fields skipped.
  std::string_view bytes(std::uint32_t wire, std::uint64_t* number) {
    *number = 0;
    switch (wire) {
      case 0: *number = varint(); return {};
      case 1: return advance(8);
      case 2: return advance(varint());
      case 5: return advance(4);
      default: throw Error("unsupported wire type " + std::to_string(wire));
    }
  }

 private:
  std::string_view advance(std::uint64_t n) {
    if (n > b_.size() - pos_) throw Error("truncated field");
    std::string_view out = b_.substr(pos_, n);
    pos_ += n;
    return out;
  }
  std::string_view b_;
  std::size_t pos_ = 0;
};

ProtoFacts proto_facts(std::string_view model) {
  ProtoFacts f;
  WireReader top(model);
  while (!top.done()) {
    auto [field, wire] = top.key();
    std::uint64_t n;
    std::string_view body = top.bytes(wire, &n);
    if (wire != 2 || field > 3) continue;
    WireReader inner(body);
    int type = 1;  // SentencePiece.type defaults to NORMAL
    while (!inner.done()) {
      auto [f2, w2] = inner.key();
      std::uint64_t v;
      inner.bytes(w2, &v);
      if (w2 != 0 || f2 != 3) continue;
      if (field == 1) type = static_cast<int>(v);
      else if (field == 2) f.model_type = static_cast<int>(v);
      else f.add_dummy_prefix = v != 0;
    }
    if (field == 1) f.piece_types.push_back(type);
  }
  return f;
}

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& path) {
  return std::make_unique<SentencePieceTokenizer>(open_model(path), path);
}

TokenizerVocab sentencepiece_vocab_for_gguf(const std::string& path) {
  auto sp = open_model(path);
  ProtoFacts facts;
  try {
    facts = proto_facts(sp->serialized_model_proto());
  } catch (const Error& e) {
    throw UsageError("SentencePiece model '" + path + "': " + e.what());
  }
  const int n = sp->GetPieceSize();
  if (facts.model_type != 2)
    throw UsageError("SentencePiece model '" + path + "' is a " + (facts.model_type == 1 ? "unigram" : "word/char") +
                     " model; GGUF's \"llama\" tokenizer is SentencePiece BPE, which would segment it differently");
  if (static_cast<int>(facts.piece_types.size()) != n)
    throw UsageError("SentencePiece model '" + path + "': " + std::to_string(facts.piece_types.size()) + " piece types for " +
                     std::to_string(n) + " pieces");
  TokenizerVocab v;
  v.model = "llama";
  v.source = path;
  for (int id = 0; id < n; ++id) {
    v.tokens.push_back(sp->IdToPiece(id));
    v.scores.push_back(sp->GetScore(id));
    const int t = facts.piece_types[static_cast<std::size_t>(id)];
    v.token_types.push_back(t >= 1 && t <= 6 ? t : 1);
  }
  v.bos_id = sp->bos_id(), v.eos_id = sp->eos_id(), v.unk_id = sp->unk_id();
  v.add_space_prefix = facts.add_dummy_prefix;
  // tokenizer_config.json's add_bos_token, as llama.cpp's converter reads it (default: BOS on).
  const std::filesystem::path cfg = std::filesystem::path(path).parent_path() / "tokenizer_config.json";
  v.add_bos = v.bos_id >= 0;
  if (std::filesystem::exists(cfg)) {
    const auto j = nlohmann::json::parse(read_file(cfg.string()), nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.contains("add_bos_token") && j["add_bos_token"].is_boolean()) v.add_bos = j["add_bos_token"].get<bool>();
  }
  return v;
}

}  // namespace qmeter::engine
