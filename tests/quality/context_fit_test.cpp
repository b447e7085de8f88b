// Prompts longer than a server's context are cut before they are sent (one scoring request per
// log-likelihood request, as lm-evaluation-harness cuts them), and a server's chat template is
// fetched from /props. The server here is a loopback one whose tokenizer is one character per
// token (id = the byte, BOS id 1 in front of text prompts), so every cut is known by hand.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <nlohmann/json.hpp>

#include "qmeter/core/error.h"
#include "qmeter/net/http_server.h"
#include "qmeter/quality/eval.h"
#include "qmeter/quality/scorer.h"
#include "test_support.h"

namespace qmeter::quality {
namespace {

using nlohmann::json;

struct CharServer {
  int context = 32;              // /v1/models max_model_len
  bool has_tokenize = true;
  std::string props_template;    // served on GET /props when not empty
  std::mutex mu;
  std::map<std::string, int> calls;  // "POST /tokenize" -> count
  int refused = 0;
  std::vector<json> scored;      // each echo request's prompt (a string or token ids)
  std::unique_ptr<net::HttpServer> server;

  CharServer() {
    server = std::make_unique<net::HttpServer>(net::HttpServerOptions{}, [this](const net::HttpRequest& r, const net::ResponseWriterPtr& w) {
      w->respond(handle(r));
    });
    server->start();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(server->port()); }
  void reset() {
    std::lock_guard lock(mu);
    calls.clear();
    refused = 0;
    scored.clear();
  }

  static std::string piece(int id) { return id == 1 ? "" : std::string(1, static_cast<char>(id)); }
  // Every token -1 except 'C' (-0.25): the choice " C" is the most likely.
  static double logprob(int id) { return id == 'C' ? -0.25 : -1.0; }

