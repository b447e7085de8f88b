#pragma once
// Prometheus counters and histograms of `qmeter serve`, under vLLM's metric names.
#include <array>
#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include "qmeter/server/scheduler.h"

namespace qmeter::server {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}
  void observe(double v);
  // Prometheus text lines for `name` (cumulative buckets, _sum, _count).
  std::string text(const std::string& name, const std::string& labels) const;

 private:
  std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::vector<std::uint64_t> counts_;
  double sum_ = 0;
  std::uint64_t n_ = 0;
};

class ServerMetrics {
 public:
  ServerMetrics();
  Histogram ttft_s, e2e_s, tpot_s;
  std::atomic<std::int64_t> success{0}, aborted{0}, rejected{0};
  std::string prometheus_text(const SchedulerStats& stats, const std::string& model_name) const;
};

}  // namespace qmeter::server
