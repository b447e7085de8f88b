// Prints what each NVML call the sampler makes costs (wall and CPU time of the calling thread), and
// a whole NvmlSampler::sample() tick, on the library named by $QMETER_NVML_LIBRARY (default the
// driver's libnvidia-ml.so.1). On a real GPU this tells which reading dominates the sampling cost.
//   bench_nvml_call_cost [iterations=200]
#include <dlfcn.h>
#include <fmt/core.h>
#include <time.h>

#include <cstdlib>
#include <functional>

#include "nvml_api.h"
#include "qmeter/telemetry/nvml.h"

using namespace qmeter;

namespace {

Nanos thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<Nanos>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

void time_call(const char* name, int iterations, const std::function<int()>& call) {
  call();  // warm-up: first-call set-up is not the steady cost
  Nanos w0 = steady_now_ns(), c0 = thread_cpu_ns();
  int failures = 0;
  for (int i = 0; i < iterations; ++i) failures += call() != 0;
  double wall_us = ns_to_ms(steady_now_ns() - w0) * 1000.0 / iterations;
  double cpu_us = ns_to_ms(thread_cpu_ns() - c0) * 1000.0 / iterations;
  fmt::print("  {:<44} wall {:9.1f} us  cpu {:9.1f} us{}\n", name, wall_us, cpu_us,
             failures ? fmt::format("  ({} of {} failed)", failures, iterations) : "");
}

template <typename Fn>
Fn sym(void* lib, const char* name) {
  auto f = reinterpret_cast<Fn>(dlsym(lib, name));
  if (f == nullptr) {
    fmt::print("missing symbol {}\n", name);
    std::exit(2);
  }
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  int n = argc > 1 ? std::atoi(argv[1]) : 200;
  std::string path = telemetry::nvml_library_path({});
  void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    fmt::print("cannot load {}: {}\n", path, dlerror());
    return 2;
  }
  if (sym<nvmlInit_v2_fn>(lib, "nvmlInit_v2")() != NVML_SUCCESS) return 2;
  nvmlDevice_t h = nullptr;
  sym<nvmlDeviceGetHandleByIndex_v2_fn>(lib, "nvmlDeviceGetHandleByIndex_v2")(0, &h);
  auto fields = sym<nvmlDeviceGetFieldValues_fn>(lib, "nvmlDeviceGetFieldValues");
  auto power = sym<nvmlDeviceGetPowerUsage_fn>(lib, "nvmlDeviceGetPowerUsage");
  auto energy = sym<nvmlDeviceGetTotalEnergyConsumption_fn>(lib, "nvmlDeviceGetTotalEnergyConsumption");
  auto clock = sym<nvmlDeviceGetClockInfo_fn>(lib, "nvmlDeviceGetClockInfo");
  auto util = sym<nvmlDeviceGetUtilizationRates_fn>(lib, "nvmlDeviceGetUtilizationRates");
  auto memory = sym<nvmlDeviceGetMemoryInfo_fn>(lib, "nvmlDeviceGetMemoryInfo");
  auto temp = sym<nvmlDeviceGetTemperature_fn>(lib, "nvmlDeviceGetTemperature");
  fmt::print("{}: GPU 0, {} iterations per call\n", path, n);
  time_call("nvmlDeviceGetFieldValues(POWER_INSTANT)", n, [&] {
    nvmlFieldValue_t f{};
    f.fieldId = NVML_FI_DEV_POWER_INSTANT;
    return fields(h, 1, &f) != NVML_SUCCESS || f.nvmlReturn != NVML_SUCCESS;
  });
  time_call("nvmlDeviceGetPowerUsage", n, [&] { unsigned v; return static_cast<int>(power(h, &v)); });
  time_call("nvmlDeviceGetTotalEnergyConsumption", n, [&] { unsigned long long v; return static_cast<int>(energy(h, &v)); });
  time_call("nvmlDeviceGetClockInfo(SM)", n, [&] { unsigned v; return static_cast<int>(clock(h, NVML_CLOCK_SM, &v)); });
  time_call("nvmlDeviceGetClockInfo(MEM)", n, [&] { unsigned v; return static_cast<int>(clock(h, NVML_CLOCK_MEM, &v)); });
  time_call("nvmlDeviceGetUtilizationRates", n, [&] { nvmlUtilization_t u; return static_cast<int>(util(h, &u)); });
  time_call("nvmlDeviceGetMemoryInfo", n, [&] { nvmlMemory_t m; return static_cast<int>(memory(h, &m)); });
  time_call("nvmlDeviceGetTemperature", n, [&] { unsigned v; return static_cast<int>(temp(h, NVML_TEMPERATURE_GPU, &v)); });
  sym<nvmlShutdown_fn>(lib, "nvmlShutdown")();
  telemetry::NvmlSampler sampler({});
  std::vector<telemetry::PowerSample> out;
  time_call(fmt::format("NvmlSampler::sample() ({} GPU)", sampler.devices().size()).c_str(), n, [&] {
    out.clear();
    sampler.sample(steady_now_ns(), out);
    return 0;
  });
  return 0;
}
