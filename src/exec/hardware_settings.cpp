#include "qmeter/exec/hardware_settings.h"

#include <fmt/core.h>

#include <cmath>

#include "qmeter/core/error.h"
#include "qmeter/telemetry/nvml.h"

namespace qmeter::exec {

GpuSettings gpu_settings(const spec::HardwareSetting& setting) {
  GpuSettings g;
  g.label = "hardware setting " + setting.label();
  if (setting.power_limit_w > 0) g.power_limit_w = setting.power_limit_w;
  if (setting.locked_clock_mhz > 0) g.min_clock_mhz = g.max_clock_mhz = static_cast<unsigned>(std::lround(setting.locked_clock_mhz));
  return g;
}

struct AppliedHardwareSetting::Impl {
  std::unique_ptr<telemetry::NvmlSampler> nvml;
  std::vector<double> original_limit_w;  // per device; NaN where the limit was not changed
  std::vector<bool> clocks_locked;
  std::vector<std::string> notes;

  std::vector<std::string> restore() {
    std::vector<std::string> lines;
    if (!nvml) return lines;
    for (std::size_t d = 0; d < original_limit_w.size(); ++d) {
      if (std::isnan(original_limit_w[d])) continue;
      auto r = nvml->set_power_limit(static_cast<int>(d), original_limit_w[d]);
      lines.push_back((r.ok ? "restoring: " : "warning: restoring the power limit: ") + r.message);
      original_limit_w[d] = NAN;
    }
    for (std::size_t d = 0; d < clocks_locked.size(); ++d) {
      if (!clocks_locked[d]) continue;
      auto r = nvml->reset_gpu_clocks(static_cast<int>(d));
      lines.push_back((r.ok ? "" : "warning: unlocking GPU clocks: ") + r.message);
      clocks_locked[d] = false;
    }
    return lines;
  }
};

AppliedHardwareSetting::AppliedHardwareSetting(const spec::HardwareSetting& setting)
    : AppliedHardwareSetting(gpu_settings(setting)) {}

AppliedHardwareSetting::AppliedHardwareSetting(const GpuSettings& s) : impl_(std::make_unique<Impl>()) {
  if (s.empty()) return;
  try {
    impl_->nvml = std::make_unique<telemetry::NvmlSampler>(telemetry::SamplerConfig{});
  } catch (const std::exception& e) {
    throw Error(fmt::format("{} needs NVML: {}", s.label, e.what()));
  }
  const int n = static_cast<int>(impl_->nvml->devices().size());
  impl_->original_limit_w.assign(static_cast<std::size_t>(n), NAN);
  impl_->clocks_locked.assign(static_cast<std::size_t>(n), false);
  // The first refusal (or exception: a check inside the NVML wrapper) ends the loop; whatever was
  // applied before it is restored before the error leaves the constructor.
  auto apply = [&]() -> std::string {
    for (int d = 0; d < n && s.power_limit_w > 0; ++d) {
      const double before = impl_->nvml->power_limit_w(d);
      if (!(before > 0)) return fmt::format("nvml: GPU {} does not report its power limit, so it could not be restored", d);
      auto r = impl_->nvml->set_power_limit(d, s.power_limit_w);
      if (!r.ok) return r.message;
      impl_->original_limit_w[static_cast<std::size_t>(d)] = before;
      impl_->notes.push_back(fmt::format("{} (was {:g} W)", r.message, before));
    }
    for (int d = 0; d < n && s.max_clock_mhz > 0; ++d) {
      auto r = impl_->nvml->lock_gpu_clocks(d, s.min_clock_mhz, s.max_clock_mhz);
      if (!r.ok) return r.message;
      impl_->clocks_locked[static_cast<std::size_t>(d)] = true;
      impl_->notes.push_back(r.message);
    }
    return "";
  };
  std::string refused;
  try {
    refused = apply();
  } catch (const std::exception& e) {
    refused = e.what();
  }
  if (refused.empty()) return;
  for (const auto& line : impl_->restore())
    if (line.rfind("warning: ", 0) == 0) fmt::print(stderr, "{}\n", line);
  throw Error(fmt::format("{}: {}", s.label, refused));
}

AppliedHardwareSetting::~AppliedHardwareSetting() {
  for (const auto& line : impl_->restore())
    if (line.rfind("warning: ", 0) == 0) fmt::print(stderr, "{}\n", line);
}

const std::vector<std::string>& AppliedHardwareSetting::notes() const { return impl_->notes; }

std::vector<std::string> AppliedHardwareSetting::restore() { return impl_->restore(); }

}  // namespace qmeter::exec
