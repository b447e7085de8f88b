#include "openai_api.h"

#include <fmt/core.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "qmeter/core/clock.h"
#include "qmeter/engine/tokenizer.h"
#include "qmeter/net/request_body.h"

namespace qmeter::server {

using nlohmann::json;

namespace {

struct BadRequest {
  std::string message;
  std::string param;
};

json error_body(const std::string& message, const std::string& type, const std::string& param, int code) {
  return {{"error", {{"message", message}, {"type", type}, {"param", param.empty() ? json(nullptr) : json(param)}, {"code", code}}},
          {"object", "error"}, {"message", message}, {"type", type}, {"code", code}};
}

void reply_json(const net::ResponseWriterPtr& w, int status, const json& body) {
  net::HttpResponse r;
  r.status = status;
  // replace: an error message may quote the client's bytes (a JSON parse error names the bad
  // byte), which need not be UTF-8; a strict dump threw out of the handler (fuzz_serve_request).
  r.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  w->respond(std::move(r));
}

void reply_error(const net::ResponseWriterPtr& w, int status, const std::string& message, const std::string& param = "") {
  const char* type = status == 401 ? "authentication_error" : status == 429 ? "rate_limit_error"
                                 : status == 404 ? "not_found_error" : "invalid_request_error";
  reply_json(w, status, error_body(message, type, param, status));
}

// Typed field access: a field of the wrong type is a 400 naming it.
template <class T>
T field(const json& body, const char* name, T def) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return def;
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    throw BadRequest{fmt::format("'{}' has the wrong type ({})", name, it->type_name()), name};
  }
}

std::string created_id(const char* prefix) {
  static std::atomic<std::uint64_t> counter{0};
  return fmt::format("{}-{:x}{:06x}", prefix, static_cast<std::uint64_t>(wall_now_ns() / 1000000), counter++);
}

std::int64_t unix_s() { return wall_now_ns() / 1000000000; }

bool is_utf8_continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

// Everything one generation request needs while it runs (touched only on the engine thread,
// apart from the writer, which is thread-safe).
struct Generation {
  ApiContext ctx;
  net::ResponseWriterPtr writer;
  bool chat = false, stream = false, include_usage = false, continuous_usage = false, echo = false;
  int logprobs = -1;
  std::vector<std::string> stops;
  std::size_t max_stop = 0;
  std::string id, model_name;
  std::int64_t created = 0;
  std::vector<int> prompt;
  std::string prompt_text;
  std::unique_ptr<engine::IncrementalDetokenizer> detok;
  std::string text;           // generated text so far (truncated at a stop string when one matched)
  std::size_t emitted = 0;    // bytes of `text` already streamed
  int tokens = 0;             // generated tokens
  int tokens_since_chunk = 0; // tokens not yet carried by a streamed chunk
  bool stopped_by_string = false;
  std::vector<TokenEvent> events;     // for non-streaming logprobs
  std::vector<TokenEvent> pending_ev; // streaming: events not yet sent
  std::vector<TokenEvent> prompt_lp;
  Nanos arrival_ns = 0, first_token_ns = 0;
  std::int64_t sched_id = -1;

  json usage() const {
    return {{"prompt_tokens", prompt.size()}, {"completion_tokens", tokens}, {"total_tokens", prompt.size() + tokens}};
  }

