// TelemetrySession: the sampling thread, sample storage and window energy accounting.
#include "qmeter/telemetry/session.h"

#include <fmt/core.h>
#include <pthread.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "energy_math.h"

namespace qmeter::telemetry {

struct TelemetrySession::Impl {
  std::vector<std::unique_ptr<Sampler>> samplers;
  SessionOptions options;
  std::vector<DeviceInfo> devices;
  std::vector<int> offsets;  // first session device index of each sampler

  mutable std::mutex data_mutex;
  std::vector<PowerSample> samples;
  std::vector<std::uint32_t> sample_tick;  // tick number of each sample (for per-tick sums)
  std::uint32_t tick_count = 0;
  Nanos idle_t0 = 0, idle_t1 = 0;
  std::vector<std::string> notes;

  std::mutex control_mutex;
  std::condition_variable wake;
  bool stop_requested = false;
  std::thread thread;
  bool stopped = false;
  std::atomic<Nanos> thread_cpu_ns{0};
  std::vector<PowerSample> buffer;

  void tick(bool all) {
    buffer.clear();
    Nanos now = steady_now_ns();
    for (std::size_t i = 0; i < samplers.size(); ++i) {
      std::size_t first = buffer.size();
      if (all) samplers[i]->sample_all(now, buffer);
      else samplers[i]->sample(now, buffer);
      for (std::size_t k = first; k < buffer.size(); ++k) buffer[k].device += offsets[i];
    }
    std::lock_guard lock(data_mutex);
    samples.insert(samples.end(), buffer.begin(), buffer.end());
    sample_tick.insert(sample_tick.end(), buffer.size(), tick_count);
    ++tick_count;
  }

  void record_cpu_time() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    thread_cpu_ns.store(static_cast<Nanos>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec);
  }

  void run() {
    Nanos next = steady_now_ns();
    bool first = true;
    for (;;) {
      tick(first);
      first = false;
      record_cpu_time();
      next += options.interval_ns;
      Nanos now = steady_now_ns();
      // A late tick (a slow source, a busy machine) skips the missed slots instead of bursting.
      if (next <= now) next += ((now - next) / options.interval_ns + 1) * options.interval_ns;
      std::unique_lock lock(control_mutex);
      auto deadline = std::chrono::steady_clock::time_point(std::chrono::nanoseconds(next));
      if (wake.wait_until(lock, deadline, [&] { return stop_requested; })) break;
    }
    tick(true);  // a last full sample, so a window ending at stop() is covered
    record_cpu_time();
  }

  // Series of one device inside the stored samples.
  DeviceSeries series(int device) const {
    DeviceSeries s;
    for (std::size_t i = 0; i < samples.size(); ++i) {
      const PowerSample& p = samples[i];
      if (p.device != device) continue;
      if (measured(p.power_w)) s.power.push_back({p.t_ns, p.power_w});
      if (measured(p.energy_j)) s.energy.push_back({p.t_ns, p.energy_j});
    }
    return s;
  }
};

TelemetrySession::TelemetrySession(std::vector<std::unique_ptr<Sampler>> samplers, SessionOptions options)
    : impl_(std::make_unique<Impl>()) {
  if (options.interval_ns < 1'000'000)
    throw UsageError(fmt::format("--power-interval-ms must be at least 1 (got {} ms)", ns_to_ms(options.interval_ns)));
  impl_->samplers = std::move(samplers);
  impl_->options = options;
  for (const auto& s : impl_->samplers) {
    impl_->offsets.push_back(static_cast<int>(impl_->devices.size()));
    for (const auto& d : s->devices()) impl_->devices.push_back(d);
  }
}

TelemetrySession::~TelemetrySession() { stop(); }

void TelemetrySession::start() {
  if (impl_->thread.joinable() || impl_->stopped || impl_->samplers.empty()) return;
  impl_->thread = std::thread([this] { impl_->run(); });
}

