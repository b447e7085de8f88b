// Hugging Face tokenizer.json BPE on small hand-written files. Every expected encoding is derived
// in the comments from the merge ranks and the pre-tokenizer regexes.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>

#include "qmeter/core/error.h"
#include "qmeter/engine/tokenizer.h"
#include "test_support.h"
#include "tokenizer_test_util.h"

using nlohmann::json;
using qmeter::engine::load_hf_tokenizer;
using qmeter::engine::Tokenizer;
using qmeter::testing::byte_level;

namespace {

const std::string kSp = "\xE2\x96\x81";  // U+2581, SentencePiece's visible space

// Writes tokenizer.json (and tokenizer_config.json when given) into a fresh folder.
std::string write_tokenizer(const std::string& name, const json& doc, const json& config = json()) {
  std::string dir = qmeter::testing::test_output_dir("tokenizer_hf_" + name);
  qmeter::testing::write_text_file(dir + "/tokenizer.json", doc.dump(1));
  if (!config.is_null()) qmeter::testing::write_text_file(dir + "/tokenizer_config.json", config.dump(1));
  return dir + "/tokenizer.json";
}

// A byte-level vocabulary: id b (0..255) is byte b's character, then `extra` pieces (raw bytes,
// spelled byte-level here) from id 256 on. Merges are given as raw byte strings too.
struct ByteLevelModel {
  std::vector<std::string> extra;
  std::vector<std::pair<std::string, std::string>> merges;
  bool ignore_merges = false;

  json to_json() const {
    json vocab = json::object();
    for (int b = 0; b < 256; ++b) vocab[byte_level(std::string(1, static_cast<char>(b)))] = b;
    for (std::size_t i = 0; i < extra.size(); ++i) vocab[byte_level(extra[i])] = 256 + static_cast<int>(i);
    json m = json::array();
    for (auto& [a, b] : merges) m.push_back(byte_level(a) + " " + byte_level(b));
    return {{"type", "BPE"}, {"vocab", vocab}, {"merges", m}, {"ignore_merges", ignore_merges}, {"byte_fallback", false}};
  }
};

json split_regex(const std::string& re) {
  return {{"type", "Split"}, {"pattern", {{"Regex", re}}}, {"behavior", "Isolated"}, {"invert", false}};
}
json byte_level_pre(bool add_prefix_space, bool use_regex) {
  return {{"type", "ByteLevel"}, {"add_prefix_space", add_prefix_space}, {"trim_offsets", true}, {"use_regex", use_regex}};
}

const std::string kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const std::string kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

json llama3_pre() { return {{"type", "Sequence"}, {"pretokenizers", {split_regex(kLlama3Regex), byte_level_pre(false, false)}}}; }

std::vector<std::string> token_texts(const Tokenizer& tok, const std::vector<int>& ids) {
  std::vector<std::string> out;
  for (int id : ids) out.push_back(tok.token_bytes(id));
  return out;
}

// A pre-tokenizer probe: every expected word is a whole token and ignore_merges is on, so each
// word comes out as one token and the split points become visible.
std::vector<std::string> probe_split(const std::string& name, const json& pre, const std::vector<std::string>& words,
                                     const std::string& text) {
  ByteLevelModel model;
  model.extra = words;
  model.ignore_merges = true;
  json doc = {{"model", model.to_json()}, {"pre_tokenizer", pre}, {"decoder", {{"type", "ByteLevel"}}}};
  auto tok = load_hf_tokenizer(write_tokenizer(name, doc));
  return token_texts(*tok, tok->encode(text, false));
}

}  // namespace

TEST(TokenizerHf, GptByteCharactersAreThePublishedOnes) {
  // Facts of every GPT-2 / LLaMA-3 vocabulary: space is "Ġ" (U+0120), newline "Ċ" (U+010A),
  // printable ASCII stands for itself.
  EXPECT_EQ(byte_level(" "), "\xC4\xA0");
  EXPECT_EQ(byte_level("\n"), "\xC4\x8A");
  EXPECT_EQ(byte_level("Az!"), "Az!");
}

