#pragma once
// Where quality tasks get their log-probabilities and generations from. Two implementations share
// every task: an OpenAI-compatible server (any of vLLM, SGLang, TGI, llama.cpp, `qmeter serve`,
// through /v1/completions with echo + logprobs) and the embedded engine in-process (which also
// gives whole next-token distributions, so fidelity can be the full-vocabulary KL).
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace qmeter::engine {
struct Model;
}

namespace qmeter::quality {

// One prompt token as scored by the model: its log-probability given every token before it
// (NaN for the first token, which nothing predicts) and, when asked, the top alternatives.
struct ScoredToken {
  std::string text;  // the token's bytes as the server reports them
  double logprob = 0;
  std::vector<std::pair<std::string, double>> top;  // (token text, logprob), best first
};

// What a scorer can serve. A server is asked once, with a few cheap requests, before any task
// runs (probe_capabilities); the engine in-process serves everything.
struct Capability {
  bool supported = true;
  std::string reason;  // why not, in words (the server's answer), when unsupported
};
struct Capabilities {
  Capability prompt_logprobs;  // /v1/completions with echo + logprobs: log-probabilities of prompt tokens
  Capability top_logprobs;     // the top-N alternatives of each prompt token
  Capability tokenize;         // /tokenize: token ids of a text
  Capability chat;             // /v1/chat/completions
  // The server's own chat template (GET /props: llama.cpp's llama-server and `qmeter serve`), which
  // --apply-chat-template uses on log-likelihood tasks when no local template is given.
  Capability chat_template;
  std::string chat_template_text, chat_bos_token, chat_eos_token;
  std::string json() const;    // {"prompt_logprobs": {"supported": b, "reason": s}, ...}
};

struct ChatMessage {
  std::string role;  // system | user | assistant
  std::string content;
};

struct GenerateRequest {
  std::string prompt;
  // When set, sent to /v1/chat/completions instead (the server renders its chat template).
  std::vector<ChatMessage> messages;
  std::vector<int> prompt_tokens;  // when set, sent instead of `prompt` (already fitted to the context)
  int max_tokens = 256;
  std::vector<std::string> stop;
};

class Scorer {
 public:
  virtual ~Scorer() = default;
  // Scores every token of `text` as the model tokenizes it (with BOS where the model adds one).
  virtual std::vector<ScoredToken> score_text(const std::string& text, int top_n) = 0;
  // Scores explicit token ids (window perplexity). Throws a clear Error where unsupported.
  virtual std::vector<ScoredToken> score_tokens(const std::vector<int>& tokens, int top_n) = 0;
  virtual std::vector<int> tokenize(const std::string& text, bool add_bos) = 0;
  virtual int context_length() = 0;
  // Greedy continuation (temperature 0), cut at the first stop string.
  virtual std::string generate(const GenerateRequest& request) = 0;
  // Full next-token log-distributions after each prefix of `tokens` (rows = tokens.size() - 1,
  // row i predicts tokens[i + 1]); empty where only top-N is available (servers).
  virtual std::vector<std::vector<float>> log_distributions(const std::vector<int>& tokens) { return {}; }
  virtual bool has_full_distributions() const { return false; }
  // Finds what the scorer can serve (servers: one echo request, one /tokenize, one chat request).
  // Throws only where the server cannot be reached at all.
  virtual Capabilities probe_capabilities() { return {}; }
  // How many calls may run at once on this scorer (a server: many; the engine: one).
  virtual int max_concurrency() const = 0;
  virtual std::string describe() const = 0;
};

struct ServerScorerOptions {
  std::string base_url;  // http://host:port (with or without /v1)
  std::string model;     // the "model" field of each request
  std::string api_key;
  double timeout_s = 300;
};
// Each calling thread gets its own keep-alive connection.
std::unique_ptr<Scorer> make_server_scorer(const ServerScorerOptions& options);
// The engine in-process over a loaded (possibly quantized) model; the model must outlive it.
std::unique_ptr<Scorer> make_engine_scorer(std::shared_ptr<const engine::Model> model, int threads);

}  // namespace qmeter::quality
