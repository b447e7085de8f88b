// CpuModelSampler: package power estimated from /proc/stat utilization, for machines with no
// energy counter. P = cores * idle_w + busy_cores * (busy_w - idle_w), where busy_cores is the
// fraction of non-idle jiffies over the last interval times the core count. Every figure it
// produces is labelled modelled (DeviceInfo::power_origin).
#include <fmt/core.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

#include "qmeter/telemetry/sampler.h"

namespace qmeter::telemetry {
namespace {

struct CpuTimes {
  unsigned long long busy = 0, total = 0;
  int cores = 0;
};

// Parses the aggregate "cpu" line (user nice system idle iowait irq softirq steal ...) and counts
// the cpuN lines. idle and iowait are idle time; guest time is already inside user.
CpuTimes read_proc_stat(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw SamplerUnavailable(fmt::format("model: cannot read '{}'", path));
  CpuTimes t;
  std::string line;
  bool have_aggregate = false;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.rfind("cpu", 0) != 0) continue;
    if (line.size() > 3 && std::isdigit(static_cast<unsigned char>(line[3]))) {
      ++t.cores;
      continue;
    }
    std::istringstream fields(line.substr(3));
    unsigned long long v[8] = {};
    int n = 0;
    while (n < 8 && (fields >> v[n])) ++n;
    if (n < 4) throw SamplerUnavailable(fmt::format("model: {}:{}: the cpu line has {} fields, need at least 4", path, line_no, n));
    for (int i = 0; i < n; ++i) t.total += v[i];
    unsigned long long idle = v[3] + (n > 4 ? v[4] : 0);
    t.busy = t.total - idle;
    have_aggregate = true;
  }
  if (!have_aggregate) throw SamplerUnavailable(fmt::format("model: '{}' has no aggregate cpu line", path));
  if (t.cores == 0) t.cores = 1;
  return t;
}

class CpuModelSampler final : public Sampler {
 public:
  explicit CpuModelSampler(const SamplerConfig& config)
      : path_(config.proc_stat), idle_w_(config.idle_watts_per_core), busy_w_(config.busy_watts_per_core) {
    if (!(idle_w_ >= 0) || !(busy_w_ >= idle_w_))
      throw UsageError(fmt::format("model: watts per core must satisfy 0 <= idle ({}) <= busy ({})", idle_w_, busy_w_));
    last_ = read_proc_stat(path_);
    last_t_ = steady_now_ns();
    DeviceInfo d;
    d.source = "model";
    d.name = fmt::format("cpu package (modelled: {} cores, {} W idle / {} W busy per core)", last_.cores, idle_w_, busy_w_);
    d.has_energy_counter = true;  // the model's own integral, exact for its piecewise-constant power
    d.power_origin = EnergyOrigin::kModelled;
    d.power_kind = "modelled";
    devices_.push_back(std::move(d));
    notes_.push_back(fmt::format(
        "model: no CPU energy counter used; CPU power is modelled from {} utilization ({} W idle, {} W busy "
        "per core, {} cores): figures are estimates",
        path_, idle_w_, busy_w_, last_.cores));
  }

  std::string_view source() const override { return "model"; }
  const std::vector<DeviceInfo>& devices() const override { return devices_; }
  std::vector<std::string> notes() const override { return notes_; }

  void sample(Nanos now_ns, std::vector<PowerSample>& out) override {
    PowerSample s;
    s.t_ns = now_ns;
    CpuTimes t;
    try {
      t = read_proc_stat(path_);
    } catch (const Error&) {
      out.push_back(s);  // unreadable this time: a gap, not a crash
      return;
    }
    double dtotal = static_cast<double>(t.total) - static_cast<double>(last_.total);
    double dbusy = static_cast<double>(t.busy) - static_cast<double>(last_.busy);
    double util = dtotal > 0 ? std::clamp(dbusy / dtotal, 0.0, 1.0) : last_util_;
    double power = t.cores * idle_w_ + util * t.cores * (busy_w_ - idle_w_);
    if (now_ns > last_t_) energy_j_ += power * ns_to_s(now_ns - last_t_);
    last_ = t;
    last_t_ = now_ns;
    last_util_ = util;
    s.power_w = power;
    s.energy_j = energy_j_;
    s.gpu_util_pct = kNotMeasured;
    out.push_back(s);
  }

 private:
  std::string path_;
  double idle_w_, busy_w_;
  CpuTimes last_;
  Nanos last_t_ = 0;
  double last_util_ = 0;
  double energy_j_ = 0;
  std::vector<DeviceInfo> devices_;
  std::vector<std::string> notes_;
};

}  // namespace

std::unique_ptr<Sampler> make_cpu_model_sampler(const SamplerConfig& config) {
  return std::make_unique<CpuModelSampler>(config);
}

}  // namespace qmeter::telemetry
