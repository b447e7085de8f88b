// Scorer over an OpenAI-compatible server. Prompt log-probabilities come from /v1/completions with
// echo + logprobs and max_tokens 1 (the request lm-evaluation-harness's local-completions model
// makes, which every server that supports echo accepts); the one generated token is cut off by
// usage.prompt_tokens. Token ids and the context length come from /tokenize and /v1/models.
#include <fmt/format.h>

#include <climits>
#include <cmath>
#include <mutex>
#include <nlohmann/json.hpp>

#include "qmeter/client/http_call.h"
#include "qmeter/core/error.h"
#include "qmeter/core/text.h"
#include "qmeter/quality/scorer.h"

namespace qmeter::quality {

namespace {

using nlohmann::json;

// An integer of a reply, or `fallback` when it is not an integer that fits an int (a server that
// sends 1e300 or "12" must not reach a float-to-int conversion, which is undefined).
int int_or(const json& v, int fallback) {
  if (!v.is_number_integer()) return fallback;
  if (v.is_number_unsigned()) return v.get<std::uint64_t>() <= INT_MAX ? static_cast<int>(v.get<std::uint64_t>()) : fallback;
  const auto i = v.get<std::int64_t>();
  return i >= INT_MIN && i <= INT_MAX ? static_cast<int>(i) : fallback;
}
int int_or(const json& obj, const char* key, int fallback) {
  auto it = obj.find(key);
  return it == obj.end() ? fallback : int_or(*it, fallback);
}

class ServerScorer final : public Scorer {
 public:
  explicit ServerScorer(ServerScorerOptions o) : o_(std::move(o)) {}

  std::vector<ScoredToken> score_text(const std::string& text, int top_n) override {
    return score(json(text), top_n);
  }
  std::vector<ScoredToken> score_tokens(const std::vector<int>& tokens, int top_n) override {
    return score(json(tokens), top_n);
  }

  std::vector<int> tokenize(const std::string& text, bool add_bos) override {
    const json body = {{"model", o_.model}, {"prompt", text}, {"add_special_tokens", add_bos}};
    const json r = call("/tokenize", body, "tokenization (window perplexity, kl)");
    if (!r.contains("tokens") || !r["tokens"].is_array())
      throw Error(fmt::format("{}/tokenize replied without a 'tokens' list", o_.base_url));
    std::vector<int> ids;
    for (const auto& t : r["tokens"]) {
      const int id = int_or(t, -1);
      if (id < 0)
        throw Error(fmt::format("{}/tokenize replied with a token id that is not an int >= 0: {}", o_.base_url,
                                t.dump().substr(0, 100)));
      ids.push_back(id);
    }
    return ids;
  }

  int context_length() override {
    std::lock_guard lock(ctx_mu_);
    if (ctx_len_ > 0) return ctx_len_;
    auto caller = acquire();
    const auto reply = caller->get(join_url(o_.base_url, "/v1/models"));
    release(std::move(caller));
    if (reply.ok()) {
      try {
        const json j = json::parse(reply.body);
        for (const auto& m : j.value("data", json::array()))
          if (m.contains("max_model_len") && m["max_model_len"].is_number_integer()) ctx_len_ = m["max_model_len"].get<int>();
      } catch (const std::exception&) {
      }
    }
    if (ctx_len_ <= 0) {
      const json r = call("/tokenize", {{"model", o_.model}, {"prompt", "a"}}, "the context length");
      ctx_len_ = int_or(r, "max_model_len", 0);
    }
    if (ctx_len_ <= 0)
      throw Error(fmt::format("{} reports no max_model_len (in /v1/models or /tokenize); give the window "
                              "length with --window", o_.base_url));
    return ctx_len_;
  }

  std::string generate(const GenerateRequest& g) override {
    json body = {{"model", o_.model}, {"max_tokens", g.max_tokens}, {"temperature", 0}};
    const bool chat = !g.messages.empty();
    if (chat) {
      body["messages"] = json::array();
      for (const auto& m : g.messages) body["messages"].push_back({{"role", m.role}, {"content", m.content}});
    } else if (g.prompt_tokens.empty()) {
      body["prompt"] = g.prompt;
    } else {
      body["prompt"] = g.prompt_tokens;
    }
    if (!g.stop.empty()) body["stop"] = g.stop;
    const char* path = chat ? "/v1/chat/completions" : "/v1/completions";
    const json r = call(path, body, "generation");
    std::string text;
    try {
      text = chat ? r.at("choices").at(0).at("message").at("content").get<std::string>()
                  : r.at("choices").at(0).at("text").get<std::string>();
    } catch (const std::exception&) {
      throw Error(fmt::format("{}{} replied without the generated text: {}", o_.base_url, path, r.dump().substr(0, 200)));
    }
    // Servers that ignore `stop` are cut here, so every server is scored on the same text.
    for (const auto& s : g.stop)
      if (auto p = text.find(s); p != std::string::npos) text.resize(p);
    return text;
  }

