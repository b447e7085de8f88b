#pragma once
// Chat templates for instruct models (`--apply-chat-template`), rendered as Hugging Face
// transformers' apply_chat_template(tokenize=False) renders them: the template's own Jinja text
// (a Jinja2 subset, src/quality/jinja.h) with messages, add_generation_prompt and the tokenizer's
// special tokens (bos_token, eos_token, unk_token, pad_token) as variables.
//
// Where the template comes from (load()): tokenizer_config.json ("chat_template", a string or the
// "default" entry of a list; special tokens from its *_token fields), a model folder holding one,
// a GGUF file (tokenizer.chat_template; bos/eos the vocabulary's tokenizer.ggml.bos/eos_token_id
// pieces), or a file with the template text itself. Without a local template a server renders
// its own: generation tasks send the messages to /v1/chat/completions.
#include <memory>
#include <string>
#include <vector>

#include "qmeter/quality/scorer.h"

namespace qmeter::quality {

namespace jinja {
class Template;
}

class ChatTemplate {
 public:
  // From a template's text; a syntax error is a UsageError naming `where` and the template line.
  static ChatTemplate from_text(const std::string& jinja, const std::string& where, const std::string& bos_token = "",
                                const std::string& eos_token = "");
  static ChatTemplate load(const std::string& path);

  // The template's output for `messages`, exactly (a leading bos_token included where the
  // template writes one). raise_exception() in the template is a UsageError naming the line.
  std::string render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const;
  // The prompt text for qmeter's scorers, as lm-eval's HF model renders it: where the template
  // raises on system turns (Gemma's) it is rendered again without them; the leading bos_token is
  // removed, since qmeter's tokenizers add BOS themselves (lm-eval renders it and adds no second
  // one: the tokens are the same).
  std::string prompt(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const;

  const std::string& bos_token() const { return bos_; }
  const std::string& eos_token() const { return eos_; }
  const std::string& where() const;

 private:
  std::shared_ptr<const jinja::Template> template_;
  std::string bos_, eos_, unk_, pad_;
};

// lm-evaluation-harness's messages for a prompt under --apply_chat_template (fewshot_context):
// `system` (the task description; "" for none) as a system turn; the few-shot examples as one
// user turn holding `fewshot_block` (their plain-text rendering: lm-eval's default) or, with
// `multiturn` (--fewshot_as_multiturn), each (question, answer) of `shots` as a user and an
// assistant turn; then `question` appended to the last user turn, or as a new user turn when the
// last turn is not a user's.
std::vector<ChatMessage> lm_eval_chat_messages(const std::string& system,
                                               const std::vector<std::pair<std::string, std::string>>& shots,
                                               const std::string& fewshot_block, const std::string& question,
                                               bool multiturn);

}  // namespace qmeter::quality
