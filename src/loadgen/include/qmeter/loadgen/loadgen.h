#pragma once
// Runs a precomputed workload schedule through the streaming client and computes its metrics.
// Other parts of a run (energy telemetry, server /metrics scraping) attach through RunObserver:
// they are told when the measured run starts and stops, get every record, and may add figures
// to the JSON output and the summary table.
#include <atomic>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "qmeter/client/request_record.h"
#include "qmeter/client/streaming_client.h"
#include "qmeter/loadgen/metrics.h"
#include "qmeter/loadgen/session_metrics.h"
#include "qmeter/workload/schedule.h"

namespace qmeter::loadgen {

// What was run, for the outputs (vLLM's result keys where they exist).
struct RunInfo {
  std::string backend = "openai";  // "openai" or "openai-chat" by endpoint, as vLLM names them
  std::string base_url;
  std::string endpoint;
  std::string model_id;
  std::string dataset;
  std::string arrival;          // constant | poisson | gamma | inf | trace | ramp
  double request_rate = -1;     // < 0: inf
  double burstiness = 1.0;
  int max_concurrency = 0;
  int max_connections = 0;      // the client's connection limit (RunControl::max_connections)
  std::int64_t num_prompts = 0;
  int warmup = 0;
  std::uint64_t seed = 0;
  std::string schedule_description;
  std::string date;  // wall-clock start, "YYYYMMDD-HHMMSS"
};

// Figures other modules add to a run's outputs (for example energy per output token).
struct ResultExtras {
  std::vector<std::pair<std::string, double>> numbers;       // top-level JSON keys
  std::vector<std::pair<std::string, std::string>> strings;  // top-level JSON keys
  std::vector<std::string> summary_lines;                    // appended to the summary table
};

class RunObserver {
 public:
  virtual ~RunObserver() = default;
  // Just before the first request is due (start_ns = the schedule's time zero, steady clock).
  virtual void on_run_start(const RunInfo& info, Nanos start_ns) {}
  // As each request ends, on the client's event-loop thread: must be cheap and must not block.
  virtual void on_request_done(const client::RequestRecord& record) {}
  // After every request ended (stop_ns = the last end). Records include warmup ones (flagged).
  virtual void on_run_stop(std::span<const client::RequestRecord> records, Nanos start_ns, Nanos stop_ns,
                           ResultExtras& extras) {}
};

struct LoadgenOptions {
  client::ClientOptions client;
  int warmup = 0;                 // the first N requests of the schedule are sent but excluded
  MetricsOptions metrics;
  int max_connections = client::RunControl::kDefaultMaxConnections;  // open connections at most
  Nanos debug_loop_stall_ns = 0;  // test hook: starve the client's event loop (RunControl)
  bool check_server = true;       // probe /v1/models (or /health) first: one clear error if unreachable
  bool progress = false;          // progress bar on stderr
  Nanos start_delay_ns = 20'000'000;  // time zero = now + this (bodies are built, loop is ready)
  std::vector<RunObserver*> observers;
  const std::atomic<bool>* cancel = nullptr;
};

struct LoadgenResult {
  RunInfo info;
  std::vector<client::RequestRecord> records;  // schedule order
  Metrics metrics;
  SessionMetrics sessions;  // multi-turn workloads (defined = false otherwise)
  ResultExtras extras;
  Nanos start_ns = 0, stop_ns = 0;
};

// The client requests for a schedule starting at `start_ns` (exposed for tests).
std::vector<client::StreamRequest> to_stream_requests(const workload::Schedule& schedule, Nanos start_ns, int warmup);

LoadgenResult run_load(const workload::Schedule& schedule, const LoadgenOptions& options, RunInfo info);

// Outputs.
void write_output_json(const std::string& path, const LoadgenResult& result, const MetricsOptions& options);
std::string output_json_text(const LoadgenResult& result, const MetricsOptions& options);
void write_requests_jsonl(const std::string& path, std::span<const client::RequestRecord> records);
std::string format_summary(const LoadgenResult& result, const MetricsOptions& options);

}  // namespace qmeter::loadgen
