// The trained folder loads through the embedded engine's Hugging Face loader (the path every
// qmeter verb takes), and the engine computes the same logits and held-out perplexity as the
// trainer's own forward pass.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "generated_corpus.h"
#include "qmeter/core/paths.h"
#include "qmeter/engine/forward.h"
#include "qmeter/engine/kv_cache.h"
#include "qmeter/engine/model.h"
#include "qmeter/quality/eval.h"
#include "qmeter/server/inference_server.h"
#include "qmeter/train/model.h"
#include "qmeter/train/train.h"
#include "test_support.h"

namespace qmeter::train {
namespace {

class EngineRoundTrip : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string dir = qmeter::testing::test_output_dir("train_engine");
    static TrainPreset preset = find_preset("test");
    preset.steps = 120;
    TrainOptions o;
    o.corpus_paths = {testing::write_generated_corpus(dir)};
    o.out_dir = dir + "/model";
    o.preset_override = &preset;
    o.progress = false;
    o.threads = 1;
    result_ = new TrainResult(train_model(o));
  }
  static void TearDownTestSuite() { delete result_; }
  static TrainResult* result_;
};
TrainResult* EngineRoundTrip::result_ = nullptr;

// The trainer's model, rebuilt from the exported safetensors (F32 copy of the weights).
Transformer<float> trainer_model_from(const std::string& dir, const engine::Model& m) {
  const auto& c = m.config;
  Transformer<float> model(ModelConfig{c.vocab_size, c.dim, c.n_layers, c.n_heads, c.n_kv_heads, c.hidden_dim,
                                       c.max_seq_len, c.rope_theta, c.norm_eps});
  const std::string bytes = qmeter::read_file(dir + "/model.safetensors");
  std::uint64_t len = 0;
  std::memcpy(&len, bytes.data(), 8);
  const auto header = nlohmann::json::parse(bytes.substr(8, len));
  for (const auto& t : model.layout().tensors()) {
    const auto b = header.at(t.name).at("data_offsets")[0].get<std::size_t>();
    std::memcpy(model.params().data() + t.offset, bytes.data() + 8 + len + b, t.size * 4);
  }
  return model;
}

TEST_F(EngineRoundTrip, EngineLogitsAndHeldOutPerplexityMatchTheTrainer) {
  ASSERT_TRUE(result_->completed);
  const std::string dir = result_->out_dir;
  auto m = engine::load_model(dir);
  ASSERT_TRUE(m->tokenizer);
  EXPECT_TRUE(m->config.tied_embeddings);
  Transformer<float> mine = trainer_model_from(dir, *m);
  const int n = m->config.max_seq_len, vocab = m->config.vocab_size;

  // The engine's tokenizer gives the ids the trainer scored.
  const std::string text = qmeter::read_file(dir + "/heldout.txt");
  const std::vector<int> ids = m->tokenizer->encode(text, /*add_bos=*/false);
  const auto summary = nlohmann::json::parse(qmeter::read_file(dir + "/training.json"));
  ASSERT_EQ(static_cast<std::int64_t>(ids.size()), summary.at("heldout_tokens").get<std::int64_t>());

  engine::ForwardPass pass(*m, nullptr);
  double nll = 0;
  std::int64_t count = 0;
  double max_logit_diff = 0;
  const std::size_t chunk = static_cast<std::size_t>(heldout_chunk_tokens(n));
  for (std::size_t begin = 0; begin < ids.size(); begin += chunk) {
    const int len = static_cast<int>(std::min<std::size_t>(chunk, ids.size() - begin));
    std::vector<int> input(len);
    input[0] = m->tokenizer->bos_id();
    for (int t = 1; t < len; ++t) input[t] = ids[begin + t - 1];
    engine::KvCache kv(engine::KvLayout::for_model(m->config), n);
    engine::SequenceInput seq{&kv, input, engine::LogitsWanted::kAll};
    pass.run(std::span<const engine::SequenceInput>(&seq, 1));
    const auto logits = pass.logits(0);
    ASSERT_EQ(logits.size(), static_cast<std::size_t>(len) * vocab);
    std::vector<std::int32_t> in(input.begin(), input.end()), tg(len);
    for (int t = 0; t < len; ++t) tg[t] = ids[begin + t];
    std::int64_t k = 0;
    mine.forward(in.data(), tg.data(), 1, len, &k);
    for (int t = 0; t < len; ++t) {
      const float* row = logits.data() + static_cast<std::size_t>(t) * vocab;
      const float* ref = mine.logits().data() + static_cast<std::size_t>(t) * vocab;
      double mx = row[0], z = 0;
      for (int i = 0; i < vocab; ++i) {
        max_logit_diff = std::max(max_logit_diff, static_cast<double>(std::fabs(row[i] - ref[i])));
        mx = std::max(mx, static_cast<double>(row[i]));
      }
      for (int i = 0; i < vocab; ++i) z += std::exp(row[i] - mx);
      nll += std::log(z) + mx - row[tg[t]];
      ++count;
    }
  }
  std::printf("engine held-out NLL %.6f vs trainer %.6f; max |logit diff| %.2e over %lld tokens\n", nll / count,
              summary.at("heldout_mean_nll").get<double>(), max_logit_diff, static_cast<long long>(count));
  EXPECT_LT(max_logit_diff, 1e-4);
  EXPECT_NEAR(nll / count, summary.at("heldout_mean_nll").get<double>(), 1e-4);
}

// Issue 9: the trained model served by `qmeter serve` and scored by `qmeter eval`'s window mode
// gives the trainer's own held-out figure.
TEST_F(EngineRoundTrip, EvalThroughServeEqualsTheTrainersHeldOutFigure) {
  ASSERT_TRUE(result_->completed);
  const std::string dir = result_->out_dir;
  auto model = std::shared_ptr<engine::Model>(engine::load_model(dir).release());
  server::ServeOptions so;
  so.model = dir;
  so.port = 0;
  so.served_model_name = "tiny";
  server::InferenceServer server(so, model);
  server.start();
  auto scorer = quality::make_server_scorer({server.base_url(), "tiny", "", 120});
  quality::EvalOptions eo;
  eo.ppl_mode = "window";
  eo.concurrency = 2;
  eo.bootstrap_resamples = 50;
  const auto r = quality::run_task(quality::parse_task_spec("perplexity:" + dir + "/heldout.txt"), *scorer, eo);
  const auto summary = nlohmann::json::parse(qmeter::read_file(dir + "/training.json"));
  EXPECT_EQ(r.find("tokens")->value, summary.at("heldout_tokens").get<double>());
  EXPECT_NEAR(r.find("mean_nll")->value, summary.at("heldout_mean_nll").get<double>(), 1e-4);
  EXPECT_NEAR(r.find("perplexity")->value, summary.at("heldout_perplexity").get<double>(),
              1e-4 * summary.at("heldout_perplexity").get<double>());
}

}  // namespace
}  // namespace qmeter::train
