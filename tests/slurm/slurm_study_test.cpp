// Studies through `qmeter run --executor slurm` on the private two-node cluster that
// tests/slurm/cluster.sh starts (CTest fixture `slurm_cluster`): the same results as the local
// executor, and every failure the issue names (scancel, coordinator killed with SIGKILL, node
// down, sbatch refused, no Slurm) ending with the run failed or the error said, nothing lost.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "qmeter/core/paths.h"
#include "qmeter/core/process.h"
#include "qmeter/store/store.h"
#include "run_qmeter.h"
#include "test_support.h"

using namespace qmeter;
using qmeter::testing::qmeter_bin;

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// The fixture's cluster: its slurm.conf for every Slurm command the test and qmeter run.
bool use_test_cluster() {
  if (env("QMETER_SLURM_DIR").empty()) return false;
  setenv("SLURM_CONF", (env("QMETER_SLURM_DIR") + "/slurm.conf").c_str(), 1);
  return true;
}

// Skips without the Slurm packages (and fails under CI, where setup.sh installs them).
#define REQUIRE_SLURM()                                                                                      \
  if (!std::filesystem::exists("/usr/bin/sbatch") || !use_test_cluster()) {                               \
    if (!env("CI").empty()) FAIL() << "Slurm is missing under CI: scripts/setup.sh installs slurm-client"; \
    GTEST_SKIP() << "SLURM ABSENT: no /usr/bin/sbatch or SLURM_CONF (apt-get install slurmctld slurmd "  \
                    "slurm-client munge; ctest starts tests/slurm/cluster.sh and sets QMETER_SLURM_DIR)";  \
  }

CommandResult cluster(const std::string& verb, const std::string& arg = "") {
  std::vector<std::string> argv = {qmeter::testing::source_dir() + "/tests/slurm/cluster.sh", verb};
  if (!arg.empty()) argv.push_back(arg);
  return run_command(argv, 180);
}

std::string spec_text(const std::string& model, const std::string& val, const std::string& methods, int prompts,
                      double rate) {
  return "study: {name: slurm-e2e}\n"
         "models: [{name: stories, path: \"" + model + "\"}]\n"
         "methods: " + methods + "\n"
         "backend: {kind: embedded, options: {threads: 1, max_num_seqs: 16}}\n"
         "workloads:\n"
         "  - {name: w, input_len: 16, output_len: 8, num_prompts: " + std::to_string(prompts) +
         ", arrival: constant, rates: [" + std::to_string(rate) + ", inf]}\n"
         "quality:\n"
         "  - {task: \"perplexity:" + val + "\", limit: 4}\n"
         "energy: {source: model, idle_s: 0.2, interval_ms: 50}\n"
         "seed: 11\n";
}

// Four runs: two methods x two KV-cache settings.
const char* kFourMethods =
    "[fp32, bf16, {name: fp32, kv-cache-dtype: int8}, {name: bf16, kv-cache-dtype: int8}]";

int run_cli(const std::vector<std::string>& args, const std::string& log, double timeout_s = 600) {
  return qmeter::testing::run_qmeter(args, log, timeout_s);
}

std::vector<store::PlacementRow> placements(const std::string& db_path) {
  if (!std::filesystem::exists(db_path)) return {};
  return store::Store::open(db_path)->placements();
}

// Polls the database's placements (refreshed by `qmeter slurm status`) until pred holds.
template <class Pred>
bool wait_for(const std::string& dir, const std::string& db_path, Pred pred, double timeout_s) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < end) {
    // The last status only (the log appends): what the failure message shows.
    std::filesystem::remove(dir + "/status.log");
    run_cli({"slurm", "status", "--db", db_path}, dir + "/status.log", 60);
    if (pred(placements(db_path))) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  return false;
}

