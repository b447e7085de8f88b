// End-to-end training on a small generated corpus: learning, determinism, resume, the output
// folder's format, the held-out figure recomputed independently, and the CLI verb.
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sys/wait.h>

#include "qmeter/core/error.h"
#include "qmeter/core/paths.h"
#include "qmeter/train/model.h"
#include "qmeter/train/train.h"
#include "generated_corpus.h"
#include "test_support.h"

namespace qmeter::train {
namespace {
namespace fs = std::filesystem;

using testing::write_generated_corpus;

TrainPreset small_preset(int steps) {
  TrainPreset p = find_preset("test");
  p.steps = steps;
  return p;
}

TrainResult run(const std::string& corpus, const std::string& out, int steps, int threads, std::uint64_t seed = 1,
                int stop_after = 0, bool resume = false) {
  static TrainPreset preset;
  preset = small_preset(steps);
  TrainOptions o;
  o.corpus_paths = {corpus};
  o.out_dir = out;
  o.preset = "test";
  o.preset_override = &preset;
  o.seed = seed;
  o.threads = threads;
  o.stop_after = stop_after;
  o.resume = resume;
  o.progress = false;
  return train_model(o);
}

std::string file_bytes(const std::string& path) { return qmeter::read_file(path); }

// Reads model.safetensors independently of the writer: validates the header and offsets.
std::map<std::string, std::vector<float>> read_safetensors(const std::string& path, nlohmann::json* header_out) {
  const std::string bytes = file_bytes(path);
  EXPECT_GE(bytes.size(), 8u);
  std::uint64_t len = 0;
  for (int i = 7; i >= 0; --i) len = (len << 8) | static_cast<unsigned char>(bytes[i]);
  EXPECT_EQ(len % 8, 0u) << "header length is padded to 8 bytes";
  const auto header = nlohmann::json::parse(bytes.substr(8, len));
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
  std::map<std::string, std::vector<float>> tensors;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    EXPECT_EQ(it.value().at("dtype"), "F32") << it.key();
    std::uint64_t n = 1;
    for (auto d : it.value().at("shape")) n *= d.get<std::uint64_t>();
    const auto b = it.value().at("data_offsets")[0].get<std::uint64_t>();
    const auto e = it.value().at("data_offsets")[1].get<std::uint64_t>();
    EXPECT_EQ(e - b, n * 4) << it.key();
    ranges.emplace_back(b, e);
    std::vector<float> data(n);
    std::memcpy(data.data(), bytes.data() + 8 + len + b, n * 4);
    tensors[it.key()] = std::move(data);
  }
  std::sort(ranges.begin(), ranges.end());
  std::uint64_t expect = 0;
  for (auto [b, e] : ranges) {
    EXPECT_EQ(b, expect) << "tensor data is contiguous, without gaps or overlaps";
    expect = e;
  }
  EXPECT_EQ(8 + len + expect, bytes.size()) << "data ends at the end of the file";
  if (header_out) *header_out = header;
  return tensors;
}

class TrainerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(qmeter::testing::test_output_dir("train"));
    corpus_ = new std::string(write_generated_corpus(*dir_));
    trained_ = new TrainResult(run(*corpus_, *dir_ + "/model", 200, 1));
  }
  static void TearDownTestSuite() {
    delete dir_;
    delete corpus_;
    delete trained_;
  }
  static std::string* dir_;
  static std::string* corpus_;
  static TrainResult* trained_;
};
std::string* TrainerTest::dir_ = nullptr;
std::string* TrainerTest::corpus_ = nullptr;
TrainResult* TrainerTest::trained_ = nullptr;

TEST_F(TrainerTest, HeldOutLossFallsWellBelowUnigramEntropy) {
  const auto& r = *trained_;
  ASSERT_TRUE(r.completed);
  std::printf("held-out NLL %.4f nats/token (perplexity %.2f) vs unigram entropy %.4f nats (perplexity %.2f), "
              "%lld held-out tokens, %zu params\n",
              r.heldout.mean_nll, r.heldout.perplexity, r.heldout.unigram_entropy, std::exp(r.heldout.unigram_entropy),
              static_cast<long long>(r.heldout.tokens), r.params);
  EXPECT_GT(r.heldout.tokens, 1000);
  EXPECT_LT(r.heldout.mean_nll, r.heldout.unigram_entropy - 1.0);
  // The first logged loss is near log(vocab) (untrained); it must have fallen by far.
  std::ifstream csv(*dir_ + "/model/loss.csv");
  std::string header, first;
  std::getline(csv, header);
  std::getline(csv, first);
  EXPECT_EQ(header, "step,lr,loss,grad_norm,tokens,seconds");
  const double first_loss = std::stod(first.substr(first.find(',', first.find(',') + 1) + 1));
  EXPECT_GT(first_loss, r.heldout.mean_nll + 2.0);
}

