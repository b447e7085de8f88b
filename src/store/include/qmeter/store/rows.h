#pragma once
// Plain rows of the results store. The store knows nothing of the client, telemetry or quality
// modules: the study layer converts their records into these rows. Metrics that evolve with the
// tool live in JSON columns (metrics_json, energy_json) beside a few typed headline columns, so a
// new metric needs no migration and any figure can be recomputed from the raw rows.
#include <cstdint>
#include <string>
#include <vector>

namespace qmeter::store {

// kInterrupted: stopped by SIGINT/SIGTERM; its finished load points stay visible until a resume
// measures the run again (a run is measured whole, with one server start, or not at all).
enum class RunStatus { kPending, kRunning, kComplete, kFailed, kInterrupted };
const char* run_status_name(RunStatus s);
RunStatus run_status_from_name(const std::string& s);

struct RunRow {
  std::string id;           // stable hash of the normalized config
  std::string study;
  std::string model;
  std::string method;
  std::string config_json;  // the normalized RunConfig
  // What the quantization registry derives from the configuration, as JSON ({"bits_per_weight":
  // 4.1875, "label": "gptq-w4g128"}); "" for runs stored before schema 4.
  std::string properties_json;
  RunStatus status = RunStatus::kPending;
  std::int64_t started_unix_ms = 0, finished_unix_ms = 0;
  std::string host_json;      // host and hardware description
  std::string versions_json;  // software versions
  std::string error;
  std::string log_tail;
};

struct LoadPointRow {
  std::int64_t id = 0;  // assigned by the store
  std::string run_id;
  int index = 0;                // order within the run
  std::string target_kind;      // "rate" | "concurrency" | "search"
  double target_value = 0;      // req/s or concurrent streams (inf = +infinity)
  double achieved_rate = 0;     // completed requests / duration
  double duration_s = 0;
  int completed = 0, failed = 0;
  double request_throughput = 0, output_throughput = 0;
  double p50_ttft_ms = 0, p99_ttft_ms = 0, p50_tpot_ms = 0, p99_tpot_ms = 0, p99_e2el_ms = 0;
  double energy_per_token_j = -1;   // -1: not measured
  double avg_power_w = -1;
  std::string energy_source;        // counter | sampled | modelled | none
  std::string metrics_json;         // the whole bench-serve JSON of this point
  std::string energy_json;          // the whole energy report of this point
};

struct RequestRow {
  int index = 0;
  bool warmup = false;
  std::int64_t scheduled_ns = 0, sent_ns = 0, first_token_ns = 0, end_ns = 0;
  int prompt_tokens = -1, output_tokens = -1, client_tokens = 0, max_tokens = -1;
  int http_status = 0;
  std::string error_kind;  // "" when ok
  std::string error_message;
  std::string chunks_json;  // [[t_ns, tokens], ...]
  double energy_j = -1;     // attributed energy (-1: none)
  std::string text;
};

struct TelemetrySampleRow {
  std::int64_t t_ns = 0;
  std::string phase;   // idle | load
  std::string source;  // nvml | rapl | model
  std::string device;  // "gpu0", "package-0", ...
  double power_w = -1, energy_j = -1;  // energy_j: counter value where the source has one
  double sm_clock_mhz = -1, mem_clock_mhz = -1, util_pct = -1, mem_used_mb = -1, temp_c = -1;
};

struct ServerMetricSampleRow {
  std::int64_t t_ns = 0;
  std::string name;
  std::string labels;
  double value = 0;
};

struct QualityResultRow {
  std::string run_id;
  std::string task;    // e.g. "perplexity:tinystories"
  std::string metric;  // e.g. "perplexity", "acc", "acc_norm", "kl"
  double value = 0, stderr_ = 0;
  int n = 0;
};

// Where a run executed under a batch scheduler (its latest attempt): the scheduler's job and task,
// the node, its times and final state as the scheduler reports them, and the task's own results
// file (shard) until it is merged.
struct PlacementRow {
  std::string run_id;
  std::string executor;  // "slurm"
  std::string label;     // "model method hardware" of the run, for status lines before it is merged
  std::string job_id;    // the array job id ("1234")
  int task_id = -1;      // the array index
  std::string node;
  std::int64_t submit_unix_ms = 0, start_unix_ms = 0, end_unix_ms = 0;
  std::string state;      // the scheduler's state: PENDING, RUNNING, COMPLETED, CANCELLED, NODE_FAIL, ...
  std::string exit_code;  // "code:signal" as Slurm writes it
  std::string reason;
  std::string shard_path;
  std::int64_t merged_unix_ms = 0;  // 0: not merged
  int attempt = 1;
};

// A quality task that produced no result: "failed" (an error while scoring) or "unsupported"
// (the server cannot serve it).
struct QualityErrorRow {
  std::string run_id, task, status, error;
};

struct QualityItemRow {
  int index = 0;
  std::string json;  // the item's request, reply and score
};

}  // namespace qmeter::store