// Every row that the same seeds make identical, per run: points, their request schedules and
// prompt sizes, quality figures.
std::string deterministic_dump(const std::string& db_path) {
  auto db = store::Store::open(db_path);
  std::string out;
  std::map<std::string, store::RunRow> runs;
  for (auto& r : db->runs()) runs[r.id] = r;
  for (const auto& [id, r] : runs) {
    out += id + " " + r.model + " " + r.method + " " + store::run_status_name(r.status) + "\n";
    for (const auto& p : db->load_points(id)) {
      out += "  point " + std::to_string(p.index) + " " + p.target_kind + " " + std::to_string(p.target_value) +
             " completed=" + std::to_string(p.completed) + " failed=" + std::to_string(p.failed) + "\n";
      const auto requests = db->requests(p.id);
      for (const auto& q : requests) {
        // The schedule relative to the point's start (the clock's origin differs per process).
        out += "    " + std::to_string(q.index) + " sched=" + std::to_string(q.scheduled_ns - requests[0].scheduled_ns) +
               " prompt=" + std::to_string(q.prompt_tokens) + " max=" + std::to_string(q.max_tokens) + "\n";
      }
    }
    for (const auto& q : db->quality_results(id)) {
      char v[64];
      std::snprintf(v, sizeof v, "%.12g n=%d", q.value, q.n);
      out += "  quality " + q.task.substr(0, q.task.find(':')) + " " + q.metric + " " + v + "\n";
    }
  }
  return out;
}

}  // namespace

TEST(SlurmStudy, FourRunsOnTwoNodesGiveExactlyTheLocalResults) {
  REQUIRE_SLURM();
  QMETER_REQUIRE_SHARED_DATA(model, "models/stories260K/stories260K.bin");
  QMETER_REQUIRE_SHARED_DATA(val, "eval/tinystories_val.txt");
  const auto dir = qmeter::testing::test_output_dir("slurm_vs_local");
  std::ofstream(dir + "/s.yaml") << spec_text(model, val, kFourMethods, 12, 20);
  ASSERT_EQ(run_cli({"run", dir + "/s.yaml", "--db", dir + "/local.db", "--out", dir + "/out", "--no-report"},
                    dir + "/local.log"), 0)
      << read_file(dir + "/local.log");
  ASSERT_EQ(run_cli({"run", dir + "/s.yaml", "--db", dir + "/slurm.db", "--executor", "slurm", "--poll-interval-s", "0.5",
                     "--max-parallel", "4"},
                    dir + "/slurm.log"), 0)
      << read_file(dir + "/slurm.log");
  const std::string slurm_log = read_file(dir + "/slurm.log");
  EXPECT_NE(slurm_log.find("submitted job"), std::string::npos) << slurm_log;
  EXPECT_NE(slurm_log.find("[slurm] 4/4 complete, 0 failed"), std::string::npos) << slurm_log;

  const std::string local = deterministic_dump(dir + "/local.db");
  EXPECT_EQ(deterministic_dump(dir + "/slurm.db"), local);
  auto db = store::Store::open(dir + "/slurm.db");
  auto ldb = store::Store::open(dir + "/local.db");
  EXPECT_EQ(db->count_rows("runs"), 4);
  for (const char* table : {"runs", "load_points", "requests", "quality_results", "quality_items"}) {
    EXPECT_EQ(db->count_rows(table), ldb->count_rows(table)) << table;
  }
  EXPECT_EQ(db->count_rows("load_points"), 8);
  EXPECT_EQ(db->count_rows("requests"), 8 * 12);
  EXPECT_GT(db->count_rows("telemetry_samples"), 0);
  // Where each run ran: one array job, four tasks, both nodes, times in order.
  std::set<std::string> nodes, jobs;
  std::set<int> tasks;
  for (const auto& p : db->placements()) {
    nodes.insert(p.node);
    jobs.insert(p.job_id);
    tasks.insert(p.task_id);
    EXPECT_EQ(p.state, "COMPLETED");
    EXPECT_EQ(p.exit_code, "0:0");
    EXPECT_GT(p.merged_unix_ms, 0);
    EXPECT_GT(p.start_unix_ms, 0);
    EXPECT_GE(p.end_unix_ms, p.start_unix_ms);
    EXPECT_GE(p.start_unix_ms / 1000, p.submit_unix_ms / 1000 - 1);
    EXPECT_TRUE(std::filesystem::exists(p.shard_path)) << p.shard_path;
    EXPECT_FALSE(std::filesystem::exists(p.shard_path + "-wal")) << "a shard never uses WAL";
  }
  EXPECT_EQ(nodes, (std::set<std::string>{"q1", "q2"}));
  EXPECT_EQ(jobs.size(), 1u);
  EXPECT_EQ(tasks, (std::set<int>{0, 1, 2, 3}));
  // The run's host record comes from the node (the shard), and `ls` / export say where it ran.
  ASSERT_EQ(run_cli({"ls", "--db", dir + "/slurm.db"}, dir + "/ls.log"), 0);
  const std::string ls = read_file(dir + "/ls.log");
  EXPECT_NE(ls.find(" q1 "), std::string::npos) << ls;
  EXPECT_NE(ls.find(" q2 "), std::string::npos) << ls;
  // Run again: everything is complete, nothing is submitted, nothing changes.
  ASSERT_EQ(run_cli({"run", dir + "/s.yaml", "--db", dir + "/slurm.db", "--executor", "slurm", "--poll-interval-s", "0.5",
                     "--no-report"},
                    dir + "/again.log"), 0)
      << read_file(dir + "/again.log");
  EXPECT_EQ(read_file(dir + "/again.log").find("submitted job"), std::string::npos);
  EXPECT_EQ(deterministic_dump(dir + "/slurm.db"), local);
  EXPECT_TRUE(std::filesystem::exists(dir + "/slurm.html")) << "the attached run writes the study report";
}

