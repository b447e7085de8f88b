// `qmeter energy [options] -- CMD ARGS...`: runs a command (fork/exec, no shell) under a telemetry
// session and reports its duration, energy per source and device, average and peak power. The
// command's exit status is passed through (128 + signal number when a signal ended it, 127 when
// it could not be run). The report goes to stderr, so the command's stdout stays its own.
#include <fcntl.h>
#include <fmt/core.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <nlohmann/json.hpp>
#include <thread>

#include "qmeter/core/error.h"
#include "qmeter/telemetry/nvml.h"
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

// Runs argv and waits; returns the status to pass through.
int run_command(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int errpipe[2];
  if (pipe2(errpipe, O_CLOEXEC) != 0) throw Error(fmt::format("energy: pipe failed: {}", std::strerror(errno)));
  // The terminal's Ctrl-C goes to the command; qmeter stays to report what it measured.
  struct sigaction ignore {}, old_int{}, old_quit{};
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGINT, &ignore, &old_int);
  sigaction(SIGQUIT, &ignore, &old_quit);
  pid_t pid = fork();
  if (pid < 0) {
    sigaction(SIGINT, &old_int, nullptr);
    sigaction(SIGQUIT, &old_quit, nullptr);
    throw Error(fmt::format("energy: fork failed: {}", std::strerror(errno)));
  }
  if (pid == 0) {
    sigaction(SIGINT, &old_int, nullptr);
    sigaction(SIGQUIT, &old_quit, nullptr);
    close(errpipe[0]);
    execvp(args[0], args.data());
    int e = errno;
    ssize_t ignored = write(errpipe[1], &e, sizeof e);
    (void)ignored;
    _exit(127);
  }
  close(errpipe[1]);
  int exec_errno = 0;
  ssize_t got = read(errpipe[0], &exec_errno, sizeof exec_errno);
  close(errpipe[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGQUIT, &old_quit, nullptr);
  if (got == static_cast<ssize_t>(sizeof exec_errno)) {
    fmt::print(stderr, "qmeter energy: cannot run '{}': {}\n", argv[0], std::strerror(exec_errno));
    return 127;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
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
  if (o.idle_seconds < 0) throw UsageError(fmt::format("--idle-seconds must be >= 0, got {}", o.idle_seconds));
  std::optional<std::pair<unsigned, unsigned>> clocks;
  if (!o.gpu_lock_clocks.empty()) clocks = parse_clock_range(o.gpu_lock_clocks);

  telemetry::SamplerConfig config;
  config.idle_watts_per_core = o.idle_watts_per_core;
  config.busy_watts_per_core = o.busy_watts_per_core;
  std::vector<std::string> notes;
  auto samplers = telemetry::open_samplers(o.energy, config, notes);
  for (const auto& n : notes) fmt::print(stderr, "qmeter energy: {}\n", n);

  // Hardware controls, applied to every GPU before the idle baseline; undone after the command.
  std::vector<std::string> control_notes;
  telemetry::NvmlSampler* nvml = nullptr;
  for (auto& s : samplers)
    if (auto* n = dynamic_cast<telemetry::NvmlSampler*>(s.get())) nvml = n;
  if ((o.gpu_power_limit_w > 0 || clocks) && nvml == nullptr)
    throw UsageError("--gpu-power-limit / --gpu-lock-clocks need NVML (--energy auto or nvml on an NVIDIA machine)");
  std::vector<double> previous_limits;
  std::vector<bool> clocks_locked;
  if (nvml != nullptr) {
    for (int d = 0; d < static_cast<int>(nvml->devices().size()); ++d) {
      previous_limits.push_back(nvml->power_limit_w(d));
      telemetry::ControlResult r;
      if (o.gpu_power_limit_w > 0) {
        r = nvml->set_power_limit(d, o.gpu_power_limit_w);
        control_notes.push_back(r.message);
      }
      if (o.gpu_power_limit_w <= 0 || !r.ok) previous_limits.back() = telemetry::kNotMeasured;
      bool locked = false;
      if (clocks) {
        auto c = nvml->lock_gpu_clocks(d, clocks->first, clocks->second);
        control_notes.push_back(c.message);
        locked = c.ok;
      }
      clocks_locked.push_back(locked);
    }
  }
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

  if (nvml != nullptr) {
    for (int d = 0; d < static_cast<int>(clocks_locked.size()); ++d) {
      if (clocks_locked[d]) fmt::print(stderr, "qmeter energy: {}\n", nvml->reset_gpu_clocks(d).message);
      if (telemetry::measured(previous_limits[d]))
        fmt::print(stderr, "qmeter energy: restoring: {}\n", nvml->set_power_limit(d, previous_limits[d]).message);
    }
  }

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
  sub->add_option("--idle-seconds", opts->idle_seconds, "Idle baseline measured before the command (default 0)");
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
