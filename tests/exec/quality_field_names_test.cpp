// A quality option the task library refuses at run time is named by the spec's field
// (quality[0].max_length), not by the CLI flag that sets it in `qmeter eval` (--max-length).
#include <gtest/gtest.h>

#include <fstream>

#include "qmeter/core/paths.h"
#include "qmeter/store/store.h"
#include "run_qmeter.h"
#include "test_support.h"

using namespace qmeter;

TEST(StudyQualityFieldNames, ALibraryErrorNamesTheSpecField) {
  QMETER_REQUIRE_SHARED_DATA(model_path, "models/stories260K/stories260K.bin");
  QMETER_REQUIRE_SHARED_DATA(val, "eval/tinystories_val.txt");
  auto dir = qmeter::testing::test_output_dir("study_quality_field_names");
  // max_length 1 passes the parse-time range (0 = the context) but no window of 1 token can be scored.
  std::ofstream(dir + "/s.yaml") << "study: q\n"
                                    "models: [{name: stories, path: \"" + model_path + "\"}]\n"
                                    "methods: [fp32]\n"
                                    "backend: {kind: embedded, options: {threads: 1}}\n"
                                    "workloads: [{name: w, input_len: 8, output_len: 8, num_prompts: 2, rates: [50]}]\n"
                                    "quality:\n"
                                    "  - {task: \"perplexity:" + val + "\", limit: 2, max_length: 1}\n"
                                    "energy: {source: none}\n";
  ASSERT_EQ(qmeter::testing::run_qmeter({"run", dir + "/s.yaml", "--db", dir + "/r.db"}, dir + "/log.txt", 600), 0)
      << read_file(dir + "/log.txt");
  auto db = store::Store::open(dir + "/r.db");
  ASSERT_EQ(db->runs().size(), 1u);
  const auto errors = db->quality_errors(db->runs()[0].id);
  ASSERT_EQ(errors.size(), 1u) << read_file(dir + "/log.txt");
  EXPECT_EQ(errors[0].error, "quality[0].max_length 1: too short (at least 2 tokens)");
  EXPECT_EQ(errors[0].error.find("--"), std::string::npos);
}

// The same for a workload: the dataset library names the spec's fields, not --num-prompts.
TEST(StudyQualityFieldNames, AWorkloadErrorNamesTheSpecFields) {
  QMETER_REQUIRE_SHARED_DATA(model_path, "models/stories260K/stories260K.bin");
  auto dir = qmeter::testing::test_output_dir("study_workload_field_names");
  std::ofstream(dir + "/s.yaml") << "study: q\n"
                                    "models: [{name: stories, path: \"" + model_path + "\"}]\n"
                                    "methods: [fp32]\n"
                                    "backend: {kind: embedded, options: {threads: 1}}\n"
                                    "workloads: [{name: w, dataset: prefix, num_prefixes: 3, prefix_len: 8, input_len: 4,\n"
                                    "             output_len: 4, num_prompts: 10, rates: [50]}]\n"
                                    "energy: {source: none}\n";
  qmeter::testing::run_qmeter({"run", dir + "/s.yaml", "--db", dir + "/r.db"}, dir + "/log.txt", 600);
  auto db = store::Store::open(dir + "/r.db");
  ASSERT_EQ(db->runs().size(), 1u) << read_file(dir + "/log.txt");
  const std::string error = db->runs()[0].error;
  EXPECT_NE(error.find("workloads[0].num_prompts 10 must be a multiple of workloads[0].num_prefixes 3"), std::string::npos)
      << error;
  EXPECT_EQ(error.find("--"), std::string::npos) << error;
}
