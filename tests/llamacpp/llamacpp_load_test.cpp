// Every GGUF file qmeter writes loads in llama.cpp (llamacpp_lib.h), with each tokenizer kind
// qmeter reads embedded as metadata:
// - llama2.c (stories260K with tok512.bin, written by the library path of `qmeter quantize
//   --quantization q8_0`): llama_model_load_from_file accepts it (hyper-parameters, every tensor's
//   name, shape and type, the vocabulary), llama.cpp tokenizes like the original tok512.bin, and
//   its greedy decoding from BOS gives the same tokens as qmeter's engine on the same file (so
//   q/k row order, norms, rope and the tied classifier are read as qmeter means them).
// - SentencePiece tokenizer.model (BPE, trained here) and an HF tokenizer.json byte-level BPE
//   (LLaMA-3 pre-tokenizer regex): written with a random model of the tokenizer's vocabulary size;
//   llama.cpp loads the file, reports the same BOS / EOS, tokenizes sample texts exactly as the
//   original tokenizer file does (read by qmeter's own tokenizer for that format), and decodes one
//   token with finite logits. Not proven for these two: generation quality (random weights).
// What is not covered: special-token parsing (parse_special), chat templates, and SentencePiece
// normalization rules (the test model is trained with the identity rule and no whitespace
// collapsing, which GGUF cannot state and llama.cpp does not apply).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "llamacpp_lib.h"
#include "qmeter/engine/gguf_writer.h"
#include "qmeter/engine/model.h"
#include "qmeter/engine/session.h"
#include "qmeter/engine/tokenizer.h"
#include "qmeter/quant/quantize.h"
#include "qmeter/quant/quantized_model.h"
#include "engine/tokenizer_test_util.h"
#include "quant/gguf_test_model.h"
#include "test_support.h"

using namespace qmeter;
namespace qt = qmeter::testing;
using nlohmann::json;

namespace {

// Texts with leading spaces, digits, accents, emoji (byte fallback) and line breaks.
const std::vector<std::string> kTexts = {
    "Once upon a time, there was a little girl named Lily.",
    " she saw a big, red ball",
    "the cat likes 1234 fish and 56 eggs",
    "caf\xC3\xA9 \xE2\x98\x95 and \xF0\x9F\x99\x82 Zebra",
    "two\nlines\n\nand a tab\there",
};

// A loaded llama.cpp model, freed at scope exit.
struct LlamaModelHandle {
  const qt::LlamaCpp& l;
  qt::llama::Model* model = nullptr;
  qt::llama::Context* ctx = nullptr;
  LlamaModelHandle(const qt::LlamaCpp& lib, const std::string& path) : l(lib) {
    model = l.api.model_load_from_file(path.c_str(), l.api.model_default_params());
  }
  ~LlamaModelHandle() {
    if (ctx) l.api.free(ctx);
    if (model) l.api.model_free(model);
  }
  const qt::LlamaVocab* vocab() const { return l.model_get_vocab(model); }
  bool start() {
    qt::llama::ContextParams p = l.api.context_default_params();
    p.n_ctx = 128, p.n_batch = 128, p.n_ubatch = 128, p.n_threads = 2, p.n_threads_batch = 2;
    ctx = l.api.init_from_model(model, p);
    return ctx != nullptr;
  }
  // Feeds one token; the logits after it (nullptr on failure).
  const float* feed(int token) {
    std::int32_t t = token;
    if (l.api.decode(ctx, l.api.batch_get_one(&t, 1)) != 0) return nullptr;
    return l.api.get_logits_ith(ctx, -1);
  }
};

int argmax(const float* x, int n) { return static_cast<int>(std::max_element(x, x + n) - x); }

void expect_same_tokenization(const qt::LlamaCpp& l, const qt::LlamaVocab* vocab, const engine::Tokenizer& original) {
  EXPECT_EQ(l.vocab_n_tokens(vocab), original.vocab_size());
  EXPECT_EQ(l.vocab_bos(vocab), original.bos_id());
  EXPECT_EQ(l.vocab_eos(vocab), original.eos_id());
  for (const std::string& text : kTexts) {
    const std::vector<int> want = original.encode(text, original.add_bos_by_default());
    EXPECT_EQ(qt::llamacpp_tokenize(l, vocab, text, true), want) << "text: " << text;
    // Each token's text (the dummy-prefix space kept, byte pieces as their byte).
    for (int id : want) {
      if (id == original.bos_id()) continue;
      EXPECT_EQ(qt::llamacpp_piece(l, vocab, id), original.token_bytes(id)) << "token " << id;
    }
  }
}

// `vocab` written with a random model of its size; llama.cpp must load it, tokenize as
// `original`, and run one token.
void expect_loads_with_vocab(const qt::LlamaCpp& l, const engine::TokenizerVocab& vocab, const engine::Tokenizer& original,
                             const std::string& path) {
  const auto model = qt::random_llama_model(64, 128, 2, 4, 2, static_cast<int>(vocab.tokens.size()), 5);
  engine::GgufWriteOptions o;
  o.vocab = &vocab;
  engine::write_gguf_model(*model, path, o);
  LlamaModelHandle h(l, path);
  ASSERT_NE(h.model, nullptr) << "llama.cpp refused " << path << ":\n" << qt::llama::last_log();
  expect_same_tokenization(l, h.vocab(), original);
  ASSERT_TRUE(h.start()) << qt::llama::last_log();
  const float* logits = h.feed(original.bos_id() >= 0 ? original.bos_id() : 0);
  ASSERT_NE(logits, nullptr) << qt::llama::last_log();
  for (int i = 0; i < original.vocab_size(); ++i) ASSERT_TRUE(std::isfinite(logits[i])) << i;
}

}  // namespace

