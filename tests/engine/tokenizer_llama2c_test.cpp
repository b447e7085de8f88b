// llama2.c tokenizer: stories260K's tok512.bin against llama2.c's own algorithm (run.c's encode,
// written out below in its original quadratic form), the perplexity protocol's token count from
// shared/data/README.md, byte fallback, decoding and corrupt files.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>
#include <atomic>

#include "qmeter/core/error.h"
#include "qmeter/engine/tokenizer.h"
#include "test_support.h"
#include "tokenizer_test_util.h"

using qmeter::engine::load_llama2c_tokenizer;
using qmeter::engine::Tokenizer;

namespace {

constexpr const char* kTok512 = "models/stories260K/tok512.bin";

// The vocabulary read straight from the file (independently of the engine's loader).
struct RawVocab {
  std::vector<std::string> pieces;
  std::vector<float> scores;
  std::map<std::string, int> index;  // first id of each piece, like run.c's str_lookup
};

RawVocab read_raw_vocab(const std::string& path, int n) {
  RawVocab v;
  std::ifstream in(path, std::ios::binary);
  int32_t max_len;
  in.read(reinterpret_cast<char*>(&max_len), 4);
  for (int i = 0; i < n; ++i) {
    float score;
    int32_t len;
    in.read(reinterpret_cast<char*>(&score), 4);
    in.read(reinterpret_cast<char*>(&len), 4);
    std::string s(len, '\0');
    in.read(s.data(), len);
    v.pieces.push_back(s);
    v.scores.push_back(score);
    v.index.emplace(s, i);
  }
  return v;
}

// run.c's encode() as written there: rescan every adjacent pair after each merge.
std::vector<int> run_c_encode(const RawVocab& v, const std::string& text, bool bos) {
  std::vector<int> t;
  if (bos) t.push_back(1);
  if (!text.empty()) t.push_back(v.index.at(" "));
  std::string buf;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) buf.clear();
    buf += text[i];
    if (i + 1 < text.size() && (static_cast<unsigned char>(text[i + 1]) & 0xC0) == 0x80 && buf.size() < 4) continue;
    auto it = v.index.find(buf);
    if (it != v.index.end()) {
      t.push_back(it->second);
    } else {
      for (unsigned char c : buf) t.push_back(c + 3);
    }
    buf.clear();
  }
  while (true) {
    float best = -1e10f;
    int best_id = -1, best_idx = -1;
    for (std::size_t i = 0; i + 1 < t.size(); ++i) {
      auto it = v.index.find(v.pieces[t[i]] + v.pieces[t[i + 1]]);
      if (it != v.index.end() && v.scores[it->second] > best) {
        best = v.scores[it->second];
        best_id = it->second;
        best_idx = static_cast<int>(i);
      }
    }
    if (best_idx < 0) break;
    t[best_idx] = best_id;
    t.erase(t.begin() + best_idx + 1);
  }
  return t;
}

std::vector<std::string> paragraphs(const std::string& text, std::size_t limit) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos <= text.size() && out.size() < limit) {
    std::size_t end = text.find("\n\n", pos);
    if (end == std::string::npos) end = text.size();
    out.push_back(text.substr(pos, end - pos));
    pos = end + 2;
  }
  return out;
}

}  // namespace

TEST(TokenizerLlama2c, PinnedSentenceMatchesRunC) {
  QMETER_REQUIRE_SHARED_DATA(path, kTok512);
  auto tok = load_llama2c_tokenizer(path, 512);
  const std::string text = "Once upon a time, there was a little girl named Lily.";
  // Pieces: "\n<s>\n" " Once" " upon" " a" " time" "," " there" " was" " a" " little" " g" "ir"
  // "l" " named" " Lily" "." (" girl" is not a piece of this 512-token vocabulary).
  const std::vector<int> expected = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426};
  EXPECT_EQ(tok->encode(text, true), expected);
  EXPECT_EQ(run_c_encode(read_raw_vocab(path, 512), text, true), expected);
  EXPECT_EQ(tok->piece(403), " Once");
  EXPECT_EQ(tok->piece(421), "l");
  EXPECT_EQ(tok->decode(expected), text);  // the dummy-prefix space after BOS is dropped
  EXPECT_EQ(tok->kind(), "llama2c");
  EXPECT_EQ(tok->vocab_size(), 512);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
}

TEST(TokenizerLlama2c, ByteFallbackAndMultiByteCharacters) {
  QMETER_REQUIRE_SHARED_DATA(path, kTok512);
  auto tok = load_llama2c_tokenizer(path, 512);
  // "é" (C3 A9) is piece 485; 世 界 🙂 and "\n" are not pieces: their bytes become ids byte+3.
  const std::string text = "h\xC3\xA9llo \xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x99\x82\nThe end";
  std::vector<int> ids = tok->encode(text, true);
  const std::vector<int> expected = {1,   270, 485, 306, 414, 410, 0xE4 + 3, 0xB8 + 3, 0x96 + 3, 0xE7 + 3, 0x95 + 3,
                                     0x8C + 3, 410, 0xF0 + 3, 0x9F + 3, 0x99 + 3, 0x82 + 3, 0x0A + 3, 434, 260, 344, 264};
  EXPECT_EQ(ids, expected);
  EXPECT_EQ(tok->piece(0xE4 + 3), "<0xE4>");
  EXPECT_EQ(tok->token_bytes(0xE4 + 3), "\xE4");
  EXPECT_EQ(tok->token_bytes(485), "\xC3\xA9");
  EXPECT_EQ(tok->decode(ids), text);
  EXPECT_EQ(run_c_encode(read_raw_vocab(path, 512), text, true), expected);
}

