#pragma once
// The spec's `hardware` setting of a run (GPU power limit, locked SM clock), applied through NVML
// (dlopen; QMETER_NVML_LIBRARY selects the library) for the run's lifetime and restored after it.
#include <memory>
#include <string>
#include <vector>

#include "qmeter/spec/study_spec.h"

namespace qmeter::exec {

class AppliedHardwareSetting {
 public:
  // Applies the setting on every GPU NVML lists; a default setting (nothing to change) opens
  // nothing. Throws qmeter::Error naming the GPU and NVML's reason when the setting cannot be
  // applied (no NVML, no permission, out of the card's range): measuring at a setting other than
  // the one the run is labelled with would be worse than a failed run. Whatever was applied
  // before the failure is restored first.
  explicit AppliedHardwareSetting(const spec::HardwareSetting& setting);
  // Restores the power limits read before the change and unlocks the clocks.
  ~AppliedHardwareSetting();
  AppliedHardwareSetting(const AppliedHardwareSetting&) = delete;
  AppliedHardwareSetting& operator=(const AppliedHardwareSetting&) = delete;

  // What was done, one line per change (for the progress output).
  const std::vector<std::string>& notes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qmeter::exec