// "héllo 世界 🙂" under the LLaMA-3 split is "héllo" | " 世界" | " 🙂".
//   héllo = h C3 A9 l l o: rank 0 (l,l), rank 1 (C3,A9), rank 2 (h,é), rank 3 (hé,ll),
//     rank 4 (héll,o) -> one token, id 260.
//   " 世界" = 20 E4 B8 96 E7 95 8C: rank 5 (20,E4), rank 6 (20E4,B8) -> 262, then bytes 96 E7 95 8C.
//   " 🙂" = 20 F0 9F 99 82: (F0,9F) is rank 7 and (20,F0) rank 8, so F0 9F merges first (263) and
//     the space stays alone: 32, 263, 0x99, 0x82.
TEST(TokenizerHf, ByteLevelMultiByteTextFollowsMergeRanks) {
  ByteLevelModel model;
  model.extra = {"ll", "\xC3\xA9", "h\xC3\xA9", "h\xC3\xA9ll", "h\xC3\xA9llo", " \xE4", " \xE4\xB8", "\xF0\x9F", " \xF0"};
  model.merges = {{"l", "l"},       {"\xC3", "\xA9"},       {"h", "\xC3\xA9"}, {"h\xC3\xA9", "ll"}, {"h\xC3\xA9ll", "o"},
                  {" ", "\xE4"}, {" \xE4", "\xB8"}, {"\xF0", "\x9F"},    {" ", "\xF0"}};
  json doc = {{"version", "1.0"}, {"model", model.to_json()}, {"pre_tokenizer", llama3_pre()},
              {"decoder", {{"type", "ByteLevel"}}}};
  auto tok = load_hf_tokenizer(write_tokenizer("bytelevel", doc));
  const std::string text = "h\xC3\xA9llo \xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x99\x82";
  const std::vector<int> expected = {260, 262, 0x96, 0xE7, 0x95, 0x8C, 32, 263, 0x99, 0x82};
  std::vector<int> ids = tok->encode(text, false);
  EXPECT_EQ(ids, expected);
  EXPECT_EQ(tok->decode(ids), text);
  EXPECT_EQ(tok->token_bytes(262), " \xE4\xB8");
  EXPECT_EQ(tok->piece(262), byte_level(" \xE4\xB8"));
  EXPECT_EQ(tok->kind(), "hf-bpe");
  EXPECT_EQ(tok->vocab_size(), 265);
  // Equal ranks cannot happen, but equal pairs can: "lll" merges the leftmost pair first.
  EXPECT_EQ(tok->encode("lll", false), (std::vector<int>{256, 'l'}));
  // No BOS in this tokenizer: add_bos changes nothing.
  EXPECT_EQ(tok->bos_id(), -1);
  EXPECT_EQ(tok->encode("ll", true), std::vector<int>{256});
}

// The LLaMA-3 regex: contractions case-insensitively, letters with one leading non-letter,
// digits in groups of at most three, punctuation with its trailing newlines.
TEST(TokenizerHf, Llama3RegexSplitsContractionsAndDigitGroups) {
  const std::string text = "I'm sure we'LL pay 12345 dollars!\n\nOK";
  const std::vector<std::string> expected = {"I",   "'m", " sure",    " we",      "'LL", " pay",
                                             " ",   "123", "45", " dollars", "!\n\n", "OK"};
  // The vocabulary also holds the pieces a wrong split would produce.
  std::vector<std::string> words = expected;
  for (const char* w : {" 12345", "12345", "'", "LL", "\n", "!", " 123"}) words.push_back(w);
  EXPECT_EQ(probe_split("llama3_split", llama3_pre(), words, text), expected);
}

TEST(TokenizerHf, Qwen2RegexSplitsSingleDigits) {
  json pre = {{"type", "Sequence"}, {"pretokenizers", {split_regex(kQwen2Regex), byte_level_pre(false, false)}}};
  const std::vector<std::string> expected = {"I", "'m", " ", "1", "2", "3", "4", "5", " years"};
  std::vector<std::string> words = expected;
  words.push_back("123");
  EXPECT_EQ(probe_split("qwen2_split", pre, words, "I'm 12345 years"), expected);
}

