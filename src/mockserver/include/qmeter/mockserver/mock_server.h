#pragma once
// `qmeter mock-server`: an OpenAI-compatible server with exact ground truth, for testing clients
// and load generators. Nothing is generated: each output token is the word " tok<i>" (i = 0, 1,
// ...), chunks are sent on a seeded schedule (TTFT, then inter-chunk gaps from a distribution),
// chosen requests get a fault, and every chunk's send time is logged per request.
//
// Endpoints: POST /v1/completions, POST /v1/chat/completions (stream true/false, shapes as vLLM
// and OpenAI serve them), GET /v1/models, GET /health.
//
// Limited capacity (--max-concurrent-streams N, 0 = unlimited): at most N replies are generated at
// once, so a load generator can drive the mock past saturation with an exactly known knee.
//  - What takes a slot: every generation reply that is played out on a schedule, streaming or not
//    (POST /v1/completions and /v1/chat/completions answered 200). Replies answered at once take
//    none: 400 (bad request), the http500 / http429 faults, /v1/models, /health, 404 / 405.
//  - A request that arrives while N replies are being generated waits in a FIFO queue (ordered by
//    arrival time). Stream headers still go out on arrival; its generation (TTFT, then the chunk
//    gaps) starts only when it gets a slot, so its wait is part of the TTFT a client measures.
//  - A slot is held until the reply ends: its last event (the [DONE] chunk, or a whole
//    non-streamed body) was sent, a drop fault cut it, or the client went away. A stall fault
//    holds its slot until the connection closes (like a hung generation). A client that leaves
//    while queued never takes a slot.
//  - A slot freed by a reply that ran to its end is handed on at the time that reply's last event
//    was due (not when the io thread got to it), and the next reply's schedule is anchored there,
//    so wake-up lateness does not accumulate: with constant gaps the server's capacity is exactly
//        capacity = 1000 * N / (ttft_ms + (chunks - 1) * itl_ms)  requests per second,
//        chunks   = ceil(out_tokens / tokens_per_chunk)
//    (each reply holds its slot for ttft_ms + (chunks - 1) * itl_ms; with sampled gaps, use their
//    mean). E.g. N = 4, ttft 50 ms, itl 10 ms, 21 tokens one per chunk: 4000 / 250 = 16 req/s.
//    Offered more than that, the queue (and so every TTFT) grows without bound.
//  - The request log records per request "started_ns" (steady-clock time its generation began,
//    0 when it never did) and "queue_wait_ns" (started_ns - arrival_ns; for a request that left
//    while queued, end_ns - arrival_ns; 0 without a limit or with a free slot).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "qmeter/net/http_server.h"

namespace qmeter::mockserver {

// What goes wrong with a request chosen for a fault (see docs in mock_server.cpp's header comment
// and README): exactly one kind per faulty request.
enum class FaultKind {
  kNone,
  kHttp500,         // reply 500 at once with an OpenAI-style error object
  kHttp429,         // reply 429 at once (Retry-After: 1)
  kDrop,            // the TCP connection is closed mid-stream (after half the token chunks)
  kStall,           // sends half the token chunks, then nothing: the connection stays open
  kMalformed,       // one SSE event whose data is not JSON, before the middle token chunk
  kRoleOnlyFirst,   // chat: a first chunk with only the role; completions: an empty-text chunk
  kEmptyChunks,     // an empty-content chunk before every token chunk (half-way in time)
  kUsageMismatch,   // the final usage reports one completion token more than was streamed
};
inline constexpr FaultKind kAllFaultKinds[] = {FaultKind::kHttp500,       FaultKind::kHttp429,     FaultKind::kDrop,
                                               FaultKind::kStall,         FaultKind::kMalformed,   FaultKind::kRoleOnlyFirst,
                                               FaultKind::kEmptyChunks,   FaultKind::kUsageMismatch};
// "none", "http500", "http429", "drop", "stall", "malformed", "role_only_first", "empty_chunks",
// "usage_mismatch": the names used by --fault and the request log.
std::string_view fault_name(FaultKind kind);

struct FaultSpec {
  FaultKind kind = FaultKind::kNone;
  double fraction = 0;  // of requests, in [0, 1]
};
// Parses "KIND:FRACTION" (e.g. "drop:0.1"); throws qmeter::UsageError naming --fault.
FaultSpec parse_fault_spec(std::string_view text);

enum class ItlDistribution { kConstant, kExponential, kLognormal };
std::string_view itl_distribution_name(ItlDistribution d);
// "constant" | "exponential" | "lognormal"; throws qmeter::UsageError naming --itl-dist.
ItlDistribution parse_itl_distribution(std::string_view text);

struct MockServerConfig {
  std::string host = "127.0.0.1";
  int port = 0;  // 0: pick a free port (MockServer::port() tells which)
  int io_threads = 2;
  net::ConnectionLimits connection_limits;
  double ttft_ms = 0;  // request arrival -> first token chunk
  double itl_ms = 0;   // mean gap between consecutive token chunks
  ItlDistribution itl_dist = ItlDistribution::kConstant;
  double itl_lognormal_sigma = 0.5;  // shape of the lognormal gaps (their mean stays itl_ms)
  // Tokens a reply would have before "EOS": min(output_len, max_tokens), or max_tokens when the
  // request sets ignore_eos. Unset: max_tokens (16 when the request gives none).
  std::optional<int> output_len;
  int tokens_per_chunk = 1;
  std::vector<FaultSpec> faults;  // disjoint: their fractions add up to at most 1
  std::string request_log_path;   // "" = no log
  std::uint64_t seed = 0;
  std::string model_name = "qmeter-mock";  // listed by /v1/models; any requested name is accepted
  // At most this many generation replies at once; later ones wait in FIFO order (see the header
  // comment above for what takes a slot and the resulting capacity). 0 = unlimited.
  int max_concurrent_streams = 0;
  // A server without prompt log-probabilities (llama.cpp's llama-server answers 500 "Unsupported
  // param: echo"): a completions request with "echo": true gets this status at once, with an
  // OpenAI-style error. 0 = echo is accepted (and ignored: the mock has no log-probabilities).
  int no_echo_status = 0;

  // Throws qmeter::UsageError naming the flag of the first bad value.
  void validate() const;
};

class MockServer {
 public:
  explicit MockServer(MockServerConfig config);
  ~MockServer();  // stop()
  MockServer(const MockServer&) = delete;
  MockServer& operator=(const MockServer&) = delete;

  // Opens the request log (UsageError if it cannot be created), binds and starts serving.
  void start();
  int port() const;
  std::string base_url() const;  // "http://HOST:PORT"
  // Closes every connection (streams in progress are cut, stalls end), then writes the log
  // records of unfinished requests and flushes the log. Idempotent.
  void stop();

  std::uint64_t requests_received() const;  // generation requests (completions + chat) so far
  // With --max-concurrent-streams: replies holding a slot now, and requests waiting for one.
  int streams_generating() const;
  std::size_t streams_queued() const;

  struct Impl;  // opaque; public only so the implementation's helpers can name it

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace qmeter::mockserver
