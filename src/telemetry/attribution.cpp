// attribute_energy: token-weighted split of interval energy among in-flight requests.
#include "qmeter/telemetry/attribution.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>

#include "qmeter/core/stats.h"

namespace qmeter::telemetry {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Tokens of a mass spread uniformly over [p0, p1] that fall in (a, b]. A zero-length phase is a
// point mass at p1.
double uniform_mass(double tokens, Nanos p0, Nanos p1, Nanos a, Nanos b) {
  if (tokens <= 0) return 0;
  if (p1 <= p0) return (p1 > a && p1 <= b) ? tokens : 0;
  Nanos lo = std::max(a, p0), hi = std::min(b, p1);
  if (hi <= lo) return 0;
  return tokens * static_cast<double>(hi - lo) / static_cast<double>(p1 - p0);
}

// A request reduced to its phases, with chunk times checked once.
struct Phases {
  Nanos start = 0, first = 0, end = 0;
  double prompt = 0, output = 0;
  bool by_chunks = false;
  double chunk_scale = 1;  // output tokens per chunk token (usage count vs chunk count)
  const std::vector<ChunkTime>* chunks = nullptr;

  explicit Phases(const AttributionRequest& r) {
    start = r.start_ns;
    end = std::max(r.end_ns, r.start_ns);
    // No first token: the whole request was prefill (or a failure before any output).
    first = r.first_token_ns > 0 ? std::clamp(r.first_token_ns, start, end) : end;
    prompt = std::max(0, r.prompt_tokens);
    output = r.first_token_ns > 0 ? std::max(0, r.output_tokens) : 0;
    long long chunk_tokens = 0;
    bool ordered = true;
    for (std::size_t k = 0; k < r.chunks.size(); ++k) {
      chunk_tokens += std::max(0, r.chunks[k].tokens);
      if (k > 0 && r.chunks[k].t_ns < r.chunks[k - 1].t_ns) ordered = false;
    }
    if (r.chunks.size() >= 2 && ordered && chunk_tokens > 0 && output > 0 && r.chunks.front().t_ns >= first &&
        r.chunks.back().t_ns <= end) {
      by_chunks = true;
      chunk_scale = output / static_cast<double>(chunk_tokens);
      chunks = &r.chunks;
    }
  }

  double prefill_in(Nanos a, Nanos b) const { return uniform_mass(prompt, start, first, a, b); }

  double decode_in(Nanos a, Nanos b) const {
    if (!by_chunks) return uniform_mass(output, first, end, a, b);
    const auto& c = *chunks;
    double mass = uniform_mass(c[0].tokens * chunk_scale, first, end, a, b);
    // First chunk k >= 1 whose span (t[k-1], t[k]] can reach past a.
    auto it = std::upper_bound(c.begin() + 1, c.end(), a, [](Nanos t, const ChunkTime& x) { return t < x.t_ns; });
    for (; it != c.end(); ++it) {
      Nanos t_prev = (it - 1)->t_ns;
      if (t_prev >= b) break;
      mass += uniform_mass(it->tokens * chunk_scale, t_prev, it->t_ns, a, b);
    }
    return mass;
  }
};

}  // namespace

