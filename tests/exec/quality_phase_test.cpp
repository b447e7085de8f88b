// The quality phase of `qmeter run`: perplexity through the embedded server's API and the
// full-vocabulary KL to fp32, stored per task with items; a KL of fp32 to itself is exactly 0.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>

#include "qmeter/core/paths.h"
#include "qmeter/core/process.h"
#include "qmeter/store/store.h"
#include "run_qmeter.h"
#include "test_support.h"

using namespace qmeter;

namespace {

int run_qmeter(const std::vector<std::string>& args, const std::string& log) {
  return qmeter::testing::run_qmeter(args, log, 600);
}

}  // namespace

TEST(StudyQuality, PerplexityAndKlAreStoredPerRunWithItems) {
  QMETER_REQUIRE_SHARED_DATA(model_path, "models/stories260K/stories260K.bin");
  QMETER_REQUIRE_SHARED_DATA(val, "eval/tinystories_val.txt");
  auto dir = qmeter::testing::test_output_dir("study_quality");
  std::ofstream(dir + "/s.yaml") << "study: q\n"
                                    "models: [{name: stories, path: \"" + model_path + "\"}]\n"
                                    "methods: [fp32, w4a16-rtn]\n"
                                    "backend: {kind: embedded, options: {threads: 1}}\n"
                                    "workloads: [{name: w, input_len: 8, output_len: 8, num_prompts: 6, rates: [50]}]\n"
                                    "quality:\n"
                                    "  - {task: \"perplexity:" + val + "\", limit: 6}\n"
                                    "  - {task: kl, baseline: fp32, text: \"" + val + "\", limit: 3}\n"
                                    "energy: {source: none}\n";
  ASSERT_EQ(run_qmeter({"run", dir + "/s.yaml", "--db", dir + "/r.db", "--out", dir + "/out"}, dir + "/log.txt"), 0)
      << read_file(dir + "/log.txt");
  auto db = store::Store::open(dir + "/r.db");
  ASSERT_EQ(db->runs().size(), 2u);
  std::map<std::string, std::map<std::string, store::QualityResultRow>> by_method;  // method -> metric
  for (const auto& r : db->runs()) {
    EXPECT_EQ(r.status, store::RunStatus::kComplete) << r.error;
    for (const auto& q : db->quality_results(r.id)) by_method[r.method][q.metric] = q;
  }
  // 6 documents + 3 KL windows per run, one item row each.
  EXPECT_EQ(db->count_rows("quality_items"), 2 * (6 + 3));
  const auto& fp32 = by_method["fp32"];
  const auto& rtn = by_method["w4a16-rtn"];
  ASSERT_TRUE(fp32.count("perplexity") && fp32.count("kl_mean") && rtn.count("kl_mean")) << read_file(dir + "/log.txt");
  EXPECT_EQ(fp32.at("kl_mean").value, 0.0) << "fp32 against the fp32 baseline";
  EXPECT_EQ(fp32.at("top1_agreement").value, 1.0);
  EXPECT_EQ(fp32.at("full_vocabulary").value, 1.0);
  EXPECT_GT(rtn.at("kl_mean").value, 0.0);
  EXPECT_GT(rtn.at("perplexity").value, fp32.at("perplexity").value * 0.99);
  EXPECT_GT(fp32.at("perplexity").stderr_, 0.0);
  EXPECT_EQ(fp32.at("perplexity").n, 6);
  EXPECT_TRUE(std::isfinite(fp32.at("perplexity").value));
}

