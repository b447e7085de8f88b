#include "hardware_settings.h"

#include <fmt/core.h>

#include <cmath>

#include "qmeter/core/error.h"
#include "qmeter/telemetry/nvml.h"

namespace qmeter::exec {

struct AppliedHardwareSetting::Impl {
  std::unique_ptr<telemetry::NvmlSampler> nvml;
  std::vector<double> original_limit_w;  // per device; NaN where the limit was not changed
  std::vector<bool> clocks_locked;
  std::vector<std::string> notes;

  void restore() {
    if (!nvml) return;
    for (std::size_t d = 0; d < original_limit_w.size(); ++d) {
      if (std::isnan(original_limit_w[d])) continue;
      auto r = nvml->set_power_limit(static_cast<int>(d), original_limit_w[d]);
      if (!r.ok) fmt::print(stderr, "warning: restoring the power limit: {}\n", r.message);
      original_limit_w[d] = NAN;
    }
    for (std::size_t d = 0; d < clocks_locked.size(); ++d) {
      if (!clocks_locked[d]) continue;
      auto r = nvml->reset_gpu_clocks(static_cast<int>(d));
      if (!r.ok) fmt::print(stderr, "warning: unlocking GPU clocks: {}\n", r.message);
      clocks_locked[d] = false;
    }
  }
};

AppliedHardwareSetting::AppliedHardwareSetting(const spec::HardwareSetting& setting) : impl_(std::make_unique<Impl>()) {
  const bool limit = setting.power_limit_w > 0, clock = setting.locked_clock_mhz > 0;
  if (!limit && !clock) return;
  try {
    impl_->nvml = std::make_unique<telemetry::NvmlSampler>(telemetry::SamplerConfig{});
  } catch (const std::exception& e) {
    throw Error(fmt::format("hardware setting {} needs NVML: {}", setting.label(), e.what()));
  }
  const int n = static_cast<int>(impl_->nvml->devices().size());
  impl_->original_limit_w.assign(static_cast<std::size_t>(n), NAN);
  impl_->clocks_locked.assign(static_cast<std::size_t>(n), false);
  auto fail = [&](const std::string& message) {
    impl_->restore();
    throw Error(fmt::format("hardware setting {}: {}", setting.label(), message));
  };
  for (int d = 0; d < n && limit; ++d) {
    const double before = impl_->nvml->power_limit_w(d);
    if (!(before > 0)) fail(fmt::format("nvml: GPU {} does not report its power limit, so it could not be restored", d));
    auto r = impl_->nvml->set_power_limit(d, setting.power_limit_w);
    if (!r.ok) fail(r.message);
    impl_->original_limit_w[static_cast<std::size_t>(d)] = before;
    impl_->notes.push_back(fmt::format("{} (was {:g} W)", r.message, before));
  }
  for (int d = 0; d < n && clock; ++d) {
    const auto mhz = static_cast<unsigned>(std::lround(setting.locked_clock_mhz));
    auto r = impl_->nvml->lock_gpu_clocks(d, mhz, mhz);
    if (!r.ok) fail(r.message);
    impl_->clocks_locked[static_cast<std::size_t>(d)] = true;
    impl_->notes.push_back(r.message);
  }
}

AppliedHardwareSetting::~AppliedHardwareSetting() { impl_->restore(); }

const std::vector<std::string>& AppliedHardwareSetting::notes() const { return impl_->notes; }

}  // namespace qmeter::exec
