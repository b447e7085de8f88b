// The sampler table and the --energy mode logic (which sources, which fallbacks).
#include <fmt/core.h>

#include "qmeter/telemetry/nvml.h"
#include "qmeter/telemetry/sampler.h"

namespace qmeter::telemetry {

std::string_view energy_origin_name(EnergyOrigin origin) {
  switch (origin) {
    case EnergyOrigin::kCounter: return "counter";
    case EnergyOrigin::kSampled: return "sampled";
    case EnergyOrigin::kModelled: return "modelled";
  }
  return "?";
}

namespace {
constexpr SamplerEntry kSamplers[] = {
    {"nvml", "NVIDIA GPUs through NVML (dlopen libnvidia-ml.so.1): power, energy counter, clocks", make_nvml_sampler},
    {"rapl", "CPU package and DRAM energy counters through powercap sysfs", make_rapl_sampler},
    {"model", "CPU package power modelled from /proc/stat utilization (labelled modelled)", make_cpu_model_sampler},
};

const SamplerEntry& entry(std::string_view name) {
  for (const auto& e : kSamplers)
    if (e.name == name) return e;
  throw Error(fmt::format("no sampler named '{}'", name));
}

std::string device_count(const Sampler& s) {
  auto n = s.devices().size();
  return fmt::format("{} device{}", n, n == 1 ? "" : "s");
}
}  // namespace

std::span<const SamplerEntry> sampler_registry() { return kSamplers; }

std::vector<std::unique_ptr<Sampler>> open_samplers(std::string_view mode, const SamplerConfig& config,
                                                    std::vector<std::string>& notes) {
  std::vector<std::unique_ptr<Sampler>> out;
  if (mode == "none") return out;
  if (mode == "nvml") {
    out.push_back(entry("nvml").make(config));  // asked for explicitly: failing to open is an error
    return out;
  }
  if (mode == "model") {
    out.push_back(entry("model").make(config));
    return out;
  }
  if (mode != "auto" && mode != "rapl")
    throw UsageError(fmt::format("--energy: unknown source '{}' (use auto, nvml, rapl, model or none)", mode));
  std::vector<std::string> chosen;
  if (mode == "auto") {
    try {
      out.push_back(entry("nvml").make(config));
      chosen.push_back(fmt::format("nvml ({}, {})", device_count(*out.back()), out.back()->devices().front().name));
    } catch (const SamplerUnavailable& e) {
      notes.push_back(fmt::format("energy auto: no GPU energy: {}", e.what()));
    }
  }
  try {
    out.push_back(entry("rapl").make(config));
    chosen.push_back(fmt::format("rapl ({})", device_count(*out.back())));
  } catch (const SamplerUnavailable& e) {
    notes.push_back(fmt::format("energy {}: falling back to the CPU power model: {}", mode, e.what()));
    out.push_back(entry("model").make(config));
    chosen.push_back("model (modelled CPU power)");
  }
  std::string list;
  for (const auto& c : chosen) list += (list.empty() ? "" : " + ") + c;
  notes.push_back(fmt::format("energy {}: using {}", mode, list));
  return out;
}

}  // namespace qmeter::telemetry
