// SentencePiece tokenizer.model: a tiny BPE model trained here with libsentencepiece's trainer on
// text written below, loaded through load_sentencepiece_tokenizer. Round trips, byte fallback for
// characters the model never saw, multi-byte characters it did see, and the GGUF "llama" encoder
// (make_vocab_tokenizer, our own scores-based BPE) checked id for id against libsentencepiece.
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <filesystem>
#include <mutex>

#include "qmeter/core/error.h"
#include "qmeter/engine/tokenizer.h"
#include "test_support.h"
#include "tokenizer_test_util.h"

using qmeter::engine::Tokenizer;

namespace {

const std::string kSp = "\xE2\x96\x81";

// Training text: short sentences built from a small word list, with a few accented words
// (é, ï, ü: two-byte characters) so that they become pieces of their own.
std::string training_text() {
  const char* subjects[] = {"the cat", "a dog", "my friend", "the caf\xC3\xA9 owner", "our na\xC3\xAFve robot", "the m\xC3\xBCller"};
  const char* verbs[] = {"sees", "likes", "finds", "paints", "follows", "remembers"};
  const char* objects[] = {"a red ball", "the big tree", "some warm bread", "the old bridge", "many small birds",
                           "the quiet river"};
  std::string text;
  for (int i = 0; i < 6; ++i)
    for (int j = 0; j < 6; ++j)
      for (int k = 0; k < 6; ++k)
        text += std::string(subjects[i]) + " " + verbs[j] + " " + objects[k] + " today.\n";
  return text;
}

// Trains once per test binary; returns the model path. With split_by_whitespace=false the
// trainer may build pieces that hold "▁" inside (like "s▁the"), which merges across words.
const std::string& trained_model(bool split_by_whitespace = true) {
  static std::string paths[2];
  static std::once_flag once[2];
  std::call_once(once[split_by_whitespace], [split_by_whitespace] {
    std::string name = split_by_whitespace ? "tokenizer_sentencepiece" : "tokenizer_sentencepiece_nosplit";
    std::string dir = qmeter::testing::test_output_dir(name);
    qmeter::testing::write_text_file(dir + "/train.txt", training_text());
    // identity normalization and kept whitespace: the model sees the text exactly as given.
    std::string args = "--input=" + dir + "/train.txt --model_prefix=" + dir +
                       "/tiny --vocab_size=400 --model_type=bpe --byte_fallback=true "
                       "--character_coverage=1.0 --normalization_rule_name=identity "
                       "--remove_extra_whitespaces=false --num_threads=1 --minloglevel=2 --split_by_whitespace=" +
                       (split_by_whitespace ? "true" : "false");
    auto status = sentencepiece::SentencePieceTrainer::Train(args);
    if (!status.ok()) throw std::runtime_error("sentencepiece training failed: " + status.ToString());
    paths[split_by_whitespace] = dir + "/tiny.model";
  });
  return paths[split_by_whitespace];
}

std::vector<std::string> sample_texts() {
  return {"the cat sees a red ball today.",
          "my friend paints the quiet river",
          "the caf\xC3\xA9 owner follows many small birds",
          "our na\xC3\xAFve robot remembers the m\xC3\xBCller",
          "a dog  likes   two spaces",
          "unseen: \xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x99\x82 Zebra QUX 42",
          "x",
          "cats and dogs and bridges"};
}

}  // namespace

TEST(TokenizerSentencePiece, RoundTripsAndBos) {
  auto tok = qmeter::engine::load_sentencepiece_tokenizer(trained_model());
  EXPECT_EQ(tok->kind(), "sentencepiece");
  EXPECT_EQ(tok->vocab_size(), 400);
  ASSERT_GE(tok->bos_id(), 0);
  for (const std::string& text : sample_texts()) {
    std::vector<int> ids = tok->encode(text, true);
    ASSERT_FALSE(ids.empty());
    EXPECT_EQ(ids[0], tok->bos_id());
    EXPECT_EQ(tok->decode(ids), text) << text;
    // token_bytes concatenated is the text with its dummy-prefix space.
    std::string bytes;
    for (int id : ids) bytes += tok->token_bytes(id);
    EXPECT_EQ(bytes, " " + text);
  }
  EXPECT_EQ(tok->encode("", true), std::vector<int>{tok->bos_id()});
}

