// The Jinja subset against real chat templates (the "chat_template" of each model's
// tokenizer_config.json, copied as published), rendered for one system + user + assistant + user
// conversation with and without the generation prompt. The expected strings are derived by hand
// from each template's logic; the second test's are the outputs transformers' apply_chat_template
// gives for a published conversation. Then the language features one by one, and the errors.
#include <gtest/gtest.h>

#include "qmeter/core/error.h"
#include "qmeter/quality/chat_template.h"

namespace qmeter::quality {
namespace {

// meta-llama/Llama-2-7b-chat-hf
const char* const kLlama2 =
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = "
    "messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% "
    "for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ "
    "raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if "
    "loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' "
    "+ message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' "
    "%}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + "
    "content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";

// meta-llama/Meta-Llama-3-8B-Instruct
const char* const kLlama3 =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% "
    "set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

// Qwen/Qwen2-7B-Instruct (ChatML with a default system turn)
const char* const kQwen2 =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou "
    "are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] "
    "+ '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

// HuggingFaceH4/zephyr-7b-beta (one tag per line: trim_blocks removes the newline after each
// {% %}, the newline after each {{ }} stays)
const char* const kZephyr =
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + "
    "eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n{% "
    "elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% "
    "if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}";

// mistralai/Mistral-7B-Instruct-v0.1
const char* const kMistral =
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ "
    "raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if "
    "message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == "
    "'assistant' %}{{ message['content'] + eos_token + ' ' }}{% else %}{{ raise_exception('Only user and assistant "
    "roles are supported!') }}{% endif %}{% endfor %}";

// google/gemma-7b-it
const char* const kGemma =
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif "
    "%}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ "
    "raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if "
    "(message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif "
    "%}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if "
    "add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}";

const std::vector<ChatMessage> kConversation = {
    {"system", "You are terse."}, {"user", "Hi there"}, {"assistant", "  Hello! "}, {"user", "2+2?"}};
const std::vector<ChatMessage> kNoSystem(kConversation.begin() + 1, kConversation.end());

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const UsageError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(JinjaChatTemplates, RealTemplatesRenderTheConversationAsTheirLogicSays) {
  const auto llama2 = ChatTemplate::from_text(kLlama2, "llama2", "<s>", "</s>");
  const std::string llama2_out =
      "<s>[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nHi there [/INST] Hello! </s><s>[INST] 2+2? [/INST]";
  EXPECT_EQ(llama2.render(kConversation, false), llama2_out);
  EXPECT_EQ(llama2.render(kConversation, true), llama2_out);  // the template has no generation prompt
  EXPECT_EQ(llama2.prompt(kConversation, true), llama2_out.substr(3));  // the tokenizer adds the first BOS

  const auto llama3 = ChatTemplate::from_text(kLlama3, "llama3", "<|begin_of_text|>", "<|eot_id|>");
  const std::string llama3_out =
      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
      "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
      "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
      "<|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|>";
  EXPECT_EQ(llama3.render(kConversation, false), llama3_out);
  EXPECT_EQ(llama3.render(kConversation, true), llama3_out + "<|start_header_id|>assistant<|end_header_id|>\n\n");

  const auto qwen2 = ChatTemplate::from_text(kQwen2, "qwen2", "", "<|im_end|>");
  const std::string qwen2_out =
      "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n"
      "<|im_start|>assistant\n  Hello! <|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n";
  EXPECT_EQ(qwen2.render(kConversation, false), qwen2_out);
  EXPECT_EQ(qwen2.render(kConversation, true), qwen2_out + "<|im_start|>assistant\n");
  EXPECT_EQ(qwen2.render(kNoSystem, true),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n"
            "<|im_start|>assistant\n  Hello! <|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n");

  const auto zephyr = ChatTemplate::from_text(kZephyr, "zephyr", "<s>", "</s>");
  const std::string zephyr_out =
      "<|system|>\nYou are terse.</s>\n<|user|>\nHi there</s>\n<|assistant|>\n  Hello! </s>\n<|user|>\n2+2?</s>\n";
  EXPECT_EQ(zephyr.render(kConversation, false), zephyr_out);
  EXPECT_EQ(zephyr.render(kConversation, true), zephyr_out + "<|assistant|>\n");

  const auto mistral = ChatTemplate::from_text(kMistral, "mistral", "<s>", "</s>");
  EXPECT_EQ(mistral.render(kNoSystem, false), "<s>[INST] Hi there [/INST]  Hello! </s> [INST] 2+2? [/INST]");
  EXPECT_EQ(mistral.render(kNoSystem, true), "<s>[INST] Hi there [/INST]  Hello! </s> [INST] 2+2? [/INST]");
  EXPECT_EQ(error_of([&] { mistral.render(kConversation, true); }),
            "mistral: template line 1: the template raised an error: Conversation roles must alternate "
            "user/assistant/user/assistant/...");

  const auto gemma = ChatTemplate::from_text(kGemma, "gemma", "<bos>", "<eos>");
  const std::string gemma_out =
      "<bos><start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n"
      "<start_of_turn>user\n2+2?<end_of_turn>\n";
  EXPECT_EQ(gemma.render(kNoSystem, false), gemma_out);
  EXPECT_EQ(gemma.render(kNoSystem, true), gemma_out + "<start_of_turn>model\n");
  EXPECT_EQ(error_of([&] { gemma.render(kConversation, true); }),
            "gemma: template line 1: the template raised an error: System role not supported");
}

// transformers' outputs for this conversation (with add_generation_prompt), as published in
// mistral.rs's chat template tests: an independent check of the hand-derived strings above.
TEST(JinjaChatTemplates, MatchTransformersOutputsForAPublishedConversation) {
  const std::vector<ChatMessage> conv = {{"system", "You are a helpful assistant"},
                                         {"user", "Hello"},
                                         {"assistant", "Hi there"},
                                         {"user", "Who are you"},
                                         {"assistant", "   I am an assistant   "},
                                         {"user", "Another question"}};
  const std::vector<ChatMessage> no_system(conv.begin() + 1, conv.end());
  EXPECT_EQ(ChatTemplate::from_text(kLlama2, "llama2", "<s>", "</s>").render(conv, true),
            "<s>[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST] Hi there </s><s>[INST] Who are "
            "you [/INST] I am an assistant </s><s>[INST] Another question [/INST]");
  EXPECT_EQ(ChatTemplate::from_text(kMistral, "mistral", "<s>", "</s>").render(no_system, true),
            "<s>[INST] Hello [/INST]Hi there</s> [INST] Who are you [/INST]   I am an assistant   </s> [INST] Another "
            "question [/INST]");
  EXPECT_EQ(ChatTemplate::from_text(kGemma, "gemma", "<bos>", "<eos>").render(no_system, true),
            "<bos><start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\nHi there<end_of_turn>\n"
            "<start_of_turn>user\nWho are you<end_of_turn>\n<start_of_turn>model\nI am an assistant<end_of_turn>\n"
            "<start_of_turn>user\nAnother question<end_of_turn>\n<start_of_turn>model\n");
}

std::string render(const std::string& tmpl, const std::vector<ChatMessage>& messages = kConversation, bool gen = false) {
  return ChatTemplate::from_text(tmpl, "t.jinja", "<s>", "</s>").render(messages, gen);
}

TEST(JinjaChatTemplates, LanguageFeatures) {
  // Loops: loop variables, else, break / continue, filtering, dict items, tuple unpacking.
  EXPECT_EQ(render("{% for m in messages %}{{ loop.index }}/{{ loop.length }}{{ '!' if loop.first }}{{ '.' if loop.last "
                   "else ',' }}{% endfor %}"),
            "1/4!,2/4,3/4,4/4.");
  EXPECT_EQ(render("{% for m in messages if m.role == 'user' %}{{ loop.index0 }}{{ m.content }};{% endfor %}"), "0Hi there;12+2?;");
  EXPECT_EQ(render("{% for m in messages %}{% if loop.index0 == 1 %}{% continue %}{% endif %}{% if m.role == 'assistant' "
                   "%}{% break %}{% endif %}{{ m.role[0] }}{% endfor %}"),
            "s");
  EXPECT_EQ(render("{% for m in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(render("{% for k, v in {'a': 1, 'b': [2, 'x']}.items() %}{{ k }}={{ v }} {% endfor %}"), "a=1 b=[2, 'x'] ");
  // set (loop-local) and namespace() (carried across iterations).
  EXPECT_EQ(render("{% set n = 0 %}{% set ns = namespace(n=0, seen=false) %}{% for m in messages %}{% set n = n + 1 %}{% "
                   "set ns.n = ns.n + 1 %}{% if m.role == 'system' %}{% set ns.seen = true %}{% endif %}{% endfor %}{{ n }} "
                   "{{ ns.n }} {{ ns.seen }}"),
            "0 4 True");
  // Literals, operators and Python's value semantics.
  EXPECT_EQ(render("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ 7 / 2 }} {{ 2 * 3 + 1 }} {{ 1 ~ 'a' ~ none }} {{ 'ab' * 2 }}"),
            "3 -4 1 3.5 7 1aNone abab");
  EXPECT_EQ(render("{{ 'er' in 'terse' }} {{ 'x' not in ['x'] }} {{ 'role' in messages[0] }} {{ 1 < 2 }} {{ [1] + [2] }}"),
            "True False True True [1, 2]");
  EXPECT_EQ(render("{{ none or 'dflt' }}|{{ 0 and 'x' }}|{{ not messages }}|{{ 'a' if false else 'b' }}|{{ 'a' if false }}|"),
            "dflt|0|False|b||");
  EXPECT_EQ(render("{{ messages[-1].content }} {{ messages[1:3] | length }} {{ 'abcdef'[1:-1] }} {{ 'abc'[::-1] }} "
                   "{{ messages[9] is defined }}"),
            "2+2? 2 bcde cba False");
  EXPECT_EQ(render("{% if x is defined %}d{% elif messages[0].content is string and y is not defined %}s{% else %}e{% endif "
                   "%}{{ none is none }}{{ x }}"),
            "sTrue");
  // Filters and string / dict methods.
  EXPECT_EQ(render("{{ '  a b  ' | trim }}|{{ 'Ab' | upper }}{{ 'Ab' | lower }}|{{ 'hello world' | title }}|{{ x | default('d') "
                   "}}|{{ '' | default('e', true) }}|{{ [1, 2, 3] | first }}{{ 'xyz' | last }}|{{ 'a-b-c' | replace('-', '+') "
                   "}}|{{ ['a', 'b'] | join(', ') }}|{{ 'ab' | list }}|{{ {'a': 1} | length }}"),
            "a b|ABab|Hello World|d|e|1z|a+b+c|a, b|['a', 'b']|1");
  EXPECT_EQ(render("{{ {'a': [1, 'é\"'], 'b': none, 'c': true} | tojson }}|{{ [1, 2] | tojson(indent=2) }}"),
            "{\"a\": [1, \"é\\\"\"], \"b\": null, \"c\": true}|[\n  1,\n  2\n]");
  EXPECT_EQ(render("{{ ' x '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith(('x', 'bc')) "
                   "}}|{{ ' a  b '.split() }}|{{ 'a,b,,c'.split(',') }}|{{ 'tHE end'.title() }}|{{ {'k': 1}.get('z', 2) }}"),
            "x|a|TrueTrue|['a', 'b']|['a', 'b', '', 'c']|The End|2");
  EXPECT_EQ(render("{{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content') | join('+') }}"),
            "Hi there+2+2?");
  // Whitespace control: '-' on either side, lstrip_blocks before an indented block tag, and one
  // trailing newline of the source dropped.
  EXPECT_EQ(render("{%- for m in messages %}\n    {%- if m.role == 'user' %}\n        {{- '[' + m.content + ']' }}\n    {%- "
                   "endif %}\n{%- endfor %}\n{{- ' end' }}\n"),
            "[Hi there][2+2?] end");
  EXPECT_EQ(render("a\n  {% if true %}\n  b\n  {% endif %}\n{# a comment #}\nc  {{- ' d' -}}  \n e"), "a\n  b\nc de");
}

TEST(JinjaChatTemplates, ErrorsNameTheTemplateAndLine) {
  EXPECT_EQ(error_of([] { render("line one\n{% if true %}\n{{ messages | shout }}{% endif %}"); }),
            "t.jinja: template line 3: unknown filter 'shout'");
  EXPECT_EQ(error_of([] { render("{% for m in messages %}\nok\n{{ m.content "); }),
            "t.jinja: template line 3: '{{' is never closed by '}}'");
  EXPECT_EQ(error_of([] { render("\n{% for m in messages %}{{ m.content }}"); }),
            "t.jinja: template line 2: '{% for %}' is never closed (expected '{% endfor %}')");
  EXPECT_EQ(error_of([] { render("{% if true %}\n\n{{ raise_exception('no ' ~ messages[0].role ~ ' turns') }}{% endif %}"); }),
            "t.jinja: template line 3: the template raised an error: no system turns");
  EXPECT_EQ(error_of([] { render("{{ nothing.here }}"); }), "t.jinja: template line 1: 'nothing' is undefined");
  EXPECT_EQ(error_of([] { render("{% macro f() %}{% endmacro %}"); }),
            "t.jinja: template line 1: unsupported tag '{% macro %}' (supported: if, for, set, break, continue, generation)");
  EXPECT_EQ(error_of([] { render("{{ 'a' + 1 }}"); }), "t.jinja: template line 1: unsupported operand types for +: 'str' and 'int'");
  EXPECT_EQ(error_of([] { render("{{ (1 }}"); }), "t.jinja: template line 1: expected ')', found the end of the tag");
  EXPECT_EQ(error_of([] { render("{% endif %}"); }), "t.jinja: template line 1: '{% endif %}' without its opening tag");
}

}  // namespace
}  // namespace qmeter::quality