TEST(SlurmStudy, ScancelOfOneTaskFailsOnlyThatRunAndRetryCompletesIt) {
  REQUIRE_SLURM();
  QMETER_REQUIRE_SHARED_DATA(model, "models/stories260K/stories260K.bin");
  QMETER_REQUIRE_SHARED_DATA(val, "eval/tinystories_val.txt");
  const auto dir = qmeter::testing::test_output_dir("slurm_scancel");
  // ~8 s per run at 4 req/s, so a task is caught running.
  std::ofstream(dir + "/s.yaml") << spec_text(model, val, "[fp32, bf16, {name: fp32, kv-cache-dtype: int8}]", 32, 4);
  const std::string db = dir + "/r.db";
  ASSERT_EQ(run_cli({"run", dir + "/s.yaml", "--db", db, "--executor", "slurm", "--detach"}, dir + "/submit.log"), 0)
      << read_file(dir + "/submit.log");
  EXPECT_NE(read_file(dir + "/submit.log").find("submitted job(s)"), std::string::npos);
  store::PlacementRow victim;
  ASSERT_TRUE(wait_for(dir, db,
                       [&](const std::vector<store::PlacementRow>& ps) {
                         // RUNNING in Slurm's eyes is not yet "started": under load the task
                         // may not have opened its shard, and a cancel then leaves none to keep.
                         for (const auto& p : ps) {
                           if (p.state == "RUNNING" && std::filesystem::exists(p.shard_path)) {
                             victim = p;
                             return true;
                           }
                         }
                         return false;
                       },
                       120))
      << read_file(dir + "/status.log");
  ASSERT_EQ(run_command({"scancel", victim.job_id + "_" + std::to_string(victim.task_id)}).status, 0);
  // The same command again follows the live tasks to the end (no resubmission of the
  // cancelled run without --retry-failed): exit 3, some run failed.
  ASSERT_EQ(run_cli({"run", dir + "/s.yaml", "--db", db, "--executor", "slurm", "--poll-interval-s", "0.5", "--no-report"},
                    dir + "/follow.log"),
            3)
      << read_file(dir + "/follow.log");
  {
    auto s = store::Store::open(db);
    ASSERT_EQ(s->runs().size(), 3u);
    for (const auto& r : s->runs()) {
      if (r.id == victim.run_id) {
        EXPECT_EQ(r.status, store::RunStatus::kFailed);
        EXPECT_NE(r.error.find("slurm: CANCELLED"), std::string::npos) << r.error;
        EXPECT_TRUE(s->load_points(r.id).empty()) << "a cut-off shard is never merged";
      } else {
        EXPECT_EQ(r.status, store::RunStatus::kComplete) << r.error;
        EXPECT_EQ(s->load_points(r.id).size(), 2u);
      }
    }
    EXPECT_EQ(s->placement(victim.run_id)->state, "CANCELLED");
    EXPECT_TRUE(std::filesystem::exists(victim.shard_path)) << "the partial shard is kept for inspection";
  }
  ASSERT_EQ(run_cli({"slurm", "status", "--db", db}, dir + "/status.log"), 0);
  EXPECT_NE(read_file(dir + "/status.log").find("failed"), std::string::npos);
  EXPECT_NE(read_file(dir + "/status.log").find("CANCELLED"), std::string::npos);
  // --retry-failed resubmits exactly that run, as attempt 2.
  ASSERT_EQ(run_cli({"run", dir + "/s.yaml", "--db", db, "--executor", "slurm", "--poll-interval-s", "0.5", "--no-report",
                     "--retry-failed"},
                    dir + "/retry.log"),
            0)
      << read_file(dir + "/retry.log");
  auto s = store::Store::open(db);
  for (const auto& r : s->runs()) EXPECT_EQ(r.status, store::RunStatus::kComplete) << r.id << " " << r.error;
  EXPECT_EQ(s->placement(victim.run_id)->attempt, 2);
  EXPECT_EQ(s->count_rows("load_points"), 6);
  EXPECT_EQ(s->count_rows("requests"), 6 * 32);
  EXPECT_TRUE(std::filesystem::exists(std::filesystem::path(victim.shard_path).parent_path() /
                                      (victim.run_id + ".attempt1.db")));
}

