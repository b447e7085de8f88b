// IncrementalDetokenizer on a byte-level vocabulary without merges, so that every token is one
// byte and multi-byte characters are always split across tokens.
#include <gtest/gtest.h>

#include "qmeter/engine/tokenizer.h"
#include "tokenizer_test_util.h"

using qmeter::engine::IncrementalDetokenizer;

namespace {

std::unique_ptr<qmeter::engine::Tokenizer> bytes_only_tokenizer() {
  qmeter::engine::TokenizerVocab v;
  v.model = "gpt2";
  v.pre = "llama-bpe";
  for (int b = 0; b < 256; ++b) v.tokens.push_back(qmeter::testing::byte_level(std::string(1, static_cast<char>(b))));
  v.tokens.push_back("<|begin_of_text|>");
  v.token_types.assign(256, 1);
  v.token_types.push_back(3);
  v.bos_id = 256;
  return qmeter::engine::make_vocab_tokenizer(v);
}

std::vector<std::string> stream(const qmeter::engine::Tokenizer& tok, const std::vector<int>& ids, bool strip = false) {
  IncrementalDetokenizer detok(tok, strip);
  std::vector<std::string> chunks;
  for (int id : ids) chunks.push_back(detok.push(id));
  chunks.push_back(detok.flush());
  return chunks;
}

std::vector<int> byte_ids(const std::string& s) {
  std::vector<int> ids;
  for (unsigned char c : s) ids.push_back(c);
  return ids;
}

}  // namespace

TEST(TokenizerDetokenizer, HoldsBackIncompleteCharacters) {
  auto tok = bytes_only_tokenizer();
  const std::string text = "h\xC3\xA9 \xE4\xB8\x96\xF0\x9F\x99\x82";  // "hé 世🙂"
  std::vector<int> ids = tok->encode(text, true);
  ASSERT_EQ(ids.size(), 1 + text.size());  // BOS + one token per byte
  auto chunks = stream(*tok, ids);
  // One chunk per token plus the flush: a character appears with its last byte, whole.
  const std::vector<std::string> expected = {"",  "h", "",  "\xC3\xA9", " ", "", "", "\xE4\xB8\x96",
                                             "", "",  "", "\xF0\x9F\x99\x82", ""};
  EXPECT_EQ(chunks, expected);
  for (const auto& c : chunks) EXPECT_TRUE(qmeter::testing::is_valid_utf8(c));
}

TEST(TokenizerDetokenizer, BrokenBytesBecomeReplacementCharacters) {
  auto tok = bytes_only_tokenizer();
  const std::string fffd = "\xEF\xBF\xBD";
  // A three-byte character cut short by "A": the partial bytes are one U+FFFD, then "A".
  EXPECT_EQ(stream(*tok, byte_ids("\xE4\xB8" "A")), (std::vector<std::string>{"", "", fffd + "A", ""}));
  // A stray continuation byte can never complete: replaced at once.
  EXPECT_EQ(stream(*tok, byte_ids("a\x80")), (std::vector<std::string>{"a", fffd, ""}));
  // An incomplete character at the end is replaced by flush().
  EXPECT_EQ(stream(*tok, byte_ids("ok\xF0\x9F")), (std::vector<std::string>{"o", "k", "", "", fffd}));
  // 0xED 0xA0 would start a UTF-16 surrogate: invalid already at the second byte.
  auto chunks = stream(*tok, byte_ids("\xED\xA0\x80"));
  std::string joined;
  for (auto& c : chunks) {
    EXPECT_TRUE(qmeter::testing::is_valid_utf8(c)) << c;
    joined += c;
  }
  EXPECT_EQ(joined.substr(0, 3), fffd);
}

TEST(TokenizerDetokenizer, StripsOnlyTheFirstLeadingSpace) {
  auto tok = bytes_only_tokenizer();
  auto chunks = stream(*tok, tok->encode(" a b", true), /*strip=*/true);
  std::string joined;
  for (auto& c : chunks) joined += c;
  EXPECT_EQ(joined, "a b");
}
