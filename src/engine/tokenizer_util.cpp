#include "tokenizer_util.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <cstring>
#include <mutex>

#include "qmeter/core/error.h"

namespace qmeter::engine::detail {

std::size_t utf8_char_length_at(std::string_view text, std::size_t pos) {
  std::size_t len = utf8_sequence_length(static_cast<unsigned char>(text[pos]));
  return std::min(len, text.size() - pos);
}

// Decodes one character at s[pos]; returns its length, or 0 when the bytes there are not a
// complete valid character (overlong forms, surrogates and code points past U+10FFFF included).
static std::size_t valid_char_length(std::string_view s, std::size_t pos) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data()) + pos;
  std::size_t avail = s.size() - pos;
  unsigned char c = p[0];
  if (c < 0x80) return 1;
  std::size_t len;
  uint32_t cp;
  if ((c & 0xE0) == 0xC0) {
    len = 2, cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3, cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4, cp = c & 0x07;
  } else {
    return 0;
  }
  if (avail < len) return 0;
  for (std::size_t i = 1; i < len; ++i) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (p[i] & 0x3F);
  }
  static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

std::size_t valid_utf8_prefix(std::string_view s) {
  std::size_t pos = 0;
  while (pos < s.size()) {
    std::size_t len = valid_char_length(s, pos);
    if (len == 0) break;
    pos += len;
  }
  return pos;
}

std::optional<uint8_t> parse_byte_piece(std::string_view piece) {
  if (piece.size() != 6 || piece.substr(0, 3) != "<0x" || piece[5] != '>') return std::nullopt;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  int hi = hex(piece[3]), lo = hex(piece[4]);
  if (hi < 0 || lo < 0) return std::nullopt;
  return static_cast<uint8_t>(hi * 16 + lo);
}

std::string byte_piece_name(uint8_t b) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  return std::string("<0x") + kHex[b >> 4] + kHex[b & 15] + ">";
}

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  if (from.empty()) return std::string(s);
  out.reserve(s.size());
  std::size_t pos = 0;
  while (true) {
    std::size_t hit = s.find(from, pos);
    if (hit == std::string_view::npos) break;
    out.append(s.substr(pos, hit - pos));
    out.append(to);
    pos = hit + from.size();
  }
  out.append(s.substr(pos));
  return out;
}

// GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the other 68 bytes
// take the code points from U+0100 on, in byte order.
static std::array<uint32_t, 256> make_byte_level_code_points() {
  std::array<uint32_t, 256> cps{};
  uint32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    cps[b] = printable ? static_cast<uint32_t>(b) : next++;
  }
  return cps;
}

const std::array<std::string, 256>& byte_level_chars() {
  static const std::array<std::string, 256> chars = [] {
    std::array<std::string, 256> out;
    auto cps = make_byte_level_code_points();
    for (int b = 0; b < 256; ++b) append_utf8(out[b], cps[b]);
    return out;
  }();
  return chars;
}

std::string byte_level_decode(std::string_view piece) {
  static const std::vector<int> byte_of_code_point = [] {
    std::vector<int> inv(512, -1);
    auto cps = make_byte_level_code_points();
    for (int b = 0; b < 256; ++b) inv[cps[b]] = b;
    return inv;
  }();
  std::string out;
  out.reserve(piece.size());
  std::size_t pos = 0;
  while (pos < piece.size()) {
    std::size_t len = valid_char_length(piece, pos);
    if (len == 0) {  // not valid UTF-8: keep the raw byte
      out += piece[pos++];
      continue;
    }
    const auto* p = reinterpret_cast<const unsigned char*>(piece.data()) + pos;
    uint32_t cp = len == 1 ? p[0] : len == 2 ? ((p[0] & 0x1F) << 6) | (p[1] & 0x3F) : 0x110000;
    if (cp < byte_of_code_point.size() && byte_of_code_point[cp] >= 0)
      out += static_cast<char>(byte_of_code_point[cp]);
    else
      out.append(piece.substr(pos, len));
    pos += len;
  }
  return out;
}

void ConcatPairTable::build(const std::vector<std::string>& pieces, const PieceIndex& index) {
  canonical.resize(pieces.size());
  for (std::size_t id = 0; id < pieces.size(); ++id) {
    auto it = index.find(pieces[id]);
    canonical[id] = it == index.end() ? -1 : it->second;  // -1: never part of a merge
  }
  merged.clear();
  for (const auto& [piece, id] : index) {
    std::string_view s = piece;
    for (std::size_t cut = 1; cut < s.size(); ++cut) {
      auto left = index.find(s.substr(0, cut));
      if (left == index.end()) continue;
      auto right = index.find(s.substr(cut));
      if (right == index.end()) continue;
      merged.emplace(key(left->second, right->second), id);
    }
  }
}

