// Every tokenizer kind qmeter reads, written into GGUF metadata (gguf_writer.h: the *_vocab_for_gguf
// converters + write_gguf_model) and read back by load_gguf_model with no --tokenizer: the GGUF
// tokenizer must encode and decode exactly as the original file's tokenizer does. Fixtures: a
// SentencePiece BPE model trained here (with a user-defined symbol), hand-written tokenizer.json
// files (byte-level with the LLaMA-3 regex, SentencePiece-style), and stories260K's tok512.bin.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <filesystem>
#include <mutex>

#include "qmeter/core/error.h"
#include "qmeter/engine/gguf_writer.h"
#include "qmeter/engine/model.h"
#include "qmeter/engine/tokenizer.h"
#include "test_support.h"
#include "tokenizer_test_util.h"

using nlohmann::json;
using qmeter::engine::Tokenizer;
using qmeter::engine::TokenizerVocab;
using qmeter::testing::byte_level;

namespace {

const std::string kSp = "\xE2\x96\x81";

// Writes `vocab` into a GGUF file of a tiny synthetic model and loads the file back (no
// --tokenizer): the tokenizer qmeter then uses is the one read from the metadata.
std::unique_ptr<qmeter::engine::Model> through_gguf(const std::string& name, const TokenizerVocab& vocab) {
  auto model = qmeter::engine::load_model("synthetic:tiny:f32:1", {});
  qmeter::engine::GgufWriteOptions o;
  o.vocab = &vocab;
  const std::string path = qmeter::testing::test_output_dir("gguf_tok_" + name) + "/model.gguf";
  qmeter::engine::write_gguf_model(*model, path, o);
  auto back = qmeter::engine::load_model(path, {});
  EXPECT_TRUE(back->tokenizer) << path;
  return back;
}

// Same ids, same decoded text, same BOS/EOS, for every text (with and without BOS).
void expect_same_tokenizer(const Tokenizer& original, const Tokenizer& gguf, const std::vector<std::string>& texts) {
  EXPECT_EQ(gguf.vocab_size(), original.vocab_size());
  EXPECT_EQ(gguf.bos_id(), original.bos_id());
  EXPECT_EQ(gguf.eos_id(), original.eos_id());
  EXPECT_EQ(gguf.add_bos_by_default(), original.add_bos_by_default());
  for (const std::string& text : texts) {
    const std::vector<int> ids = original.encode(text, true);
    ASSERT_EQ(gguf.encode(text, true), ids) << text;
    EXPECT_EQ(gguf.encode(text, false), original.encode(text, false)) << text;
    EXPECT_EQ(gguf.decode(ids), original.decode(ids)) << text;
  }
}

std::string sp_training_text() {
  const char* subjects[] = {"the cat", "a dog", "my friend", "the caf\xC3\xA9 owner", "our robot", "the toolbox"};
  const char* verbs[] = {"sees", "likes", "finds", "paints", "follows", "remembers"};
  const char* objects[] = {"a red ball", "the big tree", "some warm bread", "the old bridge", "many small birds", "42 eggs"};
  std::string text;
  for (const char* s : subjects)
    for (const char* v : verbs)
      for (const char* o : objects) text += std::string(s) + " " + v + " " + o + " today.\n";
  return text;
}

// A SentencePiece BPE model trained as `qmeter train` trains one (byte fallback, ids 0/1/2 for
// unk/bos/eos, digits split), plus the user-defined symbol "<tool>"; `model_type` unigram for the
// refusal test. Returns the folder holding tokenizer.model and tokenizer_config.json.
std::string trained_sp_folder(const std::string& model_type) {
  static std::map<std::string, std::string> dirs;
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  if (auto it = dirs.find(model_type); it != dirs.end()) return it->second;
  const std::string dir = qmeter::testing::test_output_dir("gguf_tok_sp_" + model_type);
  qmeter::testing::write_text_file(dir + "/train.txt", sp_training_text());
  const std::string args = "--input=" + dir + "/train.txt --model_prefix=" + dir + "/tokenizer --vocab_size=300 --model_type=" +
                           model_type +
                           " --byte_fallback=true --character_coverage=1.0 --split_digits=true --unk_id=0 --bos_id=1 "
                           "--eos_id=2 --pad_id=-1 --user_defined_symbols=<tool> --num_threads=1 --minloglevel=2 "
                           "--hard_vocab_limit=false";
  const auto status = sentencepiece::SentencePieceTrainer::Train(args);
  if (!status.ok()) throw std::runtime_error("sentencepiece training failed: " + status.ToString());
  qmeter::testing::write_text_file(dir + "/tokenizer_config.json", R"({"add_bos_token": true})");
  return dirs[model_type] = dir;
}

std::vector<std::string> sample_texts() {
  return {"the cat sees a red ball today.",
          "my friend paints the quiet river",
          "the caf\xC3\xA9 owner follows 42 small birds",
          "the toolbox remembers",
          "unseen: \xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x99\x82 Zebra QUX 1234",
          "x",
          "",
          "cats and dogs and bridges"};
}

}  // namespace

