#include "server_metrics_observer.h"

#include <fmt/core.h>

#include "qmeter/telemetry/prometheus.h"

namespace qmeter::exec {

std::vector<std::string> server_metric_names() {
  auto names = telemetry::default_scraped_metrics();
  for (const char* n : {"vllm:prompt_tokens_total", "vllm:generation_tokens_total", "vllm:request_success_total",
                        "vllm:num_requests_swapped"}) {
    names.emplace_back(n);
  }
  return names;
}

namespace {

// Labels as Prometheus writes them (k="v",...), escaping as the text format does.
std::string labels_text(const telemetry::Labels& labels) {
  std::string out;
  for (const auto& [k, v] : labels) {
    if (!out.empty()) out += ',';
    out += k + "=\"";
    for (char c : v) {
      if (c == '\\' || c == '"') out += '\\';
      if (c == '\n') {
        out += "\\n";
        continue;
      }
      out += c;
    }
    out += '"';
  }
  return out;
}

}  // namespace

struct ServerMetricsObserver::Impl {
  ServerMetricsOptions options;
  std::unique_ptr<telemetry::MetricsScraper> scraper;
  std::vector<store::ServerMetricSampleRow> rows;
};

ServerMetricsObserver::ServerMetricsObserver(ServerMetricsOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  if (impl_->options.names.empty()) impl_->options.names = server_metric_names();
}

ServerMetricsObserver::ServerMetricsObserver(std::string metrics_url)
    : ServerMetricsObserver([&] {
        ServerMetricsOptions o;
        o.metrics_url = std::move(metrics_url);
        return o;
      }()) {}

ServerMetricsObserver::~ServerMetricsObserver() {
  if (impl_->scraper) impl_->scraper->stop();
}

void ServerMetricsObserver::on_run_start(const loadgen::RunInfo&, Nanos) {
  // One scraper per point: its series then hold exactly this point's window (a first scrape at
  // start, one every interval, a last one after the final request ended).
  telemetry::ScraperOptions so;
  so.url = impl_->options.metrics_url;
  so.interval_ns = ms_to_ns(impl_->options.interval_ms);
  so.timeout_ns = s_to_ns(1);
  so.metric_names = impl_->options.names;
  impl_->rows.clear();
  impl_->scraper = std::make_unique<telemetry::MetricsScraper>(so);
  impl_->scraper->start();
}

void ServerMetricsObserver::on_run_stop(std::span<const client::RequestRecord>, Nanos, Nanos,
                                        loadgen::ResultExtras& extras) {
  if (!impl_->scraper) return;
  impl_->scraper->stop();
  for (const auto& s : impl_->scraper->series()) {
    const std::string labels = labels_text(s.labels);
    for (const auto& p : s.points) impl_->rows.push_back({p.t_ns, s.name, labels, p.value});
  }
  const auto ok = impl_->scraper->successful_scrapes();
  const auto failed = impl_->scraper->failed_scrapes();
  extras.numbers.emplace_back("server_metric_scrapes", static_cast<double>(ok));
  if (failed > 0) {
    extras.summary_lines.push_back(fmt::format("server metrics: {} of {} scrapes of {} failed (last: {})", failed,
                                               ok + failed, impl_->options.metrics_url, impl_->scraper->last_error()));
  }
  impl_->scraper.reset();
}

const std::vector<store::ServerMetricSampleRow>& ServerMetricsObserver::point_rows() const { return impl_->rows; }

}  // namespace qmeter::exec
