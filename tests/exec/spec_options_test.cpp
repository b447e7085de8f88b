// The option tables `qmeter run` parses a spec with (exec::known_names(): the quantization
// registry's, the quality tasks', the embedded backend's): a wrong type or range in each place is
// refused at parse time with file:line:column and the spec field.
#include <gtest/gtest.h>

#include <fstream>

#include "qmeter/core/error.h"
#include "qmeter/exec/study_runner.h"
#include "test_support.h"

using namespace qmeter;

namespace {

std::string error_of(const std::string& text) {
  try {
    spec::parse_study_spec_text(text, "s.yaml", exec::known_names());
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

std::string spec_with(const std::string& method, const std::string& backend_options, const std::string& quality) {
  return "study: s\n"
         "models: [{name: m, path: \"synthetic:tiny\"}]\n"
         "backend: {kind: embedded, options: " + backend_options + "}\n"
         "methods: [" + method + "]\n"
         "workloads: [{name: w, num_prompts: 2, rates: [1]}]\n" + quality;
}

}  // namespace

TEST(SpecOptions, EachTableRefusesAWrongValueAtItsLine) {
  auto dir = qmeter::testing::test_output_dir("spec_options");
  std::ofstream(dir + "/t.txt") << "text\n";
  const std::string quality = "quality:\n  - {task: \"perplexity:" + dir + "/t.txt\", limit: 4}\n";
  EXPECT_EQ(error_of(spec_with("{name: awq, bits: 5}", "{threads: 1}", quality)),
            "s.yaml:4:29: methods[0].bits: 5: method awq supports 4");
  EXPECT_EQ(error_of(spec_with("{name: nf4, double-quant: maybe}", "{threads: 1}", quality)),
            "s.yaml:4:37: methods[0].double_quant: 'maybe' is not true or false");
  EXPECT_EQ(error_of(spec_with("{name: nf4, group_size: 64}", "{threads: 1}", quality)),
            "s.yaml:4:35: methods[0].group_size: applies to the group-wise methods (w4a16-rtn, w3a16-rtn, gptq, awq), "
            "not nf4 (its blocks are 64 weights)");
  EXPECT_EQ(error_of(spec_with("gptq", "{kv_cache_mb: lots}", quality)),
            "s.yaml:3:50: backend.options.kv_cache_mb: 'lots' is not a number");
  EXPECT_EQ(error_of(spec_with("gptq", "{enable_prefix_caching: yes}", quality)),
            "s.yaml:3:60: backend.options.enable_prefix_caching: 'yes' is not one of true, false");
  const std::string bad_quality = "quality:\n  - {task: \"perplexity:" + dir + "/t.txt\", top_logprobs: 50}\n";
  const std::string err = error_of(spec_with("gptq", "{threads: 1}", bad_quality));
  EXPECT_NE(err.find("s.yaml:7:"), std::string::npos) << err;
  EXPECT_NE(err.find("quality[0].top_logprobs: 50 must be at most 20"), std::string::npos) << err;
  EXPECT_EQ(error_of(spec_with("{name: gptq, group-size: 64}", "{threads: 1}", quality)), "");
}

// With the registry's table, `group-size` and `group_size` (and kv-cache-dtype / kv_cache_dtype)
// are one configuration: one run id.
TEST(SpecOptions, BothSpellingsOfARegistryOptionAreOneRun) {
  auto id_of = [](const std::string& method) {
    return spec::expand_runs(spec::parse_study_spec_text(spec_with(method, "{threads: 1}", ""), "s.yaml",
                                                         exec::known_names()))[0].id;
  };
  EXPECT_EQ(id_of("{name: gptq, group-size: 64, kv-cache-dtype: int8}"), id_of("{name: gptq, group_size: 64, kv_cache_dtype: int8}"));
  EXPECT_NE(id_of("{name: gptq, group_size: 64}"), id_of("{name: gptq, group_size: 32}"));
}

// Every option the quality phase reads is in the table the spec is checked against: a chat model's
// study may ask for the chat template with multi-turn few-shot (the phase reads both booleans).
TEST(SpecOptions, TheChatTemplateOptionsOfAQualityTaskAreAccepted) {
  auto dir = qmeter::testing::test_output_dir("spec_options_chat");
  std::ofstream(dir + "/t.jsonl") << "{}\n";
  const std::string quality = "quality:\n  - {task: \"mmlu:" + dir + "/t.jsonl\", apply_chat_template: true, "
                              "fewshot_as_multiturn: true, chat_template: " + dir + "/t.jsonl}\n";
  const auto s = spec::parse_study_spec_text(spec_with("gptq", "{threads: 1}", quality), "s.yaml", exec::known_names());
  const auto runs = spec::expand_runs(s);
  ASSERT_EQ(runs.size(), 1u);
  ASSERT_EQ(runs[0].quality.size(), 1u);
  EXPECT_EQ(runs[0].quality[0].options.at("fewshot_as_multiturn"), "true");
  EXPECT_EQ(runs[0].quality[0].options.at("apply_chat_template"), "true");
  const std::string err = error_of(spec_with("gptq", "{threads: 1}", "quality:\n  - {task: \"mmlu:" + dir +
                                                                      "/t.jsonl\", fewshot_as_multiturn: sometimes}\n"));
  EXPECT_EQ(err.rfind("s.yaml:7:", 0), 0u) << err;
  EXPECT_NE(err.find(": quality[0].fewshot_as_multiturn: 'sometimes' is not true or false"), std::string::npos) << err;
}
