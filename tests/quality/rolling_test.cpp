// Rolling perplexity (lm-evaluation-harness's loglikelihood_rolling) against a scripted server whose
// per-token log-probabilities are known: a document 3.5x the context is scored with every token
// exactly once, and the exact requests (which tokens condition which) are asserted.
//
// The scripted server tokenizes one byte per token (id = byte + 10, BOS = 1), reports
// max_model_len 16, and gives token t (at any position after the first of a request) the
// log-probability -(t % 4 + 1) / 4 (dyadic, so sums are exact).
#include <gtest/gtest.h>

#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>

#include "qmeter/net/http_server.h"
#include "qmeter/quality/eval.h"
#include "test_support.h"

namespace qmeter::quality {
namespace {

using nlohmann::json;

constexpr int kBos = 1;
constexpr int kContext = 16;

double scripted_logprob(int token) { return -(token % 4 + 1) / 4.0; }

class TokenServer {
 public:
  TokenServer() {
    server_ = std::make_unique<net::HttpServer>(net::HttpServerOptions{},
                                                [this](const net::HttpRequest& r, const net::ResponseWriterPtr& w) { handle(r, w); });
    server_->start();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(server_->port()); }
  std::vector<std::vector<int>> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  void handle(const net::HttpRequest& r, const net::ResponseWriterPtr& w) {
    net::HttpResponse resp;
    if (r.path == "/v1/models") {
      resp.body = json{{"data", {{{"id", "m"}, {"max_model_len", kContext}}}}}.dump();
    } else if (r.path == "/tokenize") {
      const json body = json::parse(r.body);
      std::vector<int> ids;
      if (body.value("add_special_tokens", true)) ids.push_back(kBos);
      for (unsigned char c : body.at("prompt").get<std::string>()) ids.push_back(c + 10);
      resp.body = json{{"tokens", ids}, {"max_model_len", kContext}}.dump();
    } else if (r.path == "/v1/completions") {
      const json body = json::parse(r.body);
      std::vector<int> ids;
      if (body.at("prompt").is_string()) {  // the capability probe
        ids.push_back(kBos);
        for (unsigned char c : body["prompt"].get<std::string>()) ids.push_back(c + 10);
      } else {
        ids = body["prompt"].get<std::vector<int>>();
      }
      {
        std::lock_guard lock(mu_);
        requests_.push_back(ids);
      }
      if (static_cast<int>(ids.size()) + body.value("max_tokens", 16) > kContext) {
        resp.status = 400;
        resp.body = json{{"error", {{"message", "prompt too long"}}}}.dump();
      } else {
        json tokens = json::array(), lps = json::array();
        for (std::size_t i = 0; i < ids.size(); ++i) {
          tokens.push_back(ids[i] < 10 ? std::string("<s>") : std::string(1, static_cast<char>(ids[i] - 10)));
          if (i == 0) lps.push_back(nullptr);
          else lps.push_back(scripted_logprob(ids[i]));
        }
        tokens.push_back("!");
        lps.push_back(-0.5);
        resp.body = json{{"choices", {{{"text", ""}, {"logprobs", {{"tokens", tokens}, {"token_logprobs", lps}}}}}},
                         {"usage", {{"prompt_tokens", ids.size()}, {"completion_tokens", 1}}}}
                        .dump();
      }
    } else {
      resp.status = 404;
    }
    w->respond(resp);
  }

