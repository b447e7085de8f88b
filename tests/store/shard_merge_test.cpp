// Merging a task's shard into the study database: exact copies with new load point ids, one
// transaction, idempotent, and never a run that the task did not finish.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include "qmeter/core/error.h"

#include "qmeter/store/store.h"
#include "test_support.h"

using namespace qmeter::store;

namespace {

RunRow run_row(const std::string& id) {
  RunRow r;
  r.id = id;
  r.study = "s";
  r.model = "m";
  r.method = "int8";
  r.config_json = R"({"method":"int8"})";
  r.host_json = R"({"hostname":"node7"})";
  return r;
}

// A shard as a task writes it: `points` load points of `requests` requests each, samples, quality.
void fill_shard(Store& shard, const std::string& run_id, int points, int requests, RunStatus end) {
  shard.put_study("s", "study: {name: s}");
  shard.begin_run(run_row(run_id));
  shard.write_run_samples(run_id, {TelemetrySampleRow{1, "idle", "model", "cpu", 11.0}});
  for (int p = 0; p < points; ++p) {
    LoadPointRow lp;
    lp.run_id = run_id;
    lp.index = p;
    lp.target_kind = "rate";
    lp.target_value = 2.0 * (p + 1);
    lp.p99_ttft_ms = 10.0 + p;
    std::vector<RequestRow> rq(static_cast<std::size_t>(requests));
    for (int i = 0; i < requests; ++i) {
      rq[static_cast<std::size_t>(i)].index = i;
      rq[static_cast<std::size_t>(i)].scheduled_ns = 1000LL * i + p;
      rq[static_cast<std::size_t>(i)].text = "p" + std::to_string(p) + "r" + std::to_string(i);
    }
    TelemetrySampleRow s{100 + p, "load", "model", "cpu", 20.0 + p};
    ServerMetricSampleRow m{200 + p, "vllm:num_requests_running", "", 3.0 + p};
    shard.write_load_point(lp, rq, {s, s}, {m});
  }
  shard.write_quality(run_id, "perplexity:x", {{run_id, "perplexity:x", "perplexity", 4.5, 0.1, 12}},
                      {{0, R"({"nll":1})"}, {1, R"({"nll":2})"}});
  if (end != RunStatus::kRunning) shard.finish_run(run_id, end, end == RunStatus::kFailed ? "backend did not start" : "");
}

std::string dump(const Store& db) {
  std::ostringstream out;
  for (const auto& r : db.runs()) {
    out << r.id << " " << run_status_name(r.status) << " " << r.host_json << " " << r.error << "\n";
    for (const auto& p : db.load_points(r.id)) {
      out << " point " << p.index << " " << p.target_value << " " << p.p99_ttft_ms << "\n";
      for (const auto& q : db.requests(p.id)) out << "  " << q.index << " " << q.scheduled_ns << " " << q.text << "\n";
    }
    for (const auto& q : db.quality_results(r.id)) out << " q " << q.metric << " " << q.value << " " << q.n << "\n";
  }
  return out.str();
}

}  // namespace

TEST(ShardMerge, CopiesEveryRowOfACompleteRunWithNewPointIds) {
  const auto dir = qmeter::testing::test_output_dir("shard_merge_copy");
  auto shard_a = Store::open(dir + "/a.db", JournalMode::kRollback);
  auto shard_b = Store::open(dir + "/b.db", JournalMode::kRollback);
  fill_shard(*shard_a, "runA", 2, 3, RunStatus::kComplete);
  fill_shard(*shard_b, "runB", 3, 2, RunStatus::kComplete);
  auto db = Store::open(dir + "/study.db");
  EXPECT_EQ(db->merge_run(dir + "/a.db", "runA"), MergeOutcome::kMerged);
  EXPECT_EQ(db->merge_run(dir + "/b.db", "runB"), MergeOutcome::kMerged);
  EXPECT_EQ(db->run_status("runA"), RunStatus::kComplete);
  // Both shards numbered their points from 1; the study database gives runB new ids.
  EXPECT_EQ(db->count_rows("load_points"), 5);
  EXPECT_EQ(db->count_rows("requests"), 2 * 3 + 3 * 2);
  EXPECT_EQ(db->count_rows("telemetry_samples"), (1 + 2 * 2) + (1 + 2 * 3));
  EXPECT_EQ(db->count_rows("server_metric_samples"), 5);
  EXPECT_EQ(db->count_rows("quality_items"), 4);
  // Each run reads back exactly as its shard holds it (points, their requests, quality).
  auto expect_same_run = [&](const Store& shard, const std::string& id) {
    const auto sp = shard.load_points(id), dp = db->load_points(id);
    ASSERT_EQ(sp.size(), dp.size());
    for (std::size_t i = 0; i < sp.size(); ++i) {
      EXPECT_EQ(sp[i].p99_ttft_ms, dp[i].p99_ttft_ms);
      const auto sr = shard.requests(sp[i].id), dr = db->requests(dp[i].id);
      ASSERT_EQ(sr.size(), dr.size());
      for (std::size_t k = 0; k < sr.size(); ++k) {
        EXPECT_EQ(sr[k].scheduled_ns, dr[k].scheduled_ns);
        EXPECT_EQ(sr[k].text, dr[k].text);
      }
    }
  };
  expect_same_run(*shard_a, "runA");
  expect_same_run(*shard_b, "runB");
  EXPECT_EQ(db->runs()[0].host_json, R"({"hostname":"node7"})");  // where it ran, from the shard
  EXPECT_EQ(db->integrity_check(), "ok");
}