  json logprobs_json(const std::vector<TokenEvent>& evs, std::size_t text_offset_base) const {
    const auto& tok = *ctx.model->tokenizer;
    json tokens_j = json::array(), lps = json::array(), tops = json::array(), offsets = json::array();
    std::size_t off = text_offset_base;
    for (const auto& e : evs) {
      const std::string piece = tok.token_bytes(e.token);
      tokens_j.push_back(piece);
      lps.push_back(e.logprob);
      json top = json::object();
      for (const auto& t : e.top) top[tok.token_bytes(t.token)] = t.logprob;
      tops.push_back(top);
      offsets.push_back(off);
      off += piece.size();
    }
    return {{"tokens", tokens_j}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offsets}};
  }

  json echo_logprobs() const {
    const auto& tok = *ctx.model->tokenizer;
    json tokens_j = json::array(), lps = json::array(), tops = json::array(), offsets = json::array();
    std::size_t off = 0;
    for (std::size_t i = 0; i < prompt.size(); ++i) {
      const std::string piece = tok.token_bytes(prompt[i]);
      tokens_j.push_back(piece);
      if (i == 0) {
        lps.push_back(nullptr);
        tops.push_back(nullptr);
      } else {
        json top = json::object();
        if (i - 1 < prompt_lp.size()) {
          lps.push_back(prompt_lp[i - 1].logprob);
          for (const auto& t : prompt_lp[i - 1].top) top[tok.token_bytes(t.token)] = t.logprob;
        } else {
          lps.push_back(nullptr);
        }
        tops.push_back(top);
      }
      offsets.push_back(off);
      off += piece.size();
    }
    return {{"tokens", tokens_j}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offsets}};
  }

  // How much of `text` may be streamed now: all of it, minus a tail that could still become a
  // stop string, cut back to a UTF-8 character boundary.
  std::size_t streamable() const {
    std::size_t n = text.size();
    if (max_stop > 1 && !stopped_by_string) n = n >= max_stop - 1 ? n - (max_stop - 1) : 0;
    while (n > emitted && n < text.size() && is_utf8_continuation(text[n])) --n;
    return std::max(n, emitted);
  }

  void send_event(const json& j) {
    writer->write_chunk("data: " + j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n");
  }

  json chunk_base() const {
    return {{"id", id}, {"object", chat ? "chat.completion.chunk" : "text_completion"}, {"created", created}, {"model", model_name}};
  }

  void stream_text(const std::string& piece, const char* finish_reason) {
    json c = chunk_base();
    json choice = {{"index", 0}};
    if (chat) {
      choice["delta"] = piece.empty() && finish_reason ? json::object() : json{{"content", piece}};
      if (logprobs >= 0) choice["logprobs"] = nullptr;
    } else {
      choice["text"] = piece;
      choice["logprobs"] = logprobs >= 0 && !pending_ev.empty() ? logprobs_json(pending_ev, emitted - piece.size()) : json(nullptr);
    }
    choice["finish_reason"] = finish_reason ? json(finish_reason) : json(nullptr);
    c["choices"] = json::array({choice});
    if (continuous_usage) c["usage"] = usage();
    send_event(c);
    pending_ev.clear();
    tokens_since_chunk = 0;
  }

  void on_token(const TokenEvent& ev) {
    if (tokens == 0) {
      first_token_ns = steady_now_ns();
      ctx.metrics->ttft_s.observe(ns_to_s(first_token_ns - arrival_ns));
    }
    ++tokens;
    ++tokens_since_chunk;
    if (logprobs >= 0) {
      events.push_back(ev);
      pending_ev.push_back(ev);
    }
    if (stopped_by_string) return;
    text += detok->push(ev.token);
    for (const auto& s : stops) {
      if (auto pos = text.find(s); pos != std::string::npos) {
        text.resize(pos);
        stopped_by_string = true;
      }
    }
    if (stream) {
      const std::size_t n = streamable();
      if (n > emitted) {
        std::string piece = text.substr(emitted, n - emitted);
        emitted = n;
        stream_text(piece, nullptr);
      }
    }
  }

  void on_finish(FinishReason why, const std::string& error) {
    if (why == FinishReason::kCancelled) {
      ctx.metrics->aborted++;
      writer->abort();
      return;
    }
    if (why == FinishReason::kError) {
      if (stream) {
        send_event({{"error", {{"message", error}, {"type", "server_error"}, {"code", 500}}}});
        writer->abort();
      } else {
        reply_error(writer, 500, error);
      }
      return;
    }
    if (!stopped_by_string) text += detok->flush();
    const char* reason = (why == FinishReason::kStop || stopped_by_string) ? "stop" : "length";
    const Nanos now = steady_now_ns();
    ctx.metrics->success++;
    ctx.metrics->e2e_s.observe(ns_to_s(now - arrival_ns));
    if (tokens > 1) ctx.metrics->tpot_s.observe(ns_to_s(now - first_token_ns) / (tokens - 1));
    if (stream) {
      std::string rest = emitted < text.size() ? text.substr(emitted) : "";
      emitted = text.size();
      stream_text(rest, reason);
      if (include_usage) {
        json u = chunk_base();
        u["choices"] = json::array();
        u["usage"] = usage();
        send_event(u);
      }
      writer->write_chunk("data: [DONE]\n\n");
      writer->end();
      return;
    }
    json choice = {{"index", 0}, {"finish_reason", reason}};
    if (chat) {
      choice["message"] = {{"role", "assistant"}, {"content", text}};
      choice["logprobs"] = nullptr;
    } else {
      choice["text"] = echo ? prompt_text + text : text;
      if (logprobs >= 0) {
        if (echo) {
          json lp = echo_logprobs();
          json gen = logprobs_json(events, prompt_text.size());
          for (const char* k : {"tokens", "token_logprobs", "top_logprobs", "text_offset"}) {
            for (auto& x : gen[k]) lp[k].push_back(x);
          }
          choice["logprobs"] = lp;
        } else {
          choice["logprobs"] = logprobs_json(events, 0);
        }
      } else {
        choice["logprobs"] = nullptr;
      }
    }
    json body = {{"id", id}, {"object", chat ? "chat.completion" : "text_completion"}, {"created", created},
                 {"model", model_name}, {"choices", json::array({choice})}, {"usage", usage()}};
    net::HttpResponse r;
    r.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
    writer->respond(std::move(r));
  }
};