TEST(GgufTokenizerWrite, SentencePieceModelRoundTripsThroughGguf) {
  const std::string dir = trained_sp_folder("bpe");
  const TokenizerVocab v = qmeter::engine::sentencepiece_vocab_for_gguf(dir + "/tokenizer.model");
  EXPECT_EQ(v.model, "llama");
  EXPECT_TRUE(v.add_space_prefix);  // the trainer's default add_dummy_prefix
  EXPECT_TRUE(v.add_bos);
  EXPECT_EQ(v.unk_id, 0);
  EXPECT_EQ(v.bos_id, 1);
  EXPECT_EQ(v.eos_id, 2);
  // Types as llama.cpp's converter stores them: unknown 2, control 3, user-defined 4, byte 6.
  ASSERT_GT(v.token_types.size(), 300u - 1);
  EXPECT_EQ(v.token_types[0], 2);
  EXPECT_EQ(v.token_types[1], 3);
  EXPECT_EQ(v.token_types[2], 3);
  const auto tool = std::find(v.tokens.begin(), v.tokens.end(), "<tool>") - v.tokens.begin();
  ASSERT_LT(static_cast<std::size_t>(tool), v.tokens.size());
  EXPECT_EQ(v.token_types[static_cast<std::size_t>(tool)], 4);
  const auto byte_a = std::find(v.tokens.begin(), v.tokens.end(), "<0x41>") - v.tokens.begin();
  ASSERT_LT(static_cast<std::size_t>(byte_a), v.tokens.size());
  EXPECT_EQ(v.token_types[static_cast<std::size_t>(byte_a)], 6);

  auto original = qmeter::engine::load_sentencepiece_tokenizer(dir + "/tokenizer.model");
  auto model = through_gguf("sp", v);
  std::vector<std::string> texts = sample_texts();
  const std::string train = sp_training_text();
  // Windows of the training text with its line breaks as spaces: the trainer's default
  // normalization (nmt_nfkc) maps "\n" to a space, which GGUF has no key for (llama.cpp encodes the
  // newline byte, as the GGUF tokenizer does).
  for (std::size_t pos = 0; pos < train.size() && texts.size() < 80; pos += 211) {
    std::string window = train.substr(pos, 70);
    std::replace(window.begin(), window.end(), '\n', ' ');  // (and it trims leading / trailing spaces)
    texts.push_back(window.substr(window.find_first_not_of(' '), window.find_last_not_of(' ') - window.find_first_not_of(' ') + 1));
  }
  expect_same_tokenizer(*original, *model->tokenizer, texts);
  // The user-defined symbol is one token in running text in both; after it llama.cpp (and so the
  // GGUF tokenizer) prepends the dummy-prefix space again, libsentencepiece does not.
  // "a <tool>b": the GGUF tokenizer encodes "b" as a fresh segment, as libsentencepiece encodes "b" alone.
  std::vector<int> expected = original->encode("a <tool>", false);
  ASSERT_EQ(expected.back(), static_cast<int>(tool));
  for (int id : original->encode("b", false)) expected.push_back(id);
  EXPECT_EQ(model->tokenizer->encode("a <tool>b", false), expected);
  EXPECT_NE(original->encode("a <tool>b", false), expected);
}