TEST_F(TrainerTest, OutputFolderIsAValidHuggingFaceLlama) {
  const std::string m = *dir_ + "/model";
  EXPECT_TRUE(is_complete_model_dir(m));
  const auto config = nlohmann::json::parse(file_bytes(m + "/config.json"));
  EXPECT_EQ(config.at("architectures")[0], "LlamaForCausalLM");
  EXPECT_EQ(config.at("tie_word_embeddings"), true);
  const TrainPreset p = find_preset("test");
  EXPECT_EQ(config.at("hidden_size"), p.model.dim);
  EXPECT_EQ(config.at("num_attention_heads"), p.model.n_heads);
  EXPECT_EQ(config.at("num_key_value_heads"), p.model.n_kv_heads);
  EXPECT_EQ(config.at("intermediate_size"), p.model.ffn_dim);
  EXPECT_EQ(config.at("max_position_embeddings"), p.model.max_seq_len);
  nlohmann::json header;
  const auto tensors = read_safetensors(m + "/model.safetensors", &header);
  const int vocab = config.at("vocab_size");
  ASSERT_TRUE(tensors.count("model.embed_tokens.weight"));
  EXPECT_EQ(header["model.embed_tokens.weight"]["shape"], (nlohmann::json{vocab, p.model.dim}));
  EXPECT_EQ(header["model.layers.1.self_attn.k_proj.weight"]["shape"],
            (nlohmann::json{p.model.n_kv_heads * (p.model.dim / p.model.n_heads), p.model.dim}));
  EXPECT_EQ(header["model.layers.0.mlp.down_proj.weight"]["shape"], (nlohmann::json{p.model.dim, p.model.ffn_dim}));
  EXPECT_TRUE(tensors.count("model.norm.weight"));
  EXPECT_FALSE(tensors.count("lm_head.weight")) << "tied embeddings: no separate lm_head";
  EXPECT_EQ(tensors.size(), 2u + 9u * p.model.n_layers);
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load(m + "/tokenizer.model").ok());
  EXPECT_EQ(sp.GetPieceSize(), vocab);
  EXPECT_EQ(sp.bos_id(), config.at("bos_token_id"));
  EXPECT_EQ(sp.eos_id(), config.at("eos_token_id"));
  EXPECT_EQ(sp.PieceToId("<0x0A>"), sp.PieceToId("<0x0A>"));
  EXPECT_NE(sp.PieceToId("<0xFF>"), sp.unk_id()) << "byte fallback pieces present";
  const auto tok_config = nlohmann::json::parse(file_bytes(m + "/tokenizer_config.json"));
  EXPECT_EQ(tok_config.at("add_bos_token"), true);
  const auto summary = nlohmann::json::parse(file_bytes(m + "/training.json"));
  EXPECT_NEAR(summary.at("heldout_perplexity").get<double>(), std::exp(summary.at("heldout_mean_nll").get<double>()),
              1e-9);
  EXPECT_EQ(summary.at("steps"), 200);
  EXPECT_EQ(summary.at("params"), trained_->params);
}

// Rebuilds the model from model.safetensors + tokenizer.model and scores heldout.txt by the
// documented protocol, tokenizing the whole file in one call: it must reproduce training.json.
TEST_F(TrainerTest, ExportedModelReproducesHeldOutFigure) {
  const std::string m = *dir_ + "/model";
  const auto config = nlohmann::json::parse(file_bytes(m + "/config.json"));
  ModelConfig c{config.at("vocab_size"), config.at("hidden_size"), config.at("num_hidden_layers"),
                config.at("num_attention_heads"), config.at("num_key_value_heads"), config.at("intermediate_size"),
                config.at("max_position_embeddings"), config.at("rope_theta"), config.at("rms_norm_eps")};
  Transformer<float> model(c);
  const auto tensors = read_safetensors(m + "/model.safetensors", nullptr);
  for (const auto& t : model.layout().tensors()) {
    const auto& data = tensors.at(t.name);
    ASSERT_EQ(data.size(), t.size);
    std::copy(data.begin(), data.end(), model.params().begin() + static_cast<std::ptrdiff_t>(t.offset));
  }
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load(m + "/tokenizer.model").ok());
  std::vector<int> ids;
  ASSERT_TRUE(sp.Encode(file_bytes(m + "/heldout.txt"), &ids).ok());
  const int n = c.max_seq_len;
  const std::size_t chunk = static_cast<std::size_t>(n) - 2;  // BOS + chunk + one generated token = n
  double nll = 0;
  std::int64_t count = 0;
  for (std::size_t begin = 0; begin < ids.size(); begin += chunk) {
    std::vector<std::int32_t> in(n, 0), tg(n, -1);
    in[0] = sp.bos_id();
    for (std::size_t t = 0; t < chunk && begin + t < ids.size(); ++t) {
      tg[t] = ids[begin + t];
      in[t + 1] = ids[begin + t];
    }
    std::int64_t k = 0;
    nll += model.forward(in.data(), tg.data(), 1, n, &k);
    count += k;
  }
  const auto summary = nlohmann::json::parse(file_bytes(m + "/training.json"));
  EXPECT_EQ(count, summary.at("heldout_tokens").get<std::int64_t>());
  EXPECT_NEAR(nll / count, summary.at("heldout_mean_nll").get<double>(), 1e-5);
}

