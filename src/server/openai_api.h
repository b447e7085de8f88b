#pragma once
// The OpenAI-compatible request handlers of `qmeter serve` (private to the server module).
#include <atomic>
#include <memory>
#include <string>

#include "qmeter/engine/model.h"
#include "qmeter/net/http_server.h"
#include "qmeter/server/scheduler.h"
#include "server_metrics.h"

namespace qmeter::server {

struct ApiContext {
  const engine::Model* model = nullptr;
  Scheduler* scheduler = nullptr;
  ServerMetrics* metrics = nullptr;
  std::string served_model_name;
  std::string api_key;
  int max_model_len = 0;
  std::string chat_template;  // the model's own (GGUF metadata / tokenizer_config.json); "" when none
};

// The chat template text of model `model_spec` (a GGUF's tokenizer.chat_template, a folder's or
// the tokenizer_config.json beside a weights file); "" when it has none. GET /props reports it.
std::string model_chat_template_text(const std::string& model_spec);

void handle_request(const ApiContext& ctx, const net::HttpRequest& request, const net::ResponseWriterPtr& writer);

// The prompt text a chat conversation becomes under the model's template (ChatML, Llama-2,
// Llama-3 styles, detected from the tokenizer's special tokens; raw concatenation otherwise).
struct ChatMessageIn {
  std::string role, content;
};
std::string apply_chat_template(const engine::Model& model, const std::vector<ChatMessageIn>& messages);

}  // namespace qmeter::server