// GPT-2's regex (ByteLevel use_regex, add_prefix_space): case-sensitive contractions (so "'LL"
// is "'" + "LL"), " ?\p{N}+" keeps all digits with their space, and "\n\nOK" gives "\n", "\n",
// "OK" ("\s+(?!\S)" backs off one newline, the lone "\n" before "OK" is taken by "\s+").
TEST(TokenizerHf, Gpt2RegexWithPrefixSpace) {
  const std::string text = "I'm sure we'LL pay 12345!\n\nOK";
  const std::vector<std::string> expected = {" I", "'m", " sure", " we", "'", "LL", " pay", " 12345", "!", "\n", "\n", "OK"};
  std::vector<std::string> words = expected;
  words.push_back("'LL");
  words.push_back("\n\n");
  EXPECT_EQ(probe_split("gpt2_split", byte_level_pre(true, true), words, text), expected);
}

// SmolLM: Digits(individual) first, then ByteLevel with the GPT-2 regex.
TEST(TokenizerHf, DigitsPreTokenizerIsolatesEachDigit) {
  json pre = {{"type", "Sequence"},
              {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}, byte_level_pre(false, true)}}};
  const std::vector<std::string> expected = {"abc", " ", "1", "2", "3"};
  std::vector<std::string> words = expected;
  words.push_back(" 123");
  EXPECT_EQ(probe_split("digits_split", pre, words, "abc 123"), expected);
}

// ignore_merges (LLaMA-3): a word that is itself a token is taken whole, even when the merges
// would stop short of it. Merges here build "he" and "llo" but never "hello".
TEST(TokenizerHf, IgnoreMergesTakesWholeWords) {
  ByteLevelModel model;
  model.extra = {"ll", "llo", "he", "hello"};
  model.merges = {{"l", "l"}, {"ll", "o"}, {"h", "e"}};
  auto make = [&](bool ignore) {
    model.ignore_merges = ignore;
    json doc = {{"model", model.to_json()}, {"pre_tokenizer", llama3_pre()}};
    return load_hf_tokenizer(write_tokenizer(ignore ? "ignore_merges_on" : "ignore_merges_off", doc));
  };
  EXPECT_EQ(make(false)->encode("hello", false), (std::vector<int>{258, 257}));  // "he" "llo"
  EXPECT_EQ(make(true)->encode("hello", false), std::vector<int>{259});          // "hello"
}