TEST(TokenizerSentencePiece, ByteFallbackForUnseenCharacters) {
  auto tok = qmeter::engine::load_sentencepiece_tokenizer(trained_model());
  // 世 (E4 B8 96) never occurred in training: it must come out as its three byte pieces.
  std::vector<int> ids = tok->encode("\xE4\xB8\x96", false);
  std::vector<std::string> pieces;
  for (int id : ids) pieces.push_back(tok->piece(id));
  ASSERT_EQ(pieces.size(), 4u);
  EXPECT_EQ(pieces[0], kSp);
  EXPECT_EQ(pieces[1], "<0xE4>");
  EXPECT_EQ(pieces[2], "<0xB8>");
  EXPECT_EQ(pieces[3], "<0x96>");
  EXPECT_EQ(tok->token_bytes(ids[1]), "\xE4");
  EXPECT_EQ(tok->decode(ids), "\xE4\xB8\x96");
  // é was seen: one piece holding both of its bytes, not byte fallback.
  auto e = tok->piece_id("\xC3\xA9");
  ASSERT_TRUE(e.has_value());
  for (int id : tok->encode("caf\xC3\xA9", false)) EXPECT_NE(tok->piece(id).substr(0, 3), "<0x") << tok->piece(id);
  // Streaming the byte pieces never shows half a character.
  qmeter::engine::IncrementalDetokenizer detok(*tok, true);
  std::vector<std::string> chunks;
  for (int id : tok->encode("\xE4\xB8\x96\xE7\x95\x8C!", false)) chunks.push_back(detok.push(id));
  chunks.push_back(detok.flush());
  std::string joined;
  for (auto& c : chunks) {
    EXPECT_TRUE(qmeter::testing::is_valid_utf8(c));
    joined += c;
  }
  EXPECT_EQ(joined, "\xE4\xB8\x96\xE7\x95\x8C!");
}

TEST(TokenizerSentencePiece, ControlPiecesParsedOnlyWhenAsked) {
  auto tok = qmeter::engine::load_sentencepiece_tokenizer(trained_model());
  int eos = tok->eos_id();
  ASSERT_GE(eos, 0);
  std::vector<int> parsed = tok->encode("the cat</s>", false, true);
  EXPECT_EQ(parsed.back(), eos);
  std::vector<int> plain = tok->encode("the cat</s>", false, false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), eos), 0);
  EXPECT_TRUE(tok->is_special(eos));
  EXPECT_EQ(tok->token_bytes(eos), "");
}

// Our scores-based BPE (the GGUF "llama" path) must segment exactly as libsentencepiece does when
// given the same pieces, scores and types.
TEST(TokenizerSentencePiece, GgufLlamaEncoderAgreesWithLibsentencepiece) {
  for (bool split_by_whitespace : {true, false}) {
    SCOPED_TRACE(split_by_whitespace ? "split_by_whitespace" : "pieces across words");
    sentencepiece::SentencePieceProcessor sp;
    ASSERT_TRUE(sp.Load(trained_model(split_by_whitespace)).ok());
    qmeter::engine::TokenizerVocab v;
    v.model = "llama";
    int inner_space_pieces = 0;
    for (int id = 0; id < sp.GetPieceSize(); ++id) {
      v.tokens.push_back(sp.IdToPiece(id));
      v.scores.push_back(sp.GetScore(id));
      v.token_types.push_back(sp.IsUnknown(id) ? 2 : sp.IsControl(id) ? 3 : sp.IsByte(id) ? 6 : sp.IsUnused(id) ? 5 : 1);
      if (v.tokens.back().find(kSp, 1) != std::string::npos) ++inner_space_pieces;
    }
    // The second model really has pieces that span a word boundary.
    if (!split_by_whitespace) {
      EXPECT_GT(inner_space_pieces, 0);
    }
    v.bos_id = sp.bos_id(), v.eos_id = sp.eos_id(), v.unk_id = sp.unk_id();
    auto ours = qmeter::engine::make_vocab_tokenizer(v);
    std::vector<std::string> texts = sample_texts();
    std::string train = training_text();
    for (std::size_t pos = 0; pos < train.size() && texts.size() < 120; pos += 173)
      texts.push_back(train.substr(pos, 60));  // windows that cut words and sentences anywhere
    texts.push_back(train.substr(0, 20000));   // one long text
    for (const std::string& text : texts) {
      EXPECT_EQ(ours->encode(text, false), sp.EncodeAsIds(text)) << text;
      EXPECT_EQ(ours->decode(ours->encode(text, true)), text);
    }
  }
}

TEST(TokenizerSentencePiece, BadModelFileIsAnError) {
  std::string dir = qmeter::testing::test_output_dir("tokenizer_sentencepiece_bad");
  std::string path = dir + "/tokenizer.model";
  qmeter::testing::write_text_file(path, "this is not a protobuf");
  try {
    qmeter::engine::load_sentencepiece_tokenizer(path);
    ADD_FAILURE() << "no error";
  } catch (const qmeter::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  // A real model cut in half.
  std::string good = qmeter::read_file(trained_model());
  std::string cut = dir + "/cut.model";
  qmeter::testing::write_text_file(cut, good.substr(0, good.size() / 2));
  EXPECT_THROW(qmeter::engine::load_sentencepiece_tokenizer(cut), qmeter::UsageError);
  EXPECT_THROW(qmeter::engine::load_sentencepiece_tokenizer(dir + "/absent.model"), qmeter::Error);
}
