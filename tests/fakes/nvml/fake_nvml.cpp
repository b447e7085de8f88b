// A fake libnvidia-ml for the tests: the NVML calls qmeter uses, driven by a scripted power trace.
// qmeter loads it through its real dlopen path (QMETER_NVML_LIBRARY names this library).
//
// Environment:
//   QMETER_FAKE_NVML_DEVICES=N        number of GPUs (default 1)
//   QMETER_FAKE_NVML_TRACE=PATH       power trace (default: 50 W constant on every device)
//   QMETER_FAKE_NVML_NO_PERMISSION=1  controls (power limit, clock locks) return NO_PERMISSION
//   QMETER_FAKE_NVML_NO_INSTANT=1     the instant power field is NOT_SUPPORTED
//   QMETER_FAKE_NVML_NO_ENERGY=1      the total-energy counter is NOT_SUPPORTED
//   QMETER_FAKE_NVML_FAIL_INIT=1      nvmlInit_v2 returns DRIVER_NOT_LOADED
//   QMETER_FAKE_NVML_CONTROL_LOG=PATH every successful control call is appended to PATH, one line
//                                     each: "power_limit DEV MW", "locked_clocks DEV MIN MAX",
//                                     "reset_clocks DEV" (the card's state lives in the process
//                                     that loaded the fake; the log lets a test see what was set)
//
// Trace file, one directive per line ('#' starts a comment):
//   device all | device 0,2          the lines below apply to these devices (default: all)
//   square HIGH_W LOW_W PERIOD_S [DUTY]   HIGH_W for DUTY*PERIOD_S (default 0.5), then LOW_W, repeating
//   T_S WATTS                        a step: WATTS from T_S seconds on (steps in increasing time)
// Time is CLOCK_MONOTONIC since the first nvmlInit_v2. The energy counter (mJ) integrates the trace
// exactly; nvmlDeviceGetPowerUsage returns the mean over the last second (as Ampere and newer
// drivers do); the instant field returns the trace's value now.
#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "nvml_api.h"

namespace {

struct Trace {
  bool square = false;
  double high = 50, low = 50, period = 1, duty = 0.5;
  std::vector<std::pair<double, double>> steps;  // (t, watts), sorted; empty with !square = constant high

  double power(double t) const {
    if (square) {
      double phase = t - std::floor(t / period) * period;
      return phase < duty * period ? high : low;
    }
    if (steps.empty()) return high;
    double w = steps.front().second;
    for (const auto& [ts, ws] : steps) {
      if (ts > t) break;
      w = ws;
    }
    return w;
  }
  // Integral of power from 0 to t (joules); before 0 the power is power(0).
  double energy(double t) const {
    if (t <= 0) return power(0) * t;
    if (square) {
      double cycles = std::floor(t / period);
      double phase = t - cycles * period;
      double per_cycle = high * duty * period + low * (1 - duty) * period;
      return cycles * per_cycle + high * std::min(phase, duty * period) + low * std::max(0.0, phase - duty * period);
    }
    if (steps.empty()) return high * t;
    double e = 0, t_prev = 0, w_prev = steps.front().second;
    for (const auto& [ts, ws] : steps) {
      if (ts >= t) break;
      if (ts > t_prev) {
        e += w_prev * (ts - t_prev);
        t_prev = ts;
      }
      w_prev = ws;
    }
    return e + w_prev * (t - t_prev);
  }
};

struct FakeGpu {
  Trace trace;
  unsigned power_limit_mw = 400000;
  unsigned locked_min = 0, locked_max = 0;  // 0: not locked
};

struct State {
  int refcount = 0;
  long long origin_ns = 0;
  std::vector<FakeGpu> gpus;
  bool no_permission = false, no_instant = false, no_energy = false;
};

State g_state;
std::mutex g_mutex;

long long monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

bool env_flag(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0;
}

bool load_trace(const char* path, std::vector<FakeGpu>& gpus) {
  std::ifstream in(path);
  if (!in) {
    std::fprintf(stderr, "fake nvml: cannot read trace '%s'\n", path);
    return false;
  }
  std::vector<bool> selected(gpus.size(), true);
  std::vector<bool> steps_reset(gpus.size(), false);
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
    std::istringstream words(line);
    std::string first;
    if (!(words >> first)) continue;
    auto bad = [&](const char* why) {
      std::fprintf(stderr, "fake nvml: %s:%d: %s\n", path, line_no, why);
      return false;
    };
    if (first == "device") {
      std::string which;
      if (!(words >> which)) return bad("device needs 'all' or a list of indices");
      std::fill(selected.begin(), selected.end(), which == "all");
      if (which != "all") {
        std::istringstream list(which);
        std::string item;
        while (std::getline(list, item, ',')) {
          int idx = std::atoi(item.c_str());
          if (idx < 0 || idx >= static_cast<int>(gpus.size())) return bad("device index out of range");
          selected[idx] = true;
        }
      }
    } else if (first == "square") {
      Trace t;
      t.square = true;
      if (!(words >> t.high >> t.low >> t.period)) return bad("square needs HIGH_W LOW_W PERIOD_S [DUTY]");
      if (!(words >> t.duty)) t.duty = 0.5;
      if (t.period <= 0 || t.duty < 0 || t.duty > 1) return bad("square needs PERIOD_S > 0 and 0 <= DUTY <= 1");
      for (std::size_t i = 0; i < gpus.size(); ++i)
        if (selected[i]) gpus[i].trace = t;
    } else {
      double ts = std::strtod(first.c_str(), nullptr), w = 0;
      if (!(words >> w)) return bad("expected 'T_S WATTS', 'square ...' or 'device ...'");
      for (std::size_t i = 0; i < gpus.size(); ++i) {
        if (!selected[i]) continue;
        if (!steps_reset[i]) {
          gpus[i].trace = Trace{};
          steps_reset[i] = true;
        }
        auto& steps = gpus[i].trace.steps;
        if (!steps.empty() && ts < steps.back().first) return bad("steps must be in increasing time");
        steps.emplace_back(ts, w);
      }
    }
  }
  return true;
}