TEST_F(TrainerTest, SameSeedGivesBitIdenticalWeightsForAnyThreadCount) {
  // Tests train with one thread where they can: OpenMP workers spin between parallel regions,
  // which costs a tiny model more than it gains on a loaded machine.
  const auto a = run(*corpus_, *dir_ + "/det_a", 10, 2);
  const auto b = run(*corpus_, *dir_ + "/det_b", 10, 2);
  run(*corpus_, *dir_ + "/det_c", 10, 1);
  run(*corpus_, *dir_ + "/det_d", 10, 1, /*seed=*/2);
  const std::string wa = file_bytes(*dir_ + "/det_a/model.safetensors");
  EXPECT_EQ(wa, file_bytes(*dir_ + "/det_b/model.safetensors"));
  EXPECT_EQ(wa, file_bytes(*dir_ + "/det_c/model.safetensors")) << "1 thread differs from 2 threads";
  EXPECT_NE(wa, file_bytes(*dir_ + "/det_d/model.safetensors")) << "the seed must matter";
  EXPECT_EQ(a.heldout.mean_nll, b.heldout.mean_nll);
}

TEST_F(TrainerTest, ResumeFromCheckpointEqualsUninterruptedRun) {
  run(*corpus_, *dir_ + "/straight", 30, 1);
  const auto first = run(*corpus_, *dir_ + "/resumed", 30, 2, 1, /*stop_after=*/11);
  EXPECT_FALSE(first.completed);
  EXPECT_EQ(first.step, 11);
  EXPECT_FALSE(is_complete_model_dir(*dir_ + "/resumed"));
  const auto second = run(*corpus_, *dir_ + "/resumed", 30, 1, 1, 0, /*resume=*/true);
  EXPECT_TRUE(second.completed);
  EXPECT_EQ(file_bytes(*dir_ + "/straight/model.safetensors"), file_bytes(*dir_ + "/resumed/model.safetensors"));
  // The loss curve is continuous: 30 rows, one per step.
  std::ifstream csv(*dir_ + "/resumed/loss.csv");
  int rows = -1;
  for (std::string line; std::getline(csv, line);) ++rows;
  EXPECT_EQ(rows, 30);
  // Resuming with another seed is refused with a message naming the checkpoint.
  try {
    run(*corpus_, *dir_ + "/resumed", 30, 1, /*seed=*/7, 0, true);
    FAIL() << "resume with a different seed must be refused";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("checkpoint.bin"), std::string::npos) << e.what();
  }
}

TEST_F(TrainerTest, BadInputsAreUsageErrors) {
  EXPECT_THROW(find_preset("huge"), UsageError);
  EXPECT_THROW(run(*dir_ + "/missing.txt", *dir_ + "/bad", 5, 1), UsageError);
  std::ofstream(*dir_ + "/empty.txt") << "\n\n";
  EXPECT_THROW(run(*dir_ + "/empty.txt", *dir_ + "/bad", 5, 1), UsageError);
  EXPECT_THROW(run(*corpus_, *dir_ + "/never_started", 5, 1, 1, 0, /*resume=*/true), UsageError);
}

int run_cli(const std::string& args, std::string* out) {
  const std::string cmd = qmeter::testing::qmeter_bin() + " " + args + " 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  char buf[4096];
  out->clear();
  while (std::fgets(buf, sizeof buf, p)) *out += buf;
  return WEXITSTATUS(pclose(p));
}

TEST_F(TrainerTest, CliTrainsIntoCacheAndReusesIt) {
  const std::string cache = *dir_ + "/cache";
  std::string out1, out2;
  ASSERT_EQ(run_cli("train --preset test --steps 20 --threads 1 --corpus " + *corpus_ + " --cache-dir " + cache, &out1), 0);
  ASSERT_FALSE(out1.empty());
  const std::string folder = out1.substr(0, out1.find('\n'));
  EXPECT_TRUE(is_complete_model_dir(folder)) << folder;
  EXPECT_EQ(folder, cache_folder(cache, {*corpus_}, "test", 1, 20));
  const auto stamp = fs::last_write_time(folder + "/model.safetensors");
  ASSERT_EQ(run_cli("train --preset test --steps 20 --threads 1 --corpus " + *corpus_ + " --cache-dir " + cache, &out2), 0);
  EXPECT_EQ(out1, out2);
  EXPECT_EQ(stamp, fs::last_write_time(folder + "/model.safetensors")) << "cached model must not be retrained";
  EXPECT_NE(folder, cache_folder(cache, {*corpus_}, "test", 2, 20)) << "the seed is part of the key";
  std::string ignored;
  EXPECT_EQ(run_cli("train --preset nope --corpus " + *corpus_ + " --out " + *dir_ + "/x", &ignored), 2);
  EXPECT_EQ(run_cli("train --preset test --corpus " + *dir_ + "/missing.txt --out " + *dir_ + "/x", &ignored), 2);
  EXPECT_EQ(run_cli("train --preset test --corpus " + *corpus_, &ignored), 2);
}

}  // namespace
}  // namespace qmeter::train