  Capabilities probe_capabilities() override {
    Capabilities c;
    // 1. Prompt log-probabilities and top-N alternatives: the request every echo task makes.
    {
      const json body = {{"model", o_.model}, {"prompt", "Hello, world"}, {"max_tokens", 1},
                         {"temperature", 0},  {"echo", true},              {"logprobs", 2}};
      const auto [r, why] = probe_post("/v1/completions", body);
      const json* lp = nullptr;
      if (why.empty()) {
        try {
          lp = &r.at("choices").at(0).at("logprobs");
        } catch (const std::exception&) {
        }
      }
      const std::size_t completion = r.is_object() && r.contains("usage") && r["usage"].is_object()
                                         ? static_cast<std::size_t>(std::max(0, int_or(r["usage"], "completion_tokens", 1))) : 1;
      if (!why.empty()) {
        c.prompt_logprobs = {false, why};
      } else if (lp == nullptr || !lp->is_object() || !lp->contains("token_logprobs") ||
                 !(*lp)["token_logprobs"].is_array() || (*lp)["token_logprobs"].size() <= completion) {
        c.prompt_logprobs = {false, "/v1/completions with \"echo\": true returned no log-probabilities of the prompt tokens"};
      }
      if (!c.prompt_logprobs.supported) {
        c.top_logprobs = {false, "no prompt log-probabilities (" + c.prompt_logprobs.reason + ")"};
      } else {
        const json tops = lp->value("top_logprobs", json());
        bool listed = false;
        if (tops.is_array())
          for (const auto& t : tops) listed = listed || (t.is_object() && !t.empty());
        if (!listed) c.top_logprobs = {false, "/v1/completions returned no top_logprobs alternatives for \"logprobs\": 2"};
      }
    }
    // 2. Token ids.
    {
      const auto [r, why] = probe_post("/tokenize", {{"model", o_.model}, {"prompt", "Hello"}});
      if (!why.empty()) c.tokenize = {false, why};
      else if (!r.is_object() || !r.contains("tokens") || !r["tokens"].is_array())
        c.tokenize = {false, "/tokenize replied without a 'tokens' list"};
    }
    // 3. Chat completions (one generated token).
    {
      const json body = {{"model", o_.model},
                         {"messages", json::array({{{"role", "user"}, {"content", "Hello"}}})},
                         {"max_tokens", 1},
                         {"temperature", 0}};
      const auto [r, why] = probe_post("/v1/chat/completions", body);
      if (!why.empty()) c.chat = {false, why};
    }
    // 4. The server's chat template: llama-server's (and `qmeter serve`'s) GET /props answers
    // {"chat_template": "...", "bos_token": "<s>", "eos_token": "</s>", ...}.
    {
      auto caller = acquire();
      const auto reply = caller->get(join_url(server_root_url(o_.base_url), "/props"));
      release(std::move(caller));
      const json j = reply.ok() ? json::parse(reply.body, nullptr, false) : json();
      auto str = [&](const char* key) {
        return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
      };
      c.chat_template_text = str("chat_template");
      c.chat_bos_token = str("bos_token");
      c.chat_eos_token = str("eos_token");
      if (c.chat_template_text.empty())
        c.chat_template = {false, reply.ok() ? "/props has no chat_template"
                                             : fmt::format("/props answered {}", reply.error.empty() ? "HTTP " + std::to_string(reply.status) : reply.error)};
    }
    return c;
  }

  int max_concurrency() const override { return 1024; }
  std::string describe() const override { return o_.base_url + " (model " + o_.model + ")"; }

