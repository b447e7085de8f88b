// The embedded backend's describe() is stored with the run as JSON and carries the model's
// description, which names the model path: a path with quotes and backslashes must survive a JSON
// parser (the adapter once built this JSON with fmt and no escaping).
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
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

// A caller that builds the backend without the spec parser (a library user) gets the same checks
// from the options' one table, before any model is loaded.
TEST(EmbeddedBackend, OptionsAreCheckedAgainstTheirTableAtStart) {
  register_embedded_backend();
  auto start_error = [](std::map<std::string, std::string> options) {
    spec::BackendSpec s;
    s.kind = "embedded";
    s.options = std::move(options);
    auto b = backend::make_backend(s);
    backend::RunContext c;
    c.run_id = "r1";
    c.model_name = "m";
    c.model_path = "synthetic:tiny";
    c.method = "fp32";
    try {
      b->start(c);
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    b->stop();
    return std::string();
  };
  EXPECT_NE(start_error({{"max_seqs", "2"}}).find("backend.options.max_seqs"), std::string::npos);
  EXPECT_NE(start_error({{"max_seqs", "2"}}).find("unknown"), std::string::npos);
  EXPECT_NE(start_error({{"threads", "0"}}).find("backend.options.threads: 0 is below the minimum 1"), std::string::npos)
      << start_error({{"threads", "0"}});
  EXPECT_NE(start_error({{"kv-cache-mb", "lots"}}).find("backend.options.kv_cache_mb: 'lots' is not a number"),
            std::string::npos)
      << start_error({{"kv-cache-mb", "lots"}});
  EXPECT_EQ(start_error({{"threads", "1"}, {"kv-cache-mb", "8"}}), "");
}

}  // namespace
}  // namespace qmeter::exec
