// Names and validation of the mock server's settings (the `qmeter mock-server` flags).
#include <fmt/core.h>

#include <charconv>
#include <cmath>
#include <set>

#include "qmeter/core/error.h"
#include "qmeter/mockserver/mock_server.h"

namespace qmeter::mockserver {

std::string_view fault_name(FaultKind kind) {
  switch (kind) {
    case FaultKind::kNone: return "none";
    case FaultKind::kHttp500: return "http500";
    case FaultKind::kHttp429: return "http429";
    case FaultKind::kDrop: return "drop";
    case FaultKind::kStall: return "stall";
    case FaultKind::kMalformed: return "malformed";
    case FaultKind::kRoleOnlyFirst: return "role_only_first";
    case FaultKind::kEmptyChunks: return "empty_chunks";
    case FaultKind::kUsageMismatch: return "usage_mismatch";
  }
  return "?";
}

FaultSpec parse_fault_spec(std::string_view text) {
  std::string known;
  for (FaultKind k : kAllFaultKinds) known += fmt::format("{}{}", known.empty() ? "" : ", ", fault_name(k));
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    throw UsageError(fmt::format("--fault '{}': expected KIND:FRACTION, for example drop:0.1 (kinds: {})", text, known));
  }
  const std::string_view kind_text = text.substr(0, colon);
  const std::string fraction_text(text.substr(colon + 1));
  FaultSpec spec;
  for (FaultKind k : kAllFaultKinds) {
    if (fault_name(k) == kind_text) spec.kind = k;
  }
  if (spec.kind == FaultKind::kNone) {
    throw UsageError(fmt::format("--fault '{}': unknown fault kind '{}' (kinds: {})", text, kind_text, known));
  }
  double fraction = 0;
  const char* begin = fraction_text.data();
  const char* end = begin + fraction_text.size();
  auto [ptr, ec] = std::from_chars(begin, end, fraction);
  if (fraction_text.empty() || ec != std::errc() || ptr != end || !std::isfinite(fraction) || fraction < 0 ||
      fraction > 1) {
    throw UsageError(fmt::format("--fault '{}': fraction '{}' must be a number in [0, 1]", text, fraction_text));
  }
  spec.fraction = fraction;
  return spec;
}

std::string_view itl_distribution_name(ItlDistribution d) {
  switch (d) {
    case ItlDistribution::kConstant: return "constant";
    case ItlDistribution::kExponential: return "exponential";
    case ItlDistribution::kLognormal: return "lognormal";
  }
  return "?";
}

ItlDistribution parse_itl_distribution(std::string_view text) {
  for (auto d : {ItlDistribution::kConstant, ItlDistribution::kExponential, ItlDistribution::kLognormal}) {
    if (itl_distribution_name(d) == text) return d;
  }
  throw UsageError(fmt::format("--itl-dist '{}': expected constant, exponential or lognormal", text));
}

void MockServerConfig::validate() const {
  if (host.empty()) throw UsageError("--host must not be empty");
  if (port < 0 || port > 65535) throw UsageError(fmt::format("--port {} is out of range 0..65535", port));
  if (io_threads < 1 || io_threads > 256) throw UsageError(fmt::format("--io-threads {} must be in 1..256", io_threads));
  if (!std::isfinite(ttft_ms) || ttft_ms < 0) throw UsageError(fmt::format("--ttft-ms {} must be >= 0", ttft_ms));
  if (!std::isfinite(itl_ms) || itl_ms < 0) throw UsageError(fmt::format("--itl-ms {} must be >= 0", itl_ms));
  if (!std::isfinite(itl_lognormal_sigma) || itl_lognormal_sigma <= 0 || itl_lognormal_sigma > 10) {
    throw UsageError(fmt::format("--itl-sigma {} must be in (0, 10]", itl_lognormal_sigma));
  }
  if (output_len && *output_len < 1) throw UsageError(fmt::format("--tokens-before-eos {} must be >= 1", *output_len));
  if (tokens_per_chunk < 1) throw UsageError(fmt::format("--tokens-per-chunk {} must be >= 1", tokens_per_chunk));
  double total = 0;
  std::set<FaultKind> seen;
  for (const auto& f : faults) {
    if (!seen.insert(f.kind).second) {
      throw UsageError(fmt::format("--fault {} is given twice", fault_name(f.kind)));
    }
    total += f.fraction;
  }
  if (total > 1 + 1e-9) {
    throw UsageError(fmt::format("--fault fractions add up to {} (> 1); each request gets at most one fault", total));
  }
  if (model_name.empty()) throw UsageError("--model must not be empty");
  if (no_echo_status != 0 && (no_echo_status < 400 || no_echo_status > 599)) {
    throw UsageError(fmt::format("--no-echo-status {} must be an HTTP error status (400..599)", no_echo_status));
  }
  if (max_concurrent_streams < 0) {
    throw UsageError(
        fmt::format("--max-concurrent-streams {} must be >= 0 (0: unlimited)", max_concurrent_streams));
  }
}

}  // namespace qmeter::mockserver