double now_s() { return static_cast<double>(monotonic_ns() - g_state.origin_ns) / 1e9; }

FakeGpu* gpu_of(nvmlDevice_t device) {
  // Handles are 1-based indices disguised as pointers.
  auto idx = reinterpret_cast<std::uintptr_t>(device);
  if (g_state.refcount == 0 || idx == 0 || idx > g_state.gpus.size()) return nullptr;
  return &g_state.gpus[idx - 1];
}
std::size_t index_of(nvmlDevice_t device) { return reinterpret_cast<std::uintptr_t>(device) - 1; }

void log_control(const char* line_format, ...) __attribute__((format(printf, 1, 2)));
void log_control(const char* line_format, ...) {
  const char* path = std::getenv("QMETER_FAKE_NVML_CONTROL_LOG");
  if (path == nullptr || *path == '\0') return;
  std::FILE* f = std::fopen(path, "a");
  if (f == nullptr) return;
  va_list args;
  va_start(args, line_format);
  std::vfprintf(f, line_format, args);
  va_end(args);
  std::fputc('\n', f);
  std::fclose(f);
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) nvmlReturn_t nvmlInit_v2(void) {
  std::lock_guard lock(g_mutex);
  if (env_flag("QMETER_FAKE_NVML_FAIL_INIT")) return NVML_ERROR_DRIVER_NOT_LOADED;
  if (g_state.refcount++ > 0) return NVML_SUCCESS;
  int n = 1;
  if (const char* v = std::getenv("QMETER_FAKE_NVML_DEVICES")) n = std::atoi(v);
  n = std::clamp(n, 0, 64);
  g_state.gpus.assign(n, FakeGpu{});
  g_state.no_permission = env_flag("QMETER_FAKE_NVML_NO_PERMISSION");
  g_state.no_instant = env_flag("QMETER_FAKE_NVML_NO_INSTANT");
  g_state.no_energy = env_flag("QMETER_FAKE_NVML_NO_ENERGY");
  if (const char* path = std::getenv("QMETER_FAKE_NVML_TRACE"); path != nullptr && *path != '\0') {
    if (!load_trace(path, g_state.gpus)) {
      g_state.refcount = 0;
      return NVML_ERROR_UNKNOWN;
    }
  }
  g_state.origin_ns = monotonic_ns();
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlShutdown(void) {
  std::lock_guard lock(g_mutex);
  if (g_state.refcount == 0) return NVML_ERROR_UNINITIALIZED;
  --g_state.refcount;
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) const char* nvmlErrorString(nvmlReturn_t r) {
  switch (r) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_NO_PERMISSION: return "Insufficient Permissions";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    default: return "Unknown Error";
  }
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int* count) {
  if (g_state.refcount == 0) return NVML_ERROR_UNINITIALIZED;
  if (count == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  *count = static_cast<unsigned>(g_state.gpus.size());
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t* device) {
  if (g_state.refcount == 0) return NVML_ERROR_UNINITIALIZED;
  if (device == nullptr || index >= g_state.gpus.size()) return NVML_ERROR_INVALID_ARGUMENT;
  *device = reinterpret_cast<nvmlDevice_t>(static_cast<std::uintptr_t>(index) + 1);
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char* name, unsigned int length) {
  if (gpu_of(d) == nullptr || name == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  int n = std::snprintf(name, length, "Fake NVIDIA GPU %zu", index_of(d));
  return n < 0 || static_cast<unsigned>(n) >= length ? NVML_ERROR_INSUFFICIENT_SIZE : NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char* uuid, unsigned int length) {
  if (gpu_of(d) == nullptr || uuid == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  int n = std::snprintf(uuid, length, "GPU-fa4e0000-0000-0000-0000-%012zu", index_of(d));
  return n < 0 || static_cast<unsigned>(n) >= length ? NVML_ERROR_INSUFFICIENT_SIZE : NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t d, nvmlPciInfo_t* pci) {
  if (gpu_of(d) == nullptr || pci == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  std::memset(pci, 0, sizeof *pci);
  pci->bus = static_cast<unsigned>(index_of(d)) + 1;
  std::snprintf(pci->busId, sizeof pci->busId, "00000000:%02X:00.0", pci->bus);
  std::snprintf(pci->busIdLegacy, sizeof pci->busIdLegacy, "0000:%02X:00.0", pci->bus);
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t d, unsigned int* mw) {
  FakeGpu* g = gpu_of(d);
  if (g == nullptr || mw == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  double t = now_s();
  *mw = static_cast<unsigned>(std::lround((g->trace.energy(t) - g->trace.energy(t - 1.0)) * 1000.0));
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetFieldValues(nvmlDevice_t d, int count, nvmlFieldValue_t* values) {
  FakeGpu* g = gpu_of(d);
  if (g == nullptr || values == nullptr || count < 0) return NVML_ERROR_INVALID_ARGUMENT;
  timespec wall{};
  clock_gettime(CLOCK_REALTIME, &wall);
  for (int i = 0; i < count; ++i) {
    nvmlFieldValue_t& f = values[i];
    f.timestamp = static_cast<long long>(wall.tv_sec) * 1000000 + wall.tv_nsec / 1000;
    f.latencyUsec = 0;
    if (f.fieldId == NVML_FI_DEV_POWER_INSTANT && !g_state.no_instant) {
      f.valueType = NVML_VALUE_TYPE_UNSIGNED_INT;
      f.value.uiVal = static_cast<unsigned>(std::lround(g->trace.power(now_s()) * 1000.0));
      f.nvmlReturn = NVML_SUCCESS;
    } else {
      f.nvmlReturn = NVML_ERROR_NOT_SUPPORTED;
    }
  }
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t d, unsigned long long* mj) {
  FakeGpu* g = gpu_of(d);
  if (g == nullptr || mj == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  if (g_state.no_energy) return NVML_ERROR_NOT_SUPPORTED;
  // A non-zero start, as a driver that has been up for a while reports.
  double base_mj = 5.0e6 + 1000.0 * static_cast<double>(index_of(d));
  *mj = static_cast<unsigned long long>(base_mj + g->trace.energy(now_s()) * 1000.0);
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t d, nvmlClockType_t type, unsigned int* mhz) {
  FakeGpu* g = gpu_of(d);
  if (g == nullptr || mhz == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  if (type == NVML_CLOCK_MEM) *mhz = 1593;
  else *mhz = g->locked_max != 0 ? g->locked_max : 1410;
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t d, nvmlUtilization_t* u) {
  FakeGpu* g = gpu_of(d);
  if (g == nullptr || u == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  double p = g->trace.power(now_s());
  u->gpu = static_cast<unsigned>(std::clamp(p / (g->power_limit_mw / 1000.0) * 100.0, 0.0, 100.0));
  u->memory = u->gpu / 2;
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t* m) {
  if (gpu_of(d) == nullptr || m == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  m->total = 80ULL << 30;
  m->used = (1ULL << 30) + (static_cast<unsigned long long>(index_of(d)) << 20);
  m->free = m->total - m->used;
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t d, nvmlTemperatureSensors_t, unsigned int* c) {
  FakeGpu* g = gpu_of(d);
  if (g == nullptr || c == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  *c = 30 + static_cast<unsigned>(g->trace.power(now_s()) / 10.0);
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetPowerManagementLimit(nvmlDevice_t d, unsigned int* mw) {
  FakeGpu* g = gpu_of(d);
  if (g == nullptr || mw == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  *mw = g->power_limit_mw;
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceSetPowerManagementLimit(nvmlDevice_t d, unsigned int mw) {
  FakeGpu* g = gpu_of(d);
  if (g == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  if (g_state.no_permission) return NVML_ERROR_NO_PERMISSION;
  if (mw < 100000 || mw > 700000) return NVML_ERROR_INVALID_ARGUMENT;  // the card's allowed range
  g->power_limit_mw = mw;
  log_control("power_limit %zu %u", index_of(d), mw);
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceSetGpuLockedClocks(nvmlDevice_t d, unsigned int min_mhz, unsigned int max_mhz) {
  FakeGpu* g = gpu_of(d);
  if (g == nullptr || min_mhz > max_mhz) return NVML_ERROR_INVALID_ARGUMENT;
  if (g_state.no_permission) return NVML_ERROR_NO_PERMISSION;
  g->locked_min = min_mhz;
  g->locked_max = max_mhz;
  log_control("locked_clocks %zu %u %u", index_of(d), min_mhz, max_mhz);
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceResetGpuLockedClocks(nvmlDevice_t d) {
  FakeGpu* g = gpu_of(d);
  if (g == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  if (g_state.no_permission) return NVML_ERROR_NO_PERMISSION;
  g->locked_min = g->locked_max = 0;
  log_control("reset_clocks %zu", index_of(d));
  return NVML_SUCCESS;
}

// Not NVML: lets a test compute the trace's ground truth against the same time origin.
__attribute__((visibility("default"))) long long qmeterFakeNvmlOriginNs(void) { return g_state.origin_ns; }

}  // extern "C"
