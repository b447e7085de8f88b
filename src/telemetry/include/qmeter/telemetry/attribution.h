#pragma once
// Energy attribution: each measured interval's energy is split among the requests in flight,
// weighted by the tokens each processed in the interval.
//
// A request's prompt tokens are processed in its prefill phase (sent .. first token) and its
// output tokens in its decode phase (first token .. end), each spread uniformly in time over its
// phase; where chunk arrival times are given, the decode tokens follow them instead: chunk k
// (k >= 1) spreads its tokens over (t[k-1], t[k]], and the first chunk's tokens, which arrive at
// the end of prefill, are spread uniformly over the whole decode phase. An interval in which no
// request processes a token (an idle gap) stays unattributed and is reported as such.
//
// This module knows nothing of the client's records: the load generator converts its records
// into AttributionRequest (plain data) before calling attribute_energy().
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "qmeter/core/clock.h"

namespace qmeter::telemetry {

// The energy one device used over [t0_ns, t1_ns]. Intervals of different devices may overlap:
// each is split on its own.
struct EnergyInterval {
  Nanos t0_ns = 0;
  Nanos t1_ns = 0;
  double energy_j = 0;
  double above_idle_j = 0;  // energy_j minus the device's idle power times the duration
};

struct ChunkTime {
  Nanos t_ns = 0;
  int tokens = 0;
};

struct SloFlag {
  std::string slo_class;  // name of the SLO class ("interactive", "batch", ...)
  bool met = false;       // did this request meet that class's SLOs
};

struct AttributionRequest {
  std::int64_t id = -1;
  Nanos start_ns = 0;        // sent (prefill starts)
  Nanos first_token_ns = 0;  // first generated token (0: none arrived)
  Nanos end_ns = 0;          // last byte
  int prompt_tokens = 0;
  int output_tokens = 0;
  std::vector<ChunkTime> chunks;  // optional: token-carrying chunks in arrival order
  std::vector<SloFlag> slo;       // optional: compliance per SLO class
};

struct RequestEnergy {
  std::int64_t id = -1;
  double energy_j = 0;      // prefill_j + decode_j
  double prefill_j = 0;
  double decode_j = 0;
  double above_idle_j = 0;  // the same split applied to the above-idle energy
};

struct SloClassEnergy {
  std::string slo_class;
  std::size_t compliant_requests = 0;
  // All attributed energy (every request's, compliant or not) per request that met this class's
  // SLOs: the energy cost of one useful request. NaN when none complied.
  double j_per_compliant_request = 0;
  double above_idle_j_per_compliant_request = 0;
};

struct AttributionResult {
  std::vector<RequestEnergy> requests;  // same order as the input
  double window_energy_j = 0;           // sum of the intervals' energy
  double attributed_j = 0;
  double unattributed_j = 0;            // energy of intervals with no token in flight
  double attributed_above_idle_j = 0;
  double prefill_j = 0, decode_j = 0;
  long long prompt_tokens = 0, output_tokens = 0;
  // J per request over the requests given (NaN when there are none).
  double j_per_request_mean = 0, j_per_request_p50 = 0, j_per_request_p90 = 0, j_per_request_p99 = 0;
  double j_per_output_token = 0;   // attributed energy / output tokens
  double j_per_prefill_token = 0;  // prefill energy / prompt tokens
  double j_per_decode_token = 0;   // decode energy / output tokens
  double above_idle_j_per_request_mean = 0;
  double above_idle_j_per_output_token = 0;
  std::vector<SloClassEnergy> slo_classes;  // in first-seen order
};

AttributionResult attribute_energy(std::span<const EnergyInterval> intervals,
                                   std::span<const AttributionRequest> requests);

}  // namespace qmeter::telemetry
