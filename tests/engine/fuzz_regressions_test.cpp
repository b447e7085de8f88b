// Model files the loader fuzz targets (fuzz/fuzz_hf_folder.cpp, fuzz_gguf.cpp, fuzz_llama2c.cpp)
// found: each is now a qmeter::Error naming the file, not an escaped nlohmann exception or UB.
#include <gtest/gtest.h>

#include <fstream>

#include "qmeter/core/error.h"
#include "qmeter/engine/model.h"
#include "test_support.h"

namespace qmeter::engine {
namespace {

std::string hf_error(const std::string& test, const std::string& config_json) {
  const std::string dir = qmeter::testing::test_output_dir("engine_fuzz_" + test);
  std::ofstream(dir + "/config.json") << config_json;
  std::ofstream(dir + "/model.safetensors") << std::string(16, '\0');
  try {
    (void)load_hf_model(dir, {});
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a qmeter::Error: " << e.what();
  }
  return "";
}

// "model_type": 10000.0 escaped as nlohmann type_error 302 ("type must be string, but is number").
TEST(LoaderFuzzRegressions, ConfigFieldsOfTheWrongTypeNameTheConfigFile) {
  for (const char* config : {R"({"model_type": 10000.0, "hidden_size": 8})", R"({"architectures": [5]})"}) {
    const std::string msg = hf_error("config_types", config);
    EXPECT_NE(msg.find("config.json"), std::string::npos) << config << " -> " << msg;
  }
}

}  // namespace
}  // namespace qmeter::engine