AttributionResult attribute_energy(std::span<const EnergyInterval> intervals,
                                   std::span<const AttributionRequest> requests) {
  AttributionResult out;
  out.requests.resize(requests.size());
  std::vector<Phases> phases;
  phases.reserve(requests.size());
  for (std::size_t i = 0; i < requests.size(); ++i) {
    out.requests[i].id = requests[i].id;
    phases.emplace_back(requests[i]);
  }
  std::vector<std::size_t> by_start(requests.size());
  std::iota(by_start.begin(), by_start.end(), 0);
  std::sort(by_start.begin(), by_start.end(), [&](auto x, auto y) { return phases[x].start < phases[y].start; });
  std::vector<std::size_t> by_time(intervals.size());
  std::iota(by_time.begin(), by_time.end(), 0);
  std::sort(by_time.begin(), by_time.end(), [&](auto x, auto y) { return intervals[x].t0_ns < intervals[y].t0_ns; });

  // Sweep: intervals in t0 order; `active` holds requests that started before some interval's end
  // and have not ended before the current t0 (a request ended before t0 cannot weigh later on).
  std::vector<std::size_t> active;
  std::size_t next = 0;
  std::vector<double> w_pre, w_dec;
  for (std::size_t idx : by_time) {
    const EnergyInterval& iv = intervals[idx];
    out.window_energy_j += iv.energy_j;
    while (next < by_start.size() && phases[by_start[next]].start < iv.t1_ns) active.push_back(by_start[next++]);
    std::erase_if(active, [&](std::size_t r) { return phases[r].end <= iv.t0_ns; });
    w_pre.assign(active.size(), 0);
    w_dec.assign(active.size(), 0);
    double total = 0;
    for (std::size_t k = 0; k < active.size(); ++k) {
      w_pre[k] = phases[active[k]].prefill_in(iv.t0_ns, iv.t1_ns);
      w_dec[k] = phases[active[k]].decode_in(iv.t0_ns, iv.t1_ns);
      total += w_pre[k] + w_dec[k];
    }
    if (total <= 0) {
      out.unattributed_j += iv.energy_j;
      continue;
    }
    for (std::size_t k = 0; k < active.size(); ++k) {
      if (w_pre[k] + w_dec[k] <= 0) continue;
      RequestEnergy& re = out.requests[active[k]];
      double pre = iv.energy_j * w_pre[k] / total, dec = iv.energy_j * w_dec[k] / total;
      re.prefill_j += pre;
      re.decode_j += dec;
      re.above_idle_j += iv.above_idle_j * (w_pre[k] + w_dec[k]) / total;
    }
  }

  std::vector<double> per_request;
  per_request.reserve(requests.size());
  double above_total = 0;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    RequestEnergy& re = out.requests[i];
    re.energy_j = re.prefill_j + re.decode_j;
    per_request.push_back(re.energy_j);
    out.prefill_j += re.prefill_j;
    out.decode_j += re.decode_j;
    above_total += re.above_idle_j;
    out.prompt_tokens += static_cast<long long>(phases[i].prompt);
    out.output_tokens += static_cast<long long>(phases[i].output);
  }
  out.attributed_j = out.prefill_j + out.decode_j;
  out.attributed_above_idle_j = above_total;
  auto ratio = [](double num, double den) { return den > 0 ? num / den : kNaN; };
  out.j_per_request_mean = per_request.empty() ? kNaN : stats::mean(per_request);
  out.j_per_request_p50 = stats::percentile(per_request, 50);
  out.j_per_request_p90 = stats::percentile(per_request, 90);
  out.j_per_request_p99 = stats::percentile(per_request, 99);
  out.above_idle_j_per_request_mean = ratio(above_total, static_cast<double>(requests.size()));
  out.j_per_output_token = ratio(out.attributed_j, static_cast<double>(out.output_tokens));
  out.above_idle_j_per_output_token = ratio(above_total, static_cast<double>(out.output_tokens));
  out.j_per_prefill_token = ratio(out.prefill_j, static_cast<double>(out.prompt_tokens));
  out.j_per_decode_token = ratio(out.decode_j, static_cast<double>(out.output_tokens));

  std::vector<std::string> order;
  std::map<std::string, std::size_t> compliant;
  for (const auto& r : requests)
    for (const auto& f : r.slo) {
      if (!compliant.contains(f.slo_class)) {
        compliant[f.slo_class] = 0;
        order.push_back(f.slo_class);
      }
      if (f.met) ++compliant[f.slo_class];
    }
  for (const auto& name : order) {
    SloClassEnergy c;
    c.slo_class = name;
    c.compliant_requests = compliant[name];
    c.j_per_compliant_request = ratio(out.attributed_j, static_cast<double>(c.compliant_requests));
    c.above_idle_j_per_compliant_request = ratio(above_total, static_cast<double>(c.compliant_requests));
    out.slo_classes.push_back(std::move(c));
  }
  return out;
}

}  // namespace qmeter::telemetry
