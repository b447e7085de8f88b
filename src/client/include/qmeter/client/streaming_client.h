#pragma once
// OpenAI-compatible streaming client: libcurl's multi interface driven by ONE event loop (epoll +
// curl_multi_socket_action) on the calling thread. The loop itself sends every request at its
// scheduled steady-clock time (nanosecond epoll timeout, then a short spin), so the send lag is
// microseconds; connections are kept alive and reused; HTTPS through curl's TLS.
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "qmeter/client/request_record.h"

namespace qmeter::client {

struct ChatTurn {
  std::string role;
  std::string content;
};

// One request to send.
struct StreamRequest {
  std::int64_t index = 0;
  Nanos scheduled_ns = 0;          // absolute steady-clock time at which to send it
  bool warmup = false;             // copied into the record
  std::string prompt;              // /v1/completions
  std::vector<ChatTurn> messages;  // /v1/chat/completions (empty: one user turn of `prompt`)
  int max_tokens = 0;
  int expected_prompt_tokens = -1;
  // Multi-turn sessions: a request with `follows` >= 0 (a position in the run's request vector)
  // is the next turn of that request's conversation. It is sent think_ns after that reply ends
  // (its scheduled_ns is ignored), after the history: the earlier turns' messages with their
  // real replies (chat), or the previous prompt + reply + "\n\n" + this prompt (completions).
  // If that request fails, this one is not sent (kCancelled, and so are the turns after it).
  std::int64_t follows = -1;
  Nanos think_ns = 0;
  std::int64_t session = -1;  // copied into the record
  int turn = 0;
};

struct ClientOptions {
  std::string base_url;                       // http(s)://host:port[/v1]
  std::string endpoint = "/v1/completions";   // or /v1/chat/completions (any path containing "chat" is chat)
  std::string model;
  std::string api_key;                        // sent as "Authorization: Bearer KEY" when non-empty
  std::vector<std::string> headers;           // extra "Name: value" headers
  double timeout_s = 600;                     // per request: the whole response must arrive within it
  double connect_timeout_s = 10;              // capped by timeout_s
  bool include_usage = true;                  // stream_options.include_usage
  // stream_options.continuous_usage_stats (vLLM, SGLang): usage on every chunk, so multi-token
  // chunks are counted exactly. Plain OpenAI rejects unknown fields: turn it off there.
  bool continuous_usage = true;
  double temperature = 0.0;                   // < 0: not sent
  std::string extra_body_json;                // a JSON object merged into every request body
  bool keep_text = true;                      // keep generated text in the records
  bool verify_tls = true;
};

struct RunControl {
  // Closed loop: at most this many requests in flight; a due request waits for a free slot, and
  // its record's scheduled_ns is then the release time (planned_ns keeps the schedule's time).
  int max_concurrency = 0;
  // Open connections at most (and so requests in flight at most). A due request beyond it waits
  // in the client, its latency still counted from its scheduled time (connection_wait_ns says
  // how long it waited), so the client never exhausts ephemeral ports or the server's accept
  // queue by its own doing, and past saturation it holds its capacity instead of collapsing.
  int max_connections = kDefaultMaxConnections;
  static constexpr int kDefaultMaxConnections = 1024;
  // Test hook: the event loop busy-waits this long on every turn, to starve the client on
  // purpose (a load point then reads client-bound). 0 in real use.
  Nanos debug_loop_stall_ns = 0;
  // Called on the event-loop thread as each request ends (completed or failed). Keep it cheap.
  std::function<void(const RequestRecord&)> on_complete;
  // Set from another thread (or a signal handler) to stop: unfinished requests end as kCancelled.
  const std::atomic<bool>* cancel = nullptr;
  // The loop sleeps until this long before a due send, then spins, for sub-10-us send accuracy.
  Nanos spin_ns = 30'000;
};

class StreamingClient {
 public:
  explicit StreamingClient(ClientOptions options);
  ~StreamingClient();
  StreamingClient(const StreamingClient&) = delete;
  StreamingClient& operator=(const StreamingClient&) = delete;

  const ClientOptions& options() const;
  // The full URL requests go to.
  std::string request_url() const;

  // One blocking probe (GET /v1/models, then /health): throws qmeter::Error with one clear
  // message when the server cannot be reached or rejects the API key.
  void check_reachable(double timeout_s = 5.0) const;

  // Sends every request at its scheduled time and waits until each has completed or failed (the
  // per-request timeout bounds a stalled server). Records are returned in the order of `requests`.
  std::vector<RequestRecord> run(const std::vector<StreamRequest>& requests, const RunControl& control = {});

  // The JSON body sent for a request (for logs and tests).
  std::string request_body(const StreamRequest& request) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qmeter::client