TEST(GgufTokenizerWrite, SentencePieceUnigramIsRefusedNamingTheFile) {
  const std::string path = trained_sp_folder("unigram") + "/tokenizer.model";
  try {
    qmeter::engine::sentencepiece_vocab_for_gguf(path);
    ADD_FAILURE() << "no error";
  } catch (const qmeter::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("unigram"), std::string::npos) << e.what();
  }
}

namespace {

std::string write_tokenizer_json(const std::string& name, const json& doc, const json& config = json()) {
  const std::string dir = qmeter::testing::test_output_dir("gguf_tok_hf_" + name);
  qmeter::testing::write_text_file(dir + "/tokenizer.json", doc.dump(1));
  if (!config.is_null()) qmeter::testing::write_text_file(dir + "/tokenizer_config.json", config.dump(1));
  return dir + "/tokenizer.json";
}

const std::string kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// A byte-level BPE: the 256 byte characters, merges building a few words, two special tokens, a
// hole in the ids (300..301 unused) and a non-special added token.
json byte_level_doc(const json& pre) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_level(std::string(1, static_cast<char>(b)))] = b;
  const std::vector<std::pair<std::string, std::string>> merges = {
      {"t", "h"}, {"th", "e"}, {" ", "the"}, {"c", "a"}, {"ca", "t"}, {" ", "cat"}, {"1", "2"}, {"12", "3"}, {"\xC3", "\xA9"}, {"l", "l"}};
  json m = json::array();
  int id = 256;
  for (const auto& [a, b] : merges) {
    vocab[byte_level(a + b)] = id++;
    m.push_back(byte_level(a) + " " + byte_level(b));
  }
  json added = json::array();
  added.push_back({{"id", 302}, {"content", "<|begin_of_text|>"}, {"special", true}});
  added.push_back({{"id", 303}, {"content", "<|eot_id|>"}, {"special", true}});
  added.push_back({{"id", 304}, {"content", "<|tool|>"}, {"special", false}});
  return {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", m}, {"ignore_merges", true}}},
          {"added_tokens", added},
          {"pre_tokenizer", pre},
          {"decoder", {{"type", "ByteLevel"}}}};
}

json byte_level_pre(bool use_regex) {
  return {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", use_regex}};
}

}  // namespace

TEST(GgufTokenizerWrite, HfByteLevelBecomesGpt2WithItsPreTokenizerName) {
  json pre = {{"type", "Sequence"},
              {"pretokenizers", {{{"type", "Split"}, {"pattern", {{"Regex", kLlama3Regex}}}, {"behavior", "Isolated"}, {"invert", false}},
                                 byte_level_pre(false)}}};
  const std::string path =
      write_tokenizer_json("llama3", byte_level_doc(pre), {{"bos_token", "<|begin_of_text|>"}, {"eos_token", "<|eot_id|>"}, {"add_bos_token", true}});
  const TokenizerVocab v = qmeter::engine::hf_vocab_for_gguf(path);
  EXPECT_EQ(v.model, "gpt2");
  EXPECT_EQ(v.pre, "llama-bpe");
  ASSERT_EQ(v.tokens.size(), 305u);
  EXPECT_EQ(v.tokens[300], "[PAD300]");
  EXPECT_EQ(v.token_types[300], 5);
  EXPECT_EQ(v.token_types[302], 3);
  EXPECT_EQ(v.token_types[304], 4);
  EXPECT_EQ(v.token_types['a'], 1);
  ASSERT_EQ(v.merges.size(), 10u);
  EXPECT_EQ(v.merges[2], byte_level(" ") + " the");
  EXPECT_EQ(v.bos_id, 302);
  EXPECT_EQ(v.eos_id, 303);

  auto original = qmeter::engine::load_hf_tokenizer(path);
  auto model = through_gguf("hf_llama3", v);
  expect_same_tokenizer(*original, *model->tokenizer,
                        {"the cat", "cat the  theme 12345 caf\xC3\xA9", "I'll see 1234567 cats", "a <|tool|> b", "x\n\n y",
                         "\xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x99\x82"});
  EXPECT_EQ(model->tokenizer->encode("a<|eot_id|>", false, true), original->encode("a<|eot_id|>", false, true));
}

