// `qmeter serve` reports its model's chat template on GET /props (llama-server's field), and
// `--apply-chat-template` through it scores exactly what the same template given locally scores.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "qmeter/client/http_call.h"
#include "qmeter/engine/model.h"
#include "qmeter/quality/eval.h"
#include "qmeter/server/inference_server.h"
#include "test_support.h"

namespace qmeter::quality {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const char* kTemplate =
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}";

TEST(ServeProps, TheModelsChatTemplateIsServedAndUsedByApplyChatTemplate) {
  QMETER_REQUIRE_SHARED_DATA(bin, "models/stories260K/stories260K.bin");
  const std::string dir = qmeter::testing::test_output_dir("quality_serve_props");
  // The shared model with a tokenizer_config.json beside it (links: the data is not copied).
  for (const char* name : {"stories260K.bin", "tok512.bin"}) {
    fs::remove(fs::path(dir) / name);
    fs::create_symlink(fs::path(bin).parent_path() / name, fs::path(dir) / name);
  }
  const std::string cfg = dir + "/tokenizer_config.json";
  std::ofstream(cfg) << json{{"chat_template", kTemplate}}.dump();
  const std::string model_path = dir + "/stories260K.bin";
  std::shared_ptr<engine::Model> model(engine::load_model(model_path).release());
  server::ServeOptions so;
  so.model = model_path;
  so.port = 0;
  so.served_model_name = "stories";
  server::InferenceServer srv(so, model);
  srv.start();
  const std::string url = srv.base_url();

  client::HttpCaller http("", 30);
  const auto props = http.get(url + "/props");
  ASSERT_TRUE(props.ok()) << props.status << " " << props.body;
  EXPECT_EQ(json::parse(props.body)["chat_template"], kTemplate);

  const std::string test = dir + "/mmlu_test.jsonl";
  std::ofstream(test) << R"({"subject": "anatomy", "question": "Which one?", "choices": ["a", "b", "c", "d"], "answer": "B"})"
                      << "\n";
  auto scorer = make_server_scorer({url, "stories", "", 60});
  auto logliks = [&](bool chat, const std::string& local) {
    EvalOptions o;
    o.num_fewshot = 0;
    o.apply_chat_template = chat;
    o.chat_template_path = local;
    o.capabilities = scorer->probe_capabilities();
    const auto r = run_task(parse_task_spec("mmlu:" + test), *scorer, o);
    return json::parse(r.items.at(0).json)["loglikelihoods"].get<std::vector<double>>();
  };
  const auto from_server = logliks(true, "");
  EXPECT_EQ(from_server, logliks(true, cfg));  // the same prompt, token for token
  EXPECT_NE(from_server, logliks(false, ""));  // and not the plain one
}

}  // namespace
}  // namespace qmeter::quality