std::vector<int> parse_prompt(const ApiContext& ctx, const json& body, std::string& prompt_text) {
  auto it = body.find("prompt");
  if (it == body.end()) throw BadRequest{"'prompt' is required", "prompt"};
  json p = *it;
  if (p.is_array() && p.size() == 1 && (p[0].is_string() || p[0].is_array())) p = p[0];
  const auto& tok = *ctx.model->tokenizer;
  if (p.is_string()) {
    prompt_text = p.get<std::string>();
    return tok.encode(prompt_text, tok.bos_id() >= 0);
  }
  if (p.is_array()) {
    std::vector<int> ids;
    for (const auto& x : p) {
      if (!x.is_number_integer()) throw BadRequest{"'prompt' must be a string or a list of token ids", "prompt"};
      const int id = x.get<int>();
      if (id < 0 || id >= ctx.model->config.vocab_size) throw BadRequest{fmt::format("token id {} is out of range", id), "prompt"};
      ids.push_back(id);
    }
    if (ids.empty()) throw BadRequest{"'prompt' is empty", "prompt"};
    prompt_text = tok.decode(ids);
    return ids;
  }
  throw BadRequest{"'prompt' must be a string or a list of token ids", "prompt"};
}

void handle_generation(const ApiContext& ctx, const net::HttpRequest& req, const net::ResponseWriterPtr& w, bool chat) {
  json body;
  if (auto problem = net::json_body_problem(req.body)) return reply_error(w, 400, *problem);
  try {
    body = json::parse(req.body);
  } catch (const json::exception& e) {
    return reply_error(w, 400, std::string("invalid JSON body: ") + e.what());
  }
  if (!body.is_object()) return reply_error(w, 400, "the body must be a JSON object");
  auto g = std::make_shared<Generation>();
  g->ctx = ctx;
  g->writer = w;
  g->chat = chat;
  g->arrival_ns = req.arrival_ns ? req.arrival_ns : steady_now_ns();
  GenerationRequest gr;
  try {
    const int n = field<int>(body, "n", 1);
    if (n != 1) throw BadRequest{"only n = 1 is supported", "n"};
    if (chat) {
      auto it = body.find("messages");
      if (it == body.end() || !it->is_array() || it->empty()) throw BadRequest{"'messages' must be a non-empty list", "messages"};
      std::vector<ChatMessageIn> msgs;
      for (const auto& m : *it) {
        if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) throw BadRequest{"each message needs a string 'role'", "messages"};
        std::string content;
        if (m.contains("content") && m["content"].is_string()) {
          content = m["content"].get<std::string>();
        } else if (m.contains("content") && m["content"].is_array()) {
          for (const auto& part : m["content"]) {
            if (part.is_object() && part.value("type", "") == "text" && part.contains("text") && part["text"].is_string()) {
              content += part["text"].get<std::string>();
            }
          }
        } else if (m.contains("content") && !m["content"].is_null()) {
          throw BadRequest{"a message's 'content' must be a string or a list of parts", "messages"};
        }
        msgs.push_back({m["role"].get<std::string>(), content});
      }
      g->prompt_text = apply_chat_template(*ctx.model, msgs);
      g->prompt = ctx.model->tokenizer->encode(g->prompt_text, ctx.model->tokenizer->bos_id() >= 0, true);
      const bool want_lp = field<bool>(body, "logprobs", false);
      g->logprobs = want_lp ? field<int>(body, "top_logprobs", 0) : -1;
    } else {
      g->prompt = parse_prompt(ctx, body, g->prompt_text);
      g->logprobs = field<int>(body, "logprobs", -1);
      g->echo = field<bool>(body, "echo", false);
    }
    if (g->logprobs > 20) throw BadRequest{"'logprobs' must be at most 20", "logprobs"};
    const char* max_key = chat && body.contains("max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
    // Absent: as many as the context leaves. Given: a whole number, 0 (echo scoring) or more; a
    // value that would not fit an int must not wrap around into a plausible one.
    int max_tokens = -1;
    if (auto it = body.find(max_key); it != body.end() && !it->is_null()) {
      if (!it->is_number()) throw BadRequest{fmt::format("'{}' has the wrong type ({})", max_key, it->type_name()), max_key};
      if (!it->is_number_integer() || (it->is_number_unsigned() && it->get<std::uint64_t>() > 1u << 30) ||
          (!it->is_number_unsigned() && (it->get<std::int64_t>() < 0 || it->get<std::int64_t>() > 1 << 30))) {
        throw BadRequest{fmt::format("'{}' must be a whole number >= 0 (got {})", max_key, it->dump()), max_key};
      }
      max_tokens = static_cast<int>(it->get<std::int64_t>());
    }
    const int ctx_len = ctx.max_model_len;
    const int plen = static_cast<int>(g->prompt.size());
    if (plen >= ctx_len && !(g->echo && max_tokens == 0 && plen <= ctx_len)) {
      throw BadRequest{fmt::format("the prompt has {} tokens; the context length is {}", plen, ctx_len), "prompt"};
    }
    if (max_tokens < 0) max_tokens = ctx_len - plen;
    if (plen + max_tokens > ctx_len) {
      throw BadRequest{fmt::format("max_tokens {} + prompt {} tokens exceed the context length {}", max_tokens, plen, ctx_len),
                       "max_tokens"};
    }
    gr.max_tokens = max_tokens;
    gr.sampling.temperature = static_cast<float>(field<double>(body, "temperature", 1.0));
    gr.sampling.top_p = static_cast<float>(field<double>(body, "top_p", 1.0));
    gr.sampling.top_k = field<int>(body, "top_k", 0);
    if (gr.sampling.top_k < 0) gr.sampling.top_k = 0;
    gr.sampling.seed = static_cast<std::uint64_t>(field<std::int64_t>(body, "seed", 0));
    if (gr.sampling.temperature < 0) throw BadRequest{"'temperature' must be >= 0", "temperature"};
    if (!(gr.sampling.top_p > 0 && gr.sampling.top_p <= 1)) throw BadRequest{"'top_p' must be in (0, 1]", "top_p"};
    if (auto it = body.find("stop"); it != body.end() && !it->is_null()) {
      if (it->is_string()) {
        g->stops.push_back(it->get<std::string>());
      } else if (it->is_array()) {
        for (const auto& s : *it) {
          if (!s.is_string()) throw BadRequest{"'stop' must be a string or a list of strings", "stop"};
          g->stops.push_back(s.get<std::string>());
        }
      } else {
        throw BadRequest{"'stop' must be a string or a list of strings", "stop"};
      }
    }
    for (const auto& s : g->stops) g->max_stop = std::max(g->max_stop, s.size());
    g->stream = field<bool>(body, "stream", false);
    if (auto so = body.find("stream_options"); so != body.end() && so->is_object()) {
      g->include_usage = so->value("include_usage", false);
      g->continuous_usage = so->value("continuous_usage_stats", false);
    }
    if (!field<bool>(body, "ignore_eos", false)) gr.stop_ids = ctx.model->tokenizer->stop_ids();
  } catch (const BadRequest& e) {
    return reply_error(w, 400, e.message, e.param);
  }
  g->model_name = field<std::string>(body, "model", ctx.served_model_name);
  g->id = created_id(chat ? "chatcmpl" : "cmpl");
  g->created = unix_s();
  g->detok = std::make_unique<engine::IncrementalDetokenizer>(*ctx.model->tokenizer);
  gr.prompt = g->prompt;
  gr.logprobs = g->logprobs;
  gr.prompt_logprobs = g->echo && g->logprobs >= 0;
  gr.on_prompt_logprobs = [g](const std::vector<TokenEvent>& lp) { g->prompt_lp = lp; };
  gr.on_token = [g](const TokenEvent& ev) { g->on_token(ev); };
  gr.should_stop = [g] { return g->stopped_by_string; };
  gr.on_finish = [g](FinishReason why, const std::string& err) {
    g->on_finish(why, err);
    g->writer.reset();  // break the cycle writer -> on_close -> g
  };
  if (g->stream) {
    w->start_stream(200, "text/event-stream", {{"Cache-Control", "no-cache"}});
    if (chat) {
      json c = g->chunk_base();
      c["choices"] = json::array({{{"index", 0}, {"delta", {{"role", "assistant"}, {"content", ""}}}, {"logprobs", nullptr}, {"finish_reason", nullptr}}});
      g->send_event(c);
    }
  }
  const std::int64_t id = ctx.scheduler->submit(std::move(gr));
  if (id < 0) {
    ctx.metrics->rejected++;
    if (g->stream) {
      w->abort();
    } else {
      reply_error(w, 429, "the server's waiting queue is full; retry later");
    }
    return;
  }
  Scheduler* sched = ctx.scheduler;
  w->on_close([sched, id] { sched->cancel(id); });  // a client that leaves frees its KV blocks at once
}