TEST(LlamaCppLoad, Llama2cStories260KQ8_0FileTokenizesAndDecodesGreedilyAsQmeter) {
  QMETER_REQUIRE_LLAMACPP(l);
  QMETER_REQUIRE_SHARED_DATA(bin, "models/stories260K/stories260K.bin");
  QMETER_REQUIRE_SHARED_DATA(tok, "models/stories260K/tok512.bin");
  const std::string dir = qt::test_output_dir("llamacpp_load");
  auto q8 = quant::load_quantized(bin, "q8_0", {}, "");
  const std::string path = dir + "/stories260K-q8_0.gguf";
  const quant::WrittenModel w = quant::write_quantized_model(*q8, bin, path, "q8_0", {});
  ASSERT_TRUE(w.tokenizer) << w.tokenizer_note;

  LlamaModelHandle h(l, path);
  ASSERT_NE(h.model, nullptr) << "llama.cpp refused " << path << ":\n" << qt::llama::last_log();
  expect_same_tokenization(l, h.vocab(), *engine::load_llama2c_tokenizer(tok, 512));

  // Greedy decoding from BOS, 40 tokens, in both engines on the same file.
  auto ours = engine::load_model(path);
  engine::Session session(*ours, nullptr);
  ASSERT_TRUE(h.start()) << qt::llama::last_log();
  const int n_vocab = ours->config.vocab_size;
  std::vector<int> mine, theirs;
  int a = 1, b = 1;  // BOS
  for (int step = 0; step < 40; ++step) {
    std::span<const float> x = session.feed(std::span<const int>(&a, 1));
    a = argmax(x.data(), n_vocab);
    const float* y = h.feed(b);
    ASSERT_NE(y, nullptr) << qt::llama::last_log();
    b = argmax(y, n_vocab);
    mine.push_back(a), theirs.push_back(b);
  }
  EXPECT_EQ(theirs, mine);
  const std::string text = ours->tokenizer->decode(theirs);
  std::printf("[ llama.cpp ] greedy from BOS on qmeter's q8_0 file: %s\n", text.c_str());
  // The README's reference story (an independent fp32 implementation) begins the same way.
  EXPECT_EQ(text.rfind("Once upon a time", 0), 0u) << text;
}

