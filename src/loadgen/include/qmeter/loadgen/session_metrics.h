#pragma once
// Metrics of multi-turn session workloads (records with session >= 0): TTFT and context length
// by turn index, and per conversation. Warmup records are left out.
#include <cstdint>
#include <span>
#include <vector>

#include "qmeter/client/request_record.h"
#include "qmeter/loadgen/metrics.h"

namespace qmeter::loadgen {

struct TurnStats {
  int turn = 0;                 // turn index (0 = first)
  std::int64_t requests = 0;    // turns with this index that were due
  std::int64_t completed = 0;
  LatencyStats ttft;            // of the completed ones
  // The context the server saw (usage.prompt_tokens: the whole history); NaN when none reported.
  double mean_context_tokens = 0, max_context_tokens = 0;
  double mean_output_tokens = 0;
};

struct SessionMetrics {
  bool defined = false;                  // the run had session records
  std::int64_t sessions = 0;
  std::int64_t completed_sessions = 0;   // every turn completed
  double mean_turns = 0;                 // turns per conversation (as in the workload)
  int max_turns = 0;
  LatencyStats duration;                 // first turn sent -> last reply ended, completed sessions (ms)
  double mean_concurrent_sessions = 0;   // conversations open (first send to last end), time-averaged
  int max_concurrent_sessions = 0;
  std::vector<TurnStats> by_turn;        // by turn index
};

SessionMetrics compute_session_metrics(std::span<const client::RequestRecord> records, const MetricsOptions& options);

}  // namespace qmeter::loadgen
