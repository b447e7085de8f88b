// --model / --served-model-name through the binary (docs/CLI.md, vLLM's rule): requests name
// --served-model-name when given, else --model; the mock's request log shows what was sent.
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>

#include "client/mock_server_process.h"
#include "run_qmeter.h"
#include "test_support.h"

namespace {

std::map<std::string, int> models_in_log(const std::string& path) {
  std::map<std::string, int> count;
  for (const auto& line : qmeter::testing::read_lines(path)) ++count[nlohmann::json::parse(line).at("model").get<std::string>()];
  return count;
}

TEST(ModelNames, BenchRequestsNameTheServedModelNameElseTheModel) {
  const std::string dir = qmeter::testing::test_output_dir("cli_model_names");
  const std::string log = dir + "/requests.jsonl";
  qmeter::testing::MockServerProcess mock(dir, {"--request-log", log, "--served-model-name", "listed"});
  const std::vector<std::string> load = {"--num-prompts", "2", "--input-len", "4", "--output-len", "3"};
  auto bench = [&](std::vector<std::string> args, const std::string& name) {
    std::vector<std::string> argv = {"bench", "serve", "--base-url", mock.base_url()};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), load.begin(), load.end());
    return qmeter::testing::run_qmeter(argv, dir + "/" + name + ".log", 60);
  };
  EXPECT_EQ(bench({"--model", "path/to/model", "--served-model-name", "served-x"}, "both"), 0);
  EXPECT_EQ(bench({"--model", "model-only"}, "model"), 0);
  EXPECT_EQ(bench({"--served-model-name", "name-only"}, "name"), 0);
  EXPECT_EQ(bench({}, "neither"), 2);  // a usage error: the request needs a model name
  ASSERT_EQ(mock.stop(), 0);
  EXPECT_EQ(models_in_log(log), (std::map<std::string, int>{{"served-x", 2}, {"model-only", 2}, {"name-only", 2}}));
}

}  // namespace
