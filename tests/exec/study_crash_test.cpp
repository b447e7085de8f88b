// A study survives any way it can be stopped: SIGKILL at random moments, SIGTERM, a full disk.
// Each test checks the database against known counts, its integrity, and that no server process
// the study started is left behind (found by a marker in the servers' environment, by pid).
#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include "qmeter/core/clock.h"
#include "qmeter/core/process.h"
#include "qmeter/store/store.h"
#include "run_qmeter.h"
#include "test_support.h"

using namespace qmeter;

namespace {

// Calibrated in the test below (see there).
constexpr long kFullDiskBytes = 600 * 1024;

// The file's text, "" while it does not exist yet (a log the child has not opened).
std::string text_of(const std::string& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Live (non-zombie) processes of ours whose environment holds QMETER_TEST_MARK=<mark>.
std::vector<int> marked_processes(const std::string& mark) {
  std::vector<int> out;
  const std::string needle = "QMETER_TEST_MARK=" + mark;
  DIR* d = opendir("/proc");
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    const int pid = std::atoi(e->d_name);
    if (pid <= 0) continue;
    std::ifstream env("/proc/" + std::to_string(pid) + "/environ", std::ios::binary);
    std::string blob((std::istreambuf_iterator<char>(env)), std::istreambuf_iterator<char>());
    bool marked = false;
    for (std::size_t i = 0; i < blob.size();) {
      const std::size_t end = blob.find('\0', i);
      if (blob.compare(i, (end == std::string::npos ? blob.size() : end) - i, needle) == 0) marked = true;
      if (end == std::string::npos) break;
      i = end + 1;
    }
    if (!marked) continue;
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    std::getline(stat, line);
    const auto close = line.rfind(')');
    if (close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z') out.push_back(pid);
  }
  closedir(d);
  return out;
}

// Waits up to timeout_s for the marked processes to end; returns those still alive.
std::vector<int> orphans_after(const std::string& mark, double timeout_s) {
  const Nanos deadline = steady_now_ns() + s_to_ns(timeout_s);
  auto left = marked_processes(mark);
  while (!left.empty() && steady_now_ns() < deadline) {
    sleep_until_ns(steady_now_ns() + ms_to_ns(20));
    left = marked_processes(mark);
  }
  for (int pid : left) kill(pid, SIGKILL);  // leave nothing running whatever the verdict
  return left;
}

// `methods` runs of a mock-server study: a telemetry baseline, two load points and a GSM8K task
// each. The servers carry the marker in their environment.
std::string crash_study(const std::string& dir, int methods, int num_prompts) {
  // Generation-scored, so any server can serve it (the mock has no prompt log-probabilities).
  std::ofstream(dir + "/gsm.jsonl") << R"({"question": "What is 2 plus 3?", "answer": "2 + 3 = 5\n#### 5"})" "\n"
                                    << R"({"question": "What is 4 times 2?", "answer": "4 * 2 = 8\n#### 8"})" "\n";
  std::string list;
  for (int i = 0; i < methods; ++i) list += (i ? ", " : "") + std::string("{name: m, seed: ") + std::to_string(i + 1) + "}";
  return "study: {name: crash}\n"
         "models:\n  - {name: m, path: \"synthetic:tiny\"}\n"
         "methods: [" + list + "]\n"
         "backend:\n  kind: command\n  argv: [" + qmeter::testing::qmeter_bin() +
         ", mock-server, --port, \"{port}\", --ttft-ms, \"5\", --itl-ms, \"1\", --output-len, \"8\", --seed, "
         "\"{opt.seed}\"]\n  startup_timeout_s: 20\n  env: {QMETER_TEST_MARK: \"" + dir + "\"}\n"
         "energy: {source: model, idle_s: 0.2, interval_ms: 20}\n"
         "workloads:\n  - {name: w, input_len: 16, output_len: 8, num_prompts: " + std::to_string(num_prompts) +
         ", rates: [40, 80]}\n"
         "quality:\n  - {task: \"gsm8k:" + dir + "/gsm.jsonl\", limit: 2, num_fewshot: 0, max_gen_tokens: 8}\n"
         "slos:\n  fast: {ttft_ms: 500}\n";
}

void expect_complete_study(const std::string& db_path, int runs, int num_prompts) {
  auto db = store::Store::open(db_path);
  EXPECT_EQ(db->integrity_check(), "ok");
  EXPECT_EQ(db->count_rows("runs"), runs);
  EXPECT_EQ(db->count_rows("load_points"), 2 * runs) << "every point exactly once";
  EXPECT_EQ(db->count_rows("requests"), 2 * runs * num_prompts);
  for (const auto& r : db->runs()) {
    EXPECT_EQ(r.status, store::RunStatus::kComplete) << r.id << " " << r.error;
    EXPECT_FALSE(db->quality_results(r.id).empty()) << r.id;
  }
}

}  // namespace

TEST(StudyCrash, TwentySigkillsAtRandomMomentsThenResumeCompletesEveryRunOnce) {
  const auto dir = qmeter::testing::test_output_dir("study_chaos");
  // More runs than 20 kills can finish, so every kill lands in a study still running.
  constexpr int kRuns = 16, kPrompts = 10;
  std::ofstream(dir + "/s.yaml") << crash_study(dir, kRuns, kPrompts);
  const std::string db = dir + "/r.db";
  std::mt19937 rng(20261206);
  // A run takes about a second here, so moments up to 1.6 s land in every phase of a run (server
  // start, idle baseline, load points, quality, the telemetry flush) and, late on, the report.
  std::uniform_real_distribution<double> moment(0.02, 1.6);
  int live_kills = 0;
  for (int k = 0; k < 20; ++k) {
    SpawnOptions o;
    o.argv = {qmeter::testing::qmeter_bin(), "run", dir + "/s.yaml", "--db", db, "--out", dir + "/out"};
    o.log_path = dir + "/kills.txt";
    auto p = ChildProcess::spawn(o);
    sleep_until_ns(steady_now_ns() + s_to_ns(moment(rng)));
    if (p.running()) ++live_kills;
    kill(p.pid(), SIGKILL);  // qmeter alone: its servers must follow it on their own
    p.wait(10);
    EXPECT_TRUE(orphans_after(dir, 10).empty()) << "a server outlived the study killed at kill " << k;
    auto s = store::Store::open(db);
    EXPECT_EQ(s->integrity_check(), "ok") << "after kill " << k;
  }
  EXPECT_GE(live_kills, 16) << "the kills must land while the study runs";
  ASSERT_EQ(qmeter::testing::run_qmeter({"run", dir + "/s.yaml", "--db", db, "--out", dir + "/out"}, dir + "/resume.txt", 300),
            0)
      << text_of(dir + "/resume.txt");
  expect_complete_study(db, kRuns, kPrompts);
  EXPECT_TRUE(orphans_after(dir, 10).empty());
  std::cout << "[ chaos ] " << live_kills << " of 20 SIGKILLs hit a running study; resume completed it\n";
}

TEST(StudyCrash, SigtermMarksThePointInterruptedStopsTheServerAndExits143) {
  const auto dir = qmeter::testing::test_output_dir("study_sigterm");
  constexpr int kPrompts = 120;  // 3 s at 40 req/s: a point to be caught in
  std::ofstream(dir + "/s.yaml") << crash_study(dir, 2, kPrompts);
  const std::string db = dir + "/r.db";
  SpawnOptions o;
  o.argv = {qmeter::testing::qmeter_bin(), "run", dir + "/s.yaml", "--db", db, "--out", dir + "/out"};
  o.log_path = dir + "/run.txt";
  auto p = ChildProcess::spawn(o);
  const Nanos deadline = steady_now_ns() + s_to_ns(60);
  while (text_of(dir + "/run.txt").find("phase: load point 1") == std::string::npos && steady_now_ns() < deadline) {
    sleep_until_ns(steady_now_ns() + ms_to_ns(20));
  }
  sleep_until_ns(steady_now_ns() + ms_to_ns(500));
  // The detector the orphan checks rely on sees the running server (so "none left" means something).
  EXPECT_EQ(marked_processes(dir).size(), 1u);
  kill(p.pid(), SIGTERM);
  const auto st = p.wait(60);
  ASSERT_TRUE(st.has_value()) << "qmeter run did not stop after SIGTERM";
  EXPECT_EQ(*st, 143) << text_of(dir + "/run.txt");
  EXPECT_TRUE(orphans_after(dir, 2).empty()) << "the server is stopped before qmeter exits";
  {
    auto s = store::Store::open(db);
    EXPECT_EQ(s->integrity_check(), "ok");
    const auto runs = s->runs();
    ASSERT_EQ(runs.size(), 1u) << "the second run never started";
    EXPECT_EQ(runs[0].status, store::RunStatus::kInterrupted);
    EXPECT_NE(runs[0].error.find("interrupted during load point rate 40 of workload w"), std::string::npos)
        << runs[0].error;
  }
  ASSERT_EQ(qmeter::testing::run_qmeter({"ls", "--db", db}, dir + "/ls.txt", 60), 0);
  EXPECT_NE(text_of(dir + "/ls.txt").find("interrupted"), std::string::npos) << text_of(dir + "/ls.txt");
  // The same command again measures the interrupted run whole, and the other.
  ASSERT_EQ(qmeter::testing::run_qmeter({"run", dir + "/s.yaml", "--db", db, "--out", dir + "/out"}, dir + "/resume.txt", 300),
            0)
      << text_of(dir + "/resume.txt");
  expect_complete_study(db, 2, kPrompts);
}

TEST(StudyCrash, AFullDiskNamesTheDatabaseKeepsStoredRunsAndTheResumeCompletes) {
  const auto dir = qmeter::testing::test_output_dir("study_disk_full");
  constexpr int kRuns = 4, kPrompts = 40;
  std::ofstream(dir + "/s.yaml") << crash_study(dir, kRuns, kPrompts);
  const std::string db = dir + "/r.db";
  // RLIMIT_FSIZE stands in for a full disk: every write past the limit fails (EFBIG) exactly as
  // it would with ENOSPC, for the database and its write-ahead log alike. The limit lets some runs
  // through and stops a later one mid-way.
  const std::string limit = "--fsize=" + std::to_string(kFullDiskBytes) + ":" + std::to_string(kFullDiskBytes);
  SpawnOptions o;
  o.argv = {"prlimit", limit, qmeter::testing::qmeter_bin(), "run", dir + "/s.yaml", "--db", db, "--out", dir + "/out"};
  o.log_path = dir + "/full.txt";
  auto p = ChildProcess::spawn(o);
  const auto st = p.wait(300);
  ASSERT_TRUE(st.has_value());
  const std::string log = text_of(dir + "/full.txt");
  EXPECT_EQ(*st, 1) << "a clear error, not a crash\n" << log;
  EXPECT_NE(log.find("qmeter: error: results database '" + db + "'"), std::string::npos) << log;
  EXPECT_TRUE(log.find("File too large") != std::string::npos ||
              log.find("a file-size limit was reached") != std::string::npos)
      << log;
  EXPECT_EQ(log.find("FAILED"), std::string::npos) << "the database's failure is not a run's\n" << log;
  EXPECT_TRUE(orphans_after(dir, 5).empty());
  int stored = 0;
  {
    auto s = store::Store::open(db);
    EXPECT_EQ(s->integrity_check(), "ok");
    for (const auto& r : s->runs()) {
      EXPECT_NE(r.status, store::RunStatus::kFailed) << r.error;
      if (r.status != store::RunStatus::kComplete) continue;
      ++stored;
      EXPECT_EQ(s->load_points(r.id).size(), 2u);
    }
  }
  EXPECT_GE(stored, 1) << "the limit should let the first runs through\n" << log;
  EXPECT_LT(stored, kRuns) << "the limit should stop the study\n" << log;
  // Space freed (no limit): the same command completes the study.
  ASSERT_EQ(qmeter::testing::run_qmeter({"run", dir + "/s.yaml", "--db", db, "--out", dir + "/out"}, dir + "/resume.txt", 300),
            0)
      << text_of(dir + "/resume.txt");
  expect_complete_study(db, kRuns, kPrompts);
}
