#pragma once
// The mock server's ground truth for one request, computed before anything is sent: which fault it
// gets, how many tokens, and what is sent when (offsets from the request's arrival). A pure
// function of (config, arrival index, request fields), so tests and tools can recompute it.
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "qmeter/core/clock.h"
#include "qmeter/mockserver/mock_server.h"

namespace qmeter::mockserver {

enum class EventKind {
  kRole,       // chat delta with only the role (completions: text "")   [role_only_first]
  kEmpty,      // a chunk with empty content                              [empty_chunks]
  kMalformed,  // an SSE data line that is not JSON                       [malformed]
  kTokens,     // `tokens` generated tokens starting at token `first_token`
  kUsage,      // the usage-only final chunk (stream_options.include_usage)
  kDone,       // data: [DONE], then the end of the chunked body
  kDrop,       // the connection is closed here                          [drop]
  kStall,      // nothing more is ever sent                               [stall]
};
std::string_view event_kind_name(EventKind kind);

struct PlannedEvent {
  Nanos offset_ns = 0;  // after the request's arrival
  EventKind kind = EventKind::kTokens;
  int first_token = 0;
  int tokens = 0;
};

struct PlanRequest {
  bool chat = false;
  bool stream = false;
  std::optional<int> max_tokens;  // as requested (>= 1)
  bool ignore_eos = false;
};

struct ResponsePlan {
  std::uint64_t index = 0;  // arrival order, from 0
  FaultKind fault = FaultKind::kNone;
  int completion_tokens = 0;           // tokens the reply carries (all of them when not cut)
  int reported_completion_tokens = 0;  // what the final usage says (+1 under usage_mismatch)
  bool hit_max_tokens = false;         // finish_reason "length" rather than "stop"
  std::vector<Nanos> token_chunk_offsets_ns;  // when each token chunk is due (all of them)
  std::vector<int> token_chunk_sizes;
  // Streaming replies: everything sent, in order (offsets never decrease). Non-streaming replies
  // use only the last entry: kTokens (the whole body), kMalformed, kDrop or kStall.
  std::vector<PlannedEvent> events;
};

// Which fault request number `index` gets: one uniform draw of the request's own seeded generator
// against the fractions in config order.
FaultKind choose_fault(const MockServerConfig& config, std::uint64_t index);

// The whole plan. `include_usage` adds the usage-only chunk at the end of a stream.
ResponsePlan plan_response(const MockServerConfig& config, std::uint64_t index, const PlanRequest& request,
                           bool include_usage);

// Token i of every reply is the word " tok<i>": the text of tokens [first, first + count).
std::string token_text(int first, int count);

}  // namespace qmeter::mockserver
