#include "openai_format.h"

#include <fmt/core.h>

#include <nlohmann/json.hpp>

#include "qmeter/net/request_body.h"

namespace qmeter::mockserver {

using nlohmann::json;

int count_words(std::string_view text) {
  int words = 0;
  bool in_word = false;
  for (char c : text) {
    const bool space = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
    if (!space && !in_word) ++words;
    in_word = !space;
  }
  return words;
}

namespace {

// Optional field of a type; "" when fine, else the 400 message.
std::string read_bool(const json& body, const char* field, bool& out) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return "";
  if (!it->is_boolean()) return fmt::format("'{}' must be a boolean", field);
  out = it->get<bool>();
  return "";
}

std::string read_max_tokens(const json& body, const char* field, std::optional<int>& out) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return "";
  if (!it->is_number_integer() || it->get<std::int64_t>() < 1 || it->get<std::int64_t>() > 100000000) {
    return fmt::format("'{}' must be an integer >= 1 (got {})", field, it->dump());
  }
  out = static_cast<int>(it->get<std::int64_t>());
  return "";
}

std::string count_prompt(const json& prompt, int& tokens) {
  if (prompt.is_string()) {
    tokens = count_words(prompt.get_ref<const std::string&>());
    return "";
  }
  if (!prompt.is_array()) return "'prompt' must be a string, a list of strings or a list of token ids";
  tokens = 0;
  for (const auto& p : prompt) {
    if (p.is_string()) {
      tokens += count_words(p.get_ref<const std::string&>());
    } else if (p.is_number_integer()) {
      tokens += 1;  // a token id
    } else if (p.is_array()) {
      tokens += static_cast<int>(p.size());  // a tokenized prompt
    } else {
      return "'prompt' must be a string, a list of strings or a list of token ids";
    }
  }
  return "";
}

std::string count_messages(const json& messages, int& tokens) {
  if (!messages.is_array() || messages.empty()) return "'messages' must be a non-empty list";
  tokens = 0;
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const json& m = messages[i];
    if (!m.is_object()) return fmt::format("'messages[{}]' must be an object", i);
    auto content = m.find("content");
    if (content == m.end() || content->is_null()) continue;
    if (content->is_string()) {
      tokens += count_words(content->get_ref<const std::string&>());
    } else if (content->is_array()) {
      for (const auto& part : *content) {
        auto text = part.is_object() ? part.find("text") : part.end();
        if (part.is_object() && text != part.end() && text->is_string()) {
          tokens += count_words(text->get_ref<const std::string&>());
        }
      }
    } else {
      return fmt::format("'messages[{}].content' must be a string or a list of parts", i);
    }
  }
  return "";
}

}  // namespace

std::string parse_generation_request(std::string_view body, bool chat, const std::string& default_model,
                                     GenerationRequest& out) {
  if (auto problem = net::json_body_problem(body)) return *problem;
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return "the request body is not valid JSON";
  if (!j.is_object()) return "the request body must be a JSON object";
  out.plan.chat = chat;
  out.model = default_model;
  if (auto m = j.find("model"); m != j.end() && !m->is_null()) {
    if (!m->is_string()) return "'model' must be a string";
    out.model = m->get<std::string>();
  }
  std::string err;
  if (chat) {
    auto messages = j.find("messages");
    if (messages == j.end()) return "'messages' is required";
    if (!(err = count_messages(*messages, out.prompt_tokens)).empty()) return err;
    // max_completion_tokens (OpenAI's newer name) wins over max_tokens, as in vLLM.
    if (!(err = read_max_tokens(j, "max_tokens", out.plan.max_tokens)).empty()) return err;
    if (!(err = read_max_tokens(j, "max_completion_tokens", out.plan.max_tokens)).empty()) return err;
  } else {
    auto prompt = j.find("prompt");
    if (prompt == j.end()) return "'prompt' is required";
    if (!(err = count_prompt(*prompt, out.prompt_tokens)).empty()) return err;
    if (!(err = read_max_tokens(j, "max_tokens", out.plan.max_tokens)).empty()) return err;
    if (!(err = read_bool(j, "echo", out.echo)).empty()) return err;
  }
  if (!(err = read_bool(j, "stream", out.plan.stream)).empty()) return err;
  if (!(err = read_bool(j, "ignore_eos", out.plan.ignore_eos)).empty()) return err;
  if (auto so = j.find("stream_options"); so != j.end() && !so->is_null()) {
    if (!so->is_object()) return "'stream_options' must be an object";
    if (!(err = read_bool(*so, "include_usage", out.include_usage)).empty()) return "stream_options." + err;
    if (!(err = read_bool(*so, "continuous_usage_stats", out.continuous_usage)).empty()) return "stream_options." + err;
  }
  return "";
}