bool WordCache::get(std::string_view key, std::vector<int>& out) const {
  std::shared_lock lock(mutex_);
  auto it = map_.find(key);
  if (it == map_.end()) return false;
  out.insert(out.end(), it->second.begin(), it->second.end());
  return true;
}

void WordCache::put(std::string_view key, const int* ids, std::size_t n) {
  std::unique_lock lock(mutex_);
  if (map_.size() >= kMaxEntries) map_.clear();
  map_.try_emplace(std::string(key), ids, ids + n);
}

void ScoredBpe::init(const std::vector<std::string>& pieces, const std::vector<float>& scores, const PieceIndex& index,
                     std::string_view space) {
  pieces_ = &pieces;
  scores_ = &scores;
  pairs_.build(pieces, index);
  auto it = index.find(space);
  space_id_ = it == index.end() ? -1 : it->second;
  joins_space_.fill(false);
  for (const auto& [piece, id] : index)
    for (std::size_t pos = piece.find(space, 1); pos != std::string::npos; pos = piece.find(space, pos + 1))
      joins_space_[static_cast<unsigned char>(piece[pos - 1])] = true;
}

void ScoredBpe::merge_part(const int* begin, std::size_t n, std::vector<int>& out) const {
  if (n == 1) {
    out.push_back(*begin);
    return;
  }
  std::string_view key(reinterpret_cast<const char*>(begin), n * sizeof(int));
  const bool cacheable = key.size() <= WordCache::kMaxKeyBytes;
  if (cacheable && cache_.get(key, out)) return;
  std::vector<int> part(begin, begin + n);
  bpe_merge<float>(part, [&](int a, int b, float* priority, int* merged) {
    if (a < 0 || b < 0) return false;
    int m = pairs_.find(a, b);
    if (m < 0) return false;
    *priority = -(*scores_)[m];
    *merged = m;
    return true;
  });
  if (cacheable) cache_.put(key, part.data(), part.size());
  out.insert(out.end(), part.begin(), part.end());
}

void ScoredBpe::merge(std::vector<int>& ids) const {
  std::vector<int> out;
  out.reserve(ids.size());
  std::size_t start = 0;
  for (std::size_t i = 1; i <= ids.size(); ++i) {
    bool cut = i == ids.size();
    if (!cut && ids[i] == space_id_ && space_id_ >= 0 && ids[i - 1] >= 0) {
      const std::string& left = (*pieces_)[ids[i - 1]];
      cut = left.empty() || !joins_space_[static_cast<unsigned char>(left.back())];
    }
    if (cut) {
      merge_part(ids.data() + start, i - start, out);
      start = i;
    }
  }
  ids.swap(out);
}

// ---------------------------------------------------------------- special tokens

void SpecialTokenSplitter::add(Token token) {
  if (token.content.empty()) return;
  tokens_.push_back(std::move(token));
  int idx = static_cast<int>(tokens_.size()) - 1;
  auto& bucket = by_first_byte_[static_cast<unsigned char>(tokens_.back().content[0])];
  bucket.push_back(idx);
  std::stable_sort(bucket.begin(), bucket.end(), [&](int a, int b) {
    return tokens_[a].content.size() > tokens_[b].content.size();
  });
}

static bool is_ascii_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

std::vector<SpecialTokenSplitter::Segment> SpecialTokenSplitter::split(std::string_view text,
                                                                       bool parse_special) const {
  std::vector<Segment> out;
  std::size_t seg_start = 0, pos = 0;
  auto emit_text = [&](std::size_t begin, std::size_t end) {
    if (end > begin) out.push_back({text.substr(begin, end - begin), -1, begin == 0});
  };
  while (pos < text.size()) {
    const auto& bucket = by_first_byte_[static_cast<unsigned char>(text[pos])];
    const Token* hit = nullptr;
    for (int idx : bucket) {
      const Token& t = tokens_[idx];
      if (t.special && !parse_special) continue;
      if (text.compare(pos, t.content.size(), t.content) == 0) {
        hit = &t;
        break;
      }
    }
    if (!hit) {
      ++pos;
      continue;
    }
    std::size_t text_end = pos;
    if (hit->lstrip)
      while (text_end > seg_start && is_ascii_space(text[text_end - 1])) --text_end;
    emit_text(seg_start, text_end);
    out.push_back({{}, hit->id, false});
    pos += hit->content.size();
    if (hit->rstrip)
      while (pos < text.size() && is_ascii_space(text[pos])) ++pos;
    seg_start = pos;
  }
  emit_text(seg_start, text.size());
  return out;
}

