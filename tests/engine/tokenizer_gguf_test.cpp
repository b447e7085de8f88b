// The GGUF-metadata tokenizer (make_vocab_tokenizer): model "llama" checked against the llama2.c
// tokenizer on the same vocabulary (stories260K's, rewritten the way a GGUF converter stores it),
// model "gpt2" on a hand-made byte-level vocabulary, special-token types, and bad metadata.
#include <gtest/gtest.h>

#include <fstream>

#include "qmeter/core/error.h"
#include "qmeter/engine/tokenizer.h"
#include "test_support.h"
#include "tokenizer_test_util.h"

using qmeter::engine::make_vocab_tokenizer;
using qmeter::engine::TokenizerVocab;
using qmeter::testing::byte_level;

namespace {

const std::string kSp = "\xE2\x96\x81";

std::string replace_spaces(const std::string& s) {
  std::string out;
  for (char c : s) out += c == ' ' ? kSp : std::string(1, c);
  return out;
}

// tok512.bin as GGUF stores a SentencePiece vocabulary: "▁" for spaces, token types
// 2 unknown / 3 control / 6 byte / 1 normal.
TokenizerVocab tok512_as_gguf(const std::string& path) {
  TokenizerVocab v;
  v.model = "llama";
  std::ifstream in(path, std::ios::binary);
  int32_t max_len;
  in.read(reinterpret_cast<char*>(&max_len), 4);
  for (int i = 0; i < 512; ++i) {
    float score;
    int32_t len;
    in.read(reinterpret_cast<char*>(&score), 4);
    in.read(reinterpret_cast<char*>(&len), 4);
    std::string s(len, '\0');
    in.read(s.data(), len);
    v.tokens.push_back(i >= 3 && i < 259 ? s : replace_spaces(s));
    v.scores.push_back(score);
    v.token_types.push_back(i == 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1);
  }
  v.bos_id = 1, v.eos_id = 2, v.unk_id = 0;
  v.source = path;
  return v;
}

}  // namespace

TEST(TokenizerGguf, LlamaModelMatchesLlama2cOnTheSameVocabulary) {
  QMETER_REQUIRE_SHARED_DATA(path, "models/stories260K/tok512.bin");
  QMETER_REQUIRE_SHARED_DATA(val, "eval/tinystories_val.txt");
  auto gguf = make_vocab_tokenizer(tok512_as_gguf(path));
  auto llama2c = qmeter::engine::load_llama2c_tokenizer(path, 512);
  EXPECT_EQ(gguf->kind(), "gguf-llama");
  EXPECT_TRUE(gguf->add_bos_by_default());
  std::string text = qmeter::read_file(val).substr(0, 60000);
  text += "\nh\xC3\xA9llo \xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x99\x82  two  spaces";
  std::size_t start = 0, count = 0;
  while (start < text.size()) {
    std::size_t end = text.find("\n\n", start);
    if (end == std::string::npos) end = text.size();
    std::string para = text.substr(start, end - start);
    start = end + 2;
    std::vector<int> ids = gguf->encode(para, true);
    ASSERT_EQ(ids, llama2c->encode(para, true)) << para;
    ASSERT_EQ(gguf->decode(ids), para);
    ++count;
  }
  EXPECT_GT(count, 50u);
  EXPECT_EQ(gguf->token_bytes(0xE4 + 3), "\xE4");
  EXPECT_EQ(gguf->token_bytes(403), " Once");
}

