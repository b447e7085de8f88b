#pragma once
// Allocation-free reader of one streamed chunk's JSON, for the hot path (one call per chunk of
// every open stream). It extracts only the fields the decoder needs and gives up (returns false)
// on anything unusual: an error object, escaped keys, non-integer counts, bad JSON. The decoder
// then takes the general nlohmann/json path, so both paths give identical records.
#include <cstddef>
#include <string>
#include <string_view>

namespace qmeter::client::detail {

struct ScannedChunk {
  std::string_view id;             // raw (only set when it has no escapes)
  bool has_usage = false;          // a `usage` object
  int prompt_tokens = -1, completion_tokens = -1;
  bool has_choices_key = false;    // `choices` present (any type)
  bool choices_nonempty = false;   // a non-empty array whose first element is an object
  bool finish_reason = false;      // choices[0].finish_reason is not null
  bool has_content = false;        // choices[0].text, else delta.content, else message.content is a string
  std::string_view content_raw;    // that string, still JSON-escaped
  bool content_escaped = false;
  bool has_reasoning = false;      // non-empty delta.reasoning_content / delta.reasoning
  int logprob_entries = 0;         // choices[0].logprobs.content[] or .tokens[] length
};

// True when `data` is a well-formed chunk object this reader fully understood.
bool scan_chunk(std::string_view data, ScannedChunk& out);
// Appends the decoded value of a JSON string body (without quotes); false on a bad escape.
bool append_unescaped(std::string_view raw, std::string& out);

}  // namespace qmeter::client::detail
