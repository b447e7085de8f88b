// End-to-end tests of `qmeter run`: the real binary, real servers on loopback, a real SQLite file.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <algorithm>
#include <set>
#include <sstream>

#include "qmeter/core/clock.h"
#include "qmeter/core/paths.h"
#include "qmeter/core/process.h"
#include "qmeter/store/store.h"
#include "run_qmeter.h"
#include "test_support.h"

using namespace qmeter;

namespace {

// A study against the mock server started by the command backend (exact, fast ground truth).
std::string mock_study(const std::string& name, int num_prompts, const std::string& extra_methods = "",
                       const std::string& energy = "{source: none}") {
  return "study: {name: " + name + "}\n"
         "models:\n  - {name: m, path: \"synthetic:tiny\"}\n"
         "methods: [{name: a, seed: 1}, {name: b, seed: 2}" + extra_methods + "]\n"
         "backend:\n  kind: command\n  argv: [" + qmeter::testing::qmeter_bin() +
         ", mock-server, --port, \"{port}\", --ttft-ms, \"5\", --itl-ms, \"1\"" +
         ", --output-len, \"8\", --seed, \"{opt.seed}\"]\n  startup_timeout_s: 20\n"
         "energy: " + energy + "\n"
         "workloads:\n  - {name: w, input_len: 16, output_len: 8, num_prompts: " + std::to_string(num_prompts) +
         ", rates: [40, 80]}\n"
         "slos:\n  fast: {ttft_ms: 500}\n";
}

int run_cli(const std::vector<std::string>& args, const std::string& log) {
  return qmeter::testing::run_qmeter(args, log, 300);
}

std::set<std::string> run_ids(const std::string& db_path) {
  auto db = store::Store::open(db_path);
  std::set<std::string> ids;
  for (const auto& r : db->runs()) ids.insert(r.id);
  return ids;
}

}  // namespace

TEST(Study, TwoMethodsTimesTwoRatesFillsEveryTable) {
  auto dir = qmeter::testing::test_output_dir("study_basic");
  std::ofstream(dir + "/s.yaml") << mock_study("basic", 30, "", "{source: model, idle_s: 0.3, interval_ms: 20}");
  ASSERT_EQ(run_cli({"run", dir + "/s.yaml", "--db", dir + "/r.db", "--out", dir + "/out"}, dir + "/log.txt"), 0)
      << read_file(dir + "/log.txt");
  auto db = store::Store::open(dir + "/r.db");
  EXPECT_EQ(db->count_rows("studies"), 1);
  EXPECT_EQ(db->count_rows("runs"), 2);
  EXPECT_EQ(db->count_rows("load_points"), 4);
  EXPECT_EQ(db->count_rows("requests"), 4 * 30);
  for (const auto& r : db->runs()) {
    EXPECT_EQ(r.status, store::RunStatus::kComplete);
    auto points = db->load_points(r.id);
    ASSERT_EQ(points.size(), 2u);
    EXPECT_EQ(points[0].target_value, 40);
    EXPECT_EQ(points[1].target_value, 80);
    for (const auto& p : points) {
      EXPECT_EQ(p.completed, 30);
      EXPECT_EQ(p.failed, 0);
      EXPECT_GT(p.p99_ttft_ms, 4.9);  // the mock's TTFT is 5 ms: nothing can be faster
      auto reqs = db->requests(p.id);
      ASSERT_EQ(reqs.size(), 30u);
      double attributed = 0;
      for (const auto& q : reqs) {
        EXPECT_EQ(q.output_tokens, 8);
        EXPECT_GT(q.energy_j, 0) << "every request gets its share of the modelled energy";
        attributed += q.energy_j;
      }
      // The CPU model labels its figures; per-token energy = attributed energy / output tokens.
      EXPECT_EQ(p.energy_source, "modelled");
      EXPECT_NEAR(p.energy_per_token_j, attributed / (30 * 8), 1e-9 + 1e-6 * attributed);
      EXPECT_GT(p.avg_power_w, 0);
    }
    EXPECT_NE(r.host_json.find("cpus"), std::string::npos);
  }
  // Idle baseline once per run (>= 0.3 s at 20 ms = ~15 samples) plus load samples per point.
  std::ostringstream csv;
  db->export_table("telemetry_samples", "csv", csv);
  const std::string t = csv.str();
  EXPECT_GE(std::count(t.begin(), t.end(), '\n'), 2 * 10);
  EXPECT_NE(t.find(",idle,model,"), std::string::npos);
  EXPECT_NE(t.find(",load,model,"), std::string::npos);
  EXPECT_EQ(db->integrity_check(), "ok");
  // A second invocation skips both runs and adds nothing.
  ASSERT_EQ(run_cli({"run", dir + "/s.yaml", "--db", dir + "/r.db", "--out", dir + "/out"}, dir + "/log2.txt"), 0);
  EXPECT_NE(read_file(dir + "/log2.txt").find("0 completed, 2 skipped"), std::string::npos);
  EXPECT_EQ(db->count_rows("requests"), 4 * 30);
}

