// NvmlSampler: NVML loaded with dlopen; one DeviceInfo and one PowerSample per visible GPU.
#include <dlfcn.h>
#include <fmt/core.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <mutex>

#include "nvml_api.h"
#include "qmeter/telemetry/nvml.h"

namespace qmeter::telemetry {

std::string nvml_library_path(const SamplerConfig& config) {
  if (!config.nvml_library.empty()) return config.nvml_library;
  if (const char* env = std::getenv("QMETER_NVML_LIBRARY"); env != nullptr && *env != '\0') return env;
  return "libnvidia-ml.so.1";
}

namespace {

// Entry points looked up with dlsym. Required ones make opening fail when absent; optional ones
// leave their readings unmeasured.
struct NvmlApi {
  nvmlInit_v2_fn init = nullptr;
  nvmlShutdown_fn shutdown = nullptr;
  nvmlErrorString_fn error_string = nullptr;
  nvmlDeviceGetCount_v2_fn get_count = nullptr;
  nvmlDeviceGetHandleByIndex_v2_fn get_handle = nullptr;
  nvmlDeviceGetName_fn get_name = nullptr;
  nvmlDeviceGetUUID_fn get_uuid = nullptr;
  nvmlDeviceGetPciInfo_v3_fn get_pci = nullptr;
  nvmlDeviceGetPowerUsage_fn get_power = nullptr;
  nvmlDeviceGetFieldValues_fn get_fields = nullptr;
  nvmlDeviceGetTotalEnergyConsumption_fn get_energy = nullptr;
  nvmlDeviceGetClockInfo_fn get_clock = nullptr;
  nvmlDeviceGetUtilizationRates_fn get_util = nullptr;
  nvmlDeviceGetMemoryInfo_fn get_memory = nullptr;
  nvmlDeviceGetTemperature_fn get_temperature = nullptr;
  nvmlDeviceGetPowerManagementLimit_fn get_power_limit = nullptr;
  nvmlDeviceSetPowerManagementLimit_fn set_power_limit = nullptr;
  nvmlDeviceSetGpuLockedClocks_fn set_locked_clocks = nullptr;
  nvmlDeviceResetGpuLockedClocks_fn reset_locked_clocks = nullptr;
};

template <typename Fn>
void bind(void* lib, const char* symbol, Fn& fn) {
  fn = reinterpret_cast<Fn>(dlsym(lib, symbol));
}

double field_as_double(const nvmlFieldValue_t& f) {
  switch (f.valueType) {
    case NVML_VALUE_TYPE_DOUBLE: return f.value.dVal;
    case NVML_VALUE_TYPE_UNSIGNED_INT: return f.value.uiVal;
    case NVML_VALUE_TYPE_UNSIGNED_LONG: return static_cast<double>(f.value.ulVal);
    case NVML_VALUE_TYPE_UNSIGNED_LONG_LONG: return static_cast<double>(f.value.ullVal);
    case NVML_VALUE_TYPE_SIGNED_LONG_LONG: return static_cast<double>(f.value.sllVal);
    case NVML_VALUE_TYPE_SIGNED_INT: return f.value.siVal;
  }
  return kNotMeasured;
}

}  // namespace

struct NvmlSampler::Impl {
  std::string path;
  void* lib = nullptr;
  bool initialized = false;
  NvmlApi api;
  std::vector<nvmlDevice_t> handles;
  std::vector<DeviceInfo> devices;
  std::vector<bool> use_instant_field;
  std::vector<bool> use_energy_counter;
  std::vector<double> first_energy_mj;  // counter value at open: samples report energy since then
  std::vector<Nanos> last_counter_read;
  Nanos counter_interval_ns = 0;
  mutable std::mutex notes_mutex;
  std::vector<std::string> notes;

  std::string err(nvmlReturn_t r) const {
    const char* s = api.error_string != nullptr ? api.error_string(r) : nullptr;
    return s != nullptr ? fmt::format("{} (NVML error {})", s, static_cast<int>(r))
                        : fmt::format("NVML error {}", static_cast<int>(r));
  }
  void note(std::string text) {
    std::lock_guard lock(notes_mutex);
    notes.push_back(std::move(text));
  }
  void close() {
    if (initialized && api.shutdown != nullptr) api.shutdown();
    initialized = false;
    if (lib != nullptr) dlclose(lib);
    lib = nullptr;
  }
  ~Impl() { close(); }

