#include "qmeter/client/stream_decoder.h"

#include <nlohmann/json.hpp>

#include "chunk_scan.h"

namespace qmeter::client {

namespace {

using nlohmann::json;

std::string excerpt(std::string_view s, std::size_t max = 200) {
  std::string out(s.substr(0, max));
  if (s.size() > max) out += "...";
  return out;
}

// The message of an error object in any of the shapes servers use, or "" if `j` is not one.
std::string error_message_of(const json& j) {
  if (auto it = j.find("error"); it != j.end() && !it->is_null()) {
    if (it->is_string()) return it->get<std::string>();  // TGI: {"error": "...", "error_type": "..."}
    if (it->is_object()) {                               // OpenAI / vLLM: {"error": {"message": ...}}
      if (auto m = it->find("message"); m != it->end() && m->is_string()) return m->get<std::string>();
      return it->dump();
    }
    return it->dump();
  }
  if (auto o = j.find("object"); o != j.end() && o->is_string() && *o == "error") {  // older vLLM
    if (auto m = j.find("message"); m != j.end() && m->is_string()) return m->get<std::string>();
    return j.dump();
  }
  return {};
}

int int_field(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_number()) return -1;
  return it->get<int>();
}

const std::string* string_field(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_string()) return nullptr;
  return it->get_ptr<const std::string*>();
}

int logprob_entries(const json& choice) {
  auto lp = choice.find("logprobs");
  if (lp == choice.end() || !lp->is_object()) return 0;
  for (const char* key : {"content", "tokens"}) {  // chat: content[], completions: tokens[]
    if (auto a = lp->find(key); a != lp->end() && a->is_array()) return static_cast<int>(a->size());
  }
  return 0;
}

}  // namespace

StreamDecoder::Step StreamDecoder::fail(ErrorKind kind, std::string message) {
  rec_.error = kind;
  rec_.error_message = std::move(message);
  return Step::kFailed;
}