  std::mutex mu_;
  std::vector<std::vector<int>> requests_;
  std::unique_ptr<net::HttpServer> server_;
};

std::vector<int> ids_of(const std::string& s) {
  std::vector<int> out;
  for (unsigned char c : s) out.push_back(c + 10);
  return out;
}

std::vector<int> slice(const std::vector<int>& v, std::size_t from, std::size_t to) {
  return std::vector<int>(v.begin() + static_cast<std::ptrdiff_t>(from), v.begin() + static_cast<std::ptrdiff_t>(to));
}

TEST(RollingWindows, EveryTokenOnceWithTheTokensBeforeItAsContext) {
  // prefix [B], doc 1..9, max_length 4: [B 1 2 3] scores 1 2 3; then 3 tokens conditioned on 1:
  // [3 4 5 6] scores 4 5 6; [6 7 8 9] scores 7 8 9.
  const auto w = rolling_windows({100}, {1, 2, 3, 4, 5, 6, 7, 8, 9}, 4);
  ASSERT_EQ(w.size(), 3u);
  EXPECT_EQ(w[0].tokens, (std::vector<int>{100, 1, 2, 3}));
  EXPECT_EQ(w[0].scored, 3);
  EXPECT_EQ(w[1].tokens, (std::vector<int>{3, 4, 5, 6}));
  EXPECT_EQ(w[1].scored, 3);
  EXPECT_EQ(w[2].tokens, (std::vector<int>{6, 7, 8, 9}));
  EXPECT_EQ(w[2].scored, 3);
  // A last window with fewer tokens to score keeps max_length tokens: more conditioning.
  const auto v = rolling_windows({100}, {1, 2, 3, 4, 5}, 4);
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[1].tokens, (std::vector<int>{2, 3, 4, 5}));
  EXPECT_EQ(v[1].scored, 2);
  // No prefix (a model without BOS): the first token is not scored, nothing predicts it.
  const auto n = rolling_windows({}, {1, 2, 3}, 8);
  ASSERT_EQ(n.size(), 1u);
  EXPECT_EQ(n[0].scored, 2);
  EXPECT_TRUE(rolling_windows({}, {7}, 8).empty());
  EXPECT_THROW(rolling_windows({100}, {1, 2}, 1), UsageError);
}

TEST(RollingPerplexity, ADocument3Point5ContextsLongIsScoredOnceWithTheExactRequests) {
  const auto dir = qmeter::testing::test_output_dir("quality_rolling");
  // 56 bytes = 3.5 x the context (16); a second document of 20 bytes ends in a partial window.
  std::string doc1, doc2;
  for (int i = 0; i < 56; ++i) doc1 += static_cast<char>('a' + (i * 7) % 26);
  for (int i = 0; i < 20; ++i) doc2 += static_cast<char>('A' + (i * 5) % 26);
  std::ofstream(dir + "/docs.txt") << doc1 << "\n\n" << doc2;
  TokenServer server;
  auto scorer = make_server_scorer({server.url(), "m", "", 30});
  EvalOptions o;
  o.capabilities = scorer->probe_capabilities();
  ASSERT_TRUE(o.capabilities.tokenize.supported) << o.capabilities.tokenize.reason;
  o.concurrency = 1;
  o.bootstrap_resamples = 10;
  const std::size_t probes = server.requests().size();  // the capability probe's echo request
  const auto r = run_task(parse_task_spec("perplexity:" + dir + "/docs.txt"), *scorer, o);

  // Default max_length = context - 1 = 15 (room for the one generated token of an echo request).
  // Document 1: seq = [BOS] + 56 tokens = 57: [0, 15) scores 14; then 14 at a time, each window
  // 15 tokens long, conditioned on the 1 token before: [14, 29), [28, 43), [42, 57).
  std::vector<int> s1 = {kBos}, s2 = {kBos};
  const auto i1 = ids_of(doc1), i2 = ids_of(doc2);
  s1.insert(s1.end(), i1.begin(), i1.end());
  s2.insert(s2.end(), i2.begin(), i2.end());
  // Document 2: seq = 21 tokens: [0, 15) scores 14; the last 6 conditioned on 9: [6, 21).
  const std::vector<std::vector<int>> expected = {slice(s1, 0, 15), slice(s1, 14, 29), slice(s1, 28, 43),
                                                  slice(s1, 42, 57), slice(s2, 0, 15), slice(s2, 6, 21)};
  auto made = server.requests();
  made.erase(made.begin(), made.begin() + static_cast<std::ptrdiff_t>(probes));
  EXPECT_EQ(made, expected);

  double nll = 0;
  for (int t : i1) nll -= scripted_logprob(t);
  for (int t : i2) nll -= scripted_logprob(t);
  EXPECT_EQ(r.find("tokens")->value, 56 + 20) << "every document token exactly once";
  EXPECT_DOUBLE_EQ(r.find("mean_nll")->value, nll / 76);
  const json item0 = json::parse(r.items[0].json);
  EXPECT_EQ(item0["windows"], 4);
  EXPECT_EQ(item0["tokens"], 56);
  EXPECT_DOUBLE_EQ(item0["bytes"].get<double>(), 56);

  // --truncate 10: each document's first 10 tokens, one window each; bytes scale with the share.
  o.truncate = 10;
  const std::size_t before = server.requests().size();
  const auto t = run_task(parse_task_spec("perplexity:" + dir + "/docs.txt"), *scorer, o);
  made = server.requests();
  made.erase(made.begin(), made.begin() + static_cast<std::ptrdiff_t>(before));
  EXPECT_EQ(made, (std::vector<std::vector<int>>{slice(s1, 0, 11), slice(s2, 0, 11)}));
  EXPECT_EQ(t.find("tokens")->value, 20);
  EXPECT_DOUBLE_EQ(json::parse(t.items[1].json)["bytes"].get<double>(), 10);

  // --max-length 8 on document 2: [0, 8) scores 7, [7, 15) scores 7, [13, 21) scores the last 6.
  o.truncate = 0;
  o.max_length = 8;
  std::ofstream(dir + "/one.txt") << doc2;
  const std::size_t before2 = server.requests().size();
  const auto m = run_task(parse_task_spec("perplexity:" + dir + "/one.txt"), *scorer, o);
  made = server.requests();
  made.erase(made.begin(), made.begin() + static_cast<std::ptrdiff_t>(before2));
  EXPECT_EQ(made, (std::vector<std::vector<int>>{slice(s2, 0, 8), slice(s2, 7, 15), slice(s2, 13, 21)}));
  EXPECT_EQ(m.find("tokens")->value, 20);
}

}  // namespace
}  // namespace qmeter::quality