  net::HttpResponse handle(const net::HttpRequest& r) {
    std::lock_guard lock(mu);
    calls[r.method + " " + r.path]++;
    net::HttpResponse resp;
    auto fail = [&](int status, const std::string& msg) {
      resp.status = status;
      resp.body = json{{"error", {{"message", msg}}}}.dump();
      return resp;
    };
    if (r.path == "/v1/models") {
      resp.body = json{{"data", {{{"id", "m"}, {"max_model_len", context}}}}}.dump();
      return resp;
    }
    if (r.path == "/props") {
      if (props_template.empty()) return fail(404, "not found");
      resp.body = json{{"chat_template", props_template}, {"bos_token", "<s>"}, {"eos_token", "</s>"}, {"total_slots", 1}}.dump();
      return resp;
    }
    if (r.path == "/v1/chat/completions") {
      resp.body = json{{"choices", {{{"message", {{"role", "assistant"}, {"content", "x"}}}}}}}.dump();
      return resp;
    }
    const json body = json::parse(r.body);
    std::vector<int> ids;
    if (body["prompt"].is_string()) {
      if (r.path != "/tokenize" || body.value("add_special_tokens", true)) ids.push_back(1);
      for (unsigned char c : body["prompt"].get<std::string>()) ids.push_back(c);
    } else {
      ids = body["prompt"].get<std::vector<int>>();
    }
    if (r.path == "/tokenize") {
      if (!has_tokenize) return fail(404, "not found");
      resp.body = json{{"tokens", ids}}.dump();
      return resp;
    }
    if (r.path != "/v1/completions") return fail(404, "not found");
    if (static_cast<int>(ids.size()) + body.value("max_tokens", 16) > context) {
      ++refused;
      return fail(400, "the prompt has " + std::to_string(ids.size()) + " tokens; the context length is " + std::to_string(context));
    }
    scored.push_back(body["prompt"]);
    json tokens = json::array(), lps = json::array(), tops = json::array();
    for (std::size_t i = 0; i < ids.size(); ++i) {
      tokens.push_back(piece(ids[i]));
      lps.push_back(i == 0 ? json(nullptr) : json(logprob(ids[i])));
      tops.push_back(i == 0 ? json(nullptr) : json{{piece(ids[i]), logprob(ids[i])}});
    }
    tokens.push_back("!");
    lps.push_back(-0.5);
    tops.push_back(json::object());
    resp.body = json{{"choices", {{{"text", "!"}, {"logprobs", {{"tokens", tokens}, {"token_logprobs", lps}, {"top_logprobs", tops}}}}}},
                     {"usage", {{"prompt_tokens", ids.size()}, {"completion_tokens", 1}}}}
                    .dump();
    return resp;
  }
};

// One MMLU question (0-shot) whose prompt is longer than the 32-token context.
const char* kQuestion = R"({"subject": "abstract_algebra", "question": "Which one?", "choices": ["a", "b", "c", "d"], "answer": "C"})";
const std::string kContext =
    "The following are multiple choice questions (with answers) about abstract algebra.\n\n"
    "Which one?\nA. a\nB. b\nC. c\nD. d\nAnswer:";

TaskResult run_mmlu(CharServer& srv, const std::string& dir, EvalOptions o = {}, bool probe = true) {
  const std::string path = dir + "/mmlu_test.jsonl";
  std::ofstream(path) << kQuestion << "\n";
  auto scorer = make_server_scorer({srv.url(), "m", "", 30});
  if (probe) o.capabilities = scorer->probe_capabilities();
  o.num_fewshot = 0;
  srv.reset();
  return run_task(parse_task_spec("mmlu:" + path), *scorer, o);
}

std::vector<double> logliks(const TaskResult& r) {
  return json::parse(r.items.at(0).json)["loglikelihoods"].get<std::vector<double>>();
}

TEST(ContextFit, WithTokenizeEachRequestIsCutToTheLastTokensBeforeItIsSent) {
  CharServer srv;
  const auto r = run_mmlu(srv, qmeter::testing::test_output_dir("quality_context_fit_tokenize"));
  // Per choice: one /tokenize (cheap) and one scoring request; nothing refused; the context
  // length asked once.
  EXPECT_EQ(srv.refused, 0);
  EXPECT_EQ(srv.calls["POST /v1/completions"], 4);
  EXPECT_EQ(srv.calls["POST /tokenize"], 4);
  EXPECT_EQ(srv.calls["GET /v1/models"], 1);
  ASSERT_EQ(srv.scored.size(), 4u);
  std::set<std::vector<int>> sent;
  for (const auto& p : srv.scored) sent.insert(p.get<std::vector<int>>());
  for (const char* letter : {" A", " B", " C", " D"}) {
    // lm-eval's cut: (context + continuation tokens)[-max_length:], here the last 31 (one
    // position for the generated token): BOS and the head of the context gone.
    const std::string text = kContext + letter;
    std::vector<int> want;
    for (std::size_t i = text.size() - 31; i < text.size(); ++i) want.push_back(static_cast<unsigned char>(text[i]));
    EXPECT_TRUE(sent.count(want)) << letter;
  }
  // The continuation is scored whole: " C" = -1 - 0.25; the others -2.
  EXPECT_EQ(logliks(r), (std::vector<double>{-2, -2, -1.25, -2}));
}

TEST(ContextFit, WithoutTokenizeTheTextIsCutByBytesSoItSurelyFits) {
  CharServer srv;
  srv.has_tokenize = false;
  const auto r = run_mmlu(srv, qmeter::testing::test_output_dir("quality_context_fit_bytes"));
  EXPECT_EQ(srv.refused, 0);
  EXPECT_EQ(srv.calls["POST /v1/completions"], 4);
  EXPECT_EQ(srv.calls["POST /tokenize"], 0);
  std::set<std::string> sent;
  for (const auto& p : srv.scored) sent.insert(p.get<std::string>());
  // context 32 - 1 for the generated token - 2 (BOS, a dummy space): the last 29 bytes.
  for (const char* letter : {" A", " B", " C", " D"}) {
    const std::string text = kContext + letter;
    EXPECT_TRUE(sent.count(text.substr(text.size() - 29))) << letter;
  }
  EXPECT_EQ(logliks(r), (std::vector<double>{-2, -2, -1.25, -2}));
}

TEST(ContextFit, UnprobedCapabilitiesOnAServerWithoutTokenizeFallBackToTheByteCut) {
  CharServer srv;
  srv.has_tokenize = false;
  const auto r = run_mmlu(srv, qmeter::testing::test_output_dir("quality_context_fit_unprobed"), {}, false);
  EXPECT_EQ(srv.refused, 0);
  EXPECT_EQ(srv.calls["POST /v1/completions"], 4);
  EXPECT_EQ(logliks(r), (std::vector<double>{-2, -2, -1.25, -2}));
}

TEST(ContextFit, APromptThatFitsIsSentAsItIsWithoutTokenizing) {
  CharServer srv;
  srv.context = 200;
  run_mmlu(srv, qmeter::testing::test_output_dir("quality_context_fit_fits"));
  EXPECT_EQ(srv.calls["POST /v1/completions"], 4);
  EXPECT_EQ(srv.calls["POST /tokenize"], 0);
  for (const auto& p : srv.scored) EXPECT_TRUE(p.is_string() && p.get<std::string>().rfind(kContext, 0) == 0) << p.dump();
}

// A template in the shape of the Zephyr/TinyLlama ones, with the bos_token it writes first.
const char* kPropsTemplate =
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{{ eos_token }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}";

TEST(ServerChatTemplate, ApplyChatTemplateWithoutALocalOneUsesTheServersPropsTemplate) {
  CharServer srv;
  srv.context = 1000;
  srv.props_template = kPropsTemplate;
  EvalOptions o;
  o.apply_chat_template = true;
  const auto r = run_mmlu(srv, qmeter::testing::test_output_dir("quality_props_template"), o);
  EXPECT_EQ(srv.calls["POST /v1/completions"], 4);
  std::set<std::string> sent;
  for (const auto& p : srv.scored) sent.insert(p.get<std::string>());
  // lm-eval's chat rendering of MMLU: the description (with its "\n\n") as the system turn, the
  // question as the user's; the letters right after the generation prompt, without " "; the
  // template's leading bos_token left to the server's tokenizer (it adds BOS itself).
  const std::string context =
      "<|system|>\nThe following are multiple choice questions (with answers) about abstract algebra.\n\n</s>\n"
      "<|user|>\nWhich one?\nA. a\nB. b\nC. c\nD. d\nAnswer:</s>\n<|assistant|>\n";
  EXPECT_EQ(sent, (std::set<std::string>{context + "A", context + "B", context + "C", context + "D"}));
  EXPECT_EQ(logliks(r), (std::vector<double>{-1, -1, -0.25, -1}));
}

TEST(ServerChatTemplate, WithoutPropsTheLogLikelihoodTaskSaysWhereATemplateComesFrom) {
  CharServer srv;  // /props answers 404
  auto scorer = make_server_scorer({srv.url(), "m", "", 30});
  const auto caps = scorer->probe_capabilities();
  EXPECT_FALSE(caps.chat_template.supported);
  EXPECT_NE(caps.chat_template.reason.find("404"), std::string::npos) << caps.chat_template.reason;
  EvalOptions o;
  o.apply_chat_template = true;
  o.num_fewshot = 0;
  o.capabilities = caps;
  const std::string path = qmeter::testing::test_output_dir("quality_props_none") + "/mmlu_test.jsonl";
  std::ofstream(path) << kQuestion << "\n";
  try {
    run_task(parse_task_spec("mmlu:" + path), *scorer, o);
    FAIL() << "no template anywhere: expected a UsageError";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("--chat-template"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("/props"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace qmeter::quality
