#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "qmeter/core/error.h"
#include "qmeter/store/store.h"
#include "test_support.h"

using namespace qmeter::store;

namespace {

RunRow make_run(const std::string& id) {
  RunRow r;
  r.id = id;
  r.study = "s";
  r.model = "m";
  r.method = "bf16";
  r.config_json = R"({"method":"bf16"})";
  return r;
}

std::vector<RequestRow> make_requests(int n) {
  std::vector<RequestRow> out(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    out[static_cast<std::size_t>(i)].index = i;
    out[static_cast<std::size_t>(i)].scheduled_ns = 1000 * i;
    out[static_cast<std::size_t>(i)].text = "hello, \"world\"\nline " + std::to_string(i);
  }
  return out;
}

}  // namespace

TEST(Store, CreatesSchemaAndRoundTripsRows) {
  auto dir = qmeter::testing::test_output_dir("store_roundtrip");
  auto db = Store::open(dir + "/r.db");
  EXPECT_EQ(db->schema_version(), kSchemaVersion);
  db->put_study("s", "study: {name: s}");
  db->begin_run(make_run("run1"));
  EXPECT_EQ(db->run_status("run1"), RunStatus::kRunning);
  LoadPointRow p;
  p.run_id = "run1";
  p.index = 0;
  p.target_kind = "rate";
  p.target_value = 2.5;
  p.p99_tpot_ms = 12.25;
  p.metrics_json = R"({"completed":3})";
  TelemetrySampleRow s;
  s.t_ns = 5;
  s.source = "model";
  s.power_w = 30;
  ServerMetricSampleRow m{7, "vllm:num_requests_running", "", 2};
  const auto id = db->write_load_point(p, make_requests(3), {s, s}, {m});
  db->write_quality("run1", "perplexity:x", {{"run1", "perplexity:x", "perplexity", 4.17, 0.02, 500}}, {{0, "{}"}});
  db->finish_run("run1", RunStatus::kComplete);

  auto db2 = Store::open(dir + "/r.db");  // reopen: no migration runs twice
  EXPECT_EQ(db2->run_status("run1"), RunStatus::kComplete);
  auto points = db2->load_points("run1");
  ASSERT_EQ(points.size(), 1u);
  EXPECT_EQ(points[0].id, id);
  EXPECT_DOUBLE_EQ(points[0].target_value, 2.5);
  EXPECT_DOUBLE_EQ(points[0].p99_tpot_ms, 12.25);
  auto reqs = db2->requests(id);
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_EQ(reqs[2].scheduled_ns, 2000);
  EXPECT_EQ(reqs[2].text, "hello, \"world\"\nline 2");
  EXPECT_EQ(db2->count_rows("telemetry_samples"), 2);
  EXPECT_EQ(db2->count_rows("server_metric_samples"), 1);
  auto q = db2->quality_results("run1");
  ASSERT_EQ(q.size(), 1u);
  EXPECT_DOUBLE_EQ(q[0].value, 4.17);
  EXPECT_EQ(q[0].n, 500);
  EXPECT_EQ(db2->study_spec("s"), "study: {name: s}");
  EXPECT_EQ(db2->integrity_check(), "ok");
  EXPECT_FALSE(db2->run_status("nope").has_value());
  EXPECT_THROW(db2->finish_run("nope", RunStatus::kFailed), qmeter::Error);
}

TEST(Store, RedoOfIncompleteRunLeavesNoDuplicates) {
  auto dir = qmeter::testing::test_output_dir("store_redo");
  auto db = Store::open(dir + "/r.db");
  db->begin_run(make_run("r"));
  LoadPointRow p;
  p.run_id = "r";
  p.target_kind = "rate";
  db->write_load_point(p, make_requests(4), {}, {});
  // Crash here (no finish_run); the resume begins the run again.
  db->begin_run(make_run("r"));
  EXPECT_EQ(db->count_rows("load_points"), 0);
  EXPECT_EQ(db->count_rows("requests"), 0);
  db->write_load_point(p, make_requests(4), {}, {});
  db->write_load_point(p, make_requests(2), {}, {});  // same idx again replaces, never duplicates
  EXPECT_EQ(db->count_rows("load_points"), 1);
  EXPECT_EQ(db->count_rows("requests"), 2);
  EXPECT_EQ(db->count_rows("runs"), 1);
}