TEST(GgufTokenizerWrite, HfGpt2RegexAndUnknownPreTokenizers) {
  json doc = byte_level_doc(byte_level_pre(true));
  doc["model"]["ignore_merges"] = false;
  const TokenizerVocab v = qmeter::engine::hf_vocab_for_gguf(write_tokenizer_json("gpt2", doc));
  EXPECT_EQ(v.pre, "gpt2");
  // A regex no tokenizer.ggml.pre name stands for: refused, naming the file.
  json odd = byte_level_doc({{"type", "Sequence"},
                             {"pretokenizers", {{{"type", "Split"}, {"pattern", {{"Regex", "[a-z]+"}}}, {"behavior", "Isolated"}}, byte_level_pre(false)}}});
  const std::string path = write_tokenizer_json("odd", odd);
  try {
    qmeter::engine::hf_vocab_for_gguf(path);
    ADD_FAILURE() << "no error";
  } catch (const qmeter::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("tokenizer.ggml.pre"), std::string::npos) << e.what();
  }
}

namespace {

// LLaMA-2's tokenizer.json layout (normalizer Prepend("▁") + Replace(" ", "▁"), byte fallback):
// <unk> <s> </s>, the 256 byte pieces, characters, then the pieces the merges build, in rank order.
json sp_style_doc() {
  std::vector<std::string> pieces = {"<unk>", "<s>", "</s>"};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    pieces.push_back(name);
  }
  for (const char* p : {"\xE2\x96\x81", "h", "e", "l", "o", "w", "r", "d", "\xC3\xA9"}) pieces.push_back(p);
  const std::vector<std::pair<std::string, std::string>> merges = {
      {kSp, "h"}, {"l", "l"}, {kSp + "h", "e"}, {"ll", "o"}, {kSp + "he", "llo"}, {kSp, "w"}, {"o", "r"},
      {kSp + "w", "or"}, {"l", "d"}, {kSp + "wor", "ld"}, {"e", "l"}, {"h", "el"}};
  json m = json::array();
  for (const auto& [a, b] : merges) {
    if (std::find(pieces.begin(), pieces.end(), a + b) == pieces.end()) pieces.push_back(a + b);
    m.push_back(json::array({a, b}));
  }
  json vocab = json::object();
  for (std::size_t i = 0; i < pieces.size(); ++i) vocab[pieces[i]] = i;
  json added = json::array();
  for (int id = 0; id < 3; ++id) added.push_back({{"id", id}, {"content", pieces[static_cast<std::size_t>(id)]}, {"special", true}});
  json normalizer = {{"type", "Sequence"},
                     {"normalizers", {{{"type", "Prepend"}, {"prepend", kSp}}, {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kSp}}}}};
  json decoder = {{"type", "Sequence"},
                  {"decoders", {{{"type", "Replace"}, {"pattern", {{"String", kSp}}}, {"content", " "}},
                                {{"type", "ByteFallback"}},
                                {{"type", "Fuse"}},
                                {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
  return {{"added_tokens", added},
          {"normalizer", normalizer},
          {"decoder", decoder},
          {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", m}, {"unk_token", "<unk>"}, {"byte_fallback", true}, {"fuse_unk", true}}}};
}

}  // namespace

TEST(GgufTokenizerWrite, HfSentencePieceStyleBecomesLlamaWithRankScores) {
  const std::string path = write_tokenizer_json("sp_style", sp_style_doc(), {{"bos_token", "<s>"}, {"eos_token", "</s>"}, {"add_bos_token", true}});
  const TokenizerVocab v = qmeter::engine::hf_vocab_for_gguf(path);
  EXPECT_EQ(v.model, "llama");
  EXPECT_TRUE(v.add_space_prefix);
  EXPECT_EQ(v.token_types[0], 2);
  EXPECT_EQ(v.token_types[1], 3);
  EXPECT_EQ(v.token_types[3 + 'A'], 6);
  // "▁h" is made by merge rank 0, "▁hello" by rank 4; a character no merge makes scores lowest.
  auto score = [&](const std::string& piece) { return v.scores[static_cast<std::size_t>(std::find(v.tokens.begin(), v.tokens.end(), piece) - v.tokens.begin())]; };
  EXPECT_EQ(score(kSp + "h"), 0.0f);
  EXPECT_EQ(score(kSp + "hello"), -4.0f);
  EXPECT_EQ(score("hel"), -11.0f);
  EXPECT_EQ(score("h"), -13.0f);

  auto original = qmeter::engine::load_hf_tokenizer(path);
  auto model = through_gguf("hf_sp_style", v);
  expect_same_tokenizer(*original, *model->tokenizer,
                        {"hello world", "hello \xE4\xB8\x96", "world hello  hello", "\xC3\xA9lde", "helloworld", "hel hel lo"});
}

TEST(GgufTokenizerWrite, SourceFolderPrefersTokenizerModelAndSaysWhyWhenNone) {
  auto model = qmeter::engine::load_model("synthetic:tiny:f32:1", {});
  model->format = "hf";
  // tokenizer.model beside a tokenizer.json: the SentencePiece model wins, as in llama.cpp.
  const std::string dir = qmeter::testing::test_output_dir("gguf_tok_source");
  std::filesystem::copy_file(trained_sp_folder("bpe") + "/tokenizer.model", dir + "/tokenizer.model",
                             std::filesystem::copy_options::overwrite_existing);
  qmeter::testing::write_text_file(dir + "/tokenizer.json", sp_style_doc().dump());
  std::string why;
  auto v = qmeter::engine::gguf_vocab_for_source(*model, dir, &why);
  ASSERT_TRUE(v.has_value()) << why;
  EXPECT_EQ(v->source, dir + "/tokenizer.model");
  // A unigram model is refused; the tokenizer.json beside it is taken instead.
  std::filesystem::copy_file(trained_sp_folder("unigram") + "/tokenizer.model", dir + "/tokenizer.model",
                             std::filesystem::copy_options::overwrite_existing);
  v = qmeter::engine::gguf_vocab_for_source(*model, dir, &why);
  ASSERT_TRUE(v.has_value()) << why;
  EXPECT_EQ(v->source, dir + "/tokenizer.json");
  // Only the unigram model: none, and why names it.
  std::filesystem::remove(dir + "/tokenizer.json");
  v = qmeter::engine::gguf_vocab_for_source(*model, dir, &why);
  EXPECT_FALSE(v.has_value());
  EXPECT_NE(why.find("unigram"), std::string::npos) << why;
}

TEST(GgufTokenizerWrite, Llama2cTokBinRoundTripsThroughGguf) {
  QMETER_REQUIRE_SHARED_DATA(path, "models/stories260K/tok512.bin");
  QMETER_REQUIRE_SHARED_DATA(val, "eval/tinystories_val.txt");
  auto original = qmeter::engine::load_llama2c_tokenizer(path, 512);
  auto model = through_gguf("llama2c", qmeter::engine::llama2c_vocab_for_gguf(path, 512));
  std::vector<std::string> texts;
  const std::string text = qmeter::read_file(val).substr(0, 40000);
  for (std::size_t start = 0; start < text.size();) {
    std::size_t end = text.find("\n\n", start);
    if (end == std::string::npos) end = text.size();
    texts.push_back(text.substr(start, end - start));
    start = end + 2;
  }
  texts.push_back("h\xC3\xA9llo \xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x99\x82  two  spaces");
  expect_same_tokenizer(*original, *model->tokenizer, texts);
}
