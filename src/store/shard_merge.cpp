// Results that arrive from elsewhere: a task's shard merged into the study database, and where
// each run executed (run_placements). The merge is one transaction, so a coordinator killed at
// any moment leaves either the whole run or none of it, and merging again is a no-op.
#include <optional>
#include <string>

#include "qmeter/core/error.h"
#include "qmeter/store/store.h"
#include "sqlite_db.h"
#include "store_impl.h"

namespace qmeter::store {

namespace {

constexpr const char* kRunCols =
    "id, study, model, method, config_json, status, started_unix_ms, finished_unix_ms, host_json, versions_json, "
    "error, log_tail, properties_json";
constexpr const char* kPointCols =
    "run_id, idx, target_kind, target_value, achieved_rate, duration_s, completed, failed, request_throughput, "
    "output_throughput, p50_ttft_ms, p99_ttft_ms, p50_tpot_ms, p99_tpot_ms, p99_e2el_ms, energy_per_token_j, "
    "avg_power_w, energy_source, metrics_json, energy_json";
// Columns after load_point_id, which the merge replaces with the point's new id.
constexpr const char* kRequestCols =
    "idx, warmup, scheduled_ns, sent_ns, first_token_ns, end_ns, prompt_tokens, output_tokens, client_tokens, "
    "max_tokens, http_status, error_kind, error_message, chunks_json, energy_j, text";
constexpr const char* kSampleCols =
    "t_ns, phase, source, device, power_w, energy_j, sm_clock_mhz, mem_clock_mhz, util_pct, mem_used_mb, temp_c";
constexpr const char* kMetricCols = "t_ns, name, labels, value";

std::string str(const char* s) { return s; }

// Copies the rows of one load point (new_id in main, old_id in the shard), or the run-level
// samples when old_id is null.
void copy_point_rows(Database& db, const std::string& run_id, std::optional<std::int64_t> old_id,
                     std::optional<std::int64_t> new_id) {
  const std::string where = old_id ? "load_point_id=?2" : "load_point_id IS NULL";
  if (old_id) {
    Statement rq(db.handle(), "INSERT INTO main.requests(load_point_id, " + str(kRequestCols) + ") SELECT ?1, " +
                                  kRequestCols + " FROM shard.requests WHERE load_point_id=?2 ORDER BY idx");
    rq.bind(1, *new_id).bind(2, *old_id).run();
  }
  Statement ts(db.handle(), "INSERT INTO main.telemetry_samples(run_id, load_point_id, " + str(kSampleCols) +
                                ") SELECT ?3, ?1, " + kSampleCols + " FROM shard.telemetry_samples WHERE run_id=?3 AND " +
                                where + " ORDER BY rowid");
  Statement sm(db.handle(), "INSERT INTO main.server_metric_samples(run_id, load_point_id, " + str(kMetricCols) +
                                ") SELECT ?3, ?1, " + kMetricCols +
                                " FROM shard.server_metric_samples WHERE run_id=?3 AND " + where + " ORDER BY rowid");
  for (Statement* st : {&ts, &sm}) {
    if (new_id) st->bind(1, *new_id); else st->bind_null(1);
    if (old_id) st->bind(2, *old_id);
    st->bind(3, run_id).run();
  }
}

// ATTACH for the lifetime of the object (ATTACH and DETACH cannot run inside a transaction).
class AttachedShard {
 public:
  AttachedShard(Database& db, const std::string& path) : db_(db) {
    Statement st(db.handle(), "ATTACH DATABASE ? AS shard");
    st.bind(1, path).run();
  }
  ~AttachedShard() {
    try {
      db_.exec("DETACH DATABASE shard");
    } catch (...) {
    }
  }

