// `qmeter run` beyond the load points: the backend's /metrics stored per point, the spec's
// hardware settings applied through NVML (the fake libnvidia-ml) and restored, the HTML report at
// the end, and --dry-run. The real binary, real servers on loopback, a real SQLite file.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "qmeter/core/paths.h"
#include "qmeter/core/process.h"
#include "qmeter/store/store.h"
#include "test_support.h"

using namespace qmeter;
using nlohmann::json;

namespace {

int run_qmeter(const std::vector<std::string>& args, const std::string& log,
               const std::map<std::string, std::string>& env = {}) {
  SpawnOptions o;
  o.argv = {qmeter::testing::qmeter_bin()};
  o.argv.insert(o.argv.end(), args.begin(), args.end());
  o.log_path = log;
  o.env = env;
  auto p = ChildProcess::spawn(o);
  return p.wait(300).value_or(-1);
}

json table(const store::Store& db, const std::string& name) {
  std::ostringstream out;
  db.export_table(name, "json", out);
  return json::parse(out.str());
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

// Two methods of a mock server under the command backend (fast, exact).
std::string mock_spec(const std::string& name, const std::string& extra) {
  return "study: {name: " + name + "}\n"
         "models: [{name: m, path: \"synthetic:tiny\"}]\n"
         "methods: [a]\n"
         "backend:\n  kind: command\n  argv: [" + qmeter::testing::qmeter_bin() +
         ", mock-server, --port, \"{port}\", --ttft-ms, \"2\", --itl-ms, \"1\", --output-len, \"8\"]\n"
         "  startup_timeout_s: 20\n"
         "workloads: [{name: w, input_len: 16, output_len: 8, num_prompts: 20, rates: [50]}]\n" + extra;
}

}  // namespace

TEST(RunOutputs, EmbeddedServerMetricsAreStoredPerLoadPointAndAgreeWithTheRequests) {
  QMETER_REQUIRE_SHARED_DATA(model_path, "models/stories260K/stories260K.bin");
  auto dir = qmeter::testing::test_output_dir("run_server_metrics");
  std::ofstream(dir + "/s.yaml") << "study: scraped\n"
                                    "models: [{name: stories, path: \"" + model_path + "\"}]\n"
                                    "methods: [fp32]\n"
                                    "backend: {kind: embedded, options: {threads: 1, max_num_seqs: 8}}\n"
                                    "workloads: [{name: w, input_len: 16, output_len: 24, num_prompts: 24, rates: [12, inf]}]\n"
                                    "energy: {source: none}\n";
  ASSERT_EQ(run_qmeter({"run", dir + "/s.yaml", "--db", dir + "/r.db", "--out", dir + "/out", "--no-report"},
                       dir + "/log.txt"),
            0)
      << read_file(dir + "/log.txt");
  auto db = store::Store::open(dir + "/r.db");
  const auto runs = db->runs();
  ASSERT_EQ(runs.size(), 1u);
  const auto points = db->load_points(runs[0].id);
  ASSERT_EQ(points.size(), 2u);
  // point id -> metric name -> values in scrape order
  std::map<std::int64_t, std::map<std::string, std::vector<double>>> series;
  std::map<std::int64_t, std::vector<std::int64_t>> times;
  for (const auto& row : table(*db, "server_metric_samples")) {
    EXPECT_EQ(row["run_id"], runs[0].id);
    EXPECT_EQ(row["labels"], "model_name=\"stories\"");
    const auto point = row["load_point_id"].get<std::int64_t>();
    series[point][row["name"].get<std::string>()].push_back(row["value"].get<double>());
    if (row["name"] == "vllm:num_requests_running") times[point].push_back(row["t_ns"].get<std::int64_t>());
  }
  ASSERT_EQ(series.size(), 2u) << "rows for each of the two load points";
  std::int64_t generated = 0, prompted = 0;  // cumulative over the server's life, as its counters
  for (const auto& p : points) {
    for (const auto& r : db->requests(p.id)) {
      generated += r.output_tokens;
      prompted += r.prompt_tokens;
    }
    auto& m = series[p.id];
    for (const char* name : {"vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
                             "vllm:num_preemptions_total", "vllm:generation_tokens_total", "vllm:prompt_tokens_total",
                             "vllm:request_success_total", "qmeter:engine_steps_total"}) {
      ASSERT_GE(m[name].size(), 2u) << name << ": a scrape at the start and one after the last request";
    }
    for (double v : m["vllm:num_requests_running"]) EXPECT_TRUE(v >= 0 && v <= 8) << v;
    for (double v : m["vllm:kv_cache_usage_perc"]) EXPECT_TRUE(v >= 0 && v <= 1) << v;
    for (const char* counter : {"vllm:generation_tokens_total", "vllm:prompt_tokens_total", "qmeter:engine_steps_total"}) {
      const auto& v = m[counter];
      EXPECT_TRUE(std::is_sorted(v.begin(), v.end())) << counter << " is a counter";
    }
    EXPECT_TRUE(std::is_sorted(times[p.id].begin(), times[p.id].end()));
    // The last scrape follows the last reply: the server's counters equal the client-side sums
    // of every request so far, and nothing is running or holding KV blocks any more.
    EXPECT_EQ(m["vllm:generation_tokens_total"].back(), static_cast<double>(generated));
    EXPECT_EQ(m["vllm:prompt_tokens_total"].back(), static_cast<double>(prompted));
    EXPECT_EQ(m["vllm:request_success_total"].back(), static_cast<double>(p.id == points[0].id ? 24 : 48));
    EXPECT_EQ(m["vllm:num_requests_running"].back(), 0);
    EXPECT_EQ(m["vllm:kv_cache_usage_perc"].back(), 0);
    EXPECT_EQ(m["vllm:num_preemptions_total"].back(), 0);
    // The point's first scrape precedes its requests: the counters then held only earlier points.
    EXPECT_LE(m["vllm:request_success_total"].front(), p.id == points[0].id ? 0 : 24);
  }
}

TEST(RunOutputs, HardwareSettingsAreAppliedThroughNvmlForEachRunAndRestored) {
  auto dir = qmeter::testing::test_output_dir("run_hardware");
  std::ofstream(dir + "/s.yaml") << mock_spec("hw", "hardware: {power_limit_w: [250, 300], locked_clock_mhz: [1200]}\n"
                                                    "energy: {source: nvml, interval_ms: 20, idle_s: 0.1}\n");
  const std::map<std::string, std::string> env = {{"QMETER_NVML_LIBRARY", QMETER_FAKE_NVML_PATH},
                                                  {"QMETER_FAKE_NVML_DEVICES", "2"},
                                                  {"QMETER_FAKE_NVML_CONTROL_LOG", dir + "/nvml.log"}};
  ASSERT_EQ(run_qmeter({"run", dir + "/s.yaml", "--db", dir + "/r.db", "--out", dir + "/out", "--no-report"},
                       dir + "/log.txt", env),
            0)
      << read_file(dir + "/log.txt");
  // Per run: both GPUs capped and locked, then restored to the 400 W they had and unlocked.
  std::vector<std::string> expected;
  for (int watts : {250, 300}) {
    for (const char* line : {"power_limit 0 ", "power_limit 1 "}) expected.push_back(line + std::to_string(watts * 1000));
    expected.insert(expected.end(), {"locked_clocks 0 1200 1200", "locked_clocks 1 1200 1200", "power_limit 0 400000",
                                     "power_limit 1 400000", "reset_clocks 0", "reset_clocks 1"});
  }
  EXPECT_EQ(lines_of(read_file(dir + "/nvml.log")), expected);
  auto db = store::Store::open(dir + "/r.db");
  ASSERT_EQ(db->count_rows("runs"), 2);
  // The GPUs sampled during the load report the locked clock (the fake's SM clock follows the lock).
  int load_samples = 0;
  for (const auto& s : table(*db, "telemetry_samples")) {
    if (s["phase"] != "load") continue;
    ++load_samples;
    EXPECT_EQ(s["sm_clock_mhz"].get<double>(), 1200);
  }
  EXPECT_GT(load_samples, 0);
  for (const auto& r : db->runs()) EXPECT_EQ(r.status, store::RunStatus::kComplete) << r.error;
}

TEST(RunOutputs, RefusedHardwareSettingsFailTheRunWithNvmlsReason) {
  auto dir = qmeter::testing::test_output_dir("run_hardware_refused");
  std::ofstream(dir + "/s.yaml") << mock_spec("hw-refused", "hardware: {power_limit_w: [250]}\nenergy: {source: none}\n");
  const std::map<std::string, std::string> env = {{"QMETER_NVML_LIBRARY", QMETER_FAKE_NVML_PATH},
                                                  {"QMETER_FAKE_NVML_NO_PERMISSION", "1"},
                                                  {"QMETER_FAKE_NVML_CONTROL_LOG", dir + "/nvml.log"}};
  EXPECT_EQ(run_qmeter({"run", dir + "/s.yaml", "--db", dir + "/r.db", "--out", dir + "/out", "--no-report"},
                       dir + "/log.txt", env),
            3)
      << read_file(dir + "/log.txt");
  auto db = store::Store::open(dir + "/r.db");
  auto runs = db->runs();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].status, store::RunStatus::kFailed);
  EXPECT_NE(runs[0].error.find("hardware setting pl250W"), std::string::npos) << runs[0].error;
  EXPECT_NE(runs[0].error.find("needs root"), std::string::npos) << runs[0].error;
  EXPECT_EQ(db->count_rows("load_points"), 0);
  EXPECT_FALSE(std::filesystem::exists(dir + "/nvml.log")) << "nothing was changed";
}