TEST(StudyQuality, UnknownQualityOptionsAndKlWithoutTextAreRefusedBeforeAnyRun) {
  QMETER_REQUIRE_SHARED_DATA(model_path, "models/stories260K/stories260K.bin");
  auto dir = qmeter::testing::test_output_dir("study_quality_bad");
  const std::string head = "study: q\nmodels: [{name: s, path: \"" + model_path +
                           "\"}]\nmethods: [fp32]\nbackend: {kind: embedded}\n"
                           "workloads: [{name: w, num_prompts: 2, rates: [1]}]\n";
  std::ofstream(dir + "/a.yaml") << head << "quality:\n  - {task: kl, baseline: fp32, limt: 3, text: x}\n";
  EXPECT_EQ(run_qmeter({"run", dir + "/a.yaml", "--db", dir + "/a.db"}, dir + "/a.log"), 2);
  EXPECT_NE(read_file(dir + "/a.log").find("a.yaml:7"), std::string::npos) << read_file(dir + "/a.log");
  EXPECT_NE(read_file(dir + "/a.log").find("unknown quality option 'limt'"), std::string::npos) << read_file(dir + "/a.log");
  std::ofstream(dir + "/b.yaml") << head << "quality:\n  - {task: kl, baseline: fp32}\n";
  EXPECT_EQ(run_qmeter({"run", dir + "/b.yaml", "--db", dir + "/b.db"}, dir + "/b.log"), 2);
  EXPECT_NE(read_file(dir + "/b.log").find("needs 'text'"), std::string::npos) << read_file(dir + "/b.log");
}

// A quality task that fails while scoring is stored as that task's error: the other task's
// results and every load point stay, the run completes, and `qmeter ls` says which task failed.
TEST(StudyQuality, AFailingTaskCostsNeitherTheOtherTasksNorTheLoadPoints) {
  QMETER_REQUIRE_SHARED_DATA(model_path, "models/stories260K/stories260K.bin");
  QMETER_REQUIRE_SHARED_DATA(val, "eval/tinystories_val.txt");
  auto dir = qmeter::testing::test_output_dir("study_quality_failing_task");
  std::ofstream(dir + "/broken.jsonl") << "{\"query\": \"no choices here\"\nthis line is not JSON\n";
  std::ofstream(dir + "/s.yaml") << "study: q\n"
                                    "models: [{name: stories, path: \"" + model_path + "\"}]\n"
                                    "methods: [fp32]\n"
                                    "backend: {kind: embedded, options: {threads: 1}}\n"
                                    "workloads: [{name: w, input_len: 8, output_len: 8, num_prompts: 6, rates: [50, 100]}]\n"
                                    "quality:\n"
                                    "  - {task: \"mc:" + dir + "/broken.jsonl\"}\n"
                                    "  - {task: \"perplexity:" + val + "\", limit: 4}\n"
                                    "energy: {source: none}\n";
  ASSERT_EQ(run_qmeter({"run", dir + "/s.yaml", "--db", dir + "/r.db", "--out", dir + "/out"}, dir + "/log.txt"), 0)
      << read_file(dir + "/log.txt");
  auto db = store::Store::open(dir + "/r.db");
  ASSERT_EQ(db->runs().size(), 1u);
  const auto run = db->runs()[0];
  EXPECT_EQ(run.status, store::RunStatus::kComplete) << run.error;
  EXPECT_EQ(db->load_points(run.id).size(), 2u);
  EXPECT_EQ(db->count_rows("requests"), 12);
  bool perplexity = false;
  for (const auto& q : db->quality_results(run.id)) perplexity = perplexity || q.metric == "perplexity";
  EXPECT_TRUE(perplexity);
  const auto errors = db->quality_errors(run.id);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].task, "mc:" + dir + "/broken.jsonl");
  EXPECT_EQ(errors[0].status, "failed");
  EXPECT_NE(errors[0].error.find("broken.jsonl"), std::string::npos) << errors[0].error;
  ASSERT_EQ(run_qmeter({"ls", "--db", dir + "/r.db"}, dir + "/ls.txt"), 0);
  EXPECT_NE(read_file(dir + "/ls.txt").find("mc FAILED"), std::string::npos) << read_file(dir + "/ls.txt");
  // The report lists it among its warnings.
  ASSERT_EQ(run_qmeter({"report", "--db", dir + "/r.db", "--output-html", dir + "/r.html"}, dir + "/report.txt"), 0)
      << read_file(dir + "/report.txt");
  EXPECT_NE(read_file(dir + "/r.html").find("quality task mc:"), std::string::npos);
}

