// llama2.c's tokenizer (tokenizer.bin / tok512.bin): a SentencePiece BPE vocabulary exported as
// (score, piece) pairs. Encoding follows run.c's encode() exactly: BOS, a dummy-prefix " " token
// when the text is not empty, one symbol per UTF-8 character (byte fallback to id byte+3 when the
// character is not a piece), then repeatedly merge the adjacent pair whose concatenation is the
// piece with the highest score (leftmost on ties). run.c rescans every pair after every merge;
// here ScoredBpe gives the same merges with a priority queue over independent, cached words.
#include <cstring>
#include <fstream>

#include "qmeter/core/error.h"
#include "qmeter/engine/tokenizer.h"
#include "tokenizer_util.h"

namespace qmeter::engine {
namespace {

constexpr int kUnkId = 0, kBosId = 1, kEosId = 2, kFirstByteId = 3;

class Llama2cTokenizer final : public Tokenizer {
 public:
  Llama2cTokenizer(std::vector<std::string> pieces, std::vector<float> scores)
      : pieces_(std::move(pieces)), scores_(std::move(scores)) {
    for (int id = 0; id < static_cast<int>(pieces_.size()); ++id) index_.emplace(pieces_[id], id);  // first id wins
    auto space = index_.find(std::string_view(" "));
    space_id_ = space == index_.end() ? -1 : space->second;
    bpe_.init(pieces_, scores_, index_, " ");
    bytes_.resize(pieces_.size());
    for (int id = 0; id < static_cast<int>(pieces_.size()); ++id) {
      if (id == kUnkId || id == kBosId || id == kEosId) continue;
      auto b = detail::parse_byte_piece(pieces_[id]);
      bytes_[id] = b ? std::string(1, static_cast<char>(*b)) : pieces_[id];
    }
  }

  std::string_view kind() const override { return "llama2c"; }
  int vocab_size() const override { return static_cast<int>(pieces_.size()); }

  std::vector<int> encode(std::string_view text, bool add_bos, bool /*parse_special*/) const override {
    std::vector<int> ids;
    ids.reserve(text.size() + 2);
    if (add_bos) ids.push_back(kBosId);
    if (!text.empty() && space_id_ >= 0) ids.push_back(space_id_);
    // One symbol per UTF-8 character as run.c delimits them: a lead byte plus at most three
    // continuation bytes.
    std::size_t pos = 0;
    while (pos < text.size()) {
      std::size_t len = 1;
      while (pos + len < text.size() && len < 4 && (static_cast<unsigned char>(text[pos + len]) & 0xC0) == 0x80) ++len;
      std::string_view ch = text.substr(pos, len);
      auto it = index_.find(ch);
      if (it != index_.end()) {
        ids.push_back(it->second);
      } else {
        for (char c : ch) ids.push_back(static_cast<unsigned char>(c) + kFirstByteId);
      }
      pos += len;
    }
    bpe_.merge(ids);
    return ids;
  }

  std::string token_bytes(int id) const override {
    return id >= 0 && id < vocab_size() ? bytes_[id] : std::string();
  }

  // run.c's decode(): the piece after BOS loses its leading space (the dummy prefix).
  std::string decode(std::span<const int> ids) const override {
    std::string out;
    int prev = -1;
    for (int id : ids) {
      std::string_view b = bytes_.at(check(id));
      if (prev == kBosId && !b.empty() && b[0] == ' ') b.remove_prefix(1);
      out.append(b);
      prev = id;
    }
    return out;
  }

  std::string piece(int id) const override { return pieces_.at(check(id)); }
  std::optional<int> piece_id(std::string_view piece) const override {
    auto it = index_.find(piece);
    if (it == index_.end()) return std::nullopt;
    return it->second;
  }
  int bos_id() const override { return kBosId; }
  int eos_id() const override { return kEosId; }
  bool is_special(int id) const override { return id == kUnkId || id == kBosId || id == kEosId; }

 private:
  std::size_t check(int id) const {
    if (id < 0 || id >= vocab_size())
      throw Error("llama2c tokenizer: token id " + std::to_string(id) + " outside the vocabulary of " +
                  std::to_string(vocab_size()));
    return static_cast<std::size_t>(id);
  }

  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::vector<std::string> bytes_;
  detail::PieceIndex index_;
  detail::ScoredBpe bpe_;
  int space_id_ = -1;
};

}  // namespace

std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const std::string& path, int vocab_size) {
  auto fail = [&](const std::string& what) { throw UsageError("llama2c tokenizer '" + path + "': " + what); };
  if (vocab_size < kFirstByteId + 256)
    fail("vocab_size " + std::to_string(vocab_size) + " is too small for <unk>, BOS, EOS and 256 byte tokens");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open llama2c tokenizer '" + path + "'");
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::size_t pos = 0;
  auto read_i32 = [&](const char* what, int token) {
    if (data.size() - pos < 4)
      fail("truncated: " + std::string(what) + (token >= 0 ? " of token " + std::to_string(token) : "") + " at byte " +
           std::to_string(pos) + " (file has " + std::to_string(data.size()) + " bytes)");
    int32_t v;
    std::memcpy(&v, data.data() + pos, 4);
    pos += 4;
    return v;
  };
  int32_t max_token_length = read_i32("max_token_length", -1);
  if (max_token_length <= 0 || max_token_length > (1 << 20))
    fail("implausible max_token_length " + std::to_string(max_token_length));
  std::vector<std::string> pieces(vocab_size);
  std::vector<float> scores(vocab_size);
  for (int i = 0; i < vocab_size; ++i) {
    int32_t score_bits = read_i32("score", i);
    std::memcpy(&scores[i], &score_bits, 4);
    int32_t len = read_i32("length", i);
    if (len < 0 || len > max_token_length)
      fail("token " + std::to_string(i) + " has length " + std::to_string(len) + " (max_token_length " +
           std::to_string(max_token_length) + ")");
    if (data.size() - pos < static_cast<std::size_t>(len))
      fail("truncated: token " + std::to_string(i) + " needs " + std::to_string(len) + " bytes at byte " +
           std::to_string(pos) + " but the file has " + std::to_string(data.size()) + " bytes (vocab_size " +
           std::to_string(vocab_size) + ")");
    pieces[i].assign(data.data() + pos, len);
    pos += len;
  }
  return std::make_unique<Llama2cTokenizer>(std::move(pieces), std::move(scores));
}

}  // namespace qmeter::engine
