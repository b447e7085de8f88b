// `qmeter energy [options] -- CMD ARGS...`: runs a command (fork/exec, no shell) under a telemetry
// session and reports its duration, energy per source and device, average and peak power. The
// command's exit status is passed through (128 + signal number when a signal ended it, 127 when
// it could not be run). The report goes to stderr, so the command's stdout stays its own.
// --gpu-power-limit / --gpu-lock-clocks that NVML refuses end qmeter (status 1) before the command
// runs, as a refused hardware setting fails a `qmeter run` run (exec/hardware_settings.h).
#include <fmt/core.h>
#include <signal.h>

#include <fstream>
#include <optional>
#include <nlohmann/json.hpp>
#include <thread>
#include <tuple>

#include "flag_names.h"
#include "qmeter/core/error.h"
#include "qmeter/core/process.h"
#include "qmeter/exec/hardware_settings.h"
#include "qmeter/telemetry/session.h"
#include "verbs.h"

namespace qmeter::cli {
namespace {

struct EnergyOptions {
  int interval_ms = 50;
  std::string energy = "auto";
  double idle_seconds = 0;
  std::string output_json;
  bool include_samples = false;
  double gpu_power_limit_w = 0;
  std::string gpu_lock_clocks;  // "MIN,MAX"
  double idle_watts_per_core = telemetry::SamplerConfig{}.idle_watts_per_core;
  double busy_watts_per_core = telemetry::SamplerConfig{}.busy_watts_per_core;
  std::vector<std::string> command;
};

// Runs argv (core's spawner) and waits; returns the status to pass through. The command stays
// in qmeter's process group, in the terminal's foreground: Ctrl-C reaches it, while qmeter
// ignores Ctrl-C until the command has ended, to report what it measured. (Ignored only after the
// spawn: a child inherits an ignored SIGINT across exec.)
int run_command(const std::vector<std::string>& argv) {
  SpawnOptions so;
  so.argv = argv;
  so.own_process_group = false;
  so.parent_death_signal = 0;  // like time(1): the command outlives a killed qmeter
  ChildProcess child;
  try {
    child = ChildProcess::spawn(so);
  } catch (const Error& e) {
    fmt::print(stderr, "qmeter energy: {}\n", e.what());
    return 127;
  }
  struct sigaction ignore {}, old_int{}, old_quit{};
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGINT, &ignore, &old_int);
  sigaction(SIGQUIT, &ignore, &old_quit);
  const int status = child.wait().value_or(1);
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGQUIT, &old_quit, nullptr);
  return status < 0 ? 1 : status;
}

std::pair<unsigned, unsigned> parse_clock_range(const std::string& text) {
  unsigned lo = 0, hi = 0;
  char extra = 0;
  if (std::sscanf(text.c_str(), "%u,%u%c", &lo, &hi, &extra) != 2 || lo > hi || hi == 0)
    throw UsageError(fmt::format("--gpu-lock-clocks: expected MIN,MAX in MHz with MIN <= MAX, got '{}'", text));
  return {lo, hi};
}

