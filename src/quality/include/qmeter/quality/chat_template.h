#pragma once
// Chat templates for instruct models (`--apply-chat-template`), as lm-evaluation-harness applies
// them: few-shot examples become alternating user / assistant turns, the question the last user
// turn, and the prompt ends with the assistant's header (add_generation_prompt).
//
// qmeter has no Jinja interpreter: the template text (tokenizer_config.json's "chat_template", a
// GGUF's tokenizer.chat_template, or a .jinja file) is recognized by its family's markers and
// rendered by that family's rule. Known: ChatML (<|im_start|>), Llama-3 (<|start_header_id|>),
// Llama-2 ([INST] with <<SYS>>), Mistral ([INST] without <<SYS>>), Gemma (<start_of_turn>). The
// BOS token is left to the tokenizer (it adds it), so no template renders it. Without a local
// template, a server renders its own: the messages go to /v1/chat/completions.
#include <string>
#include <vector>

#include "qmeter/quality/scorer.h"

namespace qmeter::quality {

class ChatTemplate {
 public:
  // From a template's text; UsageError naming `where` when no known family matches.
  static ChatTemplate from_text(const std::string& jinja, const std::string& where);
  // From tokenizer_config.json ("chat_template": text, or a list of {name, template}: "default"),
  // or a file holding the template text itself.
  static ChatTemplate load(const std::string& path);

  const std::string& family() const { return family_; }
  // The prompt text, ending with the assistant's header when add_generation_prompt.
  std::string render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const;

 private:
  std::string family_;
};

// lm-eval's few-shot-as-multiturn messages: each (question, answer) shot a user then an assistant
// turn, then the question as the last user turn.
std::vector<ChatMessage> fewshot_messages(const std::vector<std::pair<std::string, std::string>>& shots,
                                          const std::string& question);

}  // namespace qmeter::quality
