#pragma once
// Server-side metrics: a Prometheus text-format (0.0.4) parser and a scraper that polls a
// server's /metrics at an interval and keeps the series of interest (vLLM's names and the
// embedded server's).
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "qmeter/core/clock.h"

namespace qmeter::telemetry {

using Labels = std::vector<std::pair<std::string, std::string>>;  // in the order written

struct PromSample {
  std::string name;  // full sample name, e.g. "vllm:e2e_request_latency_seconds_bucket"
  Labels labels;
  double value = 0;  // +Inf, -Inf and NaN are allowed
  std::optional<std::int64_t> timestamp_ms;
  // The label's value, or nullptr when absent.
  const std::string* label(std::string_view key) const;
};

struct PromFamily {
  std::string name;
  std::string type = "untyped";  // counter, gauge, histogram, summary, untyped
  std::string help;
};

struct PromText {
  std::vector<PromSample> samples;
  std::map<std::string, PromFamily> families;  // by family name (from # HELP / # TYPE)
  // The family a sample belongs to: its own name, or for histogram/summary parts the name
  // without _bucket/_sum/_count (when that family is declared).
  const PromFamily* family_of(const PromSample& s) const;
  // Sum of the values of every sample with this exact name (across label sets); nullopt if none.
  std::optional<double> sum(std::string_view name) const;
};

// Throws qmeter::Error naming the line number and what is wrong.
PromText parse_prometheus_text(std::string_view text);

// The series the scraper keeps by default: vLLM's (both KV-cache names: kv_cache_usage_perc is
// the current one, gpu_cache_usage_perc the older) and every metric whose name starts with
// "qmeter:" or "qmeter_" (the embedded server's).
std::vector<std::string> default_scraped_metrics();

struct ScrapePoint {
  Nanos t_ns = 0;
  double value = 0;
};

// One series: a metric name and one label set.
struct MetricSeries {
  std::string name;
  Labels labels;
  std::vector<ScrapePoint> points;
};

struct ScraperOptions {
  std::string url;                         // e.g. http://127.0.0.1:8000/metrics
  Nanos interval_ns = 1'000'000'000;       // poll every second by default
  Nanos timeout_ns = 2'000'000'000;        // per request
  std::vector<std::string> metric_names;   // empty: default_scraped_metrics(); "*" keeps everything
};

// Polls the URL on its own thread (client::HttpCaller). Failed scrapes are counted and the
// last error is kept; they never stop the run.
class MetricsScraper {
 public:
  explicit MetricsScraper(ScraperOptions options);
  ~MetricsScraper();
  MetricsScraper(const MetricsScraper&) = delete;
  MetricsScraper& operator=(const MetricsScraper&) = delete;

  void start();
  void stop();  // takes a last scrape, joins the thread; idempotent
  // Scrapes once on the calling thread (also used by start/stop); false on failure.
  bool scrape_once();

  std::vector<MetricSeries> series() const;
  // The metric's value per scrape, summed over its label sets, in time order.
  std::vector<ScrapePoint> points(std::string_view name) const;
  std::size_t successful_scrapes() const;
  std::size_t failed_scrapes() const;
  std::string last_error() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qmeter::telemetry