TEST(Store, ExportCsvQuotesAndJsonEqualsRows) {
  auto dir = qmeter::testing::test_output_dir("store_export");
  auto db = Store::open(dir + "/r.db");
  db->begin_run(make_run("r"));
  LoadPointRow p;
  p.run_id = "r";
  p.target_kind = "rate";
  p.target_value = 0.1;
  auto id = db->write_load_point(p, make_requests(2), {}, {});
  std::ostringstream csv;
  db->export_table("requests", "csv", csv);
  const std::string s = csv.str();
  EXPECT_EQ(s.substr(0, s.find('\n')),
            "load_point_id,idx,warmup,scheduled_ns,sent_ns,first_token_ns,end_ns,prompt_tokens,output_tokens,"
            "client_tokens,max_tokens,http_status,error_kind,error_message,chunks_json,energy_j,text");
  EXPECT_NE(s.find("\"hello, \"\"world\"\"\nline 1\""), std::string::npos);
  std::ostringstream lp;
  db->export_table("load_points", "csv", lp);
  EXPECT_NE(lp.str().find(",0.1,"), std::string::npos);  // shortest round-trip doubles

  auto all = nlohmann::json::parse(db->export_all_json());
  ASSERT_EQ(all["requests"].size(), 2u);
  EXPECT_EQ(all["requests"][1]["load_point_id"], id);
  EXPECT_EQ(all["runs"][0]["id"], "r");
  std::ostringstream bad;
  EXPECT_THROW(db->export_table("nope", "csv", bad), qmeter::UsageError);
  EXPECT_THROW(db->export_table("runs", "xml", bad), qmeter::UsageError);
}

TEST(Store, RefusesNewerSchemaAndNonDatabaseFile) {
  auto dir = qmeter::testing::test_output_dir("store_bad");
  {
    auto db = Store::open(dir + "/new.db");
  }
  {
    // Pretend a future qmeter wrote it.
    qmeter::store::Store::open(dir + "/new.db");
    std::string cmd = "sqlite3 " + dir + "/new.db 'PRAGMA user_version=99'";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
  }
  try {
    Store::open(dir + "/new.db");
    FAIL() << "newer schema accepted";
  } catch (const qmeter::Error& e) {
    EXPECT_NE(std::string(e.what()).find("schema version 99"), std::string::npos) << e.what();
  }
  {
    std::ofstream(dir + "/junk.db") << "this is not a database, just text that is long enough to have a header....";
  }
  EXPECT_THROW(Store::open(dir + "/junk.db"), qmeter::Error);
}

// SIGKILL of a writer at random moments: every load point present is whole (all its requests),
// the file passes integrity_check, and nothing committed before the kill is lost.
TEST(Store, SigkillMidWriteLosesNothingCommitted) {
  auto dir = qmeter::testing::test_output_dir("store_kill");
  const std::string path = dir + "/k.db";
  constexpr int kRequestsPerPoint = 500;
  for (int attempt = 0; attempt < 4; ++attempt) {
    int pipefd[2];
    ASSERT_EQ(pipe(pipefd), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(pipefd[0]);
      auto db = Store::open(path);
      const std::string run = "run" + std::to_string(attempt);
      db->begin_run(make_run(run));
      for (int i = 0;; ++i) {
        LoadPointRow p;
        p.run_id = run;
        p.index = i;
        p.target_kind = "rate";
        db->write_load_point(p, make_requests(kRequestsPerPoint), {}, {});
        char c = 1;
        if (write(pipefd[1], &c, 1) != 1) _exit(3);  // tell the parent one point is committed
      }
    }
    close(pipefd[1]);
    int committed = 0;
    char c;
    while (committed < 3 + attempt && read(pipefd[0], &c, 1) == 1) ++committed;
    std::this_thread::sleep_for(std::chrono::microseconds(300 * attempt));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    while (read(pipefd[0], &c, 1) == 1) ++committed;  // acknowledgements already in the pipe
    close(pipefd[0]);

    auto db = Store::open(path);
    EXPECT_EQ(db->integrity_check(), "ok");
    auto points = db->load_points("run" + std::to_string(attempt));
    EXPECT_GE(static_cast<int>(points.size()), committed);
    for (const auto& p : points) EXPECT_EQ(db->requests(p.id).size(), static_cast<std::size_t>(kRequestsPerPoint));
  }
}
