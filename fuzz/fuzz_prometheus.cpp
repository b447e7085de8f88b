// The Prometheus text-format (0.0.4) parser (src/telemetry/prometheus_parser.cpp), and the
// lookups the scraper makes on what it parsed.
#include "fuzz_support.h"
#include "qmeter/telemetry/prometheus.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace qmeter;
  fuzz::expect_only_qmeter_errors([&] {
    const auto text = telemetry::parse_prometheus_text(fuzz::as_text(data, size));
    for (const auto& s : text.samples) (void)text.family_of(s);
    (void)text.sum("vllm:num_requests_running");
  });
  return 0;
}
