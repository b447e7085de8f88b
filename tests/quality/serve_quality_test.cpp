// Quality through `qmeter serve` on stories260K: the perplexity protocol of the shared data README
// gives the reference figure and equals the in-process score; KL fidelity is 0 against itself and
// grows with a perturbation, through the engine (full vocabulary) and through servers (top-N).
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <random>

#include "qmeter/core/paths.h"
#include "qmeter/core/process.h"
#include "qmeter/engine/model.h"
#include "qmeter/quality/eval.h"
#include "qmeter/server/inference_server.h"
#include "test_support.h"

namespace qmeter::quality {
namespace {

constexpr const char* kStories = "models/stories260K/stories260K.bin";
constexpr const char* kVal = "eval/tinystories_val.txt";

#ifdef QMETER_SANITIZE
constexpr int kParagraphs = 25;  // the full 500 take minutes under ASan; the figure is checked in the normal build
#else
constexpr int kParagraphs = 500;
#endif

struct Served {
  std::shared_ptr<engine::Model> model;
  std::unique_ptr<server::InferenceServer> server;
};

Served serve(std::shared_ptr<engine::Model> model, const std::string& path) {
  Served s;
  s.model = std::move(model);
  server::ServeOptions o;
  o.model = path;
  o.port = 0;
  o.served_model_name = "stories";
  s.server = std::make_unique<server::InferenceServer>(o, s.model);
  s.server->start();
  return s;
}

std::shared_ptr<engine::Model> load(const std::string& path) {
  return std::shared_ptr<engine::Model>(engine::load_model(path).release());
}

// Multiplies every RMSNorm weight by (1 + sigma * N(0, 1)), seeded.
void perturb(engine::Model& m, double sigma) {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> n(0, 1);
  for (auto& l : m.weights.layers) {
    for (float& w : l.attn_norm) w = static_cast<float>(w * (1 + sigma * n(rng)));
    for (float& w : l.ffn_norm) w = static_cast<float>(w * (1 + sigma * n(rng)));
  }
}

TEST(QualityThroughServe, PerplexityProtocolGivesTheReferenceAndEqualsInProcess) {
  QMETER_REQUIRE_SHARED_DATA(model_path, kStories);
  QMETER_REQUIRE_SHARED_DATA(val, kVal);
  auto served = serve(load(model_path), model_path);
  auto api = make_server_scorer({served.server->base_url(), "stories", "", 120});
  auto local = make_engine_scorer(served.model, 2);
  EvalOptions o;
  o.limit = kParagraphs;
  o.concurrency = 4;
  o.bootstrap_resamples = 200;
  const auto spec = parse_task_spec(std::string("perplexity:") + val);
  const auto via_api = run_task(spec, *api, o);
  const auto in_process = run_task(spec, *local, o);
  EXPECT_EQ(via_api.find("tokens")->value, in_process.find("tokens")->value);
  // Equal up to the JSON rendering of each log-probability.
  EXPECT_NEAR(via_api.find("perplexity")->value, in_process.find("perplexity")->value, 1e-7);
  EXPECT_NEAR(via_api.find("mean_nll")->value, in_process.find("mean_nll")->value, 1e-8);
#ifndef QMETER_SANITIZE
  EXPECT_EQ(via_api.find("tokens")->value, 48715);
  EXPECT_NEAR(via_api.find("perplexity")->value, 4.17, 0.02);
#endif
  // Word and byte figures from the same NLL over the file's own counts.
  const double nll = via_api.find("mean_nll")->value * via_api.find("tokens")->value;
  double bytes = 0, words = 0;
  for (const auto& item : via_api.items) {
    const auto j = nlohmann::json::parse(item.json);
    bytes += j["bytes"].get<double>();
    words += j["words"].get<double>();
  }
  EXPECT_NEAR(via_api.find("byte_perplexity")->value, std::exp(nll / bytes), 1e-9);
  EXPECT_NEAR(via_api.find("word_perplexity")->value, std::exp(nll / words), 1e-6);
  EXPECT_NEAR(via_api.find("bits_per_byte")->value, nll / bytes / std::log(2.0), 1e-12);
  EXPECT_GT(via_api.find("perplexity")->stderr_, 0);
  EXPECT_EQ(via_api.find("perplexity")->n, kParagraphs);
}

// stories260K with its context cut to 128 tokens: documents longer than that are scored in rolling
// windows, through `qmeter serve` and in-process, with the same total log-likelihood, and every
// token is scored once (the token count equals the full-context count).
TEST(QualityThroughServe, RollingPerplexityWithA128TokenContextEqualsInProcess) {
  QMETER_REQUIRE_SHARED_DATA(model_path, kStories);
  QMETER_REQUIRE_SHARED_DATA(val, kVal);
  auto full = load(model_path);
  auto cut = load(model_path);
  cut->config.max_seq_len = 128;
  auto served = serve(cut, model_path);
  auto api = make_server_scorer({served.server->base_url(), "stories", "", 120});
  auto local = make_engine_scorer(cut, 2);
  auto local_full = make_engine_scorer(full, 2);
  EvalOptions o;
  o.limit = 30;
  o.concurrency = 4;
  o.bootstrap_resamples = 20;
  o.capabilities = api->probe_capabilities();
  ASSERT_TRUE(o.capabilities.prompt_logprobs.supported) << o.capabilities.prompt_logprobs.reason;
  ASSERT_TRUE(o.capabilities.tokenize.supported) << o.capabilities.tokenize.reason;
  const auto spec = parse_task_spec(std::string("perplexity:") + val);
  const auto via_api = run_task(spec, *api, o);
  const auto in_process = run_task(spec, *local, o);
  const auto whole = run_task(spec, *local_full, o);
  int rolled = 0;
  for (const auto& item : via_api.items) rolled += nlohmann::json::parse(item.json)["windows"].get<int>() > 1;
  EXPECT_GT(rolled, 3) << "some documents exceed 127 tokens";
  EXPECT_EQ(via_api.find("tokens")->value, in_process.find("tokens")->value);
  EXPECT_EQ(via_api.find("tokens")->value, whole.find("tokens")->value) << "every token scored exactly once";
  const double nll_api = via_api.find("mean_nll")->value * via_api.find("tokens")->value;
  const double nll_local = in_process.find("mean_nll")->value * in_process.find("tokens")->value;
  EXPECT_NEAR(nll_api, nll_local, 1e-6 * std::abs(nll_local));
  // Less context for the later windows' tokens: the rolled score is a little worse, never better
  // by much.
  EXPECT_GT(in_process.find("mean_nll")->value, whole.find("mean_nll")->value - 1e-3);
}

TEST(QualityThroughServe, EvalVerbWritesLmEvalShapedJson) {
  QMETER_REQUIRE_SHARED_DATA(model_path, kStories);
  QMETER_REQUIRE_SHARED_DATA(val, kVal);
  auto served = serve(load(model_path), model_path);
  const auto dir = qmeter::testing::test_output_dir("quality_eval_cli");
  SpawnOptions so;
  so.argv = {qmeter::testing::qmeter_bin(), "eval", "--base-url", served.server->base_url(), "--model", "stories",
             "--task", std::string("perplexity:") + val, "--limit", "20", "--max-concurrency", "2",
             "--output-json", dir + "/out.json"};
  so.log_path = dir + "/eval.log";
  auto child = ChildProcess::spawn(so);
  ASSERT_EQ(child.wait(300), 0) << file_tail(so.log_path);
  const auto j = nlohmann::json::parse(read_file(dir + "/out.json"));
  const auto& r = j["results"][std::string("perplexity:") + val];
  for (const char* k : {"perplexity", "word_perplexity", "byte_perplexity", "bits_per_byte"}) {
    ASSERT_TRUE(r.contains(k)) << k;
    ASSERT_TRUE(r.contains(std::string(k) + "_stderr")) << k;
  }
  EXPECT_EQ(r["n"], 20);
  EXPECT_GT(r["perplexity"].get<double>(), 1.0);
  // A missing file is a usage error that names it.
  so.argv = {qmeter::testing::qmeter_bin(), "eval", "--base-url", served.server->base_url(), "--task", "mc:/nonexistent.jsonl"};
  auto bad = ChildProcess::spawn(so);
  EXPECT_EQ(bad.wait(60), 2);
  EXPECT_NE(file_tail(so.log_path).find("/nonexistent.jsonl"), std::string::npos) << file_tail(so.log_path);
}

TEST(QualityFidelity, KlAgainstItselfIsZeroAndGrowsWithThePerturbation) {
  QMETER_REQUIRE_SHARED_DATA(model_path, kStories);
  QMETER_REQUIRE_SHARED_DATA(val, kVal);
  EvalOptions o;
  o.limit = 8;
  o.kl_text = val;
  o.bootstrap_resamples = 100;
  auto base = load(model_path);
  auto base_scorer = make_engine_scorer(base, 2);
  auto self_scorer = make_engine_scorer(load(model_path), 2);
  const auto self = run_task(parse_task_spec("kl:fp32"), *self_scorer, o, base_scorer.get());
  EXPECT_EQ(self.find("kl_mean")->value, 0.0);
  EXPECT_EQ(self.find("top1_agreement")->value, 1.0);
  EXPECT_EQ(self.find("full_vocabulary")->value, 1.0);
  EXPECT_GT(self.find("kl_mean")->n, 500) << "positions scored";
  double previous = 0;
  for (double sigma : {0.02, 0.1, 0.3}) {
    auto m = load(model_path);
    perturb(*m, sigma);
    auto scorer = make_engine_scorer(m, 2);
    const auto r = run_task(parse_task_spec("kl:fp32"), *scorer, o, base_scorer.get());
    const double kl = r.find("kl_mean")->value;
    EXPECT_GT(kl, previous) << "sigma " << sigma;
    EXPECT_LE(r.find("top1_agreement")->value, 1.0);
    previous = kl;
  }
  EXPECT_LT(previous, 10.0);
}

TEST(QualityFidelity, TopNKlThroughServersIsZeroForItselfAndBoundsTheFullKl) {
  QMETER_REQUIRE_SHARED_DATA(model_path, kStories);
  QMETER_REQUIRE_SHARED_DATA(val, kVal);
  EvalOptions o;
  o.limit = 6;
  o.kl_text = val;
  o.concurrency = 2;
  o.top_logprobs = 20;
  o.bootstrap_resamples = 100;
  auto base = serve(load(model_path), model_path);
  auto same = serve(load(model_path), model_path);
  auto perturbed_model = load(model_path);
  perturb(*perturbed_model, 0.1);
  auto perturbed = serve(perturbed_model, model_path);
  auto base_api = make_server_scorer({base.server->base_url(), "stories", "", 120});
  auto same_api = make_server_scorer({same.server->base_url(), "stories", "", 120});
  auto pert_api = make_server_scorer({perturbed.server->base_url(), "stories", "", 120});
  const auto self = run_task(parse_task_spec("kl:" + base.server->base_url()), *same_api, o, base_api.get());
  EXPECT_EQ(self.find("kl_mean")->value, 0.0);
  EXPECT_EQ(self.find("top1_agreement")->value, 1.0);
  EXPECT_EQ(self.find("full_vocabulary")->value, 0.0);
  const auto top_n = run_task(parse_task_spec("kl:" + base.server->base_url()), *pert_api, o, base_api.get());
  // The same pair in-process gives the exact full-vocabulary KL: coarse-graining onto the top 20
  // (plus the rest) may only lose a little of it with a 512-token vocabulary.
  auto base_local = make_engine_scorer(base.model, 2);
  auto pert_local = make_engine_scorer(perturbed_model, 2);
  const auto full = run_task(parse_task_spec("kl:fp32"), *pert_local, o, base_local.get());
  const double a = top_n.find("kl_mean")->value, f = full.find("kl_mean")->value;
  EXPECT_GT(a, 0);
  EXPECT_LE(a, f * 1.02);
  EXPECT_GE(a, f * 0.7);
  EXPECT_DOUBLE_EQ(top_n.find("top1_agreement")->value, full.find("top1_agreement")->value);
}

}  // namespace
}  // namespace qmeter::quality