 private:
  Database& db_;
};

}  // namespace

MergeOutcome Store::merge_run(const std::string& shard_path, const std::string& run_id) {
  if (run_status(run_id) == RunStatus::kComplete) return MergeOutcome::kAlreadyComplete;
  auto& db = impl_->db;
  try {
    AttachedShard attached(db, shard_path);
    {
      Statement st(db.handle(), "SELECT status FROM shard.runs WHERE id=?");
      st.bind(1, run_id);
      if (!st.step()) return MergeOutcome::kShardIncomplete;
      const RunStatus shard_status = run_status_from_name(st.col_text(0));
      // A run the task itself recorded failed is merged as the local executor keeps it (its
      // error and whatever it measured); a run still `running` there was cut off: not merged.
      if (shard_status != RunStatus::kComplete && shard_status != RunStatus::kFailed) return MergeOutcome::kShardIncomplete;
    }
    Transaction tx(db);
    delete_run_children(db, run_id);
    Statement(db.handle(), "DELETE FROM main.runs WHERE id=?").bind(1, run_id).run();
    Statement(db.handle(), "INSERT OR IGNORE INTO main.studies(name, spec, created_unix_ms) "
                           "SELECT name, spec, created_unix_ms FROM shard.studies")
        .run();
    Statement(db.handle(), "INSERT INTO main.runs(" + str(kRunCols) + ") SELECT " + kRunCols + " FROM shard.runs WHERE id=?")
        .bind(1, run_id)
        .run();
    Statement points(db.handle(), "SELECT id FROM shard.load_points WHERE run_id=? ORDER BY idx");
    points.bind(1, run_id);
    Statement insert_point(db.handle(), "INSERT INTO main.load_points(" + str(kPointCols) + ") SELECT " + kPointCols +
                                            " FROM shard.load_points WHERE id=?");
    while (points.step()) {
      const std::int64_t old_id = points.col_int(0);
      insert_point.bind(1, old_id).run();
      copy_point_rows(db, run_id, old_id, sqlite3_last_insert_rowid(db.handle()));
    }
    copy_point_rows(db, run_id, std::nullopt, std::nullopt);
    Statement(db.handle(), "INSERT INTO main.quality_results(run_id, task, metric, value, stderr, n) "
                           "SELECT run_id, task, metric, value, stderr, n FROM shard.quality_results WHERE run_id=?")
        .bind(1, run_id)
        .run();
    Statement(db.handle(), "INSERT INTO main.quality_items(run_id, task, idx, json) "
                           "SELECT run_id, task, idx, json FROM shard.quality_items WHERE run_id=? ORDER BY task, idx")
        .bind(1, run_id)
        .run();
    Statement has_errors(db.handle(), "SELECT 1 FROM shard.sqlite_master WHERE name='quality_task_errors'");
    if (has_errors.step()) {  // a shard written before schema 3 has none
      Statement(db.handle(), "INSERT INTO main.quality_task_errors(run_id, task, status, error) "
                             "SELECT run_id, task, status, error FROM shard.quality_task_errors WHERE run_id=?")
          .bind(1, run_id)
          .run();
    }
    Statement(db.handle(), "UPDATE main.run_placements SET merged_unix_ms=? WHERE run_id=?")
        .bind(1, unix_ms())
        .bind(2, run_id)
        .run();
    tx.commit();
  } catch (const Error& e) {
    throw Error("cannot merge run " + run_id + " from shard '" + shard_path + "': " + e.what());
  }
  return MergeOutcome::kMerged;
}

void Store::put_placement(const PlacementRow& p) {
  Statement st(impl_->db.handle(),
               "INSERT OR REPLACE INTO run_placements(run_id, executor, job_id, task_id, node, submit_unix_ms, "
               "start_unix_ms, end_unix_ms, state, exit_code, reason, shard_path, merged_unix_ms, attempt, label) "
               "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
  st.bind(1, p.run_id).bind(2, p.executor).bind(3, p.job_id).bind(4, p.task_id).bind(5, p.node);
  st.bind(6, p.submit_unix_ms).bind(7, p.start_unix_ms).bind(8, p.end_unix_ms).bind(9, p.state);
  st.bind(10, p.exit_code).bind(11, p.reason).bind(12, p.shard_path).bind(13, p.merged_unix_ms).bind(14, p.attempt);
  st.bind(15, p.label);
  st.run();
}

static std::vector<PlacementRow> read_placements(Database& db, const std::string& run_id) {
  Statement st(db.handle(),
               "SELECT run_id, executor, COALESCE(job_id,''), COALESCE(task_id,-1), COALESCE(node,''), "
               "COALESCE(submit_unix_ms,0), COALESCE(start_unix_ms,0), COALESCE(end_unix_ms,0), COALESCE(state,''), "
               "COALESCE(exit_code,''), COALESCE(reason,''), COALESCE(shard_path,''), COALESCE(merged_unix_ms,0), "
               "attempt, COALESCE(label,'') FROM run_placements WHERE (?1='' OR run_id=?1) ORDER BY job_id, task_id, run_id");
  st.bind(1, run_id);
  std::vector<PlacementRow> out;
  while (st.step()) {
    PlacementRow p;
    p.run_id = st.col_text(0);
    p.executor = st.col_text(1);
    p.job_id = st.col_text(2);
    p.task_id = static_cast<int>(st.col_int(3));
    p.node = st.col_text(4);
    p.submit_unix_ms = st.col_int(5);
    p.start_unix_ms = st.col_int(6);
    p.end_unix_ms = st.col_int(7);
    p.state = st.col_text(8);
    p.exit_code = st.col_text(9);
    p.reason = st.col_text(10);
    p.shard_path = st.col_text(11);
    p.merged_unix_ms = st.col_int(12);
    p.attempt = static_cast<int>(st.col_int(13));
    p.label = st.col_text(14);
    out.push_back(std::move(p));
  }
  return out;
}

std::vector<PlacementRow> Store::placements() const { return read_placements(impl_->db, ""); }

std::optional<PlacementRow> Store::placement(const std::string& run_id) const {
  if (run_id.empty()) return std::nullopt;
  auto all = read_placements(impl_->db, run_id);
  if (all.empty()) return std::nullopt;
  return all.front();
}

}  // namespace qmeter::store