void handle_tokenize(const ApiContext& ctx, const net::HttpRequest& req, const net::ResponseWriterPtr& w) {
  if (auto problem = net::json_body_problem(req.body)) return reply_error(w, 400, *problem);
  try {
    auto body = json::parse(req.body);
    const auto& tok = *ctx.model->tokenizer;
    std::vector<int> ids;
    if (body.contains("messages")) {
      std::vector<ChatMessageIn> msgs;
      for (const auto& m : body["messages"]) msgs.push_back({m.value("role", ""), m.value("content", "")});
      ids = tok.encode(apply_chat_template(*ctx.model, msgs), tok.bos_id() >= 0, true);
    } else {
      const bool special = field<bool>(body, "add_special_tokens", true);
      ids = tok.encode(field<std::string>(body, "prompt", ""), special && tok.bos_id() >= 0);
    }
    reply_json(w, 200, {{"count", ids.size()}, {"max_model_len", ctx.max_model_len}, {"tokens", ids}});
  } catch (const BadRequest& e) {
    reply_error(w, 400, e.message, e.param);
  } catch (const std::exception& e) {
    reply_error(w, 400, std::string("invalid request: ") + e.what());
  }
}

void handle_detokenize(const ApiContext& ctx, const net::HttpRequest& req, const net::ResponseWriterPtr& w) {
  if (auto problem = net::json_body_problem(req.body)) return reply_error(w, 400, *problem);
  try {
    auto body = json::parse(req.body);
    auto ids = field<std::vector<int>>(body, "tokens", {});
    for (int id : ids) {
      if (id < 0 || id >= ctx.model->config.vocab_size) return reply_error(w, 400, fmt::format("token id {} is out of range", id), "tokens");
    }
    reply_json(w, 200, {{"prompt", ctx.model->tokenizer->decode(ids)}});
  } catch (const BadRequest& e) {
    reply_error(w, 400, e.message, e.param);
  } catch (const std::exception& e) {
    reply_error(w, 400, std::string("invalid request: ") + e.what());
  }
}

}  // namespace

