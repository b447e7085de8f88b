// A study spec's method entry takes kv-cache-dtype (combinable with any method): the embedded
// backend serves with that KV cache, and a bad value is refused at its spec line before any run.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>

#include "qmeter/core/paths.h"
#include "qmeter/store/store.h"
#include "run_qmeter.h"
#include "test_support.h"

using namespace qmeter;

TEST(StudyKvCache, MethodEntryChoosesTheKvCacheDtype) {
  QMETER_REQUIRE_SHARED_DATA(model_path, "models/stories260K/stories260K.bin");
  QMETER_REQUIRE_SHARED_DATA(val, "eval/tinystories_val.txt");
  auto dir = qmeter::testing::test_output_dir("study_kv_cache");
  std::ofstream(dir + "/s.yaml") << "study: kv\n"
                                    "models: [{name: stories, path: \"" + model_path + "\"}]\n"
                                    "methods: [fp32, {name: fp32, kv-cache-dtype: int8}, {name: w8a16, kv-cache-dtype: fp8}]\n"
                                    "backend: {kind: embedded, options: {threads: 1}}\n"
                                    "workloads: [{name: w, input_len: 8, output_len: 8, num_prompts: 4, rates: [50]}]\n"
                                    "quality:\n"
                                    "  - {task: \"perplexity:" + val + "\", limit: 8}\n"
                                    "energy: {source: none}\n";
  ASSERT_EQ(qmeter::testing::run_qmeter({"run", dir + "/s.yaml", "--db", dir + "/r.db"}, dir + "/log.txt", 600), 0)
      << read_file(dir + "/log.txt");
  auto db = store::Store::open(dir + "/r.db");
  ASSERT_EQ(db->runs().size(), 3u);
  // method label (options included, in the registry's spelling: kv-cache-dtype is stored as
  // kv_cache_dtype) -> perplexity
  std::map<std::string, double> ppl;
  for (const auto& r : db->runs()) {
    EXPECT_EQ(r.status, store::RunStatus::kComplete) << r.error;
    for (const auto& q : db->quality_results(r.id))
      if (q.metric == "perplexity") ppl[r.method] = q.value;
  }
  ASSERT_EQ(ppl.size(), 3u) << read_file(dir + "/log.txt");
  // The int8 KV cache changes the figure (so it is in use) by well under 1% (kv_quant_test.cpp
  // measures +0.2% on 60 paragraphs).
  EXPECT_NE(ppl["fp32(kv_cache_dtype=int8)"], ppl["fp32"]);
  EXPECT_NEAR(ppl["fp32(kv_cache_dtype=int8)"] / ppl["fp32"], 1.0, 0.01);
  EXPECT_TRUE(std::isfinite(ppl["w8a16(kv_cache_dtype=fp8)"]));
}

TEST(StudyKvCache, BadKvCacheDtypeIsRefusedAtItsLine) {
  QMETER_REQUIRE_SHARED_DATA(model_path, "models/stories260K/stories260K.bin");
  auto dir = qmeter::testing::test_output_dir("study_kv_cache_bad");
  std::ofstream(dir + "/s.yaml") << "study: kv\n"
                                    "models: [{name: s, path: \"" + model_path + "\"}]\n"
                                    "methods:\n"
                                    "  - fp32\n"
                                    "  - {name: gptq, kv-cache-dtype: int4}\n"
                                    "backend: {kind: embedded}\n"
                                    "workloads: [{name: w, num_prompts: 2, rates: [1]}]\n";
  EXPECT_EQ(qmeter::testing::run_qmeter({"run", dir + "/s.yaml", "--db", dir + "/r.db"}, dir + "/log.txt", 120), 2);
  const std::string log = read_file(dir + "/log.txt");
  EXPECT_NE(log.find("s.yaml:5:"), std::string::npos) << log;
  EXPECT_NE(log.find("s.yaml:5:34: methods[1].kv_cache_dtype: 'int4' is not one of f32, int8, fp8"), std::string::npos) << log;
}
