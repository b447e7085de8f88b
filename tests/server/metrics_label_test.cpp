// /metrics of `qmeter serve` with a served model name that holds every character the Prometheus
// text format escapes in label values (backslash, double quote, line feed): the scrape parses
// with the project's own parser, and the label reads back as the name that was served.
#include <gtest/gtest.h>

#include "qmeter/telemetry/prometheus.h"
#include "serve_process.h"

using namespace qmeter;

TEST(ServeMetrics, LabelValuesAreEscapedSoAnyServedNameReadsBack) {
  const std::string name = "team \"a\"\\models\nv2";
  const auto dir = qmeter::testing::test_output_dir("serve_metrics_label");
  std::string base;
  auto server = qmeter::testing::spawn_serve(dir, {"--model", "synthetic:tiny", "--served-model-name", name}, base);
  const std::string text = qmeter::testing::http_fetch(base + "/metrics").second;
  server.stop(5);
  const telemetry::PromText parsed = telemetry::parse_prometheus_text(text);  // threw on the raw name
  int labelled = 0;
  for (const telemetry::PromSample& s : parsed.samples) {
    const std::string* v = s.label("model_name");
    ASSERT_NE(v, nullptr) << s.name;
    EXPECT_EQ(*v, name) << s.name;
    ++labelled;
  }
  EXPECT_GT(labelled, 20);  // every gauge, counter and histogram line carries it
  EXPECT_EQ(parsed.sum("vllm:num_requests_running"), 0.0);
}
