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

namespace qmeter::engine {
namespace {

std::string tokenizer_error(const std::string& test, const std::string& tokenizer_json) {
  const std::string dir = qmeter::testing::test_output_dir("engine_fuzz_" + test);
  std::ofstream(dir + "/tokenizer.json") << tokenizer_json;
  try {
    auto tok = load_hf_tokenizer(dir + "/tokenizer.json");
    const auto ids = tok->encode("ab", true);
    for (int id : ids)
      if (id >= tok->vocab_size()) return "encode gave id " + std::to_string(id) + " >= vocab " + std::to_string(tok->vocab_size());
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a qmeter::Error: " << e.what();
  }
  return "";
}

// A post-processor template whose BOS id is past the vocabulary made every encode return it.
TEST(LoaderFuzzRegressions, TemplateTokenIdsOutsideTheVocabularyAreRefused) {
  const std::string msg = tokenizer_error(
      "template_id", R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": []},
        "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>"}}, {"Sequence": {"id": "A"}}],
                           "special_tokens": {"<s>": {"id": "<s>", "ids": [259]}}}})");
  EXPECT_NE(msg.find("special_tokens.<s>.ids[0]: token id 259 is not in the vocabulary"), std::string::npos) << msg;
}

// {"type": "Sequence", "normalizers": 5} indexed a number (nlohmann type_error).
TEST(LoaderFuzzRegressions, SequenceMembersThatAreNotArraysAreRefused) {
  const std::string msg = tokenizer_error(
      "sequence", R"({"model": {"type": "BPE", "vocab": {"a": 0}}, "normalizer": {"type": "Sequence", "normalizers": 5}})");
  EXPECT_NE(msg.find("normalizer.normalizers is not an array"), std::string::npos) << msg;
}

}  // namespace
}  // namespace qmeter::engine
