// --apply-chat-template: where the template comes from (tokenizer_config.json, a model folder, a
// GGUF file written by qmeter's own writer, a template file), and the exact prompts lm-eval's
// --apply_chat_template builds for GSM8K and the log-likelihood tasks: the scripted server answers
// only the prompts it was given, so any other string fails the task.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "qmeter/core/error.h"
#include "qmeter/engine/gguf_writer.h"
#include "qmeter/engine/model.h"
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
const char* const kChatMlSystem = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n";

// meta-llama/Meta-Llama-3-8B-Instruct
const char* const kLlama3 =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% "
    "set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

std::string header(const std::string& role) { return "<|start_header_id|>" + role + "<|end_header_id|>\n\n"; }

TEST(ChatTemplate, LoadsFromTokenizerConfigFolderAndTemplateFile) {
  const auto dir = qmeter::testing::test_output_dir("quality_chat_template");
  // Special tokens as plain strings or as AddedToken objects; a list of named templates.
  write_file(dir + "/tokenizer_config.json",
             json{{"chat_template", json::array({{{"name", "tool_use"}, {"template", "x"}}, {{"name", "default"}, {"template", kLlama3}}})},
                  {"bos_token", {{"content", "<|begin_of_text|>"}, {"lstrip", false}}},
                  {"eos_token", "<|eot_id|>"}}
                 .dump());
  const std::vector<ChatMessage> messages = {{"user", " Hi "}};
  const std::string rendered = "<|begin_of_text|>" + header("user") + "Hi<|eot_id|>" + header("assistant");
  for (const auto& path : {dir + "/tokenizer_config.json", dir}) {
    const auto t = ChatTemplate::load(path);
    EXPECT_EQ(t.bos_token(), "<|begin_of_text|>");
    EXPECT_EQ(t.eos_token(), "<|eot_id|>");
    EXPECT_EQ(t.render(messages, true), rendered);
    EXPECT_EQ(t.prompt(messages, true), rendered.substr(std::string("<|begin_of_text|>").size()));
  }
  const auto file = ChatTemplate::load(write_file(dir + "/chatml.jinja", kChatMl));
  EXPECT_EQ(file.render(messages, false), std::string(kChatMlSystem) + "<|im_start|>user\n Hi <|im_end|>\n");
  // Errors name the file (and, for the template, the line).
  try {
    ChatTemplate::load(write_file(dir + "/bad.jinja", "{% for m in messages %}\n{{ m.content | nope }}{% endfor %}"));
    ADD_FAILURE() << "a template with an unknown filter was accepted";
  } catch (const UsageError& e) {
    EXPECT_EQ(std::string(e.what()), dir + "/bad.jinja: template line 2: unknown filter 'nope'");
  }
  EXPECT_THROW(ChatTemplate::load(write_file(dir + "/none/tokenizer_config.json", "{}")), UsageError);
  EXPECT_THROW(ChatTemplate::load(write_file(dir + "/model.bin", std::string("\x01\0\0\0weights", 11))), UsageError);
}

TEST(ChatTemplate, GgufMetadataCarriesTheTemplateAndSpecialTokens) {
  auto model = engine::load_model("synthetic:tiny:f32:1", {});
  engine::TokenizerVocab vocab;
  vocab.model = "llama";
  for (int i = 0; i < model->config.vocab_size; ++i) {
    vocab.tokens.push_back(i == 1 ? "<|begin_of_text|>" : i == 2 ? "<|eot_id|>" : "t" + std::to_string(i));
    vocab.scores.push_back(0);
    vocab.token_types.push_back(i == 1 || i == 2 ? 3 : 1);
  }
  vocab.bos_id = 1;
  vocab.eos_id = 2;
  engine::GgufWriteOptions o;
  o.vocab = &vocab;
  o.extra["tokenizer.chat_template"] = kLlama3;
  const auto dir = qmeter::testing::test_output_dir("quality_chat_gguf");
  engine::write_gguf_model(*model, dir + "/chat.gguf", o);
  const auto t = ChatTemplate::load(dir + "/chat.gguf");
  EXPECT_EQ(t.bos_token(), "<|begin_of_text|>");
  EXPECT_EQ(t.eos_token(), "<|eot_id|>");
  EXPECT_EQ(t.where(), dir + "/chat.gguf: tokenizer.chat_template");
  EXPECT_EQ(t.render({{"system", "S"}, {"user", "U"}}, true),
            "<|begin_of_text|>" + header("system") + "S<|eot_id|>" + header("user") + "U<|eot_id|>" + header("assistant"));
  // A GGUF without a template says so.
  engine::GgufWriteOptions plain;
  plain.vocab = &vocab;
  engine::write_gguf_model(*model, dir + "/plain.gguf", plain);
  try {
    ChatTemplate::load(dir + "/plain.gguf");
    ADD_FAILURE() << "a GGUF without a chat template was accepted";
  } catch (const UsageError& e) {
    EXPECT_EQ(std::string(e.what()), dir + "/plain.gguf: the GGUF file has no tokenizer.chat_template");
  }
}

