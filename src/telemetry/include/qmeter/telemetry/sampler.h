#pragma once
// Power and energy sources behind one interface, and the one table that lists them.
//
// A Sampler reads every device it owns (GPUs, RAPL zones, the modelled CPU package) at the time
// the caller gives, appending one PowerSample per device. Energy counters are reported as a
// cumulative, already unwrapped figure in joules so that every consumer computes window energy
// as a plain difference.
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "qmeter/core/clock.h"
#include "qmeter/core/error.h"

namespace qmeter::telemetry {

constexpr double kNotMeasured = std::numeric_limits<double>::quiet_NaN();
inline bool measured(double v) { return !std::isnan(v); }

// How an energy figure was obtained; every figure qmeter reports carries one of these.
enum class EnergyOrigin {
  kCounter,   // hardware energy counter (NVML total energy, RAPL energy_uj)
  kSampled,   // trapezoidal integration of sampled power
  kModelled,  // estimated from utilization by the CPU power model
};
std::string_view energy_origin_name(EnergyOrigin origin);  // "counter", "sampled", "modelled"

// One device a sampler reads: a GPU, a RAPL zone, or the modelled CPU package.
struct DeviceInfo {
  std::string source;      // the registry name of the sampler: "nvml", "rapl", "model"
  int index = 0;           // index within its source
  std::string name;        // "NVIDIA H100 80GB HBM3", "package-0", "dram", "cpu (modelled)"
  std::string uuid;        // GPU UUID where the source has one
  std::string pci_bus_id;  // GPU PCI bus id where the source has one
  bool has_energy_counter = false;
  // Origin of this device's power figures: kSampled for measured power, kModelled for the model.
  EnergyOrigin power_origin = EnergyOrigin::kSampled;
  // What the power reading means (for NVML: "instant" or "average_1s"); shown in reports.
  std::string power_kind = "instant";
  double power_limit_w = kNotMeasured;
};

// One reading of one device. Fields a source cannot read are kNotMeasured (NaN).
struct PowerSample {
  Nanos t_ns = 0;          // steady clock, when the reading was taken
  int device = 0;          // index into the owner's device list (sampler's or session's)
  double power_w = kNotMeasured;
  double energy_j = kNotMeasured;  // cumulative counter since the sampler opened, unwrapped
  double sm_clock_mhz = kNotMeasured;
  double mem_clock_mhz = kNotMeasured;
  double gpu_util_pct = kNotMeasured;
  double mem_util_pct = kNotMeasured;
  double mem_used_bytes = kNotMeasured;
  double temperature_c = kNotMeasured;
};

class Sampler {
 public:
  virtual ~Sampler() = default;
  // The registry name of this source ("nvml", "rapl", "model").
  virtual std::string_view source() const = 0;
  virtual const std::vector<DeviceInfo>& devices() const = 0;
  // Reads every device once; appends one sample per device (sample.device = sampler's index).
  // `now_ns` is the caller's clock reading just before the call; sources that time their own
  // readings overwrite t_ns with the time of each device's reading.
  virtual void sample(Nanos now_ns, std::vector<PowerSample>& out) = 0;
  // Like sample(), but also takes readings a source spaces out because they are slow (the NVML
  // energy counter); the session calls it on its first and last tick.
  virtual void sample_all(Nanos now_ns, std::vector<PowerSample>& out) { sample(now_ns, out); }
  // Notes gathered while opening or sampling (fallbacks, missing fields, missing permissions).
  virtual std::vector<std::string> notes() const { return {}; }
};

// Thrown by a factory when its source does not exist here (no library, no readable zone).
class SamplerUnavailable : public Error {
 public:
  using Error::Error;
};

// Everything a factory may need; defaults read the real machine.
struct SamplerConfig {
  // NVML library to dlopen; empty = $QMETER_NVML_LIBRARY, else "libnvidia-ml.so.1".
  std::string nvml_library;
  // The NVML total-energy counter is read at most this often (0: every tick). Reading it costs
  // about 4 ms of CPU per call on an H200 with driver 580 (bench_nvml_call_cost), against
  // microseconds for the power field, so at 20 Hz every tick would take 8 % of a core per GPU.
  // Window energy stays counter-exact between reads; the slivers at a window's edges and the
  // shape inside each counter interval come from the sampled power.
  Nanos nvml_energy_counter_interval_ns = 1'000'000'000;
  // powercap sysfs root holding intel-rapl:* zones.
  std::string rapl_root = "/sys/class/powercap";
  // /proc/stat for the CPU model.
  std::string proc_stat = "/proc/stat";
  // CPU model: package watts per core when idle and when fully busy. Defaults are a typical
  // server core (about 1.5 W idle, 8 W busy); set them from the CPU's datasheet for real studies.
  double idle_watts_per_core = 1.5;
  double busy_watts_per_core = 8.0;
};

// The registry: one row per source. make() throws SamplerUnavailable when the source is absent.
struct SamplerEntry {
  std::string_view name;
  std::string_view description;
  std::unique_ptr<Sampler> (*make)(const SamplerConfig& config);
};
std::span<const SamplerEntry> sampler_registry();

// Opens the sources for an --energy mode:
//   auto  : nvml where a driver answers, plus rapl where readable, else the CPU model;
//   nvml  : NVML only (throws Error with the reason when it cannot open);
//   rapl  : RAPL, falling back to the CPU model with a note when no zone is readable;
//   model : the CPU model only;
//   none  : nothing.
// Fallbacks and choices are appended to `notes` (for example "auto: using nvml (1 GPU) + rapl").
// Throws UsageError for an unknown mode.
std::vector<std::unique_ptr<Sampler>> open_samplers(std::string_view mode, const SamplerConfig& config,
                                                    std::vector<std::string>& notes);

std::unique_ptr<Sampler> make_rapl_sampler(const SamplerConfig& config);
std::unique_ptr<Sampler> make_cpu_model_sampler(const SamplerConfig& config);
// NVML is declared in nvml.h (it also offers the GPU controls).

}  // namespace qmeter::telemetry