TEST(TokenizerLlama2c, EmptyTextAndBos) {
  QMETER_REQUIRE_SHARED_DATA(path, kTok512);
  auto tok = load_llama2c_tokenizer(path, 512);
  EXPECT_EQ(tok->encode("", true), std::vector<int>{1});
  EXPECT_TRUE(tok->encode("", false).empty());
  // Without BOS the dummy prefix stays, and so does its space when decoding (run.c strips it
  // only after BOS).
  auto ids = tok->encode("Lily", false);
  EXPECT_EQ(ids, std::vector<int>{317});
  EXPECT_EQ(tok->decode(ids), " Lily");
  EXPECT_TRUE(tok->is_special(1));
  EXPECT_FALSE(tok->is_special(317));
  EXPECT_EQ(tok->token_bytes(1), "");
}

// shared/data/README.md: the first 500 paragraphs of tinystories_val.txt, each BOS + the
// tokenizer's encoding, truncated to 512 tokens, give 48,715 predicted tokens (measured outside
// the project). The first 100 must also match run.c's quadratic loop; all decode back exactly.
TEST(TokenizerLlama2c, TinyStoriesParagraphsMatchReferenceCount) {
  QMETER_REQUIRE_SHARED_DATA(path, kTok512);
  QMETER_REQUIRE_SHARED_DATA(val, "eval/tinystories_val.txt");
  auto tok = load_llama2c_tokenizer(path, 512);
  RawVocab raw = read_raw_vocab(path, 512);
  auto paras = paragraphs(qmeter::read_file(val), 500);
  ASSERT_EQ(paras.size(), 500u);
  std::size_t predicted = 0;
  for (std::size_t i = 0; i < paras.size(); ++i) {
    std::vector<int> ids = tok->encode(paras[i], true);
    predicted += std::min<std::size_t>(ids.size(), 512) - 1;
    if (i < 100) ASSERT_EQ(ids, run_c_encode(raw, paras[i], true)) << "paragraph " << i;
    ASSERT_EQ(tok->decode(ids), paras[i]) << "paragraph " << i;
  }
  EXPECT_EQ(predicted, 48715u);
}

TEST(TokenizerLlama2c, StreamingNeverSplitsACharacter) {
  QMETER_REQUIRE_SHARED_DATA(path, kTok512);
  auto tok = load_llama2c_tokenizer(path, 512);
  const std::string text = "caf\xC3\xA9 \xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x99\x82!";
  qmeter::engine::IncrementalDetokenizer detok(*tok, /*strip_leading_space=*/true);
  std::string streamed;
  std::vector<std::string> chunks;
  for (int id : tok->encode(text, true)) {
    std::string chunk = detok.push(id);
    EXPECT_TRUE(qmeter::testing::is_valid_utf8(chunk)) << "chunk after id " << id;
    if (!chunk.empty()) chunks.push_back(chunk);
    streamed += chunk;
  }
  streamed += detok.flush();
  EXPECT_EQ(streamed, text);
  // 世 arrives as three byte tokens: the first two yield nothing, the third the whole character.
  EXPECT_NE(std::find(chunks.begin(), chunks.end(), "\xE4\xB8\x96"), chunks.end());
}

TEST(TokenizerLlama2c, CorruptFilesGiveErrorsNamingTheFile) {
  QMETER_REQUIRE_SHARED_DATA(path, kTok512);
  const std::string dir = qmeter::testing::test_output_dir("tokenizer_llama2c_corrupt");
  const std::string good = qmeter::read_file(path);
  auto expect_error = [](const std::string& file, int vocab, const std::string& fragment) {
    try {
      load_llama2c_tokenizer(file, vocab);
      ADD_FAILURE() << "no error for " << file;
    } catch (const qmeter::Error& e) {
      EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  // Cut inside the pieces: the message names the token being read.
  std::string truncated = dir + "/truncated.bin";
  qmeter::testing::write_text_file(truncated, good.substr(0, good.size() / 2));
  expect_error(truncated, 512, "truncated");
  std::string header_only = dir + "/header_only.bin";
  qmeter::testing::write_text_file(header_only, good.substr(0, 2));
  expect_error(header_only, 512, "max_token_length");
  // A negative piece length in token 0.
  std::string bad_len = good;
  int32_t minus_one = -1;
  std::memcpy(bad_len.data() + 8, &minus_one, 4);
  std::string bad_len_path = dir + "/bad_length.bin";
  qmeter::testing::write_text_file(bad_len_path, bad_len);
  expect_error(bad_len_path, 512, "token 0 has length -1");
  // More tokens than the file holds (a model whose vocab_size does not fit the tokenizer).
  expect_error(path, 1024, "truncated");
  expect_error(path, 100, "too small");
  EXPECT_THROW(load_llama2c_tokenizer(dir + "/missing.bin", 512), qmeter::Error);
}

// encode() is const and shared by the server's threads: the word cache must not mix them up.
TEST(TokenizerLlama2c, ConcurrentEncodingMatchesSerial) {
  QMETER_REQUIRE_SHARED_DATA(path, kTok512);
  QMETER_REQUIRE_SHARED_DATA(val, "eval/tinystories_val.txt");
  auto tok = load_llama2c_tokenizer(path, 512);
  auto paras = paragraphs(qmeter::read_file(val), 300);
  std::vector<std::vector<int>> serial;
  {
    auto fresh = load_llama2c_tokenizer(path, 512);
    for (auto& p : paras) serial.push_back(fresh->encode(p, true));
  }
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (std::size_t i = t; i < paras.size() * 2; i += 3) {
        std::size_t k = i % paras.size();
        if (tok->encode(paras[k], true) != serial[k]) ++mismatches;
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}
