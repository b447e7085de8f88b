#pragma once
// Turns the SSE events of one OpenAI-compatible streaming response into a RequestRecord: token
// chunks with their times, the first-token time, usage, text and in-stream errors.
//
// Response shapes understood (vLLM, SGLang, TGI, llama.cpp server, OpenAI):
//   completions       choices[0].text
//   chat completions  choices[0].delta.content, delta.reasoning_content / delta.reasoning
//   usage             `usage` on any chunk (also a final chunk with empty `choices`)
//   errors            {"error": {...}} or {"error": "..."} or {"object": "error", ...}, or `event: error`
//   end               data: [DONE]
//
// Token counting per chunk (the timing of ITL/TPOT depends on it):
//   * continuous usage (vLLM's stream_options.continuous_usage_stats): when the first chunk that has
//     `choices` also carries `usage`, each chunk's tokens = the increase of usage.completion_tokens;
//     this is exact for chunks of several tokens.
//   * otherwise: the number of logprobs entries when the chunk has them, else 1 for a chunk with
//     non-empty text/content/reasoning, else 0.
// A chunk with 0 tokens (role-only first chunk, empty content) is not a token chunk and never sets
// the first-token time.
#include <cstdint>
#include <string_view>

#include "qmeter/client/request_record.h"

namespace qmeter::client {

namespace detail {
struct ScannedChunk;
}

class StreamDecoder {
 public:
  enum class Step { kContinue, kDone, kFailed };

  // `keep_text`: append generated text to record.generated_text (off for throughput benchmarks).
  explicit StreamDecoder(RequestRecord& record, bool keep_text = true) : rec_(record), keep_text_(keep_text) {}

  // One SSE event that arrived at `t_ns`. kFailed sets record.error / error_message.
  Step on_event(std::string_view event_type, std::string_view data, Nanos t_ns);
  // A non-streaming JSON reply (the server ignored "stream": true): all tokens arrive at `t_ns`.
  Step on_json_body(std::string_view body, Nanos t_ns);

  bool saw_done() const { return saw_done_; }
  bool saw_finish_reason() const { return saw_finish_reason_; }
  bool continuous_usage() const { return mode_ == UsageMode::kContinuous; }
  // Off: always use the general JSON parser (tests check both paths give the same records).
  void set_fast_path(bool on) { fast_path_ = on; }

 private:
  enum class UsageMode { kUndecided, kContinuous, kCounting };
  Step fail(ErrorKind kind, std::string message);
  Step count_tokens(int usage_completion, bool has_text, int logprobs, Nanos t_ns);
  Step apply_scanned(const detail::ScannedChunk& chunk, Nanos t_ns);

  RequestRecord& rec_;
  bool keep_text_;
  UsageMode mode_ = UsageMode::kUndecided;
  int last_cumulative_tokens_ = 0;
  bool saw_done_ = false;
  bool saw_finish_reason_ = false;
  bool fast_path_ = true;
};

}  // namespace qmeter::client
