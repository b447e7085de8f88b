// Scorer over the embedded engine in-process: the same forward pass `qmeter serve` runs, without
// HTTP. It sees whole next-token distributions, which the full-vocabulary KL uses.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <numeric>

#include "qmeter/core/error.h"
#include "qmeter/engine/model.h"
#include "qmeter/engine/sampling.h"
#include "qmeter/engine/session.h"
#include "qmeter/engine/thread_pool.h"
#include "qmeter/engine/tokenizer.h"
#include "qmeter/quality/scorer.h"

namespace qmeter::quality {

namespace {

class EngineScorer final : public Scorer {
 public:
  EngineScorer(std::shared_ptr<const engine::Model> model, int threads)
      : model_(std::move(model)), pool_(std::max(1, threads)) {
    if (!model_->tokenizer) throw UsageError(fmt::format("{}: the model has no tokenizer; quality tasks need one", model_->source));
  }

  std::vector<ScoredToken> score_text(const std::string& text, int top_n) override {
    return score_tokens(tokenize(text, model_->tokenizer->add_bos_by_default()), top_n);
  }

  std::vector<ScoredToken> score_tokens(const std::vector<int>& tokens, int top_n) override {
    std::lock_guard lock(mu_);
    check_length(tokens.size());
    std::vector<ScoredToken> out(tokens.size());
    if (tokens.empty()) return out;
    const auto& tok = *model_->tokenizer;
    out[0].text = tok.token_bytes(tokens[0]);
    out[0].logprob = NAN;
    if (tokens.size() < 2) return out;
    engine::Session session(*model_, &pool_, static_cast<int>(tokens.size()));
    const auto logits = session.feed_all(tokens);
    const std::size_t vocab = static_cast<std::size_t>(model_->config.vocab_size);
    std::vector<float> lp(vocab);
    std::vector<int> idx(vocab);
    for (std::size_t i = 1; i < tokens.size(); ++i) {
      engine::log_softmax(logits.subspan((i - 1) * vocab, vocab), lp);
      ScoredToken& t = out[i];
      t.text = tok.token_bytes(tokens[i]);
      t.logprob = lp[static_cast<std::size_t>(tokens[i])];
      if (top_n > 0) {
        std::iota(idx.begin(), idx.end(), 0);
        const auto k = std::min<std::size_t>(static_cast<std::size_t>(top_n), vocab);
        std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(k), idx.end(), [&](int a, int b) {
          return lp[static_cast<std::size_t>(a)] > lp[static_cast<std::size_t>(b)] ||
                 (lp[static_cast<std::size_t>(a)] == lp[static_cast<std::size_t>(b)] && a < b);
        });
        for (std::size_t j = 0; j < k; ++j) t.top.emplace_back(tok.token_bytes(idx[j]), lp[static_cast<std::size_t>(idx[j])]);
      }
    }
    return out;
  }

  std::vector<int> tokenize(const std::string& text, bool add_bos) override {
    return model_->tokenizer->encode(text, add_bos && model_->tokenizer->bos_id() >= 0);
  }

  int context_length() override { return model_->config.max_seq_len; }

  std::string generate(const GenerateRequest& g) override {
    if (!g.messages.empty())
      throw UsageError("--apply-chat-template in-process needs the model's template: --chat-template FILE "
                       "(tokenizer_config.json or the template text)");
    std::lock_guard lock(mu_);
    const auto& tok = *model_->tokenizer;
    std::vector<int> prompt = g.prompt_tokens.empty() ? tok.encode(g.prompt, tok.add_bos_by_default()) : g.prompt_tokens;
    const int ctx = context_length();
    if (static_cast<int>(prompt.size()) >= ctx)
      throw Error(fmt::format("the prompt has {} tokens; the context length is {}", prompt.size(), ctx));
    const int budget = std::min(g.max_tokens, ctx - static_cast<int>(prompt.size()));
    engine::Session session(*model_, &pool_, ctx);
    auto logits = session.feed(prompt);
    const auto stops = tok.stop_ids();
    std::vector<int> generated;
    std::string text;
    for (int i = 0; i < budget; ++i) {
      const int next = static_cast<int>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      if (std::find(stops.begin(), stops.end(), next) != stops.end() || next == tok.bos_id()) break;
      generated.push_back(next);
      text = tok.decode(generated);
      bool stopped = false;
      for (const auto& s : g.stop)
        if (auto p = text.find(s); p != std::string::npos) {
          text.resize(p);
          stopped = true;
        }
      if (stopped || i + 1 == budget) break;
      const int one[1] = {next};
      logits = session.feed(one);
    }
    return text;
  }

  std::vector<std::vector<float>> log_distributions(const std::vector<int>& tokens) override {
    std::lock_guard lock(mu_);
    check_length(tokens.size());
    std::vector<std::vector<float>> rows;
    if (tokens.size() < 2) return rows;
    engine::Session session(*model_, &pool_, static_cast<int>(tokens.size()));
    const auto logits = session.feed_all(tokens);
    const std::size_t vocab = static_cast<std::size_t>(model_->config.vocab_size);
    rows.assign(tokens.size() - 1, std::vector<float>(vocab));
    for (std::size_t i = 0; i + 1 < tokens.size(); ++i) engine::log_softmax(logits.subspan(i * vocab, vocab), rows[i]);
    return rows;
  }
  bool has_full_distributions() const override { return true; }
  int max_concurrency() const override { return 1; }
  std::string describe() const override { return "engine in-process: " + model_->description; }

 private:
  void check_length(std::size_t n) const {
    if (n > static_cast<std::size_t>(model_->config.max_seq_len))
      throw Error(fmt::format("{} tokens exceed the model's context length {}", n, model_->config.max_seq_len));
  }

  std::shared_ptr<const engine::Model> model_;
  engine::ThreadPool pool_;
  std::mutex mu_;
};

}  // namespace

std::unique_ptr<Scorer> make_engine_scorer(std::shared_ptr<const engine::Model> model, int threads) {
  return std::make_unique<EngineScorer>(std::move(model), threads);
}

}  // namespace qmeter::quality