TEST(Study, SigkillAtSeveralPointsThenResumeEqualsAnUninterruptedStudy) {
  auto dir = qmeter::testing::test_output_dir("study_kill");
  const std::string spec = mock_study("killed", 40, ", {name: c, seed: 3}");
  std::ofstream(dir + "/s.yaml") << spec;
  // The reference: the same study, uninterrupted.
  ASSERT_EQ(run_cli({"run", dir + "/s.yaml", "--db", dir + "/ref.db", "--out", dir + "/ref"}, dir + "/ref.txt"), 0);
  const auto reference = run_ids(dir + "/ref.db");
  ASSERT_EQ(reference.size(), 3u);

  for (double kill_after_s : {0.3, 0.9, 1.6, 2.4}) {
    SpawnOptions o;
    o.argv = {qmeter::testing::qmeter_bin(), "run", dir + "/s.yaml", "--db", dir + "/k.db", "--out", dir + "/k"};
    o.log_path = dir + "/kill.txt";
    auto p = ChildProcess::spawn(o);
    sleep_until_ns(steady_now_ns() + s_to_ns(kill_after_s));
    kill(-p.pid(), SIGKILL);  // qmeter's group; its mock servers lead their own and die with it
    p.wait(10);
    auto db = store::Store::open(dir + "/k.db");
    EXPECT_EQ(db->integrity_check(), "ok");
  }
  ASSERT_EQ(run_cli({"run", dir + "/s.yaml", "--db", dir + "/k.db", "--out", dir + "/k"}, dir + "/resume.txt"), 0)
      << read_file(dir + "/resume.txt");
  EXPECT_EQ(run_ids(dir + "/k.db"), reference);
  auto db = store::Store::open(dir + "/k.db");
  EXPECT_EQ(db->integrity_check(), "ok");
  EXPECT_EQ(db->count_rows("runs"), 3);
  EXPECT_EQ(db->count_rows("load_points"), 6);  // no duplicates after any number of redos
  EXPECT_EQ(db->count_rows("requests"), 6 * 40);
  for (const auto& r : db->runs()) EXPECT_EQ(r.status, store::RunStatus::kComplete);
}

TEST(Study, FailingBackendsAreRecordedAndTheStudyGoesOn) {
  auto dir = qmeter::testing::test_output_dir("study_failures");
  const std::string bin = qmeter::testing::qmeter_bin();
  // Method selects the server's behaviour through {method}: ok, exits at once, never ready, dies mid-load.
  std::string spec =
      "study: failures\n"
      "models: [{name: m, path: \"synthetic:tiny\"}]\n"
      "methods: [ok, exits, hangs, dies]\n"
      "backend:\n  kind: command\n  startup_timeout_s: 3\n"
      "  argv: [/bin/sh, -c, 'case $0 in ok) exec " + bin + " mock-server --port $1 --ttft-ms 1 --itl-ms 1;; "
      "exits) echo fatal: no GPU found; exit 1;; hangs) echo loading; exec sleep 60;; "
      "dies) echo serving; exec timeout -s KILL 1.5 " + bin + " mock-server --port $1 --ttft-ms 1 --itl-ms 200;; esac', "
      "\"{method}\", \"{port}\"]\n"
      "workloads: [{name: w, input_len: 8, output_len: 16, num_prompts: 20, rates: [10], timeout_s: 10}]\n";
  std::ofstream(dir + "/s.yaml") << spec;
  EXPECT_EQ(run_cli({"run", dir + "/s.yaml", "--db", dir + "/r.db", "--out", dir + "/out"}, dir + "/log.txt"), 3)
      << read_file(dir + "/log.txt");
  auto db = store::Store::open(dir + "/r.db");
  std::map<std::string, store::RunRow> by_method;
  for (const auto& r : db->runs()) by_method[r.method] = r;
  ASSERT_EQ(by_method.size(), 4u);
  EXPECT_EQ(by_method["ok"].status, store::RunStatus::kComplete);
  EXPECT_EQ(by_method["exits"].status, store::RunStatus::kFailed);
  EXPECT_NE(by_method["exits"].error.find("exited during startup"), std::string::npos) << by_method["exits"].error;
  EXPECT_NE(by_method["exits"].log_tail.find("fatal: no GPU found"), std::string::npos);
  EXPECT_EQ(by_method["hangs"].status, store::RunStatus::kFailed);
  EXPECT_NE(by_method["hangs"].error.find("did not become ready"), std::string::npos) << by_method["hangs"].error;
  EXPECT_NE(by_method["hangs"].log_tail.find("loading"), std::string::npos);
  EXPECT_EQ(by_method["dies"].status, store::RunStatus::kFailed);
  EXPECT_NE(by_method["dies"].error.find("server died"), std::string::npos) << by_method["dies"].error;
  EXPECT_NE(by_method["dies"].log_tail.find("serving"), std::string::npos);
  const std::string log = read_file(dir + "/log.txt");
  EXPECT_NE(log.find("1 completed"), std::string::npos);
  EXPECT_NE(log.find("3 failed"), std::string::npos);
}

