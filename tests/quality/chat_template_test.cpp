// --apply-chat-template: a known template string (SmolLM2's ChatML template as its
// tokenizer_config.json holds it) renders lm-eval's few-shot-as-multiturn prompt exactly; without a
// local template the messages go to the server's /v1/chat/completions.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "qmeter/core/error.h"
#include "qmeter/quality/chat_template.h"
#include "qmeter/quality/eval.h"
#include "scripted_server.h"
#include "test_support.h"

namespace qmeter::quality {
namespace {

using nlohmann::json;
using testing::Script;
using testing::ScriptedServer;
using testing::write_file;

// The ChatML template of HuggingFaceTB/SmolLM2 (tokenizer_config.json "chat_template").
const char* const kChatMl =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + "
    "message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|im_start|>assistant\n' }}{% endif %}";

const char* const kLlama3 =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% "
    "set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

TEST(ChatTemplate, KnownTemplateStringsRenderLmEvalMultiturnPrompts) {
  const auto messages = fewshot_messages({{"Question: 1+1?\nAnswer:", "2"}}, "Question: 2+2?\nAnswer:");
  const auto dir = qmeter::testing::test_output_dir("quality_chat_template");
  const auto cfg = write_file(dir + "/tokenizer_config.json", json{{"chat_template", kChatMl}, {"bos_token", "<s>"}}.dump());
  const auto chatml = ChatTemplate::load(cfg);
  EXPECT_EQ(chatml.family(), "chatml");
  EXPECT_EQ(chatml.render(messages, true),
            "<|im_start|>user\nQuestion: 1+1?\nAnswer:<|im_end|>\n"
            "<|im_start|>assistant\n2<|im_end|>\n"
            "<|im_start|>user\nQuestion: 2+2?\nAnswer:<|im_end|>\n"
            "<|im_start|>assistant\n");
  const auto llama3 = ChatTemplate::load(write_file(dir + "/llama3.jinja", kLlama3));
  EXPECT_EQ(llama3.family(), "llama3");
  EXPECT_EQ(llama3.render(messages, true),
            "<|start_header_id|>user<|end_header_id|>\n\nQuestion: 1+1?\nAnswer:<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n2<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nQuestion: 2+2?\nAnswer:<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  try {
    ChatTemplate::load(write_file(dir + "/odd.jinja", "{{ messages }}"));
    ADD_FAILURE() << "an unknown template was accepted";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("odd.jinja: chat template not recognized"), std::string::npos) << e.what();
  }
}

TEST(ChatTemplate, Gsm8kWithoutALocalTemplateSendsTheTurnsToTheChatEndpoint) {
  const auto dir = qmeter::testing::test_output_dir("quality_chat_gsm8k");
  const auto file = write_file(dir + "/g.jsonl", json{{"question", "shot"}, {"answer", "So 1.\n#### 1"}}.dump() + "\n" +
                                                     json{{"question", "q"}, {"answer", "#### 5"}}.dump() + "\n");
  Script s;
  ScriptedServer server(s);
  auto scorer = make_server_scorer({server.url(), "m", "", 30});
  EvalOptions o;
  o.num_fewshot = 1;
  o.apply_chat_template = true;
  const auto r = run_task(parse_task_spec("gsm8k:" + file), *scorer, o);
  EXPECT_DOUBLE_EQ(r.find("exact_match_strict")->value, 1.0);
  ASSERT_EQ(s.chat_bodies.size(), 1u);
  const json expected = json::array({{{"role", "user"}, {"content", "Question: shot\nAnswer:"}},
                                     {{"role", "assistant"}, {"content", "So 1.\n#### 1"}},
                                     {{"role", "user"}, {"content", "Question: q\nAnswer:"}}});
  EXPECT_EQ(s.chat_bodies[0]["messages"], expected);
  EXPECT_EQ(s.chat_bodies[0]["temperature"], 0);
  // With a local template the rendered prompt goes to /v1/completions instead.
  o.chat_template_path = write_file(dir + "/t.jinja", kChatMl);
  run_task(parse_task_spec("gsm8k:" + file), *scorer, o);
  ASSERT_FALSE(s.generate_bodies.empty());
  EXPECT_EQ(s.generate_bodies.back()["prompt"],
            "<|im_start|>user\nQuestion: shot\nAnswer:<|im_end|>\n<|im_start|>assistant\nSo 1.\n#### 1<|im_end|>\n"
            "<|im_start|>user\nQuestion: q\nAnswer:<|im_end|>\n<|im_start|>assistant\n");
  // A server without chat completions: gsm8k with the chat template and no local one is unsupported.
  Capabilities caps;
  caps.chat = {false, "/v1/chat/completions answered HTTP 404"};
  o.chat_template_path.clear();
  EXPECT_NE(unsupported_reason(parse_task_spec("gsm8k:" + file), o, caps), "");
}

}  // namespace
}  // namespace qmeter::quality