// ---------------------------------------------------------------- regex splitting

struct RegexSplitter::Impl {
  std::string pattern;
  pcre2_code* code = nullptr;
  bool jit = false;
  bool invert = false;
  SplitBehavior behavior = SplitBehavior::kIsolated;
  ~Impl() {
    if (code) pcre2_code_free(code);
  }
};

RegexSplitter::RegexSplitter(const std::string& pattern, const std::string& context, bool invert,
                             SplitBehavior behavior)
    : impl_(std::make_unique<Impl>()) {
  int err = 0;
  PCRE2_SIZE err_offset = 0;
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                              PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &err_offset, nullptr);
  if (!impl_->code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    throw UsageError(context + ": pre-tokenizer regex does not compile at offset " + std::to_string(err_offset) +
                     ": " + reinterpret_cast<const char*>(msg));
  }
  impl_->jit = pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE) == 0;
  impl_->pattern = pattern;
  impl_->invert = invert;
  impl_->behavior = behavior;
}

RegexSplitter::~RegexSplitter() = default;
RegexSplitter::RegexSplitter(RegexSplitter&&) noexcept = default;
RegexSplitter& RegexSplitter::operator=(RegexSplitter&&) noexcept = default;
const std::string& RegexSplitter::pattern() const { return impl_->pattern; }

void RegexSplitter::split(std::vector<std::string_view>& pieces) const {
  struct MatchData {  // one per thread: the compiled code is shared, match data is not
    pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
    ~MatchData() { pcre2_match_data_free(data); }
  };
  thread_local MatchData md;
  std::vector<std::string_view> out;
  out.reserve(pieces.size() * 2);
  struct Span {
    std::size_t begin, end;
    bool is_match;
  };
  std::vector<Span> spans;
  for (std::string_view piece : pieces) {
    spans.clear();
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(piece.data());
    std::size_t pos = 0, gap_start = 0;
    while (pos <= piece.size()) {
      int rc = impl_->jit ? pcre2_jit_match(impl_->code, subject, piece.size(), pos, 0, md.data, nullptr)
                          : PCRE2_ERROR_JIT_STACKLIMIT;
      // The JIT's small default stack can run out on huge runs of one class; the interpreter
      // (heap-backed) then takes over.
      if (rc == PCRE2_ERROR_JIT_STACKLIMIT) rc = pcre2_match(impl_->code, subject, piece.size(), pos, 0, md.data, nullptr);
      if (rc < 0) break;  // PCRE2_ERROR_NOMATCH (or a resource limit: the rest stays one gap)
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.data);
      std::size_t mb = ov[0], me = ov[1];
      if (me == mb) {  // empty match: step over one character
        if (mb >= piece.size()) break;
        pos = mb + utf8_char_length_at(piece, mb);
        continue;
      }
      if (mb > gap_start) spans.push_back({gap_start, mb, false});
      spans.push_back({mb, me, true});
      gap_start = pos = me;
    }
    if (gap_start < piece.size()) spans.push_back({gap_start, piece.size(), false});
    if (impl_->invert)
      for (auto& s : spans) s.is_match = !s.is_match;
    // Apply the behaviour: spans are contiguous and cover the piece.
    std::size_t pending_begin = std::string_view::npos;  // for MergedWithNext
    for (std::size_t i = 0; i < spans.size(); ++i) {
      const Span& s = spans[i];
      std::string_view text = piece.substr(s.begin, s.end - s.begin);
      switch (impl_->behavior) {
        case SplitBehavior::kIsolated:
          out.push_back(text);
          break;
        case SplitBehavior::kRemoved:
          if (!s.is_match) out.push_back(text);
          break;
        case SplitBehavior::kMergedWithPrevious:
          if (s.is_match && i > 0 && !spans[i - 1].is_match)
            out.back() = piece.substr(spans[i - 1].begin, s.end - spans[i - 1].begin);
          else
            out.push_back(text);
          break;
        case SplitBehavior::kMergedWithNext:
          if (s.is_match) {
            if (pending_begin != std::string_view::npos) out.push_back(piece.substr(pending_begin, s.begin - pending_begin));
            pending_begin = s.begin;
          } else if (pending_begin != std::string_view::npos) {
            out.push_back(piece.substr(pending_begin, s.end - pending_begin));
            pending_begin = std::string_view::npos;
          } else {
            out.push_back(text);
          }
          break;
      }
    }
    if (pending_begin != std::string_view::npos) out.push_back(piece.substr(pending_begin));
  }
  pieces.swap(out);
}

}  // namespace qmeter::engine::detail
