#pragma once
// NVIDIA GPUs through NVML, loaded at run time with dlopen (no build dependency).
//
// Power: the instantaneous power field (nvmlDeviceGetFieldValues, NVML_FI_DEV_POWER_INSTANT)
// where the driver has it, else nvmlDeviceGetPowerUsage, which on Ampere and newer is a 1 s
// moving average (DeviceInfo::power_kind says which). Energy: nvmlDeviceGetTotalEnergyConsumption
// (mJ since the driver loaded; Volta and newer).
#include <memory>
#include <string>

#include "qmeter/telemetry/sampler.h"

namespace qmeter::telemetry {

// The outcome of a control call. A missing permission is not an error: ok=false and a message
// that says what was refused and what is needed.
struct ControlResult {
  bool ok = false;
  std::string message;
};

class NvmlSampler : public Sampler {
 public:
  // Throws SamplerUnavailable naming the library and NVML's reason when it cannot open.
  explicit NvmlSampler(const SamplerConfig& config);
  ~NvmlSampler() override;
  NvmlSampler(const NvmlSampler&) = delete;
  NvmlSampler& operator=(const NvmlSampler&) = delete;

  std::string_view source() const override { return "nvml"; }
  const std::vector<DeviceInfo>& devices() const override;
  void sample(Nanos now_ns, std::vector<PowerSample>& out) override;
  void sample_all(Nanos now_ns, std::vector<PowerSample>& out) override;
  std::vector<std::string> notes() const override;

  // Hardware-level controls (power-capping and clock-locking studies). Need root on most systems.
  ControlResult set_power_limit(int device, double watts);
  ControlResult lock_gpu_clocks(int device, unsigned min_mhz, unsigned max_mhz);
  ControlResult reset_gpu_clocks(int device);
  // Reads the current power limit (W), kNotMeasured when the driver does not say.
  double power_limit_w(int device);

  // The library path that was opened.
  const std::string& library_path() const;

 private:
  void read(Nanos now_ns, std::vector<PowerSample>& out, bool all);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

std::unique_ptr<Sampler> make_nvml_sampler(const SamplerConfig& config);
// The library NVML is loaded from: config.nvml_library, else $QMETER_NVML_LIBRARY, else
// "libnvidia-ml.so.1".
std::string nvml_library_path(const SamplerConfig& config);

}  // namespace qmeter::telemetry
