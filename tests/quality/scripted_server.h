#pragma once
// A scripted OpenAI-compatible server on loopback for quality tests: log-probabilities and replies
// are chosen by the test, so the right scores are known by construction.
//
// It tokenizes one character per token. For a prompt it knows, the characters of the scripted
// continuation carry the scripted log-likelihood between them (dyadic shares, so sums are exact)
// and every context character gets -1, so a client that counted one context token too many, or
// one too few, would be off. With "logprobs" >= 1 each token lists one top alternative: itself
// (context tokens, and continuations of prompts in `greedy`) or a more likely "#".
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "qmeter/net/http_server.h"

namespace qmeter::quality::testing {

using nlohmann::json;

struct Script {
  std::map<std::string, std::pair<std::size_t, double>> loglik;  // full prompt -> (continuation bytes, total)
  std::map<std::string, std::string> replies;                    // question -> generated text
  std::mutex mu;
  int echo_requests = 0;
  bool without_logprobs = false;  // answer echo requests like a chat-only server: no logprobs
  std::vector<json> generate_bodies;
  std::set<std::string> greedy;        // prompts whose continuation tokens are each the top-1
  std::vector<std::string> echo_prompts;  // every echo request's prompt, in arrival order
  std::vector<json> chat_bodies;          // /v1/chat/completions requests
  std::string chat_reply = "#### 5";
};

class ScriptedServer {
 public:
  explicit ScriptedServer(Script& s) : script_(s) {
    server_ = std::make_unique<net::HttpServer>(net::HttpServerOptions{}, [this](const net::HttpRequest& r, const net::ResponseWriterPtr& w) {
      handle(r, w);
    });
    server_->start();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(server_->port()); }

 private:
  void handle(const net::HttpRequest& r, const net::ResponseWriterPtr& w) {
    net::HttpResponse resp;
    if (r.path == "/v1/chat/completions") {
      std::lock_guard lock(script_.mu);
      script_.chat_bodies.push_back(json::parse(r.body));
      resp.body = json{{"choices", {{{"message", {{"role", "assistant"}, {"content", script_.chat_reply}}}}}}}.dump();
      w->respond(resp);
      return;
    }
    if (r.path != "/v1/completions") {
      resp.status = 404;
      resp.body = R"({"error":{"message":"not found"}})";
      w->respond(resp);
      return;
    }
    const json body = json::parse(r.body);
    const std::string prompt = body.at("prompt").get<std::string>();
    std::lock_guard lock(script_.mu);
    if (body.value("echo", false) && script_.without_logprobs) {
      resp.body = json{{"choices", {{{"text", prompt}}}}}.dump();
    } else if (body.value("echo", false)) {
      ++script_.echo_requests;
      script_.echo_prompts.push_back(prompt);
      auto it = script_.loglik.find(prompt);
      if (it == script_.loglik.end()) {
        resp.status = 400;
        resp.body = json{{"error", {{"message", "unscripted prompt: " + prompt}}}}.dump();
        w->respond(resp);
        return;
      }
      const auto [cont, total] = it->second;
      json tokens = json::array(), lps = json::array(), tops = json::array();
      for (std::size_t i = 0; i < prompt.size(); ++i) {
        tokens.push_back(std::string(1, prompt[i]));
        if (i == 0) lps.push_back(nullptr);
        else if (i < prompt.size() - cont) lps.push_back(-1.0);
        // Dyadic shares, so every sum is exact and scripted ties stay ties.
        else if (i == prompt.size() - cont) lps.push_back(total + 0.25 * static_cast<double>(cont - 1));
        else lps.push_back(-0.25);
        // Top-1 alternative: the token itself where the prompt is scripted greedy, else a better one.
        const bool top_is_self = script_.greedy.count(prompt) > 0 || i < prompt.size() - cont;
        if (i == 0 || body.value("logprobs", 0) < 1) tops.push_back(json::object());
        else if (top_is_self) tops.push_back(json{{tokens.back().get<std::string>(), lps.back()}});
        else tops.push_back(json{{"#", 0.0}});
      }
      tokens.push_back("!");  // the one generated token max_tokens 1 asks for
      lps.push_back(-0.5);
      tops.push_back(json::object());
      resp.body = json{{"choices", {{{"text", prompt + "!"}, {"logprobs", {{"tokens", tokens}, {"token_logprobs", lps}, {"top_logprobs", tops}}}}}},
                       {"usage", {{"prompt_tokens", prompt.size()}, {"completion_tokens", 1}}}}
                      .dump();
    } else {
      script_.generate_bodies.push_back(body);
      const auto q = prompt.rfind("Question: ");
      const std::string question = prompt.substr(q + 10, prompt.rfind("\nAnswer:") - q - 10);
      auto it = script_.replies.find(question);
      const std::string text = it == script_.replies.end() ? "no idea" : it->second;
      resp.body = json{{"choices", {{{"text", text}}}}}.dump();
    }
    w->respond(resp);
  }

  Script& script_;
  std::unique_ptr<net::HttpServer> server_;
};

// Writes `text` to `path`; returns the path.
inline std::string write_file(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
  return path;
}

}  // namespace qmeter::quality::testing