TEST(ChatTemplate, Gsm8kPromptIsOneUserTurnOrMultiturn) {
  const auto dir = qmeter::testing::test_output_dir("quality_chat_gsm8k");
  const auto file = write_file(dir + "/g.jsonl", json{{"question", "shot"}, {"answer", "So 1.\n#### 1"}}.dump() + "\n" +
                                                     json{{"question", "q"}, {"answer", "#### 5"}}.dump() + "\n");
  Script s;
  ScriptedServer server(s);
  auto scorer = make_server_scorer({server.url(), "m", "", 30});
  EvalOptions o;
  o.num_fewshot = 1;
  o.apply_chat_template = true;
  // No local template: the server's chat endpoint renders lm-eval's default, one user turn.
  const auto r = run_task(parse_task_spec("gsm8k:" + file), *scorer, o);
  EXPECT_DOUBLE_EQ(r.find("exact_match_strict")->value, 1.0);
  ASSERT_EQ(s.chat_bodies.size(), 1u);
  EXPECT_EQ(s.chat_bodies[0]["messages"],
            json::array({{{"role", "user"}, {"content", "Question: shot\nAnswer: So 1.\n#### 1\n\nQuestion: q\nAnswer:"}}}));
  EXPECT_EQ(s.chat_bodies[0]["temperature"], 0);
  o.fewshot_as_multiturn = true;
  run_task(parse_task_spec("gsm8k:" + file), *scorer, o);
  ASSERT_EQ(s.chat_bodies.size(), 2u);
  EXPECT_EQ(s.chat_bodies[1]["messages"], json::array({{{"role", "user"}, {"content", "Question: shot\nAnswer:"}},
                                                       {{"role", "assistant"}, {"content", "So 1.\n#### 1"}},
                                                       {{"role", "user"}, {"content", "Question: q\nAnswer:"}}}));
  // With a local template the rendered prompt goes to /v1/completions instead.
  o.chat_template_path = write_file(dir + "/t.jinja", kChatMl);
  run_task(parse_task_spec("gsm8k:" + file), *scorer, o);
  ASSERT_FALSE(s.generate_bodies.empty());
  EXPECT_EQ(s.generate_bodies.back()["prompt"],
            std::string(kChatMlSystem) + "<|im_start|>user\nQuestion: shot\nAnswer:<|im_end|>\n<|im_start|>assistant\nSo 1.\n#### 1<|im_end|>\n"
            "<|im_start|>user\nQuestion: q\nAnswer:<|im_end|>\n<|im_start|>assistant\n");
  // A server without chat completions: gsm8k with the chat template and no local one is unsupported.
  Capabilities caps;
  caps.chat = {false, "/v1/chat/completions answered HTTP 404"};
  o.chat_template_path.clear();
  EXPECT_NE(unsupported_reason(parse_task_spec("gsm8k:" + file), o, caps), "");
}

// Scripts each (prompt, continuation) with a log-likelihood; the server errors on any other.
void script(Script& s, const std::string& context, const std::vector<std::pair<std::string, double>>& continuations) {
  for (const auto& [c, ll] : continuations) s.loglik[context + c] = {c.size(), ll};
}