StreamDecoder::Step StreamDecoder::on_event(std::string_view event_type, std::string_view data, Nanos t_ns) {
  if (saw_done_) return Step::kDone;
  if (data == "[DONE]") {
    saw_done_ = true;
    return Step::kDone;
  }
  if (event_type == "error") return fail(ErrorKind::kServerError, "error event in stream: " + excerpt(data));
  if (data.find_first_not_of(" \t\r\n") == std::string_view::npos) return Step::kContinue;

  if (fast_path_) {
    detail::ScannedChunk sc;
    if (detail::scan_chunk(data, sc)) return apply_scanned(sc, t_ns);
  }
  const json j = json::parse(data, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return fail(ErrorKind::kMalformedResponse, "stream chunk is not a JSON object: " + excerpt(data));
  if (std::string msg = error_message_of(j); !msg.empty())
    return fail(ErrorKind::kServerError, "error in stream: " + excerpt(msg, 500));

  if (rec_.response_id.empty()) {
    if (const std::string* id = string_field(j, "id")) rec_.response_id = *id;
  }
  int usage_completion = -1;
  if (auto u = j.find("usage"); u != j.end() && u->is_object()) {
    usage_completion = int_field(*u, "completion_tokens");
    if (const int p = int_field(*u, "prompt_tokens"); p >= 0) rec_.server_prompt_tokens = p;
    if (usage_completion >= 0) rec_.server_completion_tokens = usage_completion;
  }

  const auto choices = j.find("choices");
  const bool has_choices = choices != j.end() && choices->is_array() && !choices->empty();
  if (!has_choices) {
    if (choices == j.end() && j.find("usage") == j.end())
      return fail(ErrorKind::kMalformedResponse, "stream chunk has neither choices, usage nor error: " + excerpt(data));
    return Step::kContinue;  // usage-only chunk (empty choices): server counts, no tokens
  }

  const json& choice = (*choices)[0];
  if (!choice.is_object()) return fail(ErrorKind::kMalformedResponse, "choices[0] is not an object: " + excerpt(data));
  if (auto fr = choice.find("finish_reason"); fr != choice.end() && !fr->is_null()) saw_finish_reason_ = true;

  // Generated text: completions put it in `text`, chat in `delta.content`; reasoning models stream
  // their reasoning in delta.reasoning_content (vLLM, SGLang) or delta.reasoning (newer vLLM).
  const std::string* content = string_field(choice, "text");
  bool has_reasoning = false;
  if (auto d = choice.find("delta"); d != choice.end() && d->is_object()) {
    if (!content) content = string_field(*d, "content");
    for (const char* key : {"reasoning_content", "reasoning"}) {
      if (const std::string* r = string_field(*d, key); r && !r->empty()) has_reasoning = true;
    }
  } else if (auto m = choice.find("message"); !content && m != choice.end() && m->is_object()) {
    content = string_field(*m, "content");
  }
  const bool has_text = (content && !content->empty()) || has_reasoning;

  if (keep_text_ && content) rec_.generated_text += *content;
  return count_tokens(usage_completion, has_text, logprob_entries(choice), t_ns);
}

StreamDecoder::Step StreamDecoder::count_tokens(int usage_completion, bool has_text, int logprobs, Nanos t_ns) {
  if (mode_ == UsageMode::kUndecided) mode_ = usage_completion >= 0 ? UsageMode::kContinuous : UsageMode::kCounting;
  int tokens = 0;
  if (mode_ == UsageMode::kContinuous && usage_completion >= 0) {
    tokens = std::max(0, usage_completion - last_cumulative_tokens_);
    last_cumulative_tokens_ = std::max(last_cumulative_tokens_, usage_completion);
  } else if (logprobs > 0) {
    tokens = logprobs;
  } else {
    tokens = has_text ? 1 : 0;
  }
  if (tokens > 0) {
    if (rec_.first_token_ns == 0) rec_.first_token_ns = t_ns;
    rec_.chunks.push_back({t_ns, tokens});
    rec_.client_tokens += tokens;
  }
  return Step::kContinue;
}

// The hot path: the same decisions as the general path below, from the allocation-free scan.
StreamDecoder::Step StreamDecoder::apply_scanned(const detail::ScannedChunk& sc, Nanos t_ns) {
  if (rec_.response_id.empty() && !sc.id.empty()) rec_.response_id = sc.id;
  int usage_completion = -1;
  if (sc.has_usage) {
    usage_completion = sc.completion_tokens;
    if (sc.prompt_tokens >= 0) rec_.server_prompt_tokens = sc.prompt_tokens;
    if (usage_completion >= 0) rec_.server_completion_tokens = usage_completion;
  }
  if (!sc.choices_nonempty) return Step::kContinue;
  if (sc.finish_reason) saw_finish_reason_ = true;
  const bool has_text = (sc.has_content && !sc.content_raw.empty()) || sc.has_reasoning;
  if (keep_text_ && sc.has_content) {
    if (!sc.content_escaped) {
      rec_.generated_text.append(sc.content_raw);
    } else if (!detail::append_unescaped(sc.content_raw, rec_.generated_text)) {
      return fail(ErrorKind::kMalformedResponse, "bad string escape in stream chunk");
    }
  }
  return count_tokens(usage_completion, has_text, sc.logprob_entries, t_ns);
}

StreamDecoder::Step StreamDecoder::on_json_body(std::string_view body, Nanos t_ns) {
  const json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return fail(ErrorKind::kMalformedResponse, "response is neither SSE nor a JSON object: " + excerpt(body));
  if (std::string msg = error_message_of(j); !msg.empty()) return fail(ErrorKind::kServerError, excerpt(msg, 500));
  int completion = -1;
  if (auto u = j.find("usage"); u != j.end() && u->is_object()) {
    completion = int_field(*u, "completion_tokens");
    if (const int p = int_field(*u, "prompt_tokens"); p >= 0) rec_.server_prompt_tokens = p;
    if (completion >= 0) rec_.server_completion_tokens = completion;
  }
  const std::string* content = nullptr;
  if (auto c = j.find("choices"); c != j.end() && c->is_array() && !c->empty() && (*c)[0].is_object()) {
    const json& choice = (*c)[0];
    content = string_field(choice, "text");
    if (auto m = choice.find("message"); !content && m != choice.end() && m->is_object())
      content = string_field(*m, "content");
    saw_finish_reason_ = true;
  } else {
    return fail(ErrorKind::kMalformedResponse, "JSON response has no choices: " + excerpt(body));
  }
  const int tokens = completion >= 0 ? completion : (content && !content->empty() ? 1 : 0);
  if (keep_text_ && content) rec_.generated_text += *content;
  if (tokens > 0) {
    rec_.first_token_ns = t_ns;
    rec_.chunks.push_back({t_ns, tokens});
    rec_.client_tokens += tokens;
  }
  saw_done_ = true;
  return Step::kDone;
}

}  // namespace qmeter::client
