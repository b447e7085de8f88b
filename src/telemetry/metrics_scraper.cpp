// MetricsScraper: polls a Prometheus endpoint with the client's blocking GET on its own thread.
#include <fmt/core.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "qmeter/client/http_call.h"
#include "qmeter/core/error.h"
#include "qmeter/telemetry/prometheus.h"

namespace qmeter::telemetry {
namespace {

// A pattern is an exact name, or a prefix ending in '*'; "*" alone keeps everything.
bool wanted(const std::vector<std::string>& patterns, const std::string& name) {
  for (const auto& p : patterns) {
    if (!p.empty() && p.back() == '*') {
      if (name.compare(0, p.size() - 1, p, 0, p.size() - 1) == 0) return true;
    } else if (p == name) {
      return true;
    }
  }
  return false;
}

}  // namespace

struct MetricsScraper::Impl {
  ScraperOptions options;
  std::unique_ptr<client::HttpCaller> http;
  mutable std::mutex data_mutex;
  std::vector<MetricSeries> series;
  std::size_t ok = 0, failed = 0;
  std::string last_error;
  std::mutex control_mutex;
  std::condition_variable wake;
  bool stop_requested = false;
  std::thread thread;
  std::mutex http_mutex;  // scrape_once may be called from the caller's thread too

  void fail(std::string why) {
    std::lock_guard lock(data_mutex);
    ++failed;
    last_error = std::move(why);
  }

  void store(const PromText& text, Nanos t) {
    std::lock_guard lock(data_mutex);
    for (const auto& s : text.samples) {
      if (!wanted(options.metric_names, s.name)) continue;
      MetricSeries* target = nullptr;
      for (auto& existing : series)
        if (existing.name == s.name && existing.labels == s.labels) target = &existing;
      if (target == nullptr) {
        series.push_back({s.name, s.labels, {}});
        target = &series.back();
      }
      target->points.push_back({t, s.value});
    }
    ++ok;
  }
};

MetricsScraper::MetricsScraper(ScraperOptions options) : impl_(std::make_unique<Impl>()) {
  if (options.url.empty()) throw UsageError("metrics scraper: empty URL");
  if (options.interval_ns <= 0) throw UsageError("metrics scraper: the interval must be positive");
  if (options.metric_names.empty()) options.metric_names = default_scraped_metrics();
  impl_->options = std::move(options);
  impl_->http = std::make_unique<client::HttpCaller>("", ns_to_s(impl_->options.timeout_ns));
}

MetricsScraper::~MetricsScraper() {
  stop();
}

bool MetricsScraper::scrape_once() {
  std::lock_guard http_lock(impl_->http_mutex);
  Nanos t = steady_now_ns();
  const client::HttpReply reply = impl_->http->get(impl_->options.url);
  if (!reply.error.empty()) {
    impl_->fail(fmt::format("GET {}: {}", impl_->options.url, reply.error));
    return false;
  }
  if (reply.status != 200) {
    impl_->fail(fmt::format("GET {}: HTTP status {}", impl_->options.url, reply.status));
    return false;
  }
  try {
    impl_->store(parse_prometheus_text(reply.body), t);
  } catch (const Error& e) {
    impl_->fail(fmt::format("GET {}: {}", impl_->options.url, e.what()));
    return false;
  }
  return true;
}

void MetricsScraper::start() {
  if (impl_->thread.joinable()) return;
  impl_->stop_requested = false;
  impl_->thread = std::thread([this] {
    Nanos next = steady_now_ns();
    for (;;) {
      scrape_once();
      next += impl_->options.interval_ns;
      Nanos now = steady_now_ns();
      if (next <= now) next += ((now - next) / impl_->options.interval_ns + 1) * impl_->options.interval_ns;
      std::unique_lock lock(impl_->control_mutex);
      auto deadline = std::chrono::steady_clock::time_point(std::chrono::nanoseconds(next));
      if (impl_->wake.wait_until(lock, deadline, [&] { return impl_->stop_requested; })) break;
    }
    scrape_once();  // the state at the end of the run
  });
}

void MetricsScraper::stop() {
  if (!impl_->thread.joinable()) return;
  {
    std::lock_guard lock(impl_->control_mutex);
    impl_->stop_requested = true;
  }
  impl_->wake.notify_all();
  impl_->thread.join();
}

std::vector<MetricSeries> MetricsScraper::series() const {
  std::lock_guard lock(impl_->data_mutex);
  return impl_->series;
}

std::vector<ScrapePoint> MetricsScraper::points(std::string_view name) const {
  std::lock_guard lock(impl_->data_mutex);
  std::vector<ScrapePoint> out;
  for (const auto& s : impl_->series) {
    if (s.name != name) continue;
    // Series of one name are scraped together, so their points line up scrape by scrape.
    for (const auto& p : s.points) {
      auto it = std::find_if(out.begin(), out.end(), [&](const ScrapePoint& q) { return q.t_ns == p.t_ns; });
      if (it == out.end()) out.push_back(p);
      else it->value += p.value;
    }
  }
  std::sort(out.begin(), out.end(), [](const ScrapePoint& a, const ScrapePoint& b) { return a.t_ns < b.t_ns; });
  return out;
}

std::size_t MetricsScraper::successful_scrapes() const {
  std::lock_guard lock(impl_->data_mutex);
  return impl_->ok;
}
std::size_t MetricsScraper::failed_scrapes() const {
  std::lock_guard lock(impl_->data_mutex);
  return impl_->failed;
}
std::string MetricsScraper::last_error() const {
  std::lock_guard lock(impl_->data_mutex);
  return impl_->last_error;
}

}  // namespace qmeter::telemetry