 private:
  std::vector<ScoredToken> score(const json& prompt, int top_n) {
    const json body = {{"model", o_.model}, {"prompt", prompt},   {"max_tokens", 1},
                       {"temperature", 0},  {"echo", true},       {"logprobs", std::max(0, top_n)}};
    const json r = call("/v1/completions", body, "prompt log-probabilities");
    const json* lp = nullptr;
    try {
      lp = &r.at("choices").at(0).at("logprobs");
    } catch (const std::exception&) {
    }
    if (lp == nullptr || !lp->is_object() || !lp->contains("token_logprobs") || !(*lp)["token_logprobs"].is_array())
      throw Error(fmt::format("{} returned no prompt log-probabilities: perplexity, mc and kl need /v1/completions "
                              "with \"echo\": true and \"logprobs\" (vLLM, SGLang, llama.cpp and `qmeter serve` "
                              "support it; chat-only endpoints do not)",
                              o_.base_url));
    const json toks = lp->value("tokens", json());  // absent: no token texts (a const [] on a missing key is UB)
    const auto& lps = (*lp)["token_logprobs"];
    const json tops = lp->value("top_logprobs", json());
    std::size_t n = lps.size();
    int prompt_tokens = -1;
    if (r.contains("usage") && r["usage"].is_object()) prompt_tokens = int_or(r["usage"], "prompt_tokens", -1);
    // The reply holds the prompt tokens then the one generated token.
    if (prompt_tokens >= 0 && static_cast<std::size_t>(prompt_tokens) <= n) n = static_cast<std::size_t>(prompt_tokens);
    else if (n > 0) n -= 1;
    std::vector<ScoredToken> out(n);
    for (std::size_t i = 0; i < n; ++i) {
      if (toks.is_array() && i < toks.size() && toks[i].is_string()) out[i].text = toks[i].get<std::string>();
      out[i].logprob = lps[i].is_number() ? lps[i].get<double>() : NAN;
      if (tops.is_array() && i < tops.size() && tops[i].is_object()) {
        for (auto it = tops[i].begin(); it != tops[i].end(); ++it)
          if (it.value().is_number()) out[i].top.emplace_back(it.key(), it.value().get<double>());
        std::sort(out[i].top.begin(), out[i].top.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
      }
    }
    if (n > 1 && std::isnan(out[1].logprob))
      throw Error(fmt::format("{} returned null log-probabilities for prompt tokens; the scoring needs them", o_.base_url));
    return out;
  }

  // A probe's reply, or why the server refused it ("" when it answered 200 with JSON). Only an
  // unreachable server throws: that is no capability question.
  std::pair<json, std::string> probe_post(const std::string& path, const json& body) {
    auto caller = acquire();
    const std::string url = join_url(o_.base_url, path);
    const auto reply = caller->post_json(url, body.dump());
    release(std::move(caller));
    if (!reply.error.empty()) throw Error(fmt::format("{} (capability probe): {}", url, reply.error));
    if (!reply.ok()) return {json(), fmt::format("{} answered HTTP {}: {}", path, reply.status, error_message(reply.body))};
    try {
      return {json::parse(reply.body), ""};
    } catch (const std::exception&) {
      return {json(), fmt::format("{} replied with invalid JSON", path)};
    }
  }

  static std::string error_message(const std::string& body) {
    std::string msg = body.substr(0, 300);
    try {
      const json e = json::parse(body);
      if (e.contains("error") && e["error"].is_object()) msg = e["error"].value("message", msg);
      else if (e.contains("error") && e["error"].is_string()) msg = e["error"].get<std::string>();
      else if (e.contains("message") && e["message"].is_string()) msg = e["message"].get<std::string>();
    } catch (const std::exception&) {
    }
    return msg;
  }

  json call(const std::string& path, const json& body, const char* what) {
    auto caller = acquire();
    const std::string url = join_url(o_.base_url, path);
    const auto reply = caller->post_json(url, body.dump());
    release(std::move(caller));
    if (!reply.error.empty()) throw Error(fmt::format("{} ({}): {}", url, what, reply.error));
    if (!reply.ok()) {
      const std::string msg = error_message(reply.body);
      if (reply.status == 404)
        throw Error(fmt::format("{} answered 404: the server has no {} endpoint, which {} needs", url, path, what));
      throw Error(fmt::format("{} ({}) answered HTTP {}: {}", url, what, reply.status, msg));
    }
    try {
      return json::parse(reply.body);
    } catch (const std::exception&) {
      throw Error(fmt::format("{} ({}) replied with invalid JSON: {}", url, what, reply.body.substr(0, 200)));
    }
  }

  std::unique_ptr<client::HttpCaller> acquire() {
    {
      std::lock_guard lock(pool_mu_);
      if (!idle_.empty()) {
        auto c = std::move(idle_.back());
        idle_.pop_back();
        return c;
      }
    }
    return std::make_unique<client::HttpCaller>(o_.api_key, o_.timeout_s);
  }
  void release(std::unique_ptr<client::HttpCaller> c) {
    std::lock_guard lock(pool_mu_);
    idle_.push_back(std::move(c));
  }

  ServerScorerOptions o_;
  std::mutex pool_mu_;
  std::vector<std::unique_ptr<client::HttpCaller>> idle_;
  std::mutex ctx_mu_;
  int ctx_len_ = 0;
};

}  // namespace

std::unique_ptr<Scorer> make_server_scorer(const ServerScorerOptions& options) {
  if (options.base_url.empty()) throw UsageError("--base-url is required");
  return std::make_unique<ServerScorer>(options);
}

}  // namespace qmeter::quality
