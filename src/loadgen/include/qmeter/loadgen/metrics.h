#pragma once
// Serving metrics as a pure function of the per-request records, so every figure can be checked on
// hand-made records and recomputed later from the store.
//
// Definitions (all latencies from the SCHEDULED send time, so a late client cannot hide queueing):
//   TTFT      first_token_ns - scheduled_ns                                   (completed requests)
//   TPOT      (t_last_token - t_first_token) / (n_out - 1), n_out = output_tokens()   (n_out > 1)
//   ITL       per token chunk after the first: the gap since the previous chunk, divided evenly over
//             the chunk's k tokens (k samples of gap/k). With one token per chunk this is exactly
//             vLLM's ITL; with k > 1 it keeps mean ITL == TPOT instead of one sample per chunk.
//             Tokens that arrive in the first chunk have no gap and give no sample.
//   E2EL      end_ns - scheduled_ns (end of the response)                      (completed requests)
//   send lag  sent_ns - scheduled_ns                                           (requests that were sent)
//   duration  first scheduled time to last end time of the measured requests
//   throughput  completed / duration, output tokens / duration, (input + output) / duration
// Warmup records are excluded from everything. Failed requests count in `failed` by error kind and
// never in latency figures. SLO classes: a request meets a class when it completed and each given
// bound holds (ttft, tpot, e2e; itl = every ITL sample of the request); attainment = met / measured
// requests, goodput = met / duration.
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "qmeter/client/request_record.h"

namespace qmeter::loadgen {

struct SloClass {
  std::string name;
  double ttft_ms = -1, tpot_ms = -1, e2e_ms = -1, itl_ms = -1;  // < 0: no bound
};
// Parses "NAME:ttft=MS,tpot=MS,e2e=MS,itl=MS" (any non-empty subset); throws UsageError naming --slo.
SloClass parse_slo(const std::string& spec);
// Parses "50,90,99"; throws UsageError naming --percentiles.
std::vector<double> parse_percentiles(const std::string& list);
// vLLM's spelling of a percentile in key names: 99 -> "99", 99.9 -> "99.9".
std::string percentile_label(double p);

struct MetricsOptions {
  std::vector<double> percentiles{50, 90, 99};
  std::vector<SloClass> slos;
};

struct LatencyStats {
  std::size_t n = 0;
  double mean_ms = 0, median_ms = 0, std_ms = 0, min_ms = 0, max_ms = 0;  // NaN when n == 0
  std::vector<std::pair<double, double>> percentiles_ms;                    // (p, value)
};

struct SloResult {
  SloClass slo;
  std::int64_t met = 0;
  double attainment = 0;    // met / measured requests
  double goodput_rps = 0;   // met / duration
};

struct Metrics {
  std::int64_t measured = 0;  // non-warmup records (= completed + failed)
  std::int64_t completed = 0;
  std::int64_t failed = 0;
  std::int64_t warmup_excluded = 0;
  std::map<std::string, std::int64_t> failed_by_kind;  // error_kind_name -> count
  std::int64_t token_count_mismatches = 0;              // completed requests whose usage != client count
  double duration_s = 0;
  std::int64_t total_input_tokens = 0;   // completed requests: server prompt tokens, else the expected count
  std::int64_t total_output_tokens = 0;  // completed requests: output_tokens()
  double request_throughput = 0, output_throughput = 0, total_token_throughput = 0;
  int max_concurrent_requests = 0;  // most requests between send and end at one instant
  LatencyStats ttft, tpot, itl, e2el, send_lag;
  std::vector<SloResult> slo;
};

Metrics compute_metrics(std::span<const client::RequestRecord> records, const MetricsOptions& options);

// Per-request values used above (exposed for tests and the store). NaN when not defined.
double ttft_ms(const client::RequestRecord& r);
double tpot_ms(const client::RequestRecord& r);
double e2el_ms(const client::RequestRecord& r);
// The ITL samples of one request in ms (see the definition above).
std::vector<double> itl_samples_ms(const client::RequestRecord& r);
bool meets_slo(const client::RequestRecord& r, const SloClass& slo);

}  // namespace qmeter::loadgen