std::string models_body(const std::string& model, std::int64_t created) {
  json m = {{"id", model}, {"object", "model"}, {"created", created}, {"owned_by", "qmeter"}, {"root", model}, {"parent", nullptr}};
  return json{{"object", "list"}, {"data", json::array({m})}}.dump();
}

std::string openai_error_body(int status, std::string_view message, std::string_view type) {
  json j = {{"error", {{"message", message}, {"type", type}, {"param", nullptr}, {"code", status}}}};
  return j.dump();
}

ReplyFormatter::ReplyFormatter(bool chat, std::string id, const std::string& model, std::int64_t created,
                               int prompt_tokens)
    : chat_(chat), id_(std::move(id)), created_(created), prompt_tokens_(prompt_tokens) {
  // The start of every chunk of this reply is the same: built once.
  const std::string model_json = json(model).dump();
  auto head_for = [&](const char* object) {
    return fmt::format(R"({{"id":"{}","object":"{}","created":{},"model":{},)", id_, object, created_, model_json);
  };
  chunk_head_ = head_for(chat_ ? "chat.completion.chunk" : "text_completion");
  body_head_ = head_for(chat_ ? "chat.completion" : "text_completion");
}

const std::string& ReplyFormatter::head(bool chunk) const { return chunk ? chunk_head_ : body_head_; }

std::string ReplyFormatter::usage_json(int completion_tokens) const {
  return fmt::format(R"({{"prompt_tokens":{},"total_tokens":{},"completion_tokens":{}}})", prompt_tokens_,
                     prompt_tokens_ + completion_tokens, completion_tokens);
}

std::string ReplyFormatter::token_chunk(std::string_view text, bool with_role, std::string_view finish_reason,
                                        int usage_tokens) const {
  // Token text is " tok<i>" words: nothing to escape.
  const std::string finish = finish_reason.empty() ? "null" : fmt::format("\"{}\"", finish_reason);
  std::string out = head(true);
  if (chat_) {
    fmt::format_to(std::back_inserter(out),
                   R"("choices":[{{"index":0,"delta":{{{}"content":"{}"}},"logprobs":null,"finish_reason":{}}}])",
                   with_role ? R"("role":"assistant",)" : "", text, finish);
  } else {
    fmt::format_to(std::back_inserter(out),
                   R"("choices":[{{"index":0,"text":"{}","logprobs":null,"finish_reason":{},"stop_reason":null}}])",
                   text, finish);
  }
  if (usage_tokens >= 0) out += R"(,"usage":)" + usage_json(usage_tokens);
  out += '}';
  return out;
}

std::string ReplyFormatter::role_chunk(int usage_tokens) const {
  if (!chat_) return token_chunk("", false, "", usage_tokens);
  std::string out = head(true);
  out += R"("choices":[{"index":0,"delta":{"role":"assistant"},"logprobs":null,"finish_reason":null}])";
  if (usage_tokens >= 0) out += R"(,"usage":)" + usage_json(usage_tokens);
  out += '}';
  return out;
}

std::string ReplyFormatter::empty_chunk(int usage_tokens) const { return token_chunk("", false, "", usage_tokens); }

std::string ReplyFormatter::usage_chunk(int completion_tokens) const {
  return head(true) + R"("choices":[],"usage":)" + usage_json(completion_tokens) + "}";
}

std::string ReplyFormatter::malformed_chunk() const {
  std::string whole = token_chunk(" tok", false, "", -1);
  return whole.substr(0, whole.size() / 2);  // cut mid-object: not JSON
}

std::string ReplyFormatter::full_body(std::string_view text, std::string_view finish_reason,
                                      int completion_tokens) const {
  std::string out = head(false);
  if (chat_) {
    fmt::format_to(std::back_inserter(out),
                   R"("choices":[{{"index":0,"message":{{"role":"assistant","content":"{}"}},"logprobs":null,"finish_reason":"{}"}}],)",
                   text, finish_reason);
  } else {
    fmt::format_to(std::back_inserter(out),
                   R"("choices":[{{"index":0,"text":"{}","logprobs":null,"finish_reason":"{}","stop_reason":null}}],)",
                   text, finish_reason);
  }
  out += R"("usage":)" + usage_json(completion_tokens) + "}";
  return out;
}

}  // namespace qmeter::mockserver
