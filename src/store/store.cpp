#include "qmeter/store/store.h"

#include <chrono>
#include <nlohmann/json.hpp>
#include <ostream>

#include "qmeter/core/error.h"
#include "schema.h"
#include "sqlite_db.h"
#include "store_impl.h"

namespace qmeter::store {

const char* run_status_name(RunStatus s) {
  switch (s) {
    case RunStatus::kPending: return "pending";
    case RunStatus::kRunning: return "running";
    case RunStatus::kComplete: return "complete";
    case RunStatus::kFailed: return "failed";
    case RunStatus::kInterrupted: return "interrupted";
  }
  return "pending";
}

RunStatus run_status_from_name(const std::string& s) {
  if (s == "running") return RunStatus::kRunning;
  if (s == "complete") return RunStatus::kComplete;
  if (s == "failed") return RunStatus::kFailed;
  if (s == "interrupted") return RunStatus::kInterrupted;
  return RunStatus::kPending;
}

std::int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::~Store() = default;

std::unique_ptr<Store> Store::open(const std::string& path, JournalMode mode) {
  auto impl = std::make_unique<Impl>(path);
  auto& db = impl->db;
  if (mode == JournalMode::kWal) {
    // WAL: readers (report, ls) never block the writer; synchronous=NORMAL is durable in WAL mode
    // against process crashes (SIGKILL), which is the failure the study must survive.
    db.exec("PRAGMA journal_mode=WAL");
    db.exec("PRAGMA synchronous=NORMAL");
  } else {
    // A shard: rollback journal (no shared-memory index, safe on NFS), fsync'd at each commit.
    db.exec("PRAGMA journal_mode=DELETE");
    db.exec("PRAGMA synchronous=FULL");
  }
  db.exec("PRAGMA foreign_keys=ON");
  int version = 0;
  {
    Statement st(db.handle(), "PRAGMA user_version");
    if (st.step()) version = static_cast<int>(st.col_int(0));
  }
  const auto& migs = migrations();
  if (version > static_cast<int>(migs.size())) {
    throw Error("results database '" + path + "' has schema version " + std::to_string(version) +
                ", newer than this qmeter understands (" + std::to_string(migs.size()) + ")");
  }
  for (auto v = static_cast<std::size_t>(version); v < migs.size(); ++v) {
    Transaction tx(db);
    db.exec(migs[v]);
    db.exec("PRAGMA user_version=" + std::to_string(v + 1));
    tx.commit();
  }
  impl->version = static_cast<int>(migs.size());
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

int Store::schema_version() const { return impl_->version; }
const std::string& Store::path() const { return impl_->db.path(); }

void Store::put_study(const std::string& name, const std::string& spec_text) {
  Statement st(impl_->db.handle(),
               "INSERT INTO studies(name, spec, created_unix_ms) VALUES(?,?,?) "
               "ON CONFLICT(name) DO UPDATE SET spec=excluded.spec");
  st.bind(1, name).bind(2, spec_text).bind(3, unix_ms()).run();
}

void delete_run_children(Database& db, const std::string& run_id) {
  for (const char* sql : {"DELETE FROM requests WHERE load_point_id IN (SELECT id FROM load_points WHERE run_id=?)",
                          "DELETE FROM telemetry_samples WHERE run_id=?", "DELETE FROM server_metric_samples WHERE run_id=?",
                          "DELETE FROM load_points WHERE run_id=?", "DELETE FROM quality_items WHERE run_id=?",
                          "DELETE FROM quality_results WHERE run_id=?", "DELETE FROM quality_task_errors WHERE run_id=?"}) {
    Statement st(db.handle(), sql);
    st.bind(1, run_id).run();
  }
}

void Store::begin_run(const RunRow& run, RunStatus status) {
  auto& db = impl_->db;
  Transaction tx(db);
  delete_run_children(db, run.id);
  Statement st(db.handle(),
               "INSERT INTO runs(id, study, model, method, config_json, status, started_unix_ms, finished_unix_ms, "
               "host_json, versions_json, error, log_tail, properties_json) VALUES(?,?,?,?,?,?,?,NULL,?,?,'','',?) "
               "ON CONFLICT(id) DO UPDATE SET study=excluded.study, model=excluded.model, method=excluded.method, "
               "config_json=excluded.config_json, status=excluded.status, started_unix_ms=excluded.started_unix_ms, "
               "finished_unix_ms=NULL, host_json=excluded.host_json, versions_json=excluded.versions_json, "
               "error='', log_tail='', properties_json=excluded.properties_json");
  st.bind(1, run.id).bind(2, run.study).bind(3, run.model).bind(4, run.method).bind(5, run.config_json);
  st.bind(6, std::string(run_status_name(status))).bind(7, unix_ms());
  st.bind(8, run.host_json).bind(9, run.versions_json);
  if (run.properties_json.empty()) st.bind_null(10);
  else st.bind(10, run.properties_json);
  st.run();
  tx.commit();
}

void Store::finish_run(const std::string& run_id, RunStatus status, const std::string& error,
                       const std::string& log_tail) {
  Statement st(impl_->db.handle(),
               "UPDATE runs SET status=?, finished_unix_ms=?, error=?, log_tail=? WHERE id=?");
  st.bind(1, std::string(run_status_name(status))).bind(2, unix_ms()).bind(3, error).bind(4, log_tail).bind(5, run_id);
  st.run();
  if (sqlite3_changes(impl_->db.handle()) == 0) throw Error("finish_run: no run with id " + run_id);
}

std::optional<RunStatus> Store::run_status(const std::string& run_id) const {
  Statement st(impl_->db.handle(), "SELECT status FROM runs WHERE id=?");
  st.bind(1, run_id);
  if (!st.step()) return std::nullopt;
  return run_status_from_name(st.col_text(0));
}

static void insert_samples(Database& db, const std::string& run_id, std::optional<std::int64_t> lp,
                           const std::vector<TelemetrySampleRow>& samples) {
  Statement st(db.handle(),
               "INSERT INTO telemetry_samples(run_id, load_point_id, t_ns, phase, source, device, power_w, energy_j, "
               "sm_clock_mhz, mem_clock_mhz, util_pct, mem_used_mb, temp_c) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)");
  for (const auto& s : samples) {
    st.bind(1, run_id);
    if (lp) st.bind(2, *lp); else st.bind_null(2);
    st.bind(3, s.t_ns).bind(4, s.phase).bind(5, s.source).bind(6, s.device).bind(7, s.power_w).bind(8, s.energy_j);
    st.bind(9, s.sm_clock_mhz).bind(10, s.mem_clock_mhz).bind(11, s.util_pct).bind(12, s.mem_used_mb).bind(13, s.temp_c);
    st.run();
  }
}

std::int64_t Store::write_load_point(LoadPointRow p, const std::vector<RequestRow>& requests,
                                     const std::vector<TelemetrySampleRow>& samples,
                                     const std::vector<ServerMetricSampleRow>& server_metrics) {
  auto& db = impl_->db;
  Transaction tx(db);
  {
    // A point written again (a redo after a crash between its commit and the run's) replaces the old one.
    Statement old(db.handle(), "SELECT id FROM load_points WHERE run_id=? AND idx=?");
    old.bind(1, p.run_id).bind(2, p.index);
    if (old.step()) {
      const std::int64_t old_id = old.col_int(0);
      for (const char* sql : {"DELETE FROM requests WHERE load_point_id=?", "DELETE FROM telemetry_samples WHERE load_point_id=?",
                              "DELETE FROM server_metric_samples WHERE load_point_id=?", "DELETE FROM load_points WHERE id=?"}) {
        Statement d(db.handle(), sql);
        d.bind(1, old_id).run();
      }
    }
  }
  Statement st(db.handle(),
               "INSERT INTO load_points(run_id, idx, target_kind, target_value, achieved_rate, duration_s, completed, "
               "failed, request_throughput, output_throughput, p50_ttft_ms, p99_ttft_ms, p50_tpot_ms, p99_tpot_ms, "
               "p99_e2el_ms, energy_per_token_j, avg_power_w, energy_source, metrics_json, energy_json) "
               "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
  st.bind(1, p.run_id).bind(2, p.index).bind(3, p.target_kind).bind(4, p.target_value).bind(5, p.achieved_rate);
  st.bind(6, p.duration_s).bind(7, p.completed).bind(8, p.failed).bind(9, p.request_throughput);
  st.bind(10, p.output_throughput).bind(11, p.p50_ttft_ms).bind(12, p.p99_ttft_ms).bind(13, p.p50_tpot_ms);
  st.bind(14, p.p99_tpot_ms).bind(15, p.p99_e2el_ms).bind(16, p.energy_per_token_j).bind(17, p.avg_power_w);
  st.bind(18, p.energy_source).bind(19, p.metrics_json).bind(20, p.energy_json).run();
  const std::int64_t id = sqlite3_last_insert_rowid(db.handle());

  Statement rq(db.handle(),
               "INSERT INTO requests(load_point_id, idx, warmup, scheduled_ns, sent_ns, first_token_ns, end_ns, "
               "prompt_tokens, output_tokens, client_tokens, max_tokens, http_status, error_kind, error_message, "
               "chunks_json, energy_j, text) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
  for (const auto& r : requests) {
    rq.bind(1, id).bind(2, r.index).bind(3, r.warmup ? 1 : 0).bind(4, r.scheduled_ns).bind(5, r.sent_ns);
    rq.bind(6, r.first_token_ns).bind(7, r.end_ns).bind(8, r.prompt_tokens).bind(9, r.output_tokens);
    rq.bind(10, r.client_tokens).bind(11, r.max_tokens).bind(12, r.http_status).bind(13, r.error_kind);
    rq.bind(14, r.error_message).bind(15, r.chunks_json).bind(16, r.energy_j).bind(17, r.text).run();
  }
  insert_samples(db, p.run_id, id, samples);
  Statement sm(db.handle(),
               "INSERT INTO server_metric_samples(run_id, load_point_id, t_ns, name, labels, value) VALUES(?,?,?,?,?,?)");
  for (const auto& m : server_metrics) {
    sm.bind(1, p.run_id).bind(2, id).bind(3, m.t_ns).bind(4, m.name).bind(5, m.labels).bind(6, m.value).run();
  }
  tx.commit();
  return id;
}

void Store::write_run_samples(const std::string& run_id, const std::vector<TelemetrySampleRow>& samples) {
  Transaction tx(impl_->db);
  insert_samples(impl_->db, run_id, std::nullopt, samples);
  tx.commit();
}

// Removes what a quality task stored before (results, items, error): a task is stored whole.
static void clear_quality_task(Database& db, const std::string& run_id, const std::string& task) {
  for (const char* sql : {"DELETE FROM quality_results WHERE run_id=? AND task=?",
                          "DELETE FROM quality_items WHERE run_id=? AND task=?",
                          "DELETE FROM quality_task_errors WHERE run_id=? AND task=?"}) {
    Statement d(db.handle(), sql);
    d.bind(1, run_id).bind(2, task).run();
  }
}

void Store::write_quality(const std::string& run_id, const std::string& task,
                          const std::vector<QualityResultRow>& results, const std::vector<QualityItemRow>& items) {
  auto& db = impl_->db;
  Transaction tx(db);
  clear_quality_task(db, run_id, task);
  Statement st(db.handle(), "INSERT INTO quality_results(run_id, task, metric, value, stderr, n) VALUES(?,?,?,?,?,?)");
  for (const auto& r : results) {
    st.bind(1, run_id).bind(2, task).bind(3, r.metric).bind(4, r.value).bind(5, r.stderr_).bind(6, r.n).run();
  }
  Statement it(db.handle(), "INSERT INTO quality_items(run_id, task, idx, json) VALUES(?,?,?,?)");
  for (const auto& i : items) it.bind(1, run_id).bind(2, task).bind(3, i.index).bind(4, i.json).run();
  tx.commit();
}

std::vector<RunRow> Store::runs(const std::string& study) const {
  Statement st(impl_->db.handle(),
               "SELECT id, study, model, method, config_json, status, COALESCE(started_unix_ms,0), "
               "COALESCE(finished_unix_ms,0), COALESCE(host_json,''), COALESCE(versions_json,''), COALESCE(error,''), "
               "COALESCE(log_tail,''), COALESCE(properties_json,'') FROM runs WHERE (?='' OR study=?) ORDER BY started_unix_ms, id");
  st.bind(1, study).bind(2, study);
  std::vector<RunRow> out;
  while (st.step()) {
    RunRow r;
    r.id = st.col_text(0);
    r.study = st.col_text(1);
    r.model = st.col_text(2);
    r.method = st.col_text(3);
    r.config_json = st.col_text(4);
    r.status = run_status_from_name(st.col_text(5));
    r.started_unix_ms = st.col_int(6);
    r.finished_unix_ms = st.col_int(7);
    r.host_json = st.col_text(8);
    r.versions_json = st.col_text(9);
    r.error = st.col_text(10);
    r.log_tail = st.col_text(11);
    r.properties_json = st.col_text(12);
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<LoadPointRow> Store::load_points(const std::string& run_id) const {
  Statement st(impl_->db.handle(),
               "SELECT id, run_id, idx, target_kind, target_value, achieved_rate, duration_s, completed, failed, "
               "request_throughput, output_throughput, p50_ttft_ms, p99_ttft_ms, p50_tpot_ms, p99_tpot_ms, p99_e2el_ms, "
               "energy_per_token_j, avg_power_w, energy_source, metrics_json, energy_json FROM load_points "
               "WHERE run_id=? ORDER BY idx");
  st.bind(1, run_id);
  std::vector<LoadPointRow> out;
  while (st.step()) {
    LoadPointRow p;
    p.id = st.col_int(0);
    p.run_id = st.col_text(1);
    p.index = static_cast<int>(st.col_int(2));
    p.target_kind = st.col_text(3);
    p.target_value = st.col_double(4);
    p.achieved_rate = st.col_double(5);
    p.duration_s = st.col_double(6);
    p.completed = static_cast<int>(st.col_int(7));
    p.failed = static_cast<int>(st.col_int(8));
    p.request_throughput = st.col_double(9);
    p.output_throughput = st.col_double(10);
    p.p50_ttft_ms = st.col_double(11);
    p.p99_ttft_ms = st.col_double(12);
    p.p50_tpot_ms = st.col_double(13);
    p.p99_tpot_ms = st.col_double(14);
    p.p99_e2el_ms = st.col_double(15);
    p.energy_per_token_j = st.col_double(16);
    p.avg_power_w = st.col_double(17);
    p.energy_source = st.col_text(18);
    p.metrics_json = st.col_text(19);
    p.energy_json = st.col_text(20);
    out.push_back(std::move(p));
  }
  return out;
}

std::vector<RequestRow> Store::requests(std::int64_t load_point_id) const {
  Statement st(impl_->db.handle(),
               "SELECT idx, warmup, scheduled_ns, sent_ns, first_token_ns, end_ns, prompt_tokens, output_tokens, "
               "client_tokens, max_tokens, http_status, error_kind, error_message, chunks_json, energy_j, text "
               "FROM requests WHERE load_point_id=? ORDER BY idx");
  st.bind(1, load_point_id);
  std::vector<RequestRow> out;
  while (st.step()) {
    RequestRow r;
    r.index = static_cast<int>(st.col_int(0));
    r.warmup = st.col_int(1) != 0;
    r.scheduled_ns = st.col_int(2);
    r.sent_ns = st.col_int(3);
    r.first_token_ns = st.col_int(4);
    r.end_ns = st.col_int(5);
    r.prompt_tokens = static_cast<int>(st.col_int(6));
    r.output_tokens = static_cast<int>(st.col_int(7));
    r.client_tokens = static_cast<int>(st.col_int(8));
    r.max_tokens = static_cast<int>(st.col_int(9));
    r.http_status = static_cast<int>(st.col_int(10));
    r.error_kind = st.col_text(11);
    r.error_message = st.col_text(12);
    r.chunks_json = st.col_text(13);
    r.energy_j = st.col_double(14);
    r.text = st.col_text(15);
    out.push_back(std::move(r));
  }
  return out;
}

void Store::write_quality_error(const std::string& run_id, const std::string& task, const std::string& status,
                                const std::string& error) {
  auto& db = impl_->db;
  Transaction tx(db);  // the task's earlier results go and its error comes in one step
  clear_quality_task(db, run_id, task);
  Statement st(db.handle(), "INSERT INTO quality_task_errors(run_id, task, status, error) VALUES(?,?,?,?)");
  st.bind(1, run_id).bind(2, task).bind(3, status).bind(4, error).run();
  tx.commit();
}

std::vector<QualityErrorRow> Store::quality_errors(const std::string& run_id) const {
  Statement st(impl_->db.handle(),
               "SELECT run_id, task, status, COALESCE(error,'') FROM quality_task_errors WHERE run_id=? ORDER BY task");
  st.bind(1, run_id);
  std::vector<QualityErrorRow> out;
  while (st.step()) out.push_back({st.col_text(0), st.col_text(1), st.col_text(2), st.col_text(3)});
  return out;
}

std::vector<QualityResultRow> Store::quality_results(const std::string& run_id) const {
  Statement st(impl_->db.handle(),
               "SELECT run_id, task, metric, value, stderr, n FROM quality_results WHERE run_id=? ORDER BY task, metric");
  st.bind(1, run_id);
  std::vector<QualityResultRow> out;
  while (st.step()) {
    QualityResultRow q;
    q.run_id = st.col_text(0);
    q.task = st.col_text(1);
    q.metric = st.col_text(2);
    q.value = st.col_double(3);
    q.stderr_ = st.col_double(4);
    q.n = static_cast<int>(st.col_int(5));
    out.push_back(std::move(q));
  }
  return out;
}

std::vector<std::string> Store::studies() const {
  Statement st(impl_->db.handle(), "SELECT name FROM studies ORDER BY created_unix_ms, name");
  std::vector<std::string> out;
  while (st.step()) out.push_back(st.col_text(0));
  return out;
}

std::string Store::study_spec(const std::string& name) const {
  Statement st(impl_->db.handle(), "SELECT spec FROM studies WHERE name=?");
  st.bind(1, name);
  return st.step() ? st.col_text(0) : std::string();
}

const std::vector<std::string>& Store::table_names() {
  static const std::vector<std::string> kTables = {"studies",           "runs",
                                                   "load_points",       "requests",
                                                   "telemetry_samples", "server_metric_samples",
                                                   "quality_results",   "quality_items",
                                                   "run_placements",    "quality_task_errors"};
  return kTables;
}

static void check_table(const std::string& table) {
  for (const auto& t : Store::table_names()) {
    if (t == table) return;
  }
  std::string all;
  for (const auto& t : Store::table_names()) all += (all.empty() ? "" : ", ") + t;
  throw UsageError("unknown table '" + table + "' (tables: " + all + ")");
}

std::int64_t Store::count_rows(const std::string& table) const {
  check_table(table);
  Statement st(impl_->db.handle(), "SELECT COUNT(*) FROM " + table);
  st.step();
  return st.col_int(0);
}

static void csv_field(std::ostream& out, const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) {
    out << s;
    return;
  }
  out << '"';
  for (char c : s) {
    if (c == '"') out << '"';
    out << c;
  }
  out << '"';
}

static nlohmann::json table_json(Database& db, const std::string& table) {
  Statement st(db.handle(), "SELECT * FROM " + table + " ORDER BY rowid");
  nlohmann::json rows = nlohmann::json::array();
  while (st.step()) {
    nlohmann::json row = nlohmann::json::object();
    for (int i = 0; i < st.columns(); ++i) {
      switch (st.col_type(i)) {
        case SQLITE_NULL: row[st.col_name(i)] = nullptr; break;
        case SQLITE_INTEGER: row[st.col_name(i)] = st.col_int(i); break;
        case SQLITE_FLOAT: row[st.col_name(i)] = st.col_double(i); break;
        default: row[st.col_name(i)] = st.col_text(i); break;
      }
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

void Store::export_table(const std::string& table, const std::string& format, std::ostream& out) const {
  check_table(table);
  if (format == "json") {
    out << table_json(impl_->db, table).dump(1) << "\n";
    return;
  }
  if (format != "csv") throw UsageError("--format must be csv or json, not '" + format + "'");
  Statement st(impl_->db.handle(), "SELECT * FROM " + table + " ORDER BY rowid");
  for (int i = 0; i < st.columns(); ++i) {
    if (i) out << ',';
    csv_field(out, st.col_name(i));
  }
  out << "\n";
  while (st.step()) {
    for (int i = 0; i < st.columns(); ++i) {
      if (i) out << ',';
      if (st.col_type(i) == SQLITE_FLOAT) {
        out << nlohmann::json(st.col_double(i)).dump();  // shortest round-trip representation
      } else if (st.col_type(i) != SQLITE_NULL) {
        csv_field(out, st.col_text(i));
      }
    }
    out << "\n";
  }
}

std::string Store::export_all_json() const {
  nlohmann::json all = nlohmann::json::object();
  for (const auto& t : table_names()) all[t] = table_json(impl_->db, t);
  return all.dump();
}

std::string Store::integrity_check() const {
  Statement st(impl_->db.handle(), "PRAGMA integrity_check");
  std::string out;
  while (st.step()) out += (out.empty() ? "" : "\n") + st.col_text(0);
  return out;
}

}  // namespace qmeter::store