TEST(ShardMerge, MergingAgainChangesNothing) {
  const auto dir = qmeter::testing::test_output_dir("shard_merge_idempotent");
  auto shard = Store::open(dir + "/a.db", JournalMode::kRollback);
  fill_shard(*shard, "runA", 2, 4, RunStatus::kComplete);
  auto db = Store::open(dir + "/study.db");
  ASSERT_EQ(db->merge_run(dir + "/a.db", "runA"), MergeOutcome::kMerged);
  const std::string before = dump(*db);
  const auto rows = db->count_rows("requests");
  EXPECT_EQ(db->merge_run(dir + "/a.db", "runA"), MergeOutcome::kAlreadyComplete);
  EXPECT_EQ(dump(*db), before);
  EXPECT_EQ(db->count_rows("requests"), rows);
  EXPECT_EQ(db->count_rows("telemetry_samples"), 1 + 2 * 2);  // idle + 2 per point
}

TEST(ShardMerge, ACutOffRunIsNotMergedAndAFailedOneKeepsItsError) {
  const auto dir = qmeter::testing::test_output_dir("shard_merge_partial");
  auto cut = Store::open(dir + "/cut.db", JournalMode::kRollback);
  fill_shard(*cut, "runC", 1, 2, RunStatus::kRunning);  // killed mid-run: still `running`
  auto failed = Store::open(dir + "/failed.db", JournalMode::kRollback);
  fill_shard(*failed, "runF", 1, 2, RunStatus::kFailed);
  auto db = Store::open(dir + "/study.db");
  EXPECT_EQ(db->merge_run(dir + "/cut.db", "runC"), MergeOutcome::kShardIncomplete);
  EXPECT_EQ(db->merge_run(dir + "/cut.db", "nosuchrun"), MergeOutcome::kShardIncomplete);
  EXPECT_FALSE(db->run_status("runC").has_value());
  EXPECT_EQ(db->count_rows("load_points"), 0);
  EXPECT_EQ(db->merge_run(dir + "/failed.db", "runF"), MergeOutcome::kMerged);
  ASSERT_EQ(db->runs().size(), 1u);
  EXPECT_EQ(db->runs()[0].status, RunStatus::kFailed);
  EXPECT_EQ(db->runs()[0].error, "backend did not start");
  EXPECT_THROW(db->merge_run(dir + "/missing-dir/x.db", "runX"), qmeter::Error);
}

TEST(ShardMerge, ReplacesAPendingRowAndMarksThePlacementMerged) {
  const auto dir = qmeter::testing::test_output_dir("shard_merge_placement");
  auto shard = Store::open(dir + "/a.db", JournalMode::kRollback);
  fill_shard(*shard, "runA", 1, 2, RunStatus::kComplete);
  auto db = Store::open(dir + "/study.db");
  RunRow pending = run_row("runA");
  pending.host_json = "{}";
  db->begin_run(pending, RunStatus::kPending);
  EXPECT_EQ(db->run_status("runA"), RunStatus::kPending);
  PlacementRow p;
  p.run_id = "runA";
  p.executor = "slurm";
  p.label = "m int8";
  p.job_id = "41";
  p.task_id = 3;
  p.node = "q2";
  p.state = "COMPLETED";
  p.exit_code = "0:0";
  p.start_unix_ms = 1000;
  p.end_unix_ms = 5000;
  p.shard_path = dir + "/a.db";
  db->put_placement(p);
  ASSERT_EQ(db->merge_run(dir + "/a.db", "runA"), MergeOutcome::kMerged);
  EXPECT_EQ(db->runs().size(), 1u);
  EXPECT_EQ(db->run_status("runA"), RunStatus::kComplete);
  const auto back = db->placement("runA");
  ASSERT_TRUE(back.has_value());
  EXPECT_GT(back->merged_unix_ms, 0);
  EXPECT_EQ(back->job_id, "41");
  EXPECT_EQ(back->task_id, 3);
  EXPECT_EQ(back->node, "q2");
  EXPECT_EQ(back->label, "m int8");
  EXPECT_EQ(back->end_unix_ms, 5000);
  EXPECT_FALSE(db->placement("other").has_value());
  // Export shows where each run ran.
  std::ostringstream csv;
  db->export_table("run_placements", "csv", csv);
  EXPECT_NE(csv.str().find("runA,slurm,m int8,41,3,q2"), std::string::npos) << csv.str();
}

TEST(ShardMerge, AShardUsesARollbackJournalAndTheStudyDatabaseWal) {
  const auto dir = qmeter::testing::test_output_dir("shard_journal");
  auto shard = Store::open(dir + "/a.db", JournalMode::kRollback);
  fill_shard(*shard, "runA", 1, 1, RunStatus::kComplete);
  auto db = Store::open(dir + "/study.db");
  db->put_study("s", "x");
  EXPECT_FALSE(std::filesystem::exists(dir + "/a.db-wal"));
  EXPECT_TRUE(std::filesystem::exists(dir + "/study.db-wal"));
}