void TelemetrySession::measure_idle_baseline(double seconds) {
  if (seconds <= 0 || impl_->samplers.empty()) return;
  start();
  Nanos t0 = steady_now_ns();
  std::this_thread::sleep_for(std::chrono::nanoseconds(s_to_ns(seconds)));
  std::lock_guard lock(impl_->data_mutex);
  impl_->idle_t0 = t0;
  impl_->idle_t1 = steady_now_ns();
}

void TelemetrySession::stop() {
  if (!impl_->thread.joinable()) {
    impl_->stopped = true;
    return;
  }
  {
    std::lock_guard lock(impl_->control_mutex);
    impl_->stop_requested = true;
  }
  impl_->wake.notify_all();
  impl_->thread.join();
  impl_->stopped = true;
}

bool TelemetrySession::empty() const { return impl_->samplers.empty(); }
const std::vector<DeviceInfo>& TelemetrySession::devices() const { return impl_->devices; }

std::vector<PowerSample> TelemetrySession::samples() const {
  std::lock_guard lock(impl_->data_mutex);
  return impl_->samples;
}

double TelemetrySession::sampler_cpu_seconds() const { return ns_to_s(impl_->thread_cpu_ns.load()); }

std::size_t TelemetrySession::ticks() const {
  std::lock_guard lock(impl_->data_mutex);
  return impl_->tick_count;
}

EnergyReport TelemetrySession::report(Nanos t0_ns, Nanos t1_ns) const {
  const Impl& m = *impl_;
  if (t1_ns < t0_ns) throw Error("telemetry: report window ends before it starts");
  EnergyReport r;
  r.t0_ns = t0_ns;
  r.t1_ns = t1_ns;
  r.duration_s = ns_to_s(t1_ns - t0_ns);
  r.interval_ms = ns_to_ms(m.options.interval_ns);
  r.sampler_cpu_s = sampler_cpu_seconds();
  for (const auto& s : m.samplers)
    for (auto& n : s->notes()) r.notes.push_back(std::move(n));

  std::lock_guard lock(m.data_mutex);
  bool have_idle = m.idle_t1 > m.idle_t0;
  r.idle_baseline_s = have_idle ? ns_to_s(m.idle_t1 - m.idle_t0) : 0;
  for (std::size_t d = 0; d < m.devices.size(); ++d) {
    DeviceSeries series = m.series(static_cast<int>(d));
    DeviceEnergy e;
    e.device = m.devices[d];
    WindowEnergy w = window_energy(series, t0_ns, t1_ns, e.device.has_energy_counter);
    e.counter_j = w.counter_j;
    e.integrated_j = w.integrated_j;
    e.samples = w.samples_inside;
    e.peak_power_w = w.peak_power_w;
    if (measured(w.counter_j)) {
      e.energy_j = w.counter_j;
      e.origin = EnergyOrigin::kCounter;
    } else if (measured(w.integrated_j)) {
      e.energy_j = w.integrated_j;
      e.origin = EnergyOrigin::kSampled;
    } else {
      e.energy_j = 0;
      r.notes.push_back(fmt::format("{} device {} ({}): no sample inside the window; its energy counts as 0",
                                    e.device.source, e.device.index, e.device.name));
    }
    if (e.device.power_origin == EnergyOrigin::kModelled) e.origin = EnergyOrigin::kModelled;
    if (w.clipped)
      r.notes.push_back(fmt::format("{} device {}: the window reaches outside the samples; clipped to them",
                                    e.device.source, e.device.index));
    if (r.duration_s > 0) e.avg_power_w = e.energy_j / r.duration_s;
    if (have_idle) {
      WindowEnergy idle = window_energy(series, m.idle_t0, m.idle_t1, e.device.has_energy_counter);
      double idle_j = measured(idle.counter_j) ? idle.counter_j : idle.integrated_j;
      if (measured(idle_j)) {
        e.idle_power_w = idle_j / ns_to_s(m.idle_t1 - m.idle_t0);
        e.above_idle_j = e.energy_j - e.idle_power_w * r.duration_s;
      }
    }
    r.devices.push_back(std::move(e));
  }

  // Per-source totals; the peak is the highest per-tick sum over the source's devices.
  for (std::size_t si = 0; si < m.samplers.size(); ++si) {
    SourceEnergy s;
    s.source = std::string(m.samplers[si]->source());
    int first = m.offsets[si];
    int count = static_cast<int>(m.samplers[si]->devices().size());
    bool all_idle = have_idle;
    double above = 0, idle_w = 0;
    for (int d = first; d < first + count; ++d) {
      const DeviceEnergy& e = r.devices[d];
      s.energy_j += e.energy_j;
      if (static_cast<int>(e.origin) > static_cast<int>(s.origin)) s.origin = e.origin;
      if (measured(e.above_idle_j)) {
        above += e.above_idle_j;
        idle_w += e.idle_power_w;
      } else {
        all_idle = false;
      }
    }
    if (all_idle) {
      s.above_idle_j = above;
      s.idle_power_w = idle_w;
    }
    if (r.duration_s > 0) s.avg_power_w = s.energy_j / r.duration_s;
    double peak = kNotMeasured, tick_sum = 0;
    std::uint32_t tick = 0;
    bool open = false;
    for (std::size_t i = 0; i < m.samples.size(); ++i) {
      const PowerSample& p = m.samples[i];
      if (p.device < first || p.device >= first + count || p.t_ns < t0_ns || p.t_ns > t1_ns || !measured(p.power_w))
        continue;
      if (!open || m.sample_tick[i] != tick) {
        if (open) peak = measured(peak) ? std::max(peak, tick_sum) : tick_sum;
        tick = m.sample_tick[i];
        tick_sum = 0;
        open = true;
      }
      tick_sum += p.power_w;
    }
    if (open) peak = measured(peak) ? std::max(peak, tick_sum) : tick_sum;
    s.peak_power_w = peak;
    r.total_j += s.energy_j;
    r.sources.push_back(std::move(s));
  }
  if (have_idle && !r.sources.empty() &&
      std::all_of(r.sources.begin(), r.sources.end(), [](const SourceEnergy& s) { return measured(s.above_idle_j); })) {
    r.above_idle_j = 0;
    for (const auto& s : r.sources) r.above_idle_j += s.above_idle_j;
  }
  return r;
}

