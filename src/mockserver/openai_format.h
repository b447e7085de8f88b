#pragma once
// Request parsing and response bodies of the OpenAI-compatible API, in the shapes vLLM serves:
// completions chunks carry choices[0].text, chat chunks choices[0].delta.content, a usage-only
// chunk has "choices": [], and a stream ends with `data: [DONE]`.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "qmeter/mockserver/response_plan.h"

namespace qmeter::mockserver {

// Whitespace-separated words: the mock's token count of a prompt (one word = one token).
int count_words(std::string_view text);

struct GenerationRequest {
  PlanRequest plan;
  std::string model;  // as requested (any name is accepted)
  int prompt_tokens = 0;
  bool include_usage = false;     // stream_options.include_usage
  bool continuous_usage = false;  // stream_options.continuous_usage_stats
  bool echo = false;              // completions: "echo" (the mock never echoes; see --no-echo)
};

// Parses a /v1/completions (chat = false) or /v1/chat/completions body. Returns "" on success,
// else the message of a 400 reply naming the field at fault.
std::string parse_generation_request(std::string_view body, bool chat, const std::string& default_model,
                                     GenerationRequest& out);

// GET /v1/models: the one served model.
std::string models_body(const std::string& model, std::int64_t created);

std::string openai_error_body(int status, std::string_view message, std::string_view type);

// Builds the JSON of every chunk of one reply.
class ReplyFormatter {
 public:
  ReplyFormatter(bool chat, std::string id, const std::string& model, std::int64_t created, int prompt_tokens);

  // `usage_tokens` >= 0 appends a cumulative usage object (continuous_usage_stats).
  std::string token_chunk(std::string_view text, bool with_role, std::string_view finish_reason, int usage_tokens) const;
  std::string role_chunk(int usage_tokens) const;   // chat: delta {role}; completions: text ""
  std::string empty_chunk(int usage_tokens) const;  // delta {content: ""} / text ""
  std::string usage_chunk(int completion_tokens) const;
  std::string malformed_chunk() const;  // a JSON object cut off mid-way
  std::string full_body(std::string_view text, std::string_view finish_reason, int completion_tokens) const;

  const std::string& id() const { return id_; }

 private:
  const std::string& head(bool chunk) const;
  std::string usage_json(int completion_tokens) const;
  bool chat_;
  std::string id_;
  std::int64_t created_;
  std::string chunk_head_;  // {"id":...,"object":...,"created":...,"model":...,
  std::string body_head_;
  int prompt_tokens_;
};

// One SSE event: "data: <payload>\n\n".
inline std::string sse_event(std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + 8);
  out += "data: ";
  out += payload;
  out += "\n\n";
  return out;
}

}  // namespace qmeter::mockserver
