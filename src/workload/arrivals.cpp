// Arrival processes and their table: adding one = a function pair + one row in kArrivals.
// All send offsets are computed in double seconds, then rounded to ns one by one (so rounding
// never accumulates), and every random draw comes from SeededRng (sampling.h) on the arrival
// stream of the seed, independent of the dataset's draws.
#include <array>
#include <cmath>

#include <fmt/format.h>

#include "dataset_input.h"
#include "qmeter/core/error.h"
#include "qmeter/workload/registry.h"

namespace qmeter::workload {

namespace {

bool finite_rate(const ArrivalOptions& o) { return o.request_rate > 0 && std::isfinite(o.request_rate); }

Nanos seconds_to_ns(double s) { return static_cast<Nanos>(std::llround(s * 1e9)); }

SeededRng arrival_rng(const ArrivalOptions& o) { return SeededRng(derive_seed(o.seed, detail::kArrivalStream)); }

// Renewal process: the first request at 0, then i.i.d. gaps from `gap`.
template <class Gap>
std::vector<Nanos> renewal(std::size_t count, Gap gap) {
  std::vector<Nanos> out(count, 0);
  double t = 0;
  for (std::size_t i = 1; i < count; ++i) {
    t += gap();
    out[i] = seconds_to_ns(t);
  }
  return out;
}

std::vector<Nanos> all_at_once(std::size_t count, const ArrivalOptions&, const DatasetSample&) {
  return std::vector<Nanos>(count, 0);
}
std::string describe_inf(const ArrivalOptions&) { return "inf (all at once)"; }

std::vector<Nanos> constant_offsets(std::size_t count, const ArrivalOptions& o, const DatasetSample& d) {
  if (!finite_rate(o)) return all_at_once(count, o, d);
  std::vector<Nanos> out(count);
  for (std::size_t i = 0; i < count; ++i) out[i] = seconds_to_ns(static_cast<double>(i) / o.request_rate);
  return out;
}
std::string describe_constant(const ArrivalOptions& o) {
  return finite_rate(o) ? fmt::format("constant {} req/s", o.request_rate) : describe_inf(o);
}

std::vector<Nanos> poisson_offsets(std::size_t count, const ArrivalOptions& o, const DatasetSample& d) {
  if (o.burstiness != 1.0)
    throw UsageError(fmt::format("--burstiness {} applies to --arrival gamma (poisson is burstiness 1)", o.burstiness));
  if (!finite_rate(o)) return all_at_once(count, o, d);
  SeededRng rng = arrival_rng(o);
  return renewal(count, [&] { return rng.exponential(o.request_rate); });
}
std::string describe_poisson(const ArrivalOptions& o) {
  return finite_rate(o) ? fmt::format("poisson {} req/s", o.request_rate) : describe_inf(o);
}

// vLLM's burstiness: gaps ~ Gamma(shape = burstiness, scale = 1 / (rate * burstiness)), so the
// mean gap is 1 / rate and the coefficient of variation 1 / sqrt(burstiness).
std::vector<Nanos> gamma_offsets(std::size_t count, const ArrivalOptions& o, const DatasetSample& d) {
  if (!finite_rate(o)) return all_at_once(count, o, d);
  SeededRng rng = arrival_rng(o);
  const double scale = 1.0 / (o.request_rate * o.burstiness);
  return renewal(count, [&] { return rng.gamma(o.burstiness, scale); });
}
std::string describe_gamma(const ArrivalOptions& o) {
  return finite_rate(o) ? fmt::format("gamma {} req/s burstiness {}", o.request_rate, o.burstiness) : describe_inf(o);
}

std::vector<Nanos> closed_offsets(std::size_t count, const ArrivalOptions& o, const DatasetSample& d) {
  if (o.max_concurrency < 1) throw UsageError("--arrival closed needs --max-concurrency N (N >= 1)");
  return all_at_once(count, o, d);
}
std::string describe_closed(const ArrivalOptions& o) { return fmt::format("closed loop, {} in flight", o.max_concurrency); }

std::vector<Nanos> trace_offsets(std::size_t count, const ArrivalOptions& o, const DatasetSample& d) {
  if (d.trace_offsets_ns.size() != count)
    throw UsageError("--arrival trace needs a dataset with arrival times (azure:PATH); " + d.description + " has none");
  std::vector<Nanos> out(count);
  for (std::size_t i = 0; i < count; ++i)
    out[i] = static_cast<Nanos>(std::llround(static_cast<double>(d.trace_offsets_ns[i]) / o.trace_time_scale));
  return out;
}
std::string describe_trace(const ArrivalOptions& o) {
  return o.trace_time_scale == 1.0 ? "trace replay" : fmt::format("trace replay x{} speed", o.trace_time_scale);
}

// Linear ramp r(t) = r0 + a t over [0, T], a = (r1 - r0) / T, T = 2 N / (r0 + r1) so that the
// integrated rate L(T) = N. A base process with unit rate gives points x_i in "integrated rate"
// time; each is sent at L^-1(x_i). Past T the rate stays at r1.
double ramp_inverse(double x, double r0, double r1, double n, double total_s) {
  if (x >= n) return total_s + (x - n) / r1;
  const double a = (r1 - r0) / total_s;
  // Root of a t^2 / 2 + r0 t - x = 0 in the form without cancellation (also right for a <= 0).
  const double denom = r0 + std::sqrt(r0 * r0 + 2.0 * a * x);
  return denom > 0 ? 2.0 * x / denom : 0.0;
}

std::vector<Nanos> ramp_offsets(std::size_t count, const ArrivalOptions& o, const DatasetSample&) {
  const double r0 = o.ramp_start_rate, r1 = o.ramp_end_rate;
  if (!(r0 >= 0 && std::isfinite(r0))) throw UsageError(fmt::format("--ramp-start-rate must be >= 0, got {}", r0));
  if (!(r1 > 0 && std::isfinite(r1))) throw UsageError(fmt::format("--ramp-end-rate must be > 0, got {}", r1));
  const double n = static_cast<double>(count);
  const double total_s = 2.0 * n / (r0 + r1);
  std::vector<double> x(count, 0.0);  // unit-rate base process
  if (o.ramp_base == "constant") {
    for (std::size_t i = 0; i < count; ++i) x[i] = static_cast<double>(i);
  } else if (o.ramp_base == "poisson" || o.ramp_base == "gamma") {
    const double shape = o.ramp_base == "gamma" ? o.burstiness : 1.0;
    SeededRng rng = arrival_rng(o);
    for (std::size_t i = 1; i < count; ++i) x[i] = x[i - 1] + rng.gamma(shape, 1.0 / shape);
  } else {
    throw UsageError(fmt::format("--ramp-base must be constant, poisson or gamma, got '{}'", o.ramp_base));
  }
  std::vector<Nanos> out(count);
  for (std::size_t i = 0; i < count; ++i) out[i] = seconds_to_ns(ramp_inverse(x[i], r0, r1, n, total_s));
  return out;
}
std::string describe_ramp(const ArrivalOptions& o) {
  return fmt::format("ramp {} -> {} req/s ({})", o.ramp_start_rate, o.ramp_end_rate, o.ramp_base);
}

constexpr std::array<ArrivalProcess, 7> kArrivals = {{
    {"constant", "evenly spaced at --request-rate", constant_offsets, describe_constant},
    {"poisson", "exponential gaps with mean 1/--request-rate", poisson_offsets, describe_poisson},
    {"gamma", "gamma gaps, shape --burstiness, mean 1/--request-rate (CV 1/sqrt(burstiness))", gamma_offsets,
     describe_gamma},
    {"inf", "every request at time 0", all_at_once, describe_inf},
    {"closed", "closed loop: all released at 0, at most --max-concurrency in flight", closed_offsets, describe_closed},
    {"trace", "the dataset's own arrival times (azure), divided by --trace-time-scale", trace_offsets, describe_trace},
    {"ramp", "rate rising linearly from --ramp-start-rate to --ramp-end-rate over the run", ramp_offsets, describe_ramp},
}};

}  // namespace

std::span<const ArrivalProcess> arrival_table() { return kArrivals; }

std::string resolve_arrival_kind(const ArrivalOptions& o, const DatasetSample& dataset) {
  if (!o.kind.empty()) return o.kind;
  if (!dataset.trace_offsets_ns.empty() && o.request_rate <= 0) return "trace";
  if (finite_rate(o)) return o.burstiness != 1.0 ? "gamma" : "poisson";
  return "inf";
}

}  // namespace qmeter::workload
