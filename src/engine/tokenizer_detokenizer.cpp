// Streaming detokenization: tokens map to raw bytes (token_bytes), and a multi-byte character
// may be spread over several byte-fallback or byte-level tokens. Complete characters go out at
// once; the bytes of a character still being completed wait in `pending_`; bytes that can never
// become a valid character are replaced by U+FFFD so that no chunk carries broken UTF-8.
#include "qmeter/engine/tokenizer.h"
#include "tokenizer_util.h"

namespace qmeter::engine {
namespace {

constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";

// Whether `tail` (shorter than a full character) can still grow into a valid character.
bool could_complete(std::string_view tail) {
  auto lead = static_cast<unsigned char>(tail[0]);
  int need = detail::utf8_sequence_length(lead);
  if (need == 1 || static_cast<int>(tail.size()) >= need) return false;
  if (lead == 0xC0 || lead == 0xC1 || lead > 0xF4) return false;  // overlong or past U+10FFFF
  for (std::size_t i = 1; i < tail.size(); ++i)
    if ((static_cast<unsigned char>(tail[i]) & 0xC0) != 0x80) return false;
  if (tail.size() >= 2) {  // the second byte's range depends on the lead (overlongs, surrogates)
    auto second = static_cast<unsigned char>(tail[1]);
    if (lead == 0xE0 && second < 0xA0) return false;
    if (lead == 0xED && second > 0x9F) return false;
    if (lead == 0xF0 && second < 0x90) return false;
    if (lead == 0xF4 && second > 0x8F) return false;
  }
  return true;
}

// Moves every complete, valid character of `pending` to the result; invalid bytes become U+FFFD;
// an incomplete but still possible character stays in `pending`.
std::string drain(std::string& pending, bool final) {
  std::string out;
  std::size_t pos = 0;
  while (pos < pending.size()) {
    std::string_view rest = std::string_view(pending).substr(pos);
    std::size_t valid = detail::valid_utf8_prefix(rest);
    out.append(rest.substr(0, valid));
    pos += valid;
    if (pos == pending.size()) break;
    rest = std::string_view(pending).substr(pos);
    std::size_t need = detail::utf8_sequence_length(static_cast<unsigned char>(rest[0]));
    if (!final && rest.size() < need && could_complete(rest)) break;  // wait for more bytes
    out.append(kReplacementChar);
    pos += 1;
    // Skip the continuation bytes that belonged to the broken character.
    while (pos < pending.size() && (static_cast<unsigned char>(pending[pos]) & 0xC0) == 0x80 &&
           detail::valid_utf8_prefix(std::string_view(pending).substr(pos, 1)) == 0)
      ++pos;
  }
  pending.erase(0, pos);
  return out;
}

}  // namespace

IncrementalDetokenizer::IncrementalDetokenizer(const Tokenizer& tok, bool strip_leading_space)
    : tok_(&tok), strip_leading_space_(strip_leading_space) {}

std::string IncrementalDetokenizer::push(int id) {
  std::string bytes = tok_->token_bytes(id);
  if (bytes.empty()) return {};
  if (first_) {
    first_ = false;
    if (strip_leading_space_ && bytes[0] == ' ') bytes.erase(0, 1);
  }
  pending_ += bytes;
  return drain(pending_, false);
}

std::string IncrementalDetokenizer::flush() { return drain(pending_, true); }

}  // namespace qmeter::engine