// Added tokens: special ones only with parse_special, non-special ones always; BOS from
// tokenizer_config.json, add_bos from the post-processor template, stop ids from the usual names.
TEST(TokenizerHf, SpecialTokensBosAndStopIds) {
  ByteLevelModel model;  // bytes only: no merges, so text tokens are byte values
  json added = json::array();
  auto add = [&](int id, const std::string& content, bool special, bool rstrip = false) {
    added.push_back({{"id", id},          {"content", content}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", rstrip}, {"normalized", false}, {"special", special}});
  };
  add(256, "<|begin_of_text|>", true);
  add(257, "<|end_of_text|>", true);
  add(258, "<|eot_id|>", true);
  add(259, "<|custom|>", false, /*rstrip=*/true);
  json post = {{"type", "TemplateProcessing"},
               {"single", {{{"SpecialToken", {{"id", "<|begin_of_text|>"}, {"type_id", 0}}}},
                           {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
               {"special_tokens", {{"<|begin_of_text|>", {{"id", "<|begin_of_text|>"}, {"ids", {256}}, {"tokens", {"<|begin_of_text|>"}}}}}}};
  json doc = {{"added_tokens", added}, {"model", model.to_json()}, {"pre_tokenizer", llama3_pre()},
              {"post_processor", post}, {"decoder", {{"type", "ByteLevel"}}}};
  json config = {{"bos_token", "<|begin_of_text|>"}, {"eos_token", {{"content", "<|end_of_text|>"}}}};
  auto tok = load_hf_tokenizer(write_tokenizer("special", doc, config));
  EXPECT_EQ(tok->bos_id(), 256);
  EXPECT_EQ(tok->eos_id(), 257);
  EXPECT_TRUE(tok->add_bos_by_default());
  EXPECT_EQ(tok->encode("hi<|eot_id|>", true, true), (std::vector<int>{256, 'h', 'i', 258}));
  // Without parse_special the special token is plain text, byte by byte.
  std::vector<int> plain = {256, 'h', 'i'};
  for (char c : std::string("<|eot_id|>")) plain.push_back(static_cast<unsigned char>(c));
  EXPECT_EQ(tok->encode("hi<|eot_id|>", true, false), plain);
  // The non-special added token is matched either way; its rstrip swallows the spaces after it.
  EXPECT_EQ(tok->encode("a<|custom|>   b", false, false), (std::vector<int>{'a', 259, 'b'}));
  EXPECT_TRUE(tok->is_special(258));
  EXPECT_FALSE(tok->is_special(259));
  EXPECT_EQ(tok->decode(std::vector<int>{256, 'h', 'i', 259, 258}), "hi<|custom|>");
  auto stops = tok->stop_ids();
  EXPECT_NE(std::find(stops.begin(), stops.end(), 257), stops.end());
  EXPECT_NE(std::find(stops.begin(), stops.end(), 258), stops.end());
  EXPECT_EQ(tok->piece_id("<|eot_id|>"), 258);

  // tokenizer_config.json's add_bos_token wins over the template.
  json no_bos = config;
  no_bos["add_bos_token"] = false;
  EXPECT_FALSE(load_hf_tokenizer(write_tokenizer("special_no_bos", doc, no_bos))->add_bos_by_default());
}

namespace {

// A LLaMA-2-style SentencePiece BPE in tokenizer.json: <unk> <s> </s>, 256 byte pieces, then
// pieces built by these merges (ranks in this order).
struct SpModel {
  std::vector<std::string> pieces;
  std::vector<std::pair<std::string, std::string>> merges;
  SpModel() {
    pieces = {"<unk>", "<s>", "</s>"};
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof name, "<0x%02X>", b);
      pieces.push_back(name);
    }
    for (const std::string& p : {kSp, std::string("h"), std::string("e"), std::string("l"), std::string("o"), std::string("w"),
                                 std::string("r"), std::string("d"), std::string("\xC3\xA9")})
      pieces.push_back(p);
    merges = {{kSp, "h"}, {"l", "l"}, {kSp + "h", "e"}, {"ll", "o"}, {kSp + "he", "llo"},
              {kSp, "w"}, {"o", "r"}, {kSp + "w", "or"}, {"l", "d"}, {kSp + "wor", "ld"}};
    for (auto& [a, b] : merges) pieces.push_back(a + b);
  }
  int id(const std::string& p) const { return static_cast<int>(std::find(pieces.begin(), pieces.end(), p) - pieces.begin()); }
  json to_json(bool byte_fallback, bool fuse_unk) const {
    json vocab = json::object();
    for (std::size_t i = 0; i < pieces.size(); ++i) vocab[pieces[i]] = i;
    json m = json::array();
    for (auto& [a, b] : merges) m.push_back(json::array({a, b}));  // the newer [a, b] form
    return {{"type", "BPE"},         {"vocab", vocab},         {"merges", m},           {"unk_token", "<unk>"},
            {"fuse_unk", fuse_unk}, {"byte_fallback", byte_fallback}, {"ignore_merges", false}};
  }
};

json sp_added_tokens() {
  json added = json::array();
  int id = 0;
  for (const char* t : {"<unk>", "<s>", "</s>"})
    added.push_back({{"id", id++}, {"content", t}, {"lstrip", false}, {"rstrip", false}, {"normalized", false}, {"special", true}});
  return added;
}

json sp_bos_template() {
  return {{"type", "TemplateProcessing"},
          {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
          {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}};
}

}  // namespace

// LLaMA-2's tokenizer.json layout: normalizer Prepend("▁") + Replace(" ", "▁"), no pre-tokenizer.
// "hello world" -> "▁hello▁world", one word. Ranks: (▁,h) (l,l) (▁h,e) (ll,o) (▁he,llo) (▁,w)
// (o,r) (▁w,or) (l,d) (▁wor,ld) -> "▁hello" "▁world".
TEST(TokenizerHf, SentencePieceStyleWithByteFallback) {
  SpModel m;
  json normalizer = {{"type", "Sequence"},
                     {"normalizers", {{{"type", "Prepend"}, {"prepend", kSp}},
                                      {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kSp}}}}};
  json decoder = {{"type", "Sequence"},
                  {"decoders", {{{"type", "Replace"}, {"pattern", {{"String", kSp}}}, {"content", " "}},
                                {{"type", "ByteFallback"}},
                                {{"type", "Fuse"}},
                                {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
  json doc = {{"added_tokens", sp_added_tokens()}, {"normalizer", normalizer}, {"pre_tokenizer", nullptr},
              {"post_processor", sp_bos_template()}, {"decoder", decoder}, {"model", m.to_json(true, true)}};
  auto tok = load_hf_tokenizer(write_tokenizer("sp_style", doc));
  EXPECT_TRUE(tok->add_bos_by_default());
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->encode("hello world", true), (std::vector<int>{1, m.id(kSp + "hello"), m.id(kSp + "world")}));
  // 世 (E4 B8 96) has no piece: byte fallback <0xE4><0xB8><0x96> = ids 3 + byte.
  std::vector<int> ids = tok->encode("hello \xE4\xB8\x96", true);
  EXPECT_EQ(ids, (std::vector<int>{1, m.id(kSp + "hello"), m.id(kSp), 3 + 0xE4, 3 + 0xB8, 3 + 0x96}));
  EXPECT_EQ(tok->decode(ids), "hello \xE4\xB8\x96");
  // é (C3 A9) is a piece of its own.
  EXPECT_EQ(tok->encode("\xC3\xA9", false), (std::vector<int>{m.id(kSp), m.id("\xC3\xA9")}));
  // "<s>" parsed as BOS; the text after it gets its own "▁" from the Prepend normalizer.
  EXPECT_EQ(tok->encode("<s>hello", false, true), (std::vector<int>{1, m.id(kSp + "hello")}));
  // Not parsed: "<", "s", ">" have no pieces and fall back to bytes; "hello" without "▁" merges
  // only (l,l) then (ll,o).
  EXPECT_EQ(tok->encode("<s>hello", false, false),
            (std::vector<int>{m.id(kSp), 3 + '<', 3 + 's', 3 + '>', m.id("h"), m.id("e"), m.id("llo")}));
  EXPECT_EQ(tok->token_bytes(m.id(kSp + "hello")), " hello");
}

// Without byte fallback, unknown characters become <unk>, fused into one when fuse_unk is set.
TEST(TokenizerHf, UnknownCharactersFuse) {
  SpModel m;
  json normalizer = {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kSp}};
  for (bool fuse : {true, false}) {
    json doc = {{"normalizer", normalizer}, {"model", m.to_json(false, fuse)}};
    auto tok = load_hf_tokenizer(write_tokenizer(fuse ? "unk_fused" : "unk_unfused", doc));
    std::vector<int> expected = fuse ? std::vector<int>{m.id("h"), 0, m.id("e")} : std::vector<int>{m.id("h"), 0, 0, m.id("e")};
    EXPECT_EQ(tok->encode("h\xE4\xB8\x96\xE7\x95\x8C" "e", false), expected) << "fuse_unk " << fuse;
  }
}

// The newer layout: Metaspace pre-tokenizer with prepend_scheme "first" puts "▁" only before the
// start of the text, not after a special token.
TEST(TokenizerHf, MetaspacePrependSchemeFirst) {
  SpModel m;
  json pre = {{"type", "Metaspace"}, {"replacement", kSp}, {"prepend_scheme", "first"}, {"split", false}};
  json dec = {{"type", "Metaspace"}, {"replacement", kSp}, {"prepend_scheme", "first"}, {"split", false}};
  json doc = {{"added_tokens", sp_added_tokens()}, {"pre_tokenizer", pre}, {"decoder", dec},
              {"post_processor", sp_bos_template()}, {"model", m.to_json(true, true)}};
  auto tok = load_hf_tokenizer(write_tokenizer("metaspace_first", doc));
  EXPECT_EQ(tok->encode("hello world", true), (std::vector<int>{1, m.id(kSp + "hello"), m.id(kSp + "world")}));
  EXPECT_EQ(tok->encode("<s>hello", false, true), (std::vector<int>{1, m.id("h"), m.id("e"), m.id("llo")}));
  EXPECT_EQ(tok->decode(tok->encode("hello world", true)), "hello world");
}

TEST(TokenizerHf, BadFilesGiveErrorsNamingFileAndField) {
  auto expect_error = [](const std::string& path, const std::string& fragment) {
    try {
      load_hf_tokenizer(path);
      ADD_FAILURE() << "no error for " << path;
    } catch (const qmeter::UsageError& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  std::string dir = qmeter::testing::test_output_dir("tokenizer_hf_bad");
  auto file = [&](const std::string& name, const std::string& content) {
    std::filesystem::create_directories(dir + "/" + name);
    std::string p = dir + "/" + name + "/tokenizer.json";
    qmeter::testing::write_text_file(p, content);
    return p;
  };
  expect_error(file("truncated", R"({"model": {"type": "BPE", "vocab": {"a": 0)"), "not valid JSON");
  expect_error(file("unigram", R"({"model": {"type": "Unigram", "vocab": [["a", 0.0]]}})"), "model.type 'Unigram'");
  expect_error(file("no_vocab", R"({"model": {"type": "BPE", "merges": []}})"), "model.vocab");
  expect_error(file("bad_merge", R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a c"]}})"),
               "model.merges[0]: 'c' is not in model.vocab");
  expect_error(file("merge_result", R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}})"),
               "merged piece 'ab'");
  expect_error(file("vocab_id", R"({"model": {"type": "BPE", "vocab": {"a": "zero"}, "merges": []}})"), "model.vocab[\"a\"]");
  expect_error(file("pre", R"({"model": {"type": "BPE", "vocab": {"a": 0}}, "pre_tokenizer": {"type": "Punctuation"}})"),
               "pre-tokenizer type 'Punctuation'");
  expect_error(file("regex", R"({"model": {"type": "BPE", "vocab": {"a": 0}},
                                 "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(a"}, "behavior": "Isolated"}})"),
               "does not compile");
  expect_error(file("top", "[1, 2]"), "not a JSON object");
  // A tokenizer_config.json naming a token the vocabulary lacks.
  std::string ok = file("config", R"({"model": {"type": "BPE", "vocab": {"a": 0}}})");
  qmeter::testing::write_text_file(dir + "/config/tokenizer_config.json", R"({"bos_token": "<s>"})");
  try {
    load_hf_tokenizer(ok);
    ADD_FAILURE() << "no error for an unknown bos_token";
  } catch (const qmeter::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer_config.json"), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_hf_tokenizer(dir + "/absent/tokenizer.json"), qmeter::Error);
}

// Huge runs of one character class (one pre-token of 100 KB) go through the regex and the merge
// loop without losing or reordering a byte.
TEST(TokenizerHf, LongRunsRoundTrip) {
  ByteLevelModel model;
  model.extra = {"  ", "    ", "\xC3\xA9"};
  model.merges = {{" ", " "}, {"  ", "  "}, {"\xC3", "\xA9"}};
  json doc = {{"model", model.to_json()}, {"pre_tokenizer", llama3_pre()}};
  auto tok = load_hf_tokenizer(write_tokenizer("long_runs", doc));
  std::string text = std::string(100001, ' ') + "x";
  for (int i = 0; i < 30000; ++i) text += "\xC3\xA9";
  text += std::string(20000, '7') + "\n\n\n";
  std::vector<int> ids = tok->encode(text, false);
  EXPECT_EQ(tok->decode(ids), text);
  // 100001 spaces before "x": "\s+(?!\S)" takes 100000 (merged pairwise twice: 25000 "    "),
  // the last space starts the next piece " xéé..." (space and x stay bytes, each é merges).
  ASSERT_GE(ids.size(), 25002u);
  EXPECT_EQ(std::count(ids.begin(), ids.begin() + 25000, 257), 25000);
  EXPECT_EQ(ids[25000], ' ');
  EXPECT_EQ(ids[25001], 'x');
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 258), 30000);  // every é merged
}