TEST(ChatTemplate, LoglikelihoodTasksScoreTheRenderedPromptAsLmEvalBuildsIt) {
  const auto dir = qmeter::testing::test_output_dir("quality_chat_loglik");
  Script s;
  ScriptedServer server(s);
  auto scorer = make_server_scorer({server.url(), "m", "", 30});
  EvalOptions o;
  o.apply_chat_template = true;
  o.chat_template_path = write_file(dir + "/chatml.jinja", kChatMl);

  // ARC (mc): the question is the user turn; the choices follow the assistant header with no " ".
  const auto arc = write_file(dir + "/arc.jsonl", json{{"prompt", "2+2?"}, {"choices", {"4", "5"}}, {"answer_idx", 0}}.dump() + "\n");
  const std::string arc_ctx = std::string(kChatMlSystem) + "<|im_start|>user\nQuestion: 2+2?\nAnswer:<|im_end|>\n<|im_start|>assistant\n";
  script(s, arc_ctx, {{"4", -0.5}, {"5", -2.0}});
  EXPECT_DOUBLE_EQ(run_task(parse_task_spec("mc:" + arc), *scorer, o).find("acc")->value, 1.0);
  EXPECT_EQ(s.echo_prompts, (std::vector<std::string>{arc_ctx + "4", arc_ctx + "5"}));

  // WinoGrande (lm-eval's multiple_input): each filled-in sentence its own user turn, the rest of
  // the sentence after it without the " " delimiter.
  s.echo_prompts.clear();
  const auto wino = write_file(dir + "/wino.jsonl", json{{"sentence", "The cup fell off the table because _ was wobbly."},
                                                         {"option1", "the cup"}, {"option2", "the table"}, {"answer", "2"}}.dump() + "\n");
  const std::string wino_ctx = std::string(kChatMlSystem) + "<|im_start|>user\nThe cup fell off the table because the ";
  script(s, wino_ctx + "cup<|im_end|>\n<|im_start|>assistant\n", {{"was wobbly.", -3.0}});
  script(s, wino_ctx + "table<|im_end|>\n<|im_start|>assistant\n", {{"was wobbly.", -1.0}});
  EXPECT_DOUBLE_EQ(run_task(parse_task_spec("winogrande:" + wino), *scorer, o).find("acc")->value, 1.0);

  // LAMBADA (a plain loglikelihood task in lm-eval): the target keeps its leading space.
  const auto lambada = write_file(dir + "/lambada.jsonl", json{{"text", "the cat sat"}}.dump() + "\n");
  script(s, std::string(kChatMlSystem) + "<|im_start|>user\nthe cat<|im_end|>\n<|im_start|>assistant\n", {{" sat", -0.75}});
  EXPECT_DOUBLE_EQ(run_task(parse_task_spec("lambada:" + lambada), *scorer, o).find("perplexity")->value, std::exp(0.75));

  // MMLU under Llama-3's template (BOS left to the tokenizer): the description is the system turn,
  // the few-shot block and the question one user turn (lm-eval's default) ...
  o.chat_template_path = write_file(dir + "/llama3.jinja", kLlama3);
  o.num_fewshot = 1;
  o.fewshot_split = write_file(dir + "/mmlu_dev.jsonl", json{{"subject", "astronomy"}, {"question", "Q1?"},
                                                             {"choices", {"a", "b", "c", "d"}}, {"answer", "B"}}.dump() + "\n");
  const auto mmlu = write_file(dir + "/mmlu_test.jsonl", json{{"subject", "astronomy"}, {"question", " Q2? "},
                                                              {"choices", {"w", "x", "y", "z"}}, {"answer", "C"}}.dump() + "\n");
  const std::string system =
      header("system") + "The following are multiple choice questions (with answers) about astronomy.<|eot_id|>";
  const std::string one_turn = system + header("user") +
                               "Q1?\nA. a\nB. b\nC. c\nD. d\nAnswer: B\n\nQ2?\nA. w\nB. x\nC. y\nD. z\nAnswer:<|eot_id|>" +
                               header("assistant");
  script(s, one_turn, {{"A", -4.0}, {"B", -3.0}, {"C", -0.5}, {"D", -2.0}});
  s.echo_prompts.clear();
  EXPECT_DOUBLE_EQ(run_task(parse_task_spec("mmlu:" + mmlu), *scorer, o).find("acc")->value, 1.0);
  EXPECT_EQ(s.echo_prompts.size(), 4u);
  for (const auto& p : s.echo_prompts) EXPECT_EQ(p.substr(0, one_turn.size()), one_turn);
  // ... or, with --fewshot-as-multiturn, the shot a user turn and its letter an assistant turn.
  o.fewshot_as_multiturn = true;
  const std::string multiturn = system + header("user") + "Q1?\nA. a\nB. b\nC. c\nD. d\nAnswer:<|eot_id|>" + header("assistant") +
                                "B<|eot_id|>" + header("user") + "Q2?\nA. w\nB. x\nC. y\nD. z\nAnswer:<|eot_id|>" +
                                header("assistant");
  script(s, multiturn, {{"A", -4.0}, {"B", -0.1}, {"C", -0.5}, {"D", -2.0}});
  EXPECT_DOUBLE_EQ(run_task(parse_task_spec("mmlu:" + mmlu), *scorer, o).find("acc")->value, 0.0);

  // Without a local template a log-likelihood task cannot be rendered (a chat endpoint gives no
  // prompt log-probabilities): a clear error.
  o.chat_template_path.clear();
  try {
    run_task(parse_task_spec("mc:" + arc), *scorer, o);
    ADD_FAILURE() << "mc ran without a template";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("task mc: --apply-chat-template on a log-likelihood task needs the model's template"),
              std::string::npos)
        << e.what();
  }
}