  ControlResult refused(const char* what, int device, nvmlReturn_t r) const {
    ControlResult out;
    if (r == NVML_ERROR_NO_PERMISSION) {
      out.message = fmt::format(
          "nvml: {} on GPU {} was refused: {}; this control needs root (or the admin rights "
          "nvidia-smi needs for the same change); the measurement goes on without it",
          what, device, err(r));
    } else if (r == NVML_ERROR_NOT_SUPPORTED) {
      out.message = fmt::format("nvml: {} is not supported on GPU {}: {}", what, device, err(r));
    } else {
      out.message = fmt::format("nvml: {} on GPU {} failed: {}", what, device, err(r));
    }
    return out;
  }
  void check_device(int device) const {
    if (device < 0 || device >= static_cast<int>(handles.size()))
      throw UsageError(fmt::format("nvml: no GPU {} (this machine has {})", device, handles.size()));
  }
};

NvmlSampler::NvmlSampler(const SamplerConfig& config) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.path = nvml_library_path(config);
  m.counter_interval_ns = std::max<Nanos>(0, config.nvml_energy_counter_interval_ns);
  m.lib = dlopen(m.path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (m.lib == nullptr) {
    const char* why = dlerror();
    throw SamplerUnavailable(fmt::format("nvml: cannot load '{}': {} (no NVIDIA driver here?)", m.path,
                                         why != nullptr ? why : "unknown dlopen error"));
  }
  NvmlApi& a = m.api;
  bind(m.lib, "nvmlInit_v2", a.init);
  bind(m.lib, "nvmlShutdown", a.shutdown);
  bind(m.lib, "nvmlErrorString", a.error_string);
  bind(m.lib, "nvmlDeviceGetCount_v2", a.get_count);
  bind(m.lib, "nvmlDeviceGetHandleByIndex_v2", a.get_handle);
  bind(m.lib, "nvmlDeviceGetName", a.get_name);
  bind(m.lib, "nvmlDeviceGetUUID", a.get_uuid);
  bind(m.lib, "nvmlDeviceGetPciInfo_v3", a.get_pci);
  bind(m.lib, "nvmlDeviceGetPowerUsage", a.get_power);
  bind(m.lib, "nvmlDeviceGetFieldValues", a.get_fields);
  bind(m.lib, "nvmlDeviceGetTotalEnergyConsumption", a.get_energy);
  bind(m.lib, "nvmlDeviceGetClockInfo", a.get_clock);
  bind(m.lib, "nvmlDeviceGetUtilizationRates", a.get_util);
  bind(m.lib, "nvmlDeviceGetMemoryInfo", a.get_memory);
  bind(m.lib, "nvmlDeviceGetTemperature", a.get_temperature);
  bind(m.lib, "nvmlDeviceGetPowerManagementLimit", a.get_power_limit);
  bind(m.lib, "nvmlDeviceSetPowerManagementLimit", a.set_power_limit);
  bind(m.lib, "nvmlDeviceSetGpuLockedClocks", a.set_locked_clocks);
  bind(m.lib, "nvmlDeviceResetGpuLockedClocks", a.reset_locked_clocks);
  for (auto [name, fn] : {std::pair<const char*, void*>{"nvmlInit_v2", reinterpret_cast<void*>(a.init)},
                          {"nvmlShutdown", reinterpret_cast<void*>(a.shutdown)},
                          {"nvmlDeviceGetCount_v2", reinterpret_cast<void*>(a.get_count)},
                          {"nvmlDeviceGetHandleByIndex_v2", reinterpret_cast<void*>(a.get_handle)}}) {
    if (fn == nullptr) {
      m.close();
      throw SamplerUnavailable(fmt::format("nvml: '{}' has no symbol {}", m.path, name));
    }
  }
  if (a.get_power == nullptr && a.get_fields == nullptr && a.get_energy == nullptr) {
    m.close();
    throw SamplerUnavailable(fmt::format("nvml: '{}' offers no power or energy reading", m.path));
  }
  if (nvmlReturn_t r = a.init(); r != NVML_SUCCESS) {
    std::string why = m.err(r);
    m.close();
    throw SamplerUnavailable(fmt::format("nvml: nvmlInit_v2 failed: {}", why));
  }
  m.initialized = true;
  unsigned count = 0;
  if (nvmlReturn_t r = a.get_count(&count); r != NVML_SUCCESS) {
    std::string why = m.err(r);
    m.close();
    throw SamplerUnavailable(fmt::format("nvml: nvmlDeviceGetCount_v2 failed: {}", why));
  }
  if (count == 0) {
    m.close();
    throw SamplerUnavailable("nvml: the driver answered but sees no GPU");
  }
  for (unsigned i = 0; i < count; ++i) {
    nvmlDevice_t h = nullptr;
    if (nvmlReturn_t r = a.get_handle(i, &h); r != NVML_SUCCESS) {
      m.note(fmt::format("nvml: GPU {} skipped: nvmlDeviceGetHandleByIndex_v2 failed: {}", i, m.err(r)));
      continue;
    }
    DeviceInfo d;
    d.source = "nvml";
    d.index = static_cast<int>(i);
    char buf[NVML_DEVICE_NAME_V2_BUFFER_SIZE] = {};
    if (a.get_name != nullptr && a.get_name(h, buf, sizeof buf) == NVML_SUCCESS) d.name = buf;
    char uuid[NVML_DEVICE_UUID_V2_BUFFER_SIZE] = {};
    if (a.get_uuid != nullptr && a.get_uuid(h, uuid, sizeof uuid) == NVML_SUCCESS) d.uuid = uuid;
    nvmlPciInfo_t pci{};
    if (a.get_pci != nullptr && a.get_pci(h, &pci) == NVML_SUCCESS) d.pci_bus_id = pci.busId;

    bool instant = false;
    if (a.get_fields != nullptr) {
      nvmlFieldValue_t f{};
      f.fieldId = NVML_FI_DEV_POWER_INSTANT;
      instant = a.get_fields(h, 1, &f) == NVML_SUCCESS && f.nvmlReturn == NVML_SUCCESS;
    }
    if (!instant) {
      if (a.get_power == nullptr) {
        m.note(fmt::format("nvml: GPU {} has no power reading", i));
      } else {
        d.power_kind = "average_1s";
        m.note(fmt::format("nvml: GPU {} has no instantaneous power field; using nvmlDeviceGetPowerUsage, "
                           "a 1 s moving average on Ampere and newer (power peaks are smoothed)",
                           i));
      }
    }
    unsigned long long mj = 0;
    bool counter = a.get_energy != nullptr && a.get_energy(h, &mj) == NVML_SUCCESS;
    if (!counter)
      m.note(fmt::format("nvml: GPU {} has no total-energy counter (Volta and newer have one); energy is "
                         "integrated from sampled power",
                         i));
    d.has_energy_counter = counter;
    unsigned limit_mw = 0;
    if (a.get_power_limit != nullptr && a.get_power_limit(h, &limit_mw) == NVML_SUCCESS)
      d.power_limit_w = limit_mw / 1000.0;
    m.handles.push_back(h);
    m.devices.push_back(std::move(d));
    m.use_instant_field.push_back(instant);
    m.use_energy_counter.push_back(counter);
    m.first_energy_mj.push_back(static_cast<double>(mj));
    m.last_counter_read.push_back(std::numeric_limits<Nanos>::min() / 2);
  }
  if (m.handles.empty()) {
    m.close();
    throw SamplerUnavailable("nvml: no GPU could be opened");
  }
}

NvmlSampler::~NvmlSampler() = default;

const std::vector<DeviceInfo>& NvmlSampler::devices() const { return impl_->devices; }
const std::string& NvmlSampler::library_path() const { return impl_->path; }

std::vector<std::string> NvmlSampler::notes() const {
  std::lock_guard lock(impl_->notes_mutex);
  return impl_->notes;
}

void NvmlSampler::sample(Nanos now_ns, std::vector<PowerSample>& out) { read(now_ns, out, false); }
void NvmlSampler::sample_all(Nanos now_ns, std::vector<PowerSample>& out) { read(now_ns, out, true); }

void NvmlSampler::read(Nanos now_ns, std::vector<PowerSample>& out, bool all) {
  Impl& m = *impl_;
  const NvmlApi& a = m.api;
  for (std::size_t i = 0; i < m.handles.size(); ++i) {
    nvmlDevice_t h = m.handles[i];
    PowerSample s;
    s.device = static_cast<int>(i);
    // The power and energy readings come first and are stamped with their own time: they are
    // what the energy figures use; the descriptive readings after them are less time-critical.
    s.t_ns = steady_now_ns();
    if (m.use_instant_field[i]) {
      nvmlFieldValue_t f{};
      f.fieldId = NVML_FI_DEV_POWER_INSTANT;
      if (a.get_fields(h, 1, &f) == NVML_SUCCESS && f.nvmlReturn == NVML_SUCCESS) s.power_w = field_as_double(f) / 1000.0;
    } else if (a.get_power != nullptr) {
      unsigned mw = 0;
      if (a.get_power(h, &mw) == NVML_SUCCESS) s.power_w = mw / 1000.0;
    }
    if (m.use_energy_counter[i] && (all || s.t_ns - m.last_counter_read[i] >= m.counter_interval_ns)) {
      unsigned long long mj = 0;
      if (a.get_energy(h, &mj) == NVML_SUCCESS) {
        s.energy_j = (static_cast<double>(mj) - m.first_energy_mj[i]) / 1000.0;
        m.last_counter_read[i] = s.t_ns;
      }
    }
    unsigned v = 0;
    if (a.get_clock != nullptr) {
      if (a.get_clock(h, NVML_CLOCK_SM, &v) == NVML_SUCCESS) s.sm_clock_mhz = v;
      if (a.get_clock(h, NVML_CLOCK_MEM, &v) == NVML_SUCCESS) s.mem_clock_mhz = v;
    }
    nvmlUtilization_t u{};
    if (a.get_util != nullptr && a.get_util(h, &u) == NVML_SUCCESS) {
      s.gpu_util_pct = u.gpu;
      s.mem_util_pct = u.memory;
    }
    nvmlMemory_t mem{};
    if (a.get_memory != nullptr && a.get_memory(h, &mem) == NVML_SUCCESS) s.mem_used_bytes = static_cast<double>(mem.used);
    if (a.get_temperature != nullptr && a.get_temperature(h, NVML_TEMPERATURE_GPU, &v) == NVML_SUCCESS)
      s.temperature_c = v;
    out.push_back(s);
  }
  (void)now_ns;
}

ControlResult NvmlSampler::set_power_limit(int device, double watts) {
  Impl& m = *impl_;
  m.check_device(device);
  if (m.api.set_power_limit == nullptr) return {false, "nvml: this driver has no nvmlDeviceSetPowerManagementLimit"};
  auto mw = static_cast<unsigned>(watts * 1000.0 + 0.5);
  nvmlReturn_t r = m.api.set_power_limit(m.handles[device], mw);
  if (r != NVML_SUCCESS) return m.refused(fmt::format("setting the power limit to {} W", watts).c_str(), device, r);
  m.devices[device].power_limit_w = power_limit_w(device);
  return {true, fmt::format("nvml: GPU {} power limit set to {} W", device, watts)};
}

ControlResult NvmlSampler::lock_gpu_clocks(int device, unsigned min_mhz, unsigned max_mhz) {
  Impl& m = *impl_;
  m.check_device(device);
  if (min_mhz > max_mhz)
    throw UsageError(fmt::format("nvml: locked clock range {}..{} MHz has min above max", min_mhz, max_mhz));
  if (m.api.set_locked_clocks == nullptr) return {false, "nvml: this driver has no nvmlDeviceSetGpuLockedClocks"};
  nvmlReturn_t r = m.api.set_locked_clocks(m.handles[device], min_mhz, max_mhz);
  if (r != NVML_SUCCESS)
    return m.refused(fmt::format("locking GPU clocks to {}..{} MHz", min_mhz, max_mhz).c_str(), device, r);
  return {true, fmt::format("nvml: GPU {} clocks locked to {}..{} MHz", device, min_mhz, max_mhz)};
}

ControlResult NvmlSampler::reset_gpu_clocks(int device) {
  Impl& m = *impl_;
  m.check_device(device);
  if (m.api.reset_locked_clocks == nullptr) return {false, "nvml: this driver has no nvmlDeviceResetGpuLockedClocks"};
  nvmlReturn_t r = m.api.reset_locked_clocks(m.handles[device]);
  if (r != NVML_SUCCESS) return m.refused("resetting locked GPU clocks", device, r);
  return {true, fmt::format("nvml: GPU {} clocks unlocked", device)};
}

double NvmlSampler::power_limit_w(int device) {
  Impl& m = *impl_;
  m.check_device(device);
  unsigned mw = 0;
  if (m.api.get_power_limit == nullptr || m.api.get_power_limit(m.handles[device], &mw) != NVML_SUCCESS)
    return kNotMeasured;
  return mw / 1000.0;
}

std::unique_ptr<Sampler> make_nvml_sampler(const SamplerConfig& config) {
  return std::make_unique<NvmlSampler>(config);
}

}  // namespace qmeter::telemetry
