// Prints the CPU time the telemetry sampling thread uses at 20 Hz with 8 fake GPUs (through the
// real dlopen path of the fake libnvidia-ml) and with the CPU model, as a share of one core, and the
// time attribute_energy takes for a long run.
//   bench_telemetry_overhead [seconds=10] [devices=8] [interval_ms=50]
#include <fmt/core.h>

#include <cstdlib>
#include <random>
#include <thread>

#include "qmeter/telemetry/nvml.h"
#include "qmeter/telemetry/session.h"

using namespace qmeter;
using namespace qmeter::telemetry;

namespace {

void measure(const char* label, std::vector<std::unique_ptr<Sampler>> samplers, double seconds, int interval_ms) {
  std::size_t devices = 0;
  for (const auto& s : samplers) devices += s->devices().size();
  TelemetrySession session(std::move(samplers), {.interval_ns = ms_to_ns(interval_ms)});
  Nanos t0 = steady_now_ns();
  session.start();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  session.stop();
  double wall = ns_to_s(steady_now_ns() - t0);
  double cpu = session.sampler_cpu_seconds();
  std::size_t ticks = session.ticks();
  fmt::print("{:<28} devices {:>2}  interval {:>3} ms  ticks {:>5} ({:.1f} Hz)  samples {:>6}  sampler CPU {:.4f} s over {:.2f} s = {:.3f} % of one core  ({:.1f} us per tick)\n",
             label, devices, interval_ms, ticks, ticks / wall, session.samples().size(), cpu, wall, 100.0 * cpu / wall,
             1e6 * cpu / static_cast<double>(ticks));
}

void attribution_cost() {
  // 10 minutes at 20 Hz on 8 GPUs = 96,000 intervals; 20,000 requests at ~64 in flight.
  std::mt19937_64 rng(42);
  const Nanos run = 600'000'000'000;
  std::vector<EnergyInterval> intervals;
  for (int d = 0; d < 8; ++d)
    for (Nanos t = 0; t < run; t += 50'000'000) intervals.push_back({t, t + 50'000'000, 15.0, 5.0});
  std::vector<AttributionRequest> reqs(20000);
  std::uniform_int_distribution<Nanos> start(0, run - 5'000'000'000);
  for (std::size_t i = 0; i < reqs.size(); ++i) {
    auto& r = reqs[i];
    r.id = static_cast<std::int64_t>(i);
    r.start_ns = start(rng);
    r.first_token_ns = r.start_ns + 200'000'000;
    r.end_ns = r.first_token_ns + 1'500'000'000;
    r.prompt_tokens = 512;
    r.output_tokens = 128;
    for (int k = 0; k < 128; ++k) r.chunks.push_back({r.first_token_ns + k * 11'700'000, 1});
    r.slo = {{"interactive", i % 3 != 0}};
  }
  Nanos t0 = steady_now_ns();
  AttributionResult a = attribute_energy(intervals, reqs);
  double s = ns_to_s(steady_now_ns() - t0);
  fmt::print("attribution: {} intervals x {} requests (128 chunks each) in {:.3f} s; attributed {:.1f} of {:.1f} J\n",
             intervals.size(), reqs.size(), s, a.attributed_j, a.window_energy_j);
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = argc > 1 ? std::atof(argv[1]) : 10.0;
  int devices = argc > 2 ? std::atoi(argv[2]) : 8;
  int interval_ms = argc > 3 ? std::atoi(argv[3]) : 50;
  setenv("QMETER_FAKE_NVML_DEVICES", std::to_string(devices).c_str(), 1);
  SamplerConfig config;
  config.nvml_library = QMETER_FAKE_NVML_PATH;
  {
    std::vector<std::unique_ptr<Sampler>> s;
    s.push_back(make_nvml_sampler(config));
    measure("fake nvml", std::move(s), seconds, interval_ms);
  }
  {
    std::vector<std::unique_ptr<Sampler>> s;
    s.push_back(make_cpu_model_sampler(config));
    measure("cpu model (/proc/stat)", std::move(s), seconds, interval_ms);
  }
  {
    std::vector<std::unique_ptr<Sampler>> s;
    s.push_back(make_nvml_sampler(config));
    s.push_back(make_cpu_model_sampler(config));
    measure("fake nvml + cpu model", std::move(s), seconds, interval_ms);
  }
  attribution_cost();
  fmt::print("target: sampler CPU < 1 % of one core at 20 Hz with 8 GPUs\n");
  return 0;
}