TEST(LlamaCppLoad, SentencePieceTokenizerModelFileLoadsAndTokenizesAsTheOriginal) {
  QMETER_REQUIRE_LLAMACPP(l);
  const std::string dir = qt::test_output_dir("llamacpp_load_sp");
  std::string train;
  for (const char* s : {"the cat", "a dog", "my friend", "the caf\xC3\xA9 owner", "Lily"})
    for (const char* v : {"sees", "likes", "finds", "paints"})
      for (const char* o : {"a red ball", "the big tree", "some warm bread", "42 eggs", "a little girl"})
        train += std::string(s) + " " + v + " " + o + " today.\nOnce upon a time, " + s + " " + v + " " + o + ".\n";
  std::ofstream(dir + "/train.txt") << train;
  const auto status = sentencepiece::SentencePieceTrainer::Train(
      "--input=" + dir + "/train.txt --model_prefix=" + dir + "/tokenizer --vocab_size=320 --model_type=bpe " +
      "--byte_fallback=true --character_coverage=1.0 --split_digits=true --unk_id=0 --bos_id=1 --eos_id=2 " +
      "--pad_id=-1 --normalization_rule_name=identity --remove_extra_whitespaces=false --num_threads=1 " +
      "--minloglevel=2 --hard_vocab_limit=false");
  ASSERT_TRUE(status.ok()) << status.ToString();
  const std::string model = dir + "/tokenizer.model";
  expect_loads_with_vocab(l, engine::sentencepiece_vocab_for_gguf(model), *engine::load_sentencepiece_tokenizer(model),
                          dir + "/sp.gguf");
}

TEST(LlamaCppLoad, HfByteLevelBpeTokenizerJsonFileLoadsAndTokenizesAsTheOriginal) {
  QMETER_REQUIRE_LLAMACPP(l);
  const std::string dir = qt::test_output_dir("llamacpp_load_hf");
  // A byte-level BPE: the 256 byte characters, merges that build a few words, BOS / EOS as added
  // special tokens, and LLaMA-3's pre-tokenizer (written as GGUF pre "llama-bpe").
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[qt::byte_level(std::string(1, static_cast<char>(b)))] = b;
  const std::vector<std::pair<std::string, std::string>> merges = {
      {"t", "h"}, {"th", "e"}, {" ", "the"}, {"c", "a"}, {"ca", "t"}, {" ", "cat"}, {"1", "2"}, {"12", "3"}, {"\xC3", "\xA9"}};
  json m = json::array();
  int id = 256;
  for (const auto& [x, y] : merges) {
    vocab[qt::byte_level(x + y)] = id++;
    m.push_back(qt::byte_level(x) + " " + qt::byte_level(y));
  }
  const json added = json::array({{{"id", id}, {"content", "<|begin_of_text|>"}, {"special", true}},
                                  {{"id", id + 1}, {"content", "<|end_of_text|>"}, {"special", true}}});
  const std::string regex =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  const json pre = {{"type", "Sequence"},
                    {"pretokenizers",
                     {{{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"}, {"invert", false}},
                      {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}};
  const json doc = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", m}, {"ignore_merges", true}}},
                    {"added_tokens", added},
                    {"pre_tokenizer", pre},
                    {"decoder", {{"type", "ByteLevel"}}}};
  std::ofstream(dir + "/tokenizer.json") << doc.dump(1);
  std::ofstream(dir + "/tokenizer_config.json")
      << json{{"bos_token", "<|begin_of_text|>"}, {"eos_token", "<|end_of_text|>"}, {"add_bos_token", true}}.dump();
  const std::string path = dir + "/tokenizer.json";
  const engine::TokenizerVocab v = engine::hf_vocab_for_gguf(path);
  EXPECT_EQ(v.model, "gpt2");
  EXPECT_EQ(v.pre, "llama-bpe");
  expect_loads_with_vocab(l, v, *engine::load_hf_tokenizer(path), dir + "/hf.gguf");
}