std::vector<EnergyInterval> TelemetrySession::energy_intervals(Nanos t0_ns, Nanos t1_ns) const {
  const Impl& m = *impl_;
  std::vector<double> idle_w(m.devices.size(), kNotMeasured);
  {
    std::lock_guard lock(m.data_mutex);
    if (m.idle_t1 > m.idle_t0) {
      for (std::size_t d = 0; d < m.devices.size(); ++d) {
        DeviceSeries s = m.series(static_cast<int>(d));
        WindowEnergy idle = window_energy(s, m.idle_t0, m.idle_t1, m.devices[d].has_energy_counter);
        double j = measured(idle.counter_j) ? idle.counter_j : idle.integrated_j;
        if (measured(j)) idle_w[d] = j / ns_to_s(m.idle_t1 - m.idle_t0);
      }
    }
  }
  std::vector<EnergyInterval> out;
  std::lock_guard lock(m.data_mutex);
  for (std::size_t d = 0; d < m.devices.size(); ++d) {
    DeviceSeries s = m.series(static_cast<int>(d));
    for (auto& iv : split_intervals(s, t0_ns, t1_ns, m.devices[d].has_energy_counter)) {
      iv.above_idle_j = iv.energy_j - idle_w[d] * ns_to_s(iv.t1_ns - iv.t0_ns);
      out.push_back(iv);
    }
  }
  return out;
}

}  // namespace qmeter::telemetry
