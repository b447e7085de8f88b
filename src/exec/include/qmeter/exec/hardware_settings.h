#pragma once
// GPU power limit and locked clocks, applied through NVML (dlopen; QMETER_NVML_LIBRARY selects the
// library) to every GPU for a scope and restored after it: a study run's `hardware` setting
// (`qmeter run`) and `qmeter energy --gpu-power-limit / --gpu-lock-clocks` both use this one class.
//
// A refusal fails: the constructor throws and nothing is measured. A figure measured at a setting
// other than the one asked for (NVML refuses without root, or a limit outside the card's range)
// would be reported under the wrong label, which is worse than no figure; whatever was applied
// before the refusal is restored before the throw.
#include <memory>
#include <string>
#include <vector>

#include "qmeter/spec/study_spec.h"

namespace qmeter::exec {

struct GpuSettings {
  double power_limit_w = 0;                       // > 0: every GPU's power limit (W)
  unsigned min_clock_mhz = 0, max_clock_mhz = 0;  // max > 0: SM clocks locked to [min, max]
  std::string label;                              // names the setting in errors ("hardware setting pl250W")
  bool empty() const { return !(power_limit_w > 0) && max_clock_mhz == 0; }
};

// A study run's `hardware` setting (locked_clock_mhz locks min = max), labelled "hardware setting LABEL".
GpuSettings gpu_settings(const spec::HardwareSetting& setting);

class AppliedHardwareSetting {
 public:
  // Applies the power limit on every GPU NVML lists, then the clock lock; an empty setting opens
  // nothing. Throws qmeter::Error "LABEL: reason" naming the GPU and NVML's reason when NVML is
  // missing or refuses, or when a GPU does not report the limit it would be restored to.
  explicit AppliedHardwareSetting(const GpuSettings& settings);
  explicit AppliedHardwareSetting(const spec::HardwareSetting& setting);
  // Restores what restore() has not (warnings on stderr where NVML refuses).
  ~AppliedHardwareSetting();
  AppliedHardwareSetting(const AppliedHardwareSetting&) = delete;
  AppliedHardwareSetting& operator=(const AppliedHardwareSetting&) = delete;

  // What was done, one line per change (for the progress output).
  const std::vector<std::string>& notes() const;
  // Restores the power limits read before the change and unlocks the clocks now; one line per
  // change undone ("restoring: nvml: GPU 0 power limit set to 400 W", "nvml: GPU 0 clocks
  // unlocked", "warning: ..." where NVML refused). A second call does nothing.
  std::vector<std::string> restore();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qmeter::exec
