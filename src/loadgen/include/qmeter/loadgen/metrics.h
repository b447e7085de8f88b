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
//
// Steady state and verdicts (steady_state.cpp; all from the records, so they can be recomputed):
//   window    [w0, w1] = [end of the first completed request, end of the last one]. Before w0 the
//             pipeline is filling (nothing has come back yet): ramp-up. After the last send the
//             drain's completions still come at the rate the server serves, so they stay in: a
//             window cut at the last send would lose the last E2E's worth of a short point.
//   throughput_ss  (completions in the window - 1) / (w1 - w0): completions per second between
//             the first and the last (exactly the offered rate for constant arrivals and service).
//   latency_ss / attainment_ss  requests scheduled at or after w0 (the pipeline was full when
//             they arrived); all measured requests when fewer than 10 qualify.
//   offered   (sends - 1) / (last scheduled - first scheduled) of the measured schedule; +inf when
//             every request is due at once; undefined in closed loop.
//   in-flight growth  least-squares slope of requests in flight (scheduled, not yet ended) sampled
//             at each scheduled send inside [w0, last send], times that span: how much the queue
//             grew while load was offered (unknown when fewer than 3 sends fall in the window).
//   server_saturated  open loop, and throughput_ss < (1 - rate_tolerance) x offered while the
//             in-flight growth (when known) exceeds max(2, 20% of the mean in flight); always for
//             an unbounded (inf) offered load.
//   client lag  dispatched_ns - scheduled_ns - connection_wait_ns: the client's own delay.
//   client_bound  p99 client lag or p99 connection wait above the threshold (default
//             max(1 ms, 1% of the median TTFT)): the server did not receive the offered load.
//   sustainable  neither of the two: only such a point can meet an SLO (analysis, planners, the
//             study's knee search).
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
  bool closed_loop = false;              // a max-concurrency schedule: no offered rate, no queue verdict
  double client_bound_threshold_ms = -1;  // < 0: max(1 ms, 1% of the median TTFT)
  double rate_tolerance = 0.1;           // steady throughput below (1 - this) x offered: not keeping up
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

// The steady-state window of a load point and the figures over it (see the definitions above).
struct SteadyState {
  bool defined = false;                  // at least two completions
  Nanos start_ns = 0, end_ns = 0;        // absolute steady-clock window
  double start_s = 0, end_s = 0;         // relative to the first scheduled send
  double duration_s = 0;
  std::int64_t completed = 0;            // completions in the window
  std::int64_t latency_requests = 0;     // requests the latency figures cover
  double request_throughput = 0, output_throughput = 0;
  LatencyStats ttft, tpot, e2el;
  std::vector<SloResult> slo;            // attainment over the latency requests; goodput = throughput x it
};

struct LoadVerdict {
  double offered_rate = -1;              // req/s; +inf unbounded; < 0 closed loop / unknown
  double in_flight_growth = 0;           // requests (NaN: unknown)
  double mean_in_flight = 0;
  bool server_saturated = false;
  std::string saturation_reason;
  double threshold_ms = 1;
  double p99_client_lag_ms = 0, p99_connection_wait_ms = 0;
  bool client_bound = false;
  std::string client_bound_reason;
  bool sustainable = true;
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
  LatencyStats connection_wait, client_lag;
  std::vector<SloResult> slo;
  SteadyState steady;
  LoadVerdict verdict;
};

Metrics compute_metrics(std::span<const client::RequestRecord> records, const MetricsOptions& options);

// The steady-state window's absolute bounds (w0, w1) of these records, {0, 0} when undefined:
// energy observers integrate over it.
std::pair<Nanos, Nanos> steady_window(std::span<const client::RequestRecord> records);
// The client's own lag of one record in ms (NaN when it was never dispatched).
double client_lag_ms(const client::RequestRecord& r);

// Per-request values used above (exposed for tests and the store). NaN when not defined.
double ttft_ms(const client::RequestRecord& r);
double tpot_ms(const client::RequestRecord& r);
double e2el_ms(const client::RequestRecord& r);
// The ITL samples of one request in ms (see the definition above).
std::vector<double> itl_samples_ms(const client::RequestRecord& r);
bool meets_slo(const client::RequestRecord& r, const SloClass& slo);

}  // namespace qmeter::loadgen