TEST(Study, MalformedSpecsGiveLineNumberedErrorsAndRunNothing) {
  auto dir = qmeter::testing::test_output_dir("study_malformed");
  struct Case {
    std::string spec, expected;
  } cases[] = {
      {"study: x\nmodels: [\n", "s.yaml:3:1: invalid YAML"},
      {"study: x\nmodels: [{path: /no/such/model}]\nmethods: [a]\nworkloads: [{rates: [1]}]\n",
       "s.yaml:2:17: models[0]: model path not found: /no/such/model"},
      {"study: x\nmodels: [\"synthetic:tiny\"]\nmethods: [fp32]\nworkloads: [{num_prompts: many, rates: [1]}]\n",
       "s.yaml:4:27: workloads[0].num_prompts: expected a number, got 'many'"},
      {"study: x\nmodels: [\"synthetic:tiny\"]\nmethods: [fp32, gptqq]\nworkloads: [{rates: [1]}]\n",
       "s.yaml:3:17: methods[1]: unknown method 'gptqq' (known: fp32"},
  };
  for (const auto& c : cases) {
    std::ofstream(dir + "/s.yaml") << c.spec;
    std::filesystem::remove(dir + "/r.db");
    EXPECT_EQ(run_cli({"run", dir + "/s.yaml", "--db", dir + "/r.db"}, dir + "/log.txt"), 2);
    const std::string log = read_file(dir + "/log.txt");
    EXPECT_NE(log.find(c.expected), std::string::npos) << log;
    EXPECT_FALSE(std::filesystem::exists(dir + "/r.db")) << "a malformed spec must run nothing";
  }
}

TEST(Study, EmbeddedBackendTwoMethodsTwoRates) {
  QMETER_REQUIRE_SHARED_DATA(model_path, "models/stories260K/stories260K.bin");
  auto dir = qmeter::testing::test_output_dir("study_embedded");
  std::ofstream(dir + "/s.yaml") << "study: embedded\n"
                                    "models: [{name: stories, path: \"" + model_path + "\"}]\n"
                                    "methods: [fp32, bf16]\n"
                                    "backend: {kind: embedded, options: {threads: 1, max_num_seqs: 16}}\n"
                                    "workloads: [{name: w, input_len: 16, output_len: 16, num_prompts: 20, rates: [20, inf]}]\n"
                                    "slos: {fast: {ttft_ms: 2000}}\n"
                                    "energy: {source: model, idle_s: 0.2, interval_ms: 20}\n";
  ASSERT_EQ(run_cli({"run", dir + "/s.yaml", "--db", dir + "/r.db", "--out", dir + "/out"}, dir + "/log.txt"), 0)
      << read_file(dir + "/log.txt");
  auto db = store::Store::open(dir + "/r.db");
  EXPECT_EQ(db->count_rows("runs"), 2);
  EXPECT_EQ(db->count_rows("load_points"), 4);
  EXPECT_EQ(db->count_rows("requests"), 4 * 20);
  for (const auto& r : db->runs()) {
    EXPECT_EQ(r.status, store::RunStatus::kComplete) << r.error;
    for (const auto& p : db->load_points(r.id)) {
      EXPECT_EQ(p.completed, 20);
      for (const auto& q : db->requests(p.id)) {
        EXPECT_EQ(q.prompt_tokens >= 16, true);  // the server counted the prompt (BOS included)
        EXPECT_GT(q.output_tokens, 0);
        EXPECT_EQ(q.output_tokens, q.client_tokens);  // server usage == client count
      }
    }
  }
}
