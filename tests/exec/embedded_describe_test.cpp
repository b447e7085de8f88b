// The embedded backend's describe() is stored with the run as JSON and carries the model's
// description, which names the model path: a path with quotes and backslashes must survive a JSON
// parser (the adapter once built this JSON with fmt and no escaping).
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "embedded_backend.h"
#include "qmeter/backend/backend.h"
#include "test_support.h"

namespace qmeter::exec {
namespace {

TEST(EmbeddedBackend, DescribeIsValidJsonWhenTheModelPathHasQuotesAndBackslashes) {
  QMETER_REQUIRE_SHARED_DATA(model, "models/stories260K/stories260K.bin");
  QMETER_REQUIRE_SHARED_DATA(tokenizer, "models/stories260K/tok512.bin");
  const std::filesystem::path dir =
      std::filesystem::path(qmeter::testing::test_output_dir("embedded_describe")) / "say \"hi\" \\ there";
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(model, dir / "stories260K.bin");
  std::filesystem::copy_file(tokenizer, dir / "tok512.bin");
  register_embedded_backend();
  spec::BackendSpec s;
  s.kind = "embedded";
  s.options = {{"threads", "1"}};
  auto b = backend::make_backend(s);
  backend::RunContext c;
  c.run_id = "r1";
  c.model_name = "stories";
  c.model_path = (dir / "stories260K.bin").string();
  c.method = "fp32";
  b->start(c);
  const std::string described = b->describe();
  b->stop();
  const auto j = nlohmann::json::parse(described);
  EXPECT_EQ(j["kind"], "embedded");
  EXPECT_NE(j["model"].get<std::string>().find(c.model_path), std::string::npos) << described;
}

}  // namespace
}  // namespace qmeter::exec