void run_energy(const EnergyOptions& o) {
  if (o.command.empty()) throw UsageError("energy: no command given (usage: qmeter energy [options] -- CMD ARGS...)");
  if (o.interval_ms < 1) throw UsageError(fmt::format("--power-interval-ms must be at least 1, got {}", o.interval_ms));
  if (o.idle_seconds < 0) throw UsageError(fmt::format("--idle-s must be >= 0, got {}", o.idle_seconds));
  std::optional<std::pair<unsigned, unsigned>> clocks;
  if (!o.gpu_lock_clocks.empty()) clocks = parse_clock_range(o.gpu_lock_clocks);

  telemetry::SamplerConfig config;
  config.idle_watts_per_core = o.idle_watts_per_core;
  config.busy_watts_per_core = o.busy_watts_per_core;
  std::vector<std::string> notes;
  auto samplers = telemetry::open_samplers(o.energy, config, notes);
  for (const auto& n : notes) fmt::print(stderr, "qmeter energy: {}\n", n);

  // GPU controls (exec's AppliedHardwareSetting, as `qmeter run` applies a spec's hardware
  // setting) hold from before the idle baseline until the command has ended. A refusal fails
  // before the command runs: energy measured at another setting than asked is a wrong figure.
  exec::GpuSettings gpu;
  gpu.power_limit_w = o.gpu_power_limit_w;
  if (clocks) std::tie(gpu.min_clock_mhz, gpu.max_clock_mhz) = *clocks;
  std::string requested;
  if (o.gpu_power_limit_w > 0) requested += fmt::format("--gpu-power-limit {:g}", o.gpu_power_limit_w);
  if (clocks) requested += (requested.empty() ? "" : " ") + fmt::format("--gpu-lock-clocks {}", o.gpu_lock_clocks);
  gpu.label = requested;
  exec::AppliedHardwareSetting gpu_controls(gpu);
  const std::vector<std::string> control_notes = gpu_controls.notes();
  for (const auto& n : control_notes) fmt::print(stderr, "qmeter energy: {}\n", n);

  telemetry::TelemetrySession session(std::move(samplers), {.interval_ns = ms_to_ns(o.interval_ms)});
  session.start();
  while (!session.empty() && session.ticks() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (o.idle_seconds > 0) {
    fmt::print(stderr, "qmeter energy: measuring the idle baseline for {} s\n", o.idle_seconds);
    session.measure_idle_baseline(o.idle_seconds);
  }
  Nanos t0 = steady_now_ns(), wall_t0 = wall_now_ns();
  int status = run_command(o.command);
  Nanos t1 = steady_now_ns(), wall_t1 = wall_now_ns();
  session.stop();

  for (const auto& line : gpu_controls.restore()) fmt::print(stderr, "qmeter energy: {}\n", line);

  telemetry::EnergyReport report = session.report(t0, t1);
  for (const auto& n : control_notes) report.notes.push_back(n);
  std::string command_line;
  for (const auto& a : o.command) command_line += (command_line.empty() ? "" : " ") + a;
  fmt::print(stderr, "qmeter energy: '{}' exited with status {} after {:.3f} s\n", command_line, status, report.duration_s);
  if (session.empty()) {
    fmt::print(stderr, "qmeter energy: no energy source (--energy none)\n");
  } else {
    for (const auto& line : telemetry::energy_summary_lines(report)) fmt::print(stderr, "{}\n", line);
    for (const auto& n : report.notes) fmt::print(stderr, "note: {}\n", n);
  }
  if (!o.output_json.empty()) {
    auto samples = session.samples();
    nlohmann::json j = nlohmann::json::parse(
        telemetry::energy_report_json(report, nullptr, o.include_samples, &samples));
    j["command"] = o.command;
    j["exit_status"] = status;
    j["energy_mode"] = o.energy;
    // Wall-clock edges of the window, to line the report up with other tools' logs (nvidia-smi).
    j["window_start_unix_s"] = ns_to_s(wall_t0);
    j["window_end_unix_s"] = ns_to_s(wall_t1);
    std::ofstream out(o.output_json);
    if (!out) throw Error(fmt::format("--output-json: cannot write '{}'", o.output_json));
    out << j.dump(2) << "\n";
  }
  verb_exit_code() = status;
}

}  // namespace

void add_energy_verb(CLI::App& app) {
  auto opts = std::make_shared<EnergyOptions>();
  auto* sub = app.add_subcommand("energy", "Run a command and measure its energy (GPU via NVML, CPU via RAPL or a model)");
  sub->add_option("--power-interval-ms", opts->interval_ms, "Sampling interval in ms (default 50 = 20 Hz)");
  sub->add_option("--energy", opts->energy, "Energy source: auto, nvml, rapl, model or none (default auto)")
      ->check(CLI::IsMember({"auto", "nvml", "rapl", "model", "none"}));
  sub->add_option(renamed("--idle-s", {"--idle-seconds"}), opts->idle_seconds, "Idle baseline measured before the command (default 0)");
  sub->add_option("--output-json", opts->output_json, "Write the report as JSON to this file");
  sub->add_flag("--include-samples", opts->include_samples, "Put every power sample into the JSON");
  sub->add_option("--gpu-power-limit", opts->gpu_power_limit_w, "Set every GPU's power limit (W) for the run");
  sub->add_option("--gpu-lock-clocks", opts->gpu_lock_clocks, "Lock GPU clocks to MIN,MAX MHz for the run");
  sub->add_option("--idle-watts-per-core", opts->idle_watts_per_core, "CPU model: idle watts per core");
  sub->add_option("--busy-watts-per-core", opts->busy_watts_per_core, "CPU model: busy watts per core");
  sub->add_option("command", opts->command, "The command and its arguments, after --")->required();
  sub->callback([opts] { run_energy(*opts); });
}

}  // namespace qmeter::cli