TEST(SlurmStudy, CoordinatorKilledWithSigkillLosesNothingAndDuplicatesNothing) {
  REQUIRE_SLURM();
  QMETER_REQUIRE_SHARED_DATA(model, "models/stories260K/stories260K.bin");
  QMETER_REQUIRE_SHARED_DATA(val, "eval/tinystories_val.txt");
  const auto dir = qmeter::testing::test_output_dir("slurm_kill9");
  std::ofstream(dir + "/s.yaml") << spec_text(model, val, kFourMethods, 24, 6);
  const std::string db = dir + "/r.db";
  SpawnOptions o;
  o.argv = {qmeter_bin(), "run", dir + "/s.yaml", "--db", db, "--executor", "slurm", "--poll-interval-s", "0.3",
            "--max-parallel", "2", "--no-report"};
  o.log_path = dir + "/first.log";
  auto coordinator = ChildProcess::spawn(o);
  // Kill it once it has merged one run while others are still pending or running.
  bool caught = false;
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(180);
  while (std::chrono::steady_clock::now() < end && coordinator.running()) {
    int merged = 0, live = 0;
    for (const auto& p : placements(db)) {
      merged += p.merged_unix_ms > 0;
      live += p.merged_unix_ms == 0 && (p.state == "PENDING" || p.state == "RUNNING");
    }
    if (merged >= 1 && live >= 1) {
      caught = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(caught) << read_file(dir + "/first.log");
  kill(coordinator.pid(), SIGKILL);
  coordinator.wait(10);
  ASSERT_EQ(run_cli({"run", dir + "/s.yaml", "--db", db, "--executor", "slurm", "--poll-interval-s", "0.3", "--no-report"},
                    dir + "/second.log"),
            0)
      << read_file(dir + "/second.log");
  EXPECT_EQ(read_file(dir + "/second.log").find("submitted job"), std::string::npos)
      << "the live tasks are followed, not submitted again";
  auto s = store::Store::open(db);
  EXPECT_EQ(s->count_rows("runs"), 4);
  EXPECT_EQ(s->count_rows("load_points"), 8);
  EXPECT_EQ(s->count_rows("requests"), 8 * 24);
  std::set<std::string> jobs;
  for (const auto& p : s->placements()) {
    jobs.insert(p.job_id);
    EXPECT_EQ(p.attempt, 1);
    EXPECT_GT(p.merged_unix_ms, 0);
  }
  EXPECT_EQ(jobs.size(), 1u);
  for (const auto& r : s->runs()) EXPECT_EQ(r.status, store::RunStatus::kComplete) << r.error;
  EXPECT_EQ(s->integrity_check(), "ok");
}

TEST(SlurmStudy, ANodeThatGoesDownFailsTheRunsOnIt) {
  REQUIRE_SLURM();
  QMETER_REQUIRE_SHARED_DATA(model, "models/stories260K/stories260K.bin");
  QMETER_REQUIRE_SHARED_DATA(val, "eval/tinystories_val.txt");
  const auto dir = qmeter::testing::test_output_dir("slurm_node_down");
  // Long enough (~30 s) that the node dies under it; partition `solo` is node q2 alone.
  std::ofstream(dir + "/s.yaml") << spec_text(model, val, "[fp32]", 60, 2);
  const std::string db = dir + "/r.db";
  ASSERT_EQ(run_cli({"run", dir + "/s.yaml", "--db", db, "--executor", "slurm", "--detach", "--partition", "solo"},
                    dir + "/submit.log"),
            0)
      << read_file(dir + "/submit.log");
  ASSERT_TRUE(wait_for(dir, db, [](const auto& ps) { return !ps.empty() && ps[0].state == "RUNNING"; }, 120))
      << read_file(dir + "/status.log");
  const auto down = cluster("stop-node", "q2");
  ASSERT_EQ(down.status, 0) << down.out << down.err;
  const bool failed = wait_for(dir, db, [](const auto& ps) { return ps[0].state == "NODE_FAIL"; }, 150);
  const auto up = cluster("start-node", "q2");  // back for the tests after this one
  ASSERT_TRUE(failed) << read_file(dir + "/status.log");
  EXPECT_EQ(up.status, 0) << up.out << up.err;
  ASSERT_EQ(run_cli({"slurm", "collect", "--db", db}, dir + "/collect.log"), 3) << read_file(dir + "/collect.log");
  EXPECT_NE(read_file(dir + "/collect.log").find("FAILED: slurm: NODE_FAIL"), std::string::npos)
      << read_file(dir + "/collect.log");
  auto s = store::Store::open(db);
  ASSERT_EQ(s->runs().size(), 1u);
  EXPECT_EQ(s->runs()[0].status, store::RunStatus::kFailed);
  EXPECT_NE(s->runs()[0].error.find("on q2"), std::string::npos) << s->runs()[0].error;
  EXPECT_EQ(s->count_rows("load_points"), 0);
}

TEST(SlurmStudy, ARefusedSubmissionNamesTheOptionAndSubmitsNothing) {
  REQUIRE_SLURM();
  QMETER_REQUIRE_SHARED_DATA(model, "models/stories260K/stories260K.bin");
  QMETER_REQUIRE_SHARED_DATA(val, "eval/tinystories_val.txt");
  const auto dir = qmeter::testing::test_output_dir("slurm_refused");
  // Two partitions as a study factor: the good one validates, the bad one refuses; neither runs.
  std::ofstream(dir + "/s.yaml") << spec_text(model, val, "[fp32]", 4, 4) << "hardware: {partition: [debug, nosuch]}\n";
  const std::string before = run_command({"squeue", "-h", "-o", "%i"}).out;
  EXPECT_EQ(run_cli({"run", dir + "/s.yaml", "--db", dir + "/r.db", "--executor", "slurm"}, dir + "/log.txt"), 2);
  const std::string log = read_file(dir + "/log.txt");
  EXPECT_NE(log.find("sbatch refused the submission (--partition)"), std::string::npos) << log;
  EXPECT_NE(log.find("nvalid partition"), std::string::npos) << log;
  EXPECT_NE(log.find("nothing was submitted"), std::string::npos) << log;
  EXPECT_EQ(run_command({"squeue", "-h", "-o", "%i"}).out, before);
  EXPECT_TRUE(placements(dir + "/r.db").empty());
  // An account that does not exist (no accounting here, so Slurm accepts any; a real cluster
  // refuses it the same way): a bad --time is refused by every controller.
  EXPECT_EQ(run_cli({"run", dir + "/s.yaml", "--db", dir + "/r2.db", "--executor", "slurm", "--time", "banana"},
                    dir + "/time.log"),
            2);
  EXPECT_NE(read_file(dir + "/time.log").find("(--time)"), std::string::npos) << read_file(dir + "/time.log");
  // The local executor refuses a partition factor outright.
  EXPECT_EQ(run_cli({"run", dir + "/s.yaml", "--db", dir + "/r3.db"}, dir + "/local.log"), 2);
  EXPECT_NE(read_file(dir + "/local.log").find("run it with --executor slurm"), std::string::npos);
}

TEST(SlurmStudy, NoSlurmOrNoControllerIsSaidPlainly) {
  QMETER_REQUIRE_SHARED_DATA(model, "models/stories260K/stories260K.bin");
  QMETER_REQUIRE_SHARED_DATA(val, "eval/tinystories_val.txt");
  const auto dir = qmeter::testing::test_output_dir("slurm_absent");
  std::ofstream(dir + "/s.yaml") << spec_text(model, val, "[fp32]", 4, 4);
  // No sbatch on PATH.
  SpawnOptions o;
  o.argv = {qmeter_bin(), "run", dir + "/s.yaml", "--db", dir + "/r.db", "--executor", "slurm"};
  o.env = {{"PATH", dir}};
  o.log_path = dir + "/nopath.log";
  EXPECT_EQ(ChildProcess::spawn(o).wait(60), 1);
  EXPECT_NE(read_file(dir + "/nopath.log").find("no Slurm on this machine: 'sbatch' is not installed"), std::string::npos)
      << read_file(dir + "/nopath.log");
  if (!std::filesystem::exists("/usr/bin/sbatch")) return;
  // A controller that does not answer: a slurm.conf naming a port nobody listens on.
  std::ofstream(dir + "/slurm.conf") << "ClusterName=nowhere\nSlurmctldHost=localhost\nSlurmctldPort=9\n"
                                        "AuthType=auth/none\nCredType=cred/none\nNodeName=x CPUs=1\n"
                                        "PartitionName=p Nodes=x Default=YES\nMessageTimeout=2\n";
  o.env = {{"SLURM_CONF", dir + "/slurm.conf"}};
  o.log_path = dir + "/noctld.log";
  o.argv = {qmeter_bin(), "run", dir + "/s.yaml", "--db", dir + "/r2.db", "--executor", "slurm"};
  EXPECT_EQ(ChildProcess::spawn(o).wait(120), 1);
  EXPECT_NE(read_file(dir + "/noctld.log").find("slurmctld unreachable"), std::string::npos) << read_file(dir + "/noctld.log");
}

TEST(SlurmStudy, ASubmissionWhoseJobIdWasNeverWrittenIsAdoptedNotSubmittedTwice) {
  REQUIRE_SLURM();
  QMETER_REQUIRE_SHARED_DATA(model, "models/stories260K/stories260K.bin");
  QMETER_REQUIRE_SHARED_DATA(val, "eval/tinystories_val.txt");
  const auto dir = qmeter::testing::test_output_dir("slurm_adopt");
  std::ofstream(dir + "/s.yaml") << spec_text(model, val, "[fp32, bf16]", 24, 6);
  const std::string db = dir + "/r.db";
  ASSERT_EQ(run_cli({"run", dir + "/s.yaml", "--db", db, "--executor", "slurm", "--detach"}, dir + "/submit.log"), 0)
      << read_file(dir + "/submit.log");
  // Put the database back as a coordinator killed between sbatch and its write leaves it: the
  // intent (SUBMITTING, the array's name) without the job id.
  std::string job_id;
  {
    auto s = store::Store::open(db);
    for (auto p : s->placements()) {
      job_id = p.job_id;
      const auto name = run_command({"scontrol", "show", "job", "-o", p.job_id}).out;
      const auto at = name.find("JobName=");
      ASSERT_NE(at, std::string::npos);
      p.reason = name.substr(at + 8, name.find(' ', at) - at - 8);
      p.job_id.clear();
      p.state = "SUBMITTING";
      s->put_placement(p);
    }
  }
  ASSERT_EQ(run_cli({"run", dir + "/s.yaml", "--db", db, "--executor", "slurm", "--poll-interval-s", "0.3", "--no-report"},
                    dir + "/again.log"),
            0)
      << read_file(dir + "/again.log");
  EXPECT_EQ(read_file(dir + "/again.log").find("submitted job"), std::string::npos) << read_file(dir + "/again.log");
  auto s = store::Store::open(db);
  EXPECT_EQ(s->count_rows("runs"), 2);
  EXPECT_EQ(s->count_rows("load_points"), 4);
  for (const auto& p : s->placements()) {
    EXPECT_EQ(p.job_id, job_id);
    EXPECT_EQ(p.attempt, 1);
    EXPECT_EQ(p.state, "COMPLETED");
  }
}

TEST(SlurmStudy, InterruptWithCancelOnInterruptCancelsTheLiveTasks) {
  REQUIRE_SLURM();
  QMETER_REQUIRE_SHARED_DATA(model, "models/stories260K/stories260K.bin");
  QMETER_REQUIRE_SHARED_DATA(val, "eval/tinystories_val.txt");
  const auto dir = qmeter::testing::test_output_dir("slurm_interrupt");
  std::ofstream(dir + "/s.yaml") << spec_text(model, val, "[fp32, bf16]", 120, 4);  // ~30 s per run
  const std::string db = dir + "/r.db";
  SpawnOptions o;
  o.argv = {qmeter_bin(), "run", dir + "/s.yaml", "--db", db, "--executor", "slurm", "--poll-interval-s", "0.3",
            "--cancel-on-interrupt"};
  o.log_path = dir + "/run.log";
  auto coordinator = ChildProcess::spawn(o);
  bool running = false;
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!running && std::chrono::steady_clock::now() < end) {
    for (const auto& p : placements(db)) running = running || p.state == "RUNNING";
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_TRUE(running) << read_file(dir + "/run.log");
  kill(coordinator.pid(), SIGINT);
  EXPECT_EQ(coordinator.wait(60), 130) << read_file(dir + "/run.log");
  EXPECT_NE(read_file(dir + "/run.log").find("cancelled 2 task(s)"), std::string::npos) << read_file(dir + "/run.log");
  // Slurm ends them (SIGTERM to the task, which stops after its drain); collect records them.
  ASSERT_TRUE(wait_for(dir, db,
                       [](const auto& ps) {
                         return ps.size() == 2 && ps[0].state == "CANCELLED" && ps[1].state == "CANCELLED";
                       },
                       60))
      << read_file(dir + "/status.log");
  run_cli({"slurm", "collect", "--db", db}, dir + "/collect.log");
  auto s = store::Store::open(db);
  for (const auto& r : s->runs()) {
    EXPECT_EQ(r.status, store::RunStatus::kFailed);
    EXPECT_NE(r.error.find("slurm: CANCELLED"), std::string::npos) << r.error;
  }
  EXPECT_EQ(s->count_rows("load_points"), 0);
}

TEST(SlurmStudy, WithRequeueATaskOfAFailedNodeRunsAgainElsewhere) {
  REQUIRE_SLURM();
  QMETER_REQUIRE_SHARED_DATA(model, "models/stories260K/stories260K.bin");
  QMETER_REQUIRE_SHARED_DATA(val, "eval/tinystories_val.txt");
  const auto dir = qmeter::testing::test_output_dir("slurm_requeue");
  std::ofstream(dir + "/s.yaml") << spec_text(model, val, "[fp32]", 60, 2);  // ~30 s
  const std::string db = dir + "/r.db";
  ASSERT_EQ(run_cli({"run", dir + "/s.yaml", "--db", db, "--executor", "slurm", "--detach", "--requeue"},
                    dir + "/submit.log"),
            0)
      << read_file(dir + "/submit.log");
  std::string first_node;
  ASSERT_TRUE(wait_for(dir, db,
                       [&](const auto& ps) {
                         if (ps.empty() || ps[0].state != "RUNNING") return false;
                         first_node = ps[0].node;
                         return true;
                       },
                       120))
      << read_file(dir + "/status.log");
  const auto down = cluster("stop-node", first_node);
  ASSERT_EQ(down.status, 0) << down.out << down.err;
  // The node goes DOWN, Slurm requeues the task, and it runs to the end on the other node.
  const bool moved = wait_for(dir, db, [&](const auto& ps) { return ps[0].state == "RUNNING" && ps[0].node != first_node; }, 240);
  const auto up = cluster("start-node", first_node);
  ASSERT_TRUE(moved) << read_file(dir + "/status.log");
  EXPECT_EQ(up.status, 0) << up.out << up.err;
  ASSERT_EQ(run_cli({"run", dir + "/s.yaml", "--db", db, "--executor", "slurm", "--poll-interval-s", "0.5", "--no-report"},
                    dir + "/follow.log"),
            0)
      << read_file(dir + "/follow.log");
  auto s = store::Store::open(db);
  ASSERT_EQ(s->runs().size(), 1u);
  EXPECT_EQ(s->runs()[0].status, store::RunStatus::kComplete) << s->runs()[0].error;
  EXPECT_EQ(s->count_rows("load_points"), 2);
  EXPECT_EQ(s->count_rows("requests"), 2 * 60);
  EXPECT_NE(s->placement(s->runs()[0].id)->node, first_node);
}

TEST(SlurmStudy, ACorruptShardFailsItsRunNotTheCoordinator) {
  REQUIRE_SLURM();
  QMETER_REQUIRE_SHARED_DATA(model, "models/stories260K/stories260K.bin");
  QMETER_REQUIRE_SHARED_DATA(val, "eval/tinystories_val.txt");
  const auto dir = qmeter::testing::test_output_dir("slurm_corrupt_shard");
  std::ofstream(dir + "/s.yaml") << spec_text(model, val, "[fp32, bf16]", 8, 20);
  const std::string db = dir + "/r.db";
  ASSERT_EQ(run_cli({"run", dir + "/s.yaml", "--db", db, "--executor", "slurm", "--detach"}, dir + "/submit.log"), 0)
      << read_file(dir + "/submit.log");
  ASSERT_TRUE(wait_for(dir, db,
                       [](const auto& ps) {
                         return ps.size() == 2 && ps[0].state == "COMPLETED" && ps[1].state == "COMPLETED";
                       },
                       120))
      << read_file(dir + "/status.log");
  const auto victim = placements(db).at(0);
  std::ofstream(victim.shard_path, std::ios::trunc) << "this is not an SQLite file, it was overwritten";
  EXPECT_EQ(run_cli({"slurm", "collect", "--db", db}, dir + "/collect.log"), 3) << read_file(dir + "/collect.log");
  auto s = store::Store::open(db);
  ASSERT_EQ(s->runs().size(), 2u);
  for (const auto& r : s->runs()) {
    if (r.id == victim.run_id) {
      EXPECT_EQ(r.status, store::RunStatus::kFailed);
      EXPECT_NE(r.error.find("cannot merge run " + victim.run_id), std::string::npos) << r.error;
      EXPECT_NE(r.error.find(victim.shard_path), std::string::npos) << r.error;
    } else {
      EXPECT_EQ(r.status, store::RunStatus::kComplete) << r.error;
      EXPECT_EQ(s->load_points(r.id).size(), 2u);
    }
  }
}
