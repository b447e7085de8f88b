// The store's schema as an ordered list of migrations. Migration k takes the database from
// schema version k-1 to k; a new column or table is a new entry, never an edit of an old one.
#include "schema.h"

namespace qmeter::store {

const std::vector<std::string_view>& migrations() {
  static const std::vector<std::string_view> kMigrations = {
      // 1: the initial schema.
      R"sql(
CREATE TABLE studies (
  name TEXT PRIMARY KEY,
  spec TEXT NOT NULL,
  created_unix_ms INTEGER NOT NULL
);
CREATE TABLE runs (
  id TEXT PRIMARY KEY,
  study TEXT NOT NULL,
  model TEXT NOT NULL,
  method TEXT NOT NULL,
  config_json TEXT NOT NULL,
  status TEXT NOT NULL,
  started_unix_ms INTEGER,
  finished_unix_ms INTEGER,
  host_json TEXT,
  versions_json TEXT,
  error TEXT,
  log_tail TEXT
);
CREATE INDEX runs_study ON runs(study);
CREATE TABLE load_points (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id TEXT NOT NULL REFERENCES runs(id),
  idx INTEGER NOT NULL,
  target_kind TEXT NOT NULL,
  target_value REAL NOT NULL,
  achieved_rate REAL, duration_s REAL, completed INTEGER, failed INTEGER,
  request_throughput REAL, output_throughput REAL,
  p50_ttft_ms REAL, p99_ttft_ms REAL, p50_tpot_ms REAL, p99_tpot_ms REAL, p99_e2el_ms REAL,
  energy_per_token_j REAL, avg_power_w REAL, energy_source TEXT,
  metrics_json TEXT, energy_json TEXT,
  UNIQUE(run_id, idx)
);
CREATE TABLE requests (
  load_point_id INTEGER NOT NULL REFERENCES load_points(id),
  idx INTEGER NOT NULL,
  warmup INTEGER NOT NULL,
  scheduled_ns INTEGER, sent_ns INTEGER, first_token_ns INTEGER, end_ns INTEGER,
  prompt_tokens INTEGER, output_tokens INTEGER, client_tokens INTEGER, max_tokens INTEGER,
  http_status INTEGER, error_kind TEXT, error_message TEXT,
  chunks_json TEXT, energy_j REAL, text TEXT,
  PRIMARY KEY(load_point_id, idx)
);
CREATE TABLE telemetry_samples (
  run_id TEXT NOT NULL REFERENCES runs(id),
  load_point_id INTEGER,
  t_ns INTEGER NOT NULL, phase TEXT, source TEXT, device TEXT,
  power_w REAL, energy_j REAL, sm_clock_mhz REAL, mem_clock_mhz REAL, util_pct REAL,
  mem_used_mb REAL, temp_c REAL
);
CREATE INDEX telemetry_run ON telemetry_samples(run_id, load_point_id);
CREATE TABLE server_metric_samples (
  run_id TEXT NOT NULL REFERENCES runs(id),
  load_point_id INTEGER,
  t_ns INTEGER NOT NULL, name TEXT NOT NULL, labels TEXT, value REAL
);
CREATE TABLE quality_results (
  run_id TEXT NOT NULL REFERENCES runs(id),
  task TEXT NOT NULL, metric TEXT NOT NULL,
  value REAL, stderr REAL, n INTEGER,
  PRIMARY KEY(run_id, task, metric)
);
CREATE TABLE quality_items (
  run_id TEXT NOT NULL REFERENCES runs(id),
  task TEXT NOT NULL, idx INTEGER NOT NULL, json TEXT,
  PRIMARY KEY(run_id, task, idx)
);
)sql",
      // 2: where each run executed under a batch scheduler (the Slurm executor): one row per run,
      // its latest attempt. No foreign key to runs: a run is placed before its rows exist here
      // (they arrive when its shard is merged).
      R"sql(
CREATE TABLE run_placements (
  run_id TEXT PRIMARY KEY,
  executor TEXT NOT NULL,
  label TEXT,
  job_id TEXT, task_id INTEGER, node TEXT,
  submit_unix_ms INTEGER, start_unix_ms INTEGER, end_unix_ms INTEGER,
  state TEXT, exit_code TEXT, reason TEXT,
  shard_path TEXT, merged_unix_ms INTEGER, attempt INTEGER NOT NULL DEFAULT 1
);
)sql",
      // 3: a quality task that could not be scored is stored as such (its error), so it never
      // costs the run its load points.
      R"sql(
CREATE TABLE quality_task_errors (
  run_id TEXT NOT NULL,
  task TEXT NOT NULL,
  status TEXT NOT NULL,
  error TEXT,
  PRIMARY KEY(run_id, task)
);
)sql",
      // 4: what the quantization registry derives from a run's configuration (bits per weight, its
      // short label), stored with the run; rows from before it are NULL and computed on read.
      R"sql(
ALTER TABLE runs ADD COLUMN properties_json TEXT;
)sql",
  };
  return kMigrations;
}

}  // namespace qmeter::store