// In-process on a GGUF model carrying its template: the task renders through the template read
// from the file's metadata, exactly as through the same template given as a file, and unlike the
// plain prompt (stories260K written as GGUF by qmeter's writer with its tok512 vocabulary).
TEST(ChatTemplate, InProcessGgufModelScoresThroughItsOwnTemplate) {
  QMETER_REQUIRE_SHARED_DATA(model_path, "models/stories260K/stories260K.bin");
  QMETER_REQUIRE_SHARED_DATA(tok_path, "models/stories260K/tok512.bin");
  const auto dir = qmeter::testing::test_output_dir("quality_chat_inprocess");
  auto model = engine::load_model(model_path, {});
  const auto vocab = engine::llama2c_vocab_for_gguf(tok_path, model->config.vocab_size);
  engine::GgufWriteOptions w;
  w.vocab = &vocab;
  w.extra["tokenizer.chat_template"] = kChatMl;
  const std::string gguf = dir + "/stories260K-chat.gguf";
  engine::write_gguf_model(*model, gguf, w);
  auto scorer = make_engine_scorer(engine::load_model(gguf, {}), 1);
  const auto arc = write_file(dir + "/arc.jsonl", json{{"prompt", "Who is Lily?"}, {"choices", {"a girl", "a dog"}}, {"answer_idx", 0}}.dump() + "\n");
  auto lls = [&](const EvalOptions& o) { return json::parse(run_task(parse_task_spec("mc:" + arc), *scorer, o).items.at(0).json)["loglikelihoods"]; };
  EvalOptions o;
  const auto plain = lls(o);
  o.apply_chat_template = true;
  o.chat_template_path = gguf;
  const auto from_gguf = lls(o);
  o.chat_template_path = write_file(dir + "/chatml.jinja", kChatMl);
  EXPECT_EQ(from_gguf, lls(o));
  EXPECT_NE(from_gguf, plain);
}

// Gemma's template rejects a system turn; lm-eval's HF model then renders again without it.
TEST(ChatTemplate, SystemTurnDroppedWhereTheTemplateRejectsIt) {
  const auto gemma = ChatTemplate::from_text(
      "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif "
      "%}{% for message in messages %}{{ '<start_of_turn>' + message['role'] + '\n' + message['content'] | trim + "
      "'<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}",
      "gemma", "<bos>", "<eos>");
  EXPECT_EQ(gemma.prompt({{"system", "S"}, {"user", "U"}}, true), "<start_of_turn>user\nU<end_of_turn>\n<start_of_turn>model\n");
}

}  // namespace
}  // namespace qmeter::quality
