// Options checked at parse time against their owners' tables (KnownNames): method options,
// embedded-backend options and quality options, each error at the option's own file:line:column
// with the spec field; `group-size` and `group_size` are one option and give one run id.
#include <gtest/gtest.h>

#include "qmeter/core/error.h"
#include "qmeter/spec/study_spec.h"

using namespace qmeter;
using namespace qmeter::spec;

namespace {

// Small tables written here, so the expected messages are known exactly (the real ones are the
// quant registry's, the quality tasks' and the embedded backend's: tests/exec/spec_options_test).
KnownNames known() {
  KnownNames k{{"fp32", "gptq"}, {"perplexity"}};
  k.method_option_schema = {OptionSpec::integer("bits", "", "weight bits", 2, 8),
                            OptionSpec::integer("group_size", "128", "group", 32, 4096, 32),
                            OptionSpec::choice("kv_cache_dtype", "f32", {"f32", "int8"}, "kv")};
  k.backend_option_schema = {OptionSpec::integer("threads", "", "threads", 1)};
  k.quality_option_schema = {OptionSpec::integer("concurrency", "4", "in flight", 1),
                             OptionSpec::boolean("apply_chat_template", "chat")};
  // A combination the method refuses, named by its key (as quant::parse_options does).
  k.method_options = [](const std::string& method, const std::map<std::string, std::string>& options) {
    if (method == "fp32" && options.count("group_size")) throw OptionError({}, "group_size", "fp32 has no groups");
  };
  return k;
}

std::string spec_with(const std::string& methods, const std::string& backend_options = "{threads: 1}",
                      const std::string& quality = "") {
  return "study: s\n"                                               // 1
         "models: [{name: m, path: \"synthetic:tiny\"}]\n"          // 2
         "backend: {kind: embedded, options: " + backend_options + "}\n"  // 3
         "methods:\n"                                               // 4
         "  - fp32\n"                                               // 5
         "  - " + methods + "\n"                                    // 6
         "workloads: [{name: w, num_prompts: 2, rates: [1]}]\n" +   // 7
         quality;                                                   // 8
}

std::string error_of(const std::string& text) {
  try {
    parse_study_spec_text(text, "s.yaml", known());
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(SpecOptionTables, AMethodOptionOfTheWrongTypeIsRefusedAtItsValue) {
  //                    col 1: "  - {name: gptq, bits: four}": 'four' starts at column 24
  EXPECT_EQ(error_of(spec_with("{name: gptq, bits: four}")), "s.yaml:6:24: methods[1].bits: 'four' is not an integer");
  EXPECT_EQ(error_of(spec_with("{name: gptq, group-size: 48}")),
            "s.yaml:6:30: methods[1].group_size: 48 is not a multiple of 32");
  EXPECT_EQ(error_of(spec_with("{name: gptq, kv_cache_dtype: int4}")),
            "s.yaml:6:34: methods[1].kv_cache_dtype: 'int4' is not one of f32, int8");
  EXPECT_EQ(error_of(spec_with("{name: gptq, bitz: 4}")),
            "s.yaml:6:18: methods[1].bitz: unknown quantization option 'bitz' (known: bits, group_size, kv_cache_dtype)");
  // A combination the method refuses (the registry's check) is reported at that option too.
  EXPECT_EQ(error_of(spec_with("{name: fp32, group_size: 64}")), "s.yaml:6:30: methods[1].group_size: fp32 has no groups");
  EXPECT_EQ(error_of(spec_with("{name: gptq, group-size: 64, group_size: 64}")),
            "s.yaml:6:34: methods[1].group_size: given twice ('group_size' and its other spelling)");
}

TEST(SpecOptionTables, ABackendOptionOutOfRangeIsRefusedAtItsValue) {
  EXPECT_EQ(error_of(spec_with("gptq", "{threads: 0}")),
            "s.yaml:3:46: backend.options.threads: 0 is below the minimum 1");
  EXPECT_EQ(error_of(spec_with("gptq", "{threads: 2x}")),
            "s.yaml:3:46: backend.options.threads: '2x' is not an integer");
  EXPECT_EQ(error_of(spec_with("gptq", "{max_seqs: 2}")),
            "s.yaml:3:37: backend.options.max_seqs: unknown backend option 'max_seqs' (known: threads)");
}

// A quality option wrong in a spec names the spec's field, never a CLI flag (--concurrency).
TEST(SpecOptionTables, AQualityOptionIsCheckedAtParseTimeAndNamedByItsField) {
  const std::string err = error_of(spec_with("gptq", "{threads: 1}", "quality:\n  - {task: perplexity, concurrency: 0}\n"));
  EXPECT_EQ(err, "s.yaml:9:37: quality[0].concurrency: 0 is below the minimum 1");
  EXPECT_EQ(err.find("--"), std::string::npos) << err;
  EXPECT_EQ(error_of(spec_with("gptq", "{threads: 1}", "quality:\n  - {task: perplexity, apply_chat_template: maybe}\n")),
            "s.yaml:9:45: quality[0].apply_chat_template: 'maybe' is not true or false");
}

// Either spelling of a method option (or of a backend option) is one option: stored in the
// table's spelling, so both give the same run, with the same id.
TEST(SpecOptionTables, BothSpellingsGiveTheSameRunId) {
  const auto dash = expand_runs(parse_study_spec_text(spec_with("{name: gptq, group-size: 64}"), "s.yaml", known()));
  const auto underscore = expand_runs(parse_study_spec_text(spec_with("{name: gptq, group_size: 64}"), "s.yaml", known()));
  ASSERT_EQ(dash.size(), 2u);
  ASSERT_EQ(underscore.size(), 2u);
  EXPECT_EQ(dash[1].id, underscore[1].id);
  EXPECT_EQ(dash[1].method.options, (std::map<std::string, std::string>{{"group_size", "64"}}));
  // Without the tables (KnownNames empty) the embedded backend's keys are normalized all the same.
  const auto plain = expand_runs(parse_study_spec_text(spec_with("{name: gptq, group-size: 64}"), "s.yaml"));
  EXPECT_EQ(plain[1].id, underscore[1].id);
}

// A command backend's method options are its own placeholders ({opt.NAME}): kept as written.
TEST(SpecOptionTables, ACommandBackendKeepsItsOptionsAsWritten) {
  const std::string text = "study: s\n"
                           "models: [{name: m, path: org/model}]\n"
                           "backend: {kind: command, argv: [server, --q, \"{opt.quant-mode}\"]}\n"
                           "methods: [{name: awq, quant-mode: awq_marlin}]\n"
                           "workloads: [{name: w, num_prompts: 2, rates: [1]}]\n";
  const auto s = parse_study_spec_text(text, "s.yaml", known());
  EXPECT_EQ(s.methods[0].options, (std::map<std::string, std::string>{{"quant-mode", "awq_marlin"}}));
}
