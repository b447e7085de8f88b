#pragma once
// Scrapes the backend's Prometheus /metrics during each load point (vLLM's names, which the
// embedded `qmeter serve` also exports) and turns the series into server_metric_samples rows,
// written in the point's transaction. A server without /metrics only costs failed scrapes: the
// run goes on and the point simply has no server-metric rows.
#include <memory>
#include <string>
#include <vector>

#include "qmeter/loadgen/loadgen.h"
#include "qmeter/store/rows.h"

namespace qmeter::exec {

struct ServerMetricsOptions {
  std::string metrics_url;            // e.g. http://127.0.0.1:8000/metrics
  double interval_ms = 250;           // /metrics is cheap; 4 Hz resolves queue build-up within a point
  std::vector<std::string> names;     // empty: server_metric_names()
};

// What is kept by default: the scraper's defaults (running / waiting / KV usage / preemptions and
// qmeter:*) plus vLLM's token and request counters, so a point's server-side token counts can be
// checked against the client's.
std::vector<std::string> server_metric_names();

class ServerMetricsObserver : public loadgen::RunObserver {
 public:
  explicit ServerMetricsObserver(ServerMetricsOptions options);
  // Scrapes this URL with the default interval and metric names.
  explicit ServerMetricsObserver(std::string metrics_url);
  ~ServerMetricsObserver() override;

  void on_run_start(const loadgen::RunInfo& info, Nanos start_ns) override;
  void on_run_stop(std::span<const client::RequestRecord> records, Nanos start_ns, Nanos stop_ns,
                   loadgen::ResultExtras& extras) override;

  // The samples of the last load point (one row per scrape, metric and label set).
  const std::vector<store::ServerMetricSampleRow>& point_rows() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qmeter::exec