namespace {

// The byte-level vocabulary of the Hugging Face test, as GGUF metadata.
TokenizerVocab byte_level_vocab(const std::string& pre) {
  TokenizerVocab v;
  v.model = "gpt2";
  v.pre = pre;
  for (int b = 0; b < 256; ++b) v.tokens.push_back(byte_level(std::string(1, static_cast<char>(b))));
  std::vector<std::pair<std::string, std::string>> merges = {
      {"l", "l"},       {"\xC3", "\xA9"},    {"h", "\xC3\xA9"}, {"h\xC3\xA9", "ll"}, {"h\xC3\xA9ll", "o"},
      {" ", "\xE4"}, {" \xE4", "\xB8"}, {"\xF0", "\x9F"},    {" ", "\xF0"},      {"1", "2"}};
  for (auto& [a, b] : merges) {
    v.tokens.push_back(byte_level(a + b));
    v.merges.push_back(byte_level(a) + " " + byte_level(b));
  }
  v.token_types.assign(v.tokens.size(), 1);
  v.tokens.push_back("<|begin_of_text|>");
  v.token_types.push_back(3);
  v.tokens.push_back("<|eot_id|>");
  v.token_types.push_back(3);
  v.tokens.push_back("<|custom|>");
  v.token_types.push_back(4);
  v.bos_id = 266;
  v.eos_id = 267;
  return v;
}

}  // namespace

// Same derivation as TokenizerHf.ByteLevelMultiByteTextFollowsMergeRanks.
TEST(TokenizerGguf, Gpt2ModelWithLlama3PreTokenizer) {
  auto tok = make_vocab_tokenizer(byte_level_vocab("llama-bpe"));
  EXPECT_EQ(tok->kind(), "gguf-gpt2");
  const std::string text = "h\xC3\xA9llo \xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x99\x82";
  std::vector<int> ids = tok->encode(text, true);
  EXPECT_EQ(ids, (std::vector<int>{266, 260, 262, 0x96, 0xE7, 0x95, 0x8C, 32, 263, 0x99, 0x82}));
  EXPECT_EQ(tok->decode(ids), text);
  // Control tokens only with parse_special; the user-defined one always.
  EXPECT_EQ(tok->encode("a<|eot_id|>", false, true), (std::vector<int>{'a', 267}));
  EXPECT_EQ(tok->encode("a<|eot_id|>", false, false).size(), 11u);
  EXPECT_EQ(tok->encode("a<|custom|>", false, false), (std::vector<int>{'a', 268}));
  auto stops = tok->stop_ids();
  EXPECT_NE(std::find(stops.begin(), stops.end(), 267), stops.end());
  // LLaMA-3 keeps up to three digits together, so the (1,2) merge applies...
  EXPECT_EQ(tok->encode("12", false), std::vector<int>{265});
}

TEST(TokenizerGguf, Qwen2PreTokenizerSplitsDigitsBeforeMerging) {
  // ...while Qwen2 cuts every digit apart before BPE runs.
  auto tok = make_vocab_tokenizer(byte_level_vocab("qwen2"));
  EXPECT_EQ(tok->encode("12", false), (std::vector<int>{'1', '2'}));
  EXPECT_EQ(tok->encode("h\xC3\xA9llo", false), std::vector<int>{260});
}

TEST(TokenizerGguf, BadMetadataGivesErrors) {
  auto expect_error = [](TokenizerVocab v, const std::string& fragment) {
    v.source = "model.gguf";
    try {
      make_vocab_tokenizer(std::move(v));
      ADD_FAILURE() << "no error, expected " << fragment;
    } catch (const qmeter::UsageError& e) {
      EXPECT_NE(std::string(e.what()).find("model.gguf"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  auto v = byte_level_vocab("llama-bpe");
  v.model = "bert";
  expect_error(v, "tokenizer.ggml.model 'bert'");
  expect_error(byte_level_vocab("mystery"), "tokenizer.ggml.pre 'mystery'");
  v = byte_level_vocab("llama-bpe");
  v.merges.push_back("nope " + byte_level("a"));
  expect_error(v, "tokenizer.ggml.merges[10]");
  v = byte_level_vocab("llama-bpe");
  v.token_types.pop_back();
  expect_error(v, "token_type has 268 entries for 269 tokens");
  v = byte_level_vocab("llama-bpe");
  v.bos_id = 5000;
  expect_error(v, "bos_token_id 5000");
  expect_error(TokenizerVocab{}, "tokens is empty");
  v = byte_level_vocab("llama-bpe");
  v.model = "llama";
  expect_error(v, "needs tokenizer.ggml.scores");
}
