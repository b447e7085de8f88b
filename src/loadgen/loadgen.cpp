#include "qmeter/loadgen/loadgen.h"

#include <fmt/core.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>

namespace qmeter::loadgen {

using client::RequestRecord;

std::vector<client::StreamRequest> to_stream_requests(const workload::Schedule& schedule, Nanos start_ns, int warmup) {
  std::vector<client::StreamRequest> out;
  out.reserve(schedule.requests.size());
  for (std::size_t i = 0; i < schedule.requests.size(); ++i) {
    const auto& s = schedule.requests[i];
    client::StreamRequest r;
    r.index = s.index;
    r.scheduled_ns = start_ns + s.offset_ns;
    r.warmup = static_cast<int>(i) < warmup;
    r.prompt = s.prompt.text;
    for (const auto& m : s.prompt.messages) r.messages.push_back({m.role, m.content});
    r.max_tokens = s.prompt.max_tokens;
    r.expected_prompt_tokens = s.prompt.prompt_tokens;
    r.follows = s.follows;
    r.think_ns = s.prompt.think_ns;
    r.session = s.prompt.session;
    r.turn = s.prompt.turn;
    out.push_back(std::move(r));
  }
  return out;
}

namespace {

// A one-line progress bar on stderr, redrawn at most 10 times a second from the event loop.
class ProgressBar {
 public:
  explicit ProgressBar(std::size_t total) : total_(total) {}
  void update(const RequestRecord& r) {
    ++done_;
    if (!r.ok()) ++failed_;
    const Nanos now = steady_now_ns();
    if (done_ != total_ && now - last_draw_ < 100'000'000) return;
    last_draw_ = now;
    constexpr int kWidth = 30;
    const int filled = total_ ? static_cast<int>(kWidth * done_ / total_) : kWidth;
    fmt::print(stderr, "\r[{}{}] {}/{} done, {} failed", std::string(filled, '#'), std::string(kWidth - filled, ' '),
               done_, total_, failed_);
    if (done_ == total_) fmt::print(stderr, "\n");
    std::fflush(stderr);
  }

 private:
  std::size_t total_, done_ = 0, failed_ = 0;
  Nanos last_draw_ = 0;
};

std::string wall_date() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", &tm);
  return buf;
}

}  // namespace

LoadgenResult run_load(const workload::Schedule& schedule, const LoadgenOptions& options, RunInfo info) {
  client::StreamingClient client(options.client);
  if (options.check_server) client.check_reachable(std::min(10.0, options.client.timeout_s));

  LoadgenResult result;
  if (info.date.empty()) info.date = wall_date();
  if (info.schedule_description.empty()) info.schedule_description = schedule.description;
  if (info.max_concurrency == 0) info.max_concurrency = schedule.max_concurrency;
  info.num_prompts = static_cast<std::int64_t>(schedule.requests.size());
  info.max_connections = options.max_connections;
  info.warmup = options.warmup;
  result.info = info;

  result.start_ns = steady_now_ns() + options.start_delay_ns;
  const auto requests = to_stream_requests(schedule, result.start_ns, options.warmup);

  ProgressBar bar(requests.size());
  client::RunControl control;
  control.max_concurrency = schedule.max_concurrency;
  control.max_connections = options.max_connections;
  control.debug_loop_stall_ns = options.debug_loop_stall_ns;
  control.cancel = options.cancel;
  const bool progress = options.progress;
  const auto& observers = options.observers;
  control.on_complete = [&](const RequestRecord& r) {
    if (progress) bar.update(r);
    for (auto* o : observers) o->on_request_done(r);
  };
  for (auto* o : observers) o->on_run_start(result.info, result.start_ns);
  result.records = client.run(requests, control);
  result.stop_ns = result.start_ns;
  for (const auto& r : result.records) result.stop_ns = std::max(result.stop_ns, r.end_ns);
  for (auto* o : observers) o->on_run_stop(result.records, result.start_ns, result.stop_ns, result.extras);
  MetricsOptions metrics = options.metrics;
  metrics.closed_loop = schedule.max_concurrency > 0;
  result.metrics = compute_metrics(result.records, metrics);
  result.sessions = compute_session_metrics(result.records, metrics);
  return result;
}

}  // namespace qmeter::loadgen
