#pragma once
// The per-request measurement record: plain data, produced by the streaming client, consumed by
// loadgen metrics, energy attribution, quality-under-load scoring and the results store.
// All times are steady-clock nanoseconds (qmeter/core/clock.h); 0 means "did not happen".
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "qmeter/core/clock.h"

namespace qmeter::client {

// Why a request failed. Stable names (error_kind_name) are used in JSON output and the store.
enum class ErrorKind {
  kNone,
  kHttpStatus,         // non-2xx reply (http_status says which; 429 and 5xx are the usual ones)
  kConnectFailed,      // could not connect / DNS / TLS handshake
  kConnectionDropped,  // connection closed before the stream ended ([DONE] or final chunk)
  kTimeout,            // the per-request timeout expired (a stalled stream)
  kMalformedResponse,  // bytes that are not valid SSE / JSON of a known response shape
  kServerError,        // a JSON error object inside an otherwise OK stream
  kCancelled,          // the run was stopped before the request finished
};
std::string_view error_kind_name(ErrorKind kind);

// One chunk that carried generated tokens: when it arrived and how many tokens it carried.
struct TokenChunk {
  Nanos t_ns = 0;
  int tokens = 0;
};

struct RequestRecord {
  std::int64_t index = -1;     // position in the schedule
  bool warmup = false;         // excluded from metrics
  std::int64_t session = -1;   // multi-turn: the conversation (-1: an independent request)
  int turn = 0;                // multi-turn: the turn index in its conversation
  Nanos scheduled_ns = 0;      // when the schedule said to send it (latency origin)
  // The schedule's own time. Equal to scheduled_ns in open loop; in closed loop (max concurrency)
  // a due request waits for a free slot and scheduled_ns is its release time.
  Nanos planned_ns = 0;
  Nanos dispatched_ns = 0;     // when the client handed it to its connection pool (curl)
  // How long it waited in the client for a free connection (RunControl::max_connections): the
  // part of the send lag that is the connection limit, not the client's own slowness.
  Nanos connection_wait_ns = 0;
  Nanos sent_ns = 0;           // when the client actually handed it to the socket
  Nanos first_token_ns = 0;    // first chunk with >= 1 generated token (role-only/empty chunks are not)
  Nanos end_ns = 0;            // last byte of the response (or the failure)
  std::vector<TokenChunk> chunks;  // every token-carrying chunk, in order

  int expected_prompt_tokens = -1;  // what the workload asked for (-1: unknown)
  int max_tokens = -1;
  int server_prompt_tokens = -1;      // from `usage` (-1: server sent none)
  int server_completion_tokens = -1;  // from `usage`
  int client_tokens = 0;              // tokens counted by the client from the stream

  int http_status = 0;
  ErrorKind error = ErrorKind::kNone;
  std::string error_message;
  std::string generated_text;
  std::string response_id;  // the server's id of the reply (the chunks' "id" field), to match server logs

  bool ok() const { return error == ErrorKind::kNone; }
  // Output tokens as the metrics use them: the server's usage when present, else the client count.
  int output_tokens() const { return server_completion_tokens >= 0 ? server_completion_tokens : client_tokens; }
  bool token_count_mismatch() const {
    return server_completion_tokens >= 0 && server_completion_tokens != client_tokens;
  }
};

}  // namespace qmeter::client
