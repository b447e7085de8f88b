#include "qmeter/mockserver/response_plan.h"

#include <fmt/core.h>

#include <cmath>
#include <string>

#include "qmeter/core/error.h"
#include "qmeter/core/random.h"

namespace qmeter::mockserver {

namespace {

// Request `index`'s own generator (core SplitMix64: the same draws on every platform, which the
// standard library's distributions are not), so a seed means the same schedule everywhere and a
// request's timings do not depend on the others. The seed is one increment past the mixed
// (seed, index) pair: the stream the mock has always drawn (tests/mockserver/golden_plan_test.cpp).
SplitMix64 request_rng(std::uint64_t seed, std::uint64_t index) {
  return SplitMix64((splitmix64_hash(seed) ^ splitmix64_hash(index + 0x632BE59BD9B4E019ull)) + kSplitMix64Gamma);
}

// N(0, 1): Box-Muller on (0, 1) then [0, 1).
double standard_normal(SplitMix64& rng) {
  const double u1 = rng.uniform_open();
  return box_muller(u1, rng.uniform());
}

Nanos sample_gap(const MockServerConfig& c, SplitMix64& rng) {
  const double mean = c.itl_ms;
  double ms = mean;
  switch (c.itl_dist) {
    case ItlDistribution::kConstant:
      break;
    case ItlDistribution::kExponential:
      ms = -mean * std::log(rng.uniform_open());
      break;
    case ItlDistribution::kLognormal: {
      // mu chosen so that the mean is itl_ms: E[X] = exp(mu + sigma^2 / 2).
      const double sigma = c.itl_lognormal_sigma;
      ms = mean <= 0 ? 0 : std::exp(std::log(mean) - 0.5 * sigma * sigma + sigma * standard_normal(rng));
      break;
    }
  }
  return ms_to_ns(ms);
}

}  // namespace

std::string_view event_kind_name(EventKind kind) {
  switch (kind) {
    case EventKind::kRole: return "role";
    case EventKind::kEmpty: return "empty";
    case EventKind::kMalformed: return "malformed";
    case EventKind::kTokens: return "tokens";
    case EventKind::kUsage: return "usage";
    case EventKind::kDone: return "done";
    case EventKind::kDrop: return "drop";
    case EventKind::kStall: return "stall";
  }
  return "?";
}

std::string token_text(int first, int count) {
  std::string out;
  out.reserve(static_cast<std::size_t>(count) * 8);
  for (int i = first; i < first + count; ++i) fmt::format_to(std::back_inserter(out), " tok{}", i);
  return out;
}

FaultKind choose_fault(const MockServerConfig& config, std::uint64_t index) {
  SplitMix64 rng = request_rng(config.seed, index);
  const double u = rng.uniform();  // the request's first draw decides its fault
  double cumulative = 0;
  for (const auto& f : config.faults) {
    cumulative += f.fraction;
    if (u < cumulative) return f.kind;
  }
  return FaultKind::kNone;
}

ResponsePlan plan_response(const MockServerConfig& config, std::uint64_t index, const PlanRequest& request,
                           bool include_usage) {
  SplitMix64 rng = request_rng(config.seed, index);
  rng.uniform();  // the fault draw (choose_fault repeats it)
  ResponsePlan plan;
  plan.index = index;
  plan.fault = choose_fault(config, index);

  const int max_tokens = request.max_tokens.value_or(16);
  int n = max_tokens;
  if (config.output_len && !request.ignore_eos) n = std::min(*config.output_len, max_tokens);
  plan.completion_tokens = n;
  plan.hit_max_tokens = n == max_tokens;
  plan.reported_completion_tokens = n + (plan.fault == FaultKind::kUsageMismatch ? 1 : 0);

  // Token chunk schedule: TTFT, then one sampled gap per further chunk.
  const int k = config.tokens_per_chunk;
  Nanos t = ms_to_ns(config.ttft_ms);
  for (int first = 0; first < n; first += k) {
    if (first > 0) t += sample_gap(config, rng);
    plan.token_chunk_offsets_ns.push_back(t);
    plan.token_chunk_sizes.push_back(std::min(k, n - first));
  }
  const int chunks = static_cast<int>(plan.token_chunk_sizes.size());
  const int cut = chunks / 2;  // where drop / stall / malformed strike: the middle token chunk
  auto offset_of = [&](int j) { return plan.token_chunk_offsets_ns[static_cast<std::size_t>(j)]; };

  if (!request.stream) {
    const Nanos done_at = offset_of(chunks - 1);
    switch (plan.fault) {
      case FaultKind::kDrop: plan.events.push_back({done_at, EventKind::kDrop, 0, 0}); break;
      case FaultKind::kStall: plan.events.push_back({done_at, EventKind::kStall, 0, 0}); break;
      case FaultKind::kMalformed: plan.events.push_back({done_at, EventKind::kMalformed, 0, 0}); break;
      default: plan.events.push_back({done_at, EventKind::kTokens, 0, n}); break;
    }
    return plan;
  }

  if (plan.fault == FaultKind::kRoleOnlyFirst) plan.events.push_back({0, EventKind::kRole, 0, 0});
  int first = 0;
  for (int j = 0; j < chunks; ++j) {
    const Nanos previous = j == 0 ? 0 : offset_of(j - 1);
    if (j == cut && plan.fault == FaultKind::kDrop) {
      plan.events.push_back({offset_of(j), EventKind::kDrop, 0, 0});
      return plan;
    }
    if (j == cut && plan.fault == FaultKind::kStall) {
      plan.events.push_back({offset_of(j), EventKind::kStall, 0, 0});
      return plan;
    }
    if (plan.fault == FaultKind::kEmptyChunks) {
      plan.events.push_back({previous + (offset_of(j) - previous) / 2, EventKind::kEmpty, 0, 0});
    }
    if (j == cut && plan.fault == FaultKind::kMalformed) plan.events.push_back({offset_of(j), EventKind::kMalformed, 0, 0});
    plan.events.push_back({offset_of(j), EventKind::kTokens, first, plan.token_chunk_sizes[static_cast<std::size_t>(j)]});
    first += plan.token_chunk_sizes[static_cast<std::size_t>(j)];
  }
  const Nanos last = offset_of(chunks - 1);
  if (include_usage) plan.events.push_back({last, EventKind::kUsage, 0, 0});
  plan.events.push_back({last, EventKind::kDone, 0, 0});
  return plan;
}

}  // namespace qmeter::mockserver
