// RaplSampler: CPU package and DRAM energy from the Linux powercap sysfs (intel-rapl zones).
//
// Each zone folder holds `name` (package-N, dram, core, uncore, psys), `energy_uj` (a counter
// that wraps at `max_energy_range_uj`). Only package and dram zones are read: core and uncore are
// parts of the package and would count twice. /sys/class/powercap lists every zone, nested ones
// included, as a top-level entry, so one level is scanned.
#include <fmt/core.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "qmeter/core/parse_number.h"
#include "qmeter/telemetry/sampler.h"

namespace qmeter::telemetry {
namespace {

namespace fs = std::filesystem;

// Reads the first line of a small sysfs file; false (with errno's text in `why`) when unreadable.
bool read_line(const fs::path& path, std::string& line, std::string& why) {
  std::ifstream in(path);
  if (!in) {
    why = std::strerror(errno);
    return false;
  }
  if (!std::getline(in, line)) {
    why = "empty file";
    return false;
  }
  return true;
}

bool parse_u64(const std::string& text, unsigned long long& value) {
  const auto v = parse_uint64(text);  // the whole line: "123abc" is no counter
  if (v) value = *v;
  return v.has_value();
}

struct Zone {
  fs::path energy_file;
  double max_range_uj = 0;
  double last_uj = 0;
  double accumulated_uj = 0;  // unwrapped energy since open
  Nanos last_t = 0;
  double last_power_w = kNotMeasured;
};

class RaplSampler final : public Sampler {
 public:
  explicit RaplSampler(const SamplerConfig& config) {
    fs::path root = config.rapl_root;
    std::error_code ec;
    if (!fs::is_directory(root, ec))
      throw SamplerUnavailable(fmt::format("rapl: powercap folder '{}' does not exist (no RAPL on this machine)",
                                           root.string()));
    std::vector<fs::path> folders;
    for (const auto& entry : fs::directory_iterator(root, ec)) {
      if (entry.path().filename().string().find("rapl") != std::string::npos) folders.push_back(entry.path());
    }
    std::sort(folders.begin(), folders.end());
    for (const auto& folder : folders) {
      std::string name, why;
      if (!read_line(folder / "name", name, why)) continue;
      bool package = name.rfind("package", 0) == 0;
      if (!package && name != "dram") continue;
      std::string text;
      unsigned long long range = 0, now = 0;
      if (!read_line(folder / "max_energy_range_uj", text, why) || !parse_u64(text, range) || range == 0) {
        notes_.push_back(fmt::format("rapl: zone {} ({}) skipped: max_energy_range_uj unreadable ({})",
                                     folder.filename().string(), name, why.empty() ? "not a number" : why));
        continue;
      }
      why.clear();
      if (!read_line(folder / "energy_uj", text, why) || !parse_u64(text, now)) {
        notes_.push_back(fmt::format(
            "rapl: zone {} ({}) skipped: {}/energy_uj unreadable ({}){}", folder.filename().string(), name,
            folder.string(), why.empty() ? "not a number" : why,
            why == std::strerror(EACCES) ? "; since Linux 5.10 it is readable by root only" : ""));
        continue;
      }
      Zone z;
      z.energy_file = folder / "energy_uj";
      z.max_range_uj = static_cast<double>(range);
      z.last_uj = static_cast<double>(now);
      z.last_t = steady_now_ns();
      DeviceInfo d;
      d.source = "rapl";
      d.index = static_cast<int>(devices_.size());
      d.name = name;
      d.has_energy_counter = true;
      d.power_kind = "counter_delta";
      devices_.push_back(std::move(d));
      zones_.push_back(std::move(z));
    }
    if (zones_.empty()) {
      std::string detail;
      for (const auto& n : notes_) detail += "; " + n;
      throw SamplerUnavailable(
          fmt::format("rapl: no readable package or dram zone under '{}'{}", root.string(), detail));
    }
  }

  std::string_view source() const override { return "rapl"; }
  const std::vector<DeviceInfo>& devices() const override { return devices_; }
  std::vector<std::string> notes() const override { return notes_; }

  void sample(Nanos now_ns, std::vector<PowerSample>& out) override {
    for (std::size_t i = 0; i < zones_.size(); ++i) {
      Zone& z = zones_[i];
      PowerSample s;
      s.device = static_cast<int>(i);
      s.t_ns = now_ns;
      std::string text, why;
      unsigned long long v = 0;
      if (read_line(z.energy_file, text, why) && parse_u64(text, v)) {
        double uj = static_cast<double>(v);
        // A reading below the last one means the counter wrapped at max_energy_range_uj.
        double delta = uj >= z.last_uj ? uj - z.last_uj : uj + z.max_range_uj - z.last_uj;
        z.accumulated_uj += delta;
        if (now_ns > z.last_t) z.last_power_w = delta * 1e-6 / ns_to_s(now_ns - z.last_t);
        z.last_uj = uj;
        z.last_t = now_ns;
        s.energy_j = z.accumulated_uj * 1e-6;
        // RAPL has no power reading: the power is the mean over the last interval.
        s.power_w = z.last_power_w;
      }
      out.push_back(s);
    }
  }

 private:
  std::vector<Zone> zones_;
  std::vector<DeviceInfo> devices_;
  std::vector<std::string> notes_;
};

}  // namespace

std::unique_ptr<Sampler> make_rapl_sampler(const SamplerConfig& config) {
  return std::make_unique<RaplSampler>(config);
}

}  // namespace qmeter::telemetry