std::string apply_chat_template(const engine::Model& model, const std::vector<ChatMessageIn>& messages) {
  const auto& tok = *model.tokenizer;
  std::string out;
  if (tok.piece_id("<|im_start|>")) {  // ChatML (Qwen2, SmolLM)
    for (const auto& m : messages) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
    return out + "<|im_start|>assistant\n";
  }
  if (tok.piece_id("<|start_header_id|>")) {  // Llama-3
    for (const auto& m : messages) out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + m.content + "<|eot_id|>";
    return out + "<|start_header_id|>assistant<|end_header_id|>\n\n";
  }
  if (tok.piece_id("[INST]")) {  // Llama-2 chat
    std::string system;
    for (const auto& m : messages) {
      if (m.role == "system") {
        system = "<<SYS>>\n" + m.content + "\n<</SYS>>\n\n";
      } else if (m.role == "user") {
        out += "[INST] " + system + m.content + " [/INST]";
        system.clear();
      } else {
        out += " " + m.content + " ";
      }
    }
    return out;
  }
  // No known template: the contents, one per line (a base model continues the text).
  for (std::size_t i = 0; i < messages.size(); ++i) out += (i ? "\n" : "") + messages[i].content;
  return out;
}

void handle_request(const ApiContext& ctx, const net::HttpRequest& req, const net::ResponseWriterPtr& w) {
  const std::string& path = req.path;
  if (path == "/health" || path == "/ping") return reply_json(w, 200, json::object());
  if (!ctx.api_key.empty() && path != "/metrics") {
    if (req.header("Authorization") != "Bearer " + ctx.api_key) return reply_error(w, 401, "invalid or missing API key");
  }
  if (path == "/v1/models" && req.method == "GET") {
    json m = {{"id", ctx.served_model_name}, {"object", "model"}, {"created", unix_s()}, {"owned_by", "qmeter"},
              {"max_model_len", ctx.max_model_len}};
    return reply_json(w, 200, {{"object", "list"}, {"data", json::array({m})}});
  }
  if (path == "/props" && req.method == "GET") {
    // llama-server's shape: the template and the special tokens it uses (null when none).
    const auto& tok = *ctx.model->tokenizer;
    auto special = [&](int id) { return id >= 0 ? json(tok.piece(id)) : json(nullptr); };
    return reply_json(w, 200, {{"chat_template", ctx.chat_template.empty() ? json(nullptr) : json(ctx.chat_template)},
                               {"bos_token", special(tok.bos_id())}, {"eos_token", special(tok.eos_id())},
                               {"model_alias", ctx.served_model_name},
                               {"default_generation_settings", {{"n_ctx", ctx.max_model_len}}}});
  }
  if (path == "/metrics") {
    net::HttpResponse r;
    r.content_type = "text/plain; version=0.0.4";
    r.body = ctx.metrics->prometheus_text(ctx.scheduler->stats(), ctx.served_model_name);
    return w->respond(std::move(r));
  }
  if (req.method != "POST") return reply_error(w, 404, "no route for " + req.method + " " + path);
  if (path == "/v1/completions") return handle_generation(ctx, req, w, false);
  if (path == "/v1/chat/completions") return handle_generation(ctx, req, w, true);
  if (path == "/tokenize") return handle_tokenize(ctx, req, w);
  if (path == "/detokenize") return handle_detokenize(ctx, req, w);
  reply_error(w, 404, "no route for POST " + path);
}

}  // namespace qmeter::server