TEST(RunOutputs, TheReportIsWrittenBesideTheDatabaseAndDryRunRunsNothing) {
  auto dir = qmeter::testing::test_output_dir("run_report");
  std::ofstream(dir + "/s.yaml") << mock_spec("reported", "energy: {source: none}\n");
  // --dry-run: the expanded runs and an estimate; no database, no server.
  ASSERT_EQ(run_qmeter({"run", dir + "/s.yaml", "--db", dir + "/r.db", "--dry-run"}, dir + "/dry.txt"), 0);
  const std::string dry = read_file(dir + "/dry.txt");
  EXPECT_NE(dry.find("study 'reported': 1 run(s)"), std::string::npos) << dry;
  EXPECT_NE(dry.find("model=m method=a"), std::string::npos) << dry;
  EXPECT_NE(dry.find("estimated time: ~"), std::string::npos) << dry;
  EXPECT_FALSE(std::filesystem::exists(dir + "/r.db"));

  ASSERT_EQ(run_qmeter({"run", dir + "/s.yaml", "--db", dir + "/r.db", "--out", dir + "/out"}, dir + "/log.txt"), 0)
      << read_file(dir + "/log.txt");
  const std::string log = read_file(dir + "/log.txt");
  EXPECT_NE(log.find("report: " + dir + "/r.html"), std::string::npos) << log;
  const std::string html = read_file(dir + "/r.html");
  EXPECT_NE(html.find("<html"), std::string::npos);
  EXPECT_NE(html.find("reported"), std::string::npos) << "the page names its study";
  // Progress on stderr: runs done / total with an ETA (the plan's estimate before any run ended),
  // and the current phase.
  EXPECT_NE(log.find("[1/1]"), std::string::npos) << log;
  EXPECT_NE(log.find("ETA ~"), std::string::npos) << log;
  EXPECT_NE(log.find("phase: load point 1 (w rate 50, 20 requests)"), std::string::npos) << log;
  // The summary table on stdout: one line per load point.
  EXPECT_NE(log.find("rate=50"), std::string::npos) << log;
  // --report-dir puts it elsewhere.
  std::filesystem::remove(dir + "/r.db");
  ASSERT_EQ(run_qmeter({"run", dir + "/s.yaml", "--db", dir + "/r.db", "--out", dir + "/out", "--report-dir",
                        dir + "/reports"},
                       dir + "/log2.txt"),
            0);
  EXPECT_TRUE(std::filesystem::exists(dir + "/reports/r.html")) << read_file(dir + "/log2.txt");
}