// A server without prompt log-probabilities (the mock refusing "echo" with HTTP 500, as llama.cpp's
// llama-server does): the perplexity task is stored "unsupported" with the server's reason, the
// generation task (gsm8k) runs, every load point is measured and the run completes; `qmeter ls`
// shows the load points and the unsupported task.
TEST(StudyQuality, AServerWithoutEchoStoresAllLoadPointsAndMarksPerplexityUnsupported) {
  QMETER_REQUIRE_SHARED_DATA(val, "eval/tinystories_val.txt");
  auto dir = qmeter::testing::test_output_dir("study_quality_no_echo");
  std::ofstream(dir + "/gsm8k.jsonl") << "{\"question\": \"shot\", \"answer\": \"#### 1\"}\n"
                                         "{\"question\": \"q\", \"answer\": \"#### 5\"}\n";
  std::ofstream(dir + "/w.jsonl") << "{\"sentence\": \"A _ b.\", \"option1\": \"x\", \"option2\": \"y\", \"answer\": \"1\"}\n";
  std::ofstream(dir + "/s.yaml") << "study: q\n"
                                    "models: [{name: m, path: \"synthetic:tiny\"}]\n"
                                    "methods: [fp32]\n"
                                    "backend:\n  kind: command\n  argv: [" + qmeter::testing::qmeter_bin() +
                                    ", mock-server, --port, \"{port}\", --output-len, \"6\", --no-echo, --no-echo-status, \"500\"]\n"
                                    "  startup_timeout_s: 20\n"
                                    "workloads: [{name: w, input_len: 8, output_len: 6, num_prompts: 6, rates: [50, 100]}]\n"
                                    "quality:\n"
                                    "  - {task: \"perplexity:" + val + "\", limit: 4}\n"
                                    "  - {task: \"gsm8k:" + dir + "/gsm8k.jsonl\", num_fewshot: 1, max_gen_tokens: 6}\n"
                                    "  - {task: \"winogrande:" + dir + "/w.jsonl\", limit: 2}\n"
                                    "energy: {source: none}\n";
  ASSERT_EQ(run_qmeter({"run", dir + "/s.yaml", "--db", dir + "/r.db", "--out", dir + "/out"}, dir + "/log.txt"), 0)
      << read_file(dir + "/log.txt");
  auto db = store::Store::open(dir + "/r.db");
  ASSERT_EQ(db->runs().size(), 1u);
  const auto run = db->runs()[0];
  EXPECT_EQ(run.status, store::RunStatus::kComplete) << run.error;
  EXPECT_EQ(db->load_points(run.id).size(), 2u);
  EXPECT_EQ(db->count_rows("requests"), 12);
  const auto errors = db->quality_errors(run.id);
  ASSERT_EQ(errors.size(), 2u) << "perplexity and winogrande (a task a spec may list) need prompt log-probabilities";
  EXPECT_EQ(errors[0].task, std::string("perplexity:") + val);
  EXPECT_EQ(errors[1].task, "winogrande:" + dir + "/w.jsonl");
  for (const auto& e : errors) {
    EXPECT_EQ(e.status, "unsupported");
    EXPECT_NE(e.error.find("Unsupported param: echo"), std::string::npos) << e.error;
  }
  bool gsm8k = false;
  for (const auto& q : db->quality_results(run.id)) gsm8k = gsm8k || q.metric == "exact_match_flexible";
  EXPECT_TRUE(gsm8k) << "the generation task runs on a server without echo";
  ASSERT_EQ(run_qmeter({"ls", "--db", dir + "/r.db"}, dir + "/ls.txt"), 0);
  const std::string ls = read_file(dir + "/ls.txt");
  EXPECT_NE(ls.find("perplexity UNSUPPORTED"), std::string::npos) << ls;
  EXPECT_NE(ls.find("exact_match_flexible="), std::string::npos) << ls;
  EXPECT_NE(ls.find(" complete "), std::string::npos) << ls;
}
