// `qmeter bench serve`: online serving benchmark against any OpenAI-compatible server (vLLM's
// `bench serve` flags and result keys, with latency measured from the scheduled send time).
#include <fmt/core.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <csignal>
#include <functional>
#include <memory>

#include "qmeter/client/token_counter.h"
#include "qmeter/core/error.h"
#include "qmeter/core/parse_number.h"
#include "flag_names.h"
#include "qmeter/exec/energy_observer.h"
#include "qmeter/loadgen/loadgen.h"
#include "qmeter/quality/under_load.h"
#include "qmeter/workload/schedule.h"
#include "verbs.h"

namespace qmeter::cli {

namespace {

struct BenchServeFlags {
  std::string base_url, model, served_model_name, endpoint = "/v1/completions";
  std::string dataset = "random";
  int input_len = 128, output_len = 64;
  double range_ratio = 0.0;
  int num_prompts = 1000;
  std::string request_rate = "inf";
  std::string arrival;
  double burstiness = 1.0;
  int max_concurrency = 0;
  int max_connections = client::RunControl::kDefaultMaxConnections;
  double client_bound_threshold_ms = -1;
  double debug_client_stall_us = 0;
  int warmup = 0;
  double timeout_s = 600;
  std::vector<std::string> slos;
  std::string percentiles = "50,90,99";
  std::uint64_t seed = 0;
  std::string output_json, save_requests;
  std::string api_key;
  std::vector<std::string> headers;
  bool no_continuous_usage = false;
  bool strict_token_count = false;
  double trace_time_scale = 1.0;
  double ramp_start_rate = 0, ramp_end_rate = 0;
  std::string energy = "none";  // auto | nvml | rapl | model | none
  double power_interval_ms = 50, idle_seconds = 2;
  bool score = false;
  int num_fewshot = 0;
  int turns = 4;
  double think_time_s = 0;
  int num_prefixes = 4, prefix_len = 512;
  std::string trace_window;
  bool exact_lengths = false;
};

std::atomic<bool> g_interrupted{false};
extern "C" void on_sigint_bench(int) { g_interrupted.store(true); }

double parse_rate(const std::string& text) {
  if (text == "inf" || text == "INF" || text == "Inf") return -1;
  if (const auto v = parse_double(text); v && std::isfinite(*v) && *v > 0) return *v;
  throw UsageError(fmt::format("--request-rate '{}': expected a positive number of requests/s or 'inf'", text));
}

std::string header_line(const std::string& kv) {
  const auto colon = kv.find(':');
  if (colon == std::string::npos || colon == 0 || kv.find_first_of("\r\n") != std::string::npos)
    throw UsageError(fmt::format("--header '{}': expected NAME:VALUE", kv));
  std::string value = kv.substr(colon + 1);
  while (!value.empty() && value.front() == ' ') value.erase(0, 1);
  return kv.substr(0, colon) + ": " + value;
}

void run_bench_serve(const BenchServeFlags& f) {
  // Values CLI11 cannot check on its own; each message names its flag (exit 2).
  if (f.endpoint.empty() || f.endpoint.front() != '/')
    throw UsageError(fmt::format("--endpoint '{}': expected a path such as /v1/completions", f.endpoint));
  if (f.base_url.rfind("http://", 0) != 0 && f.base_url.rfind("https://", 0) != 0)
    throw UsageError(fmt::format("--base-url '{}': expected http://HOST:PORT or https://HOST:PORT", f.base_url));
  if (f.warmup >= f.num_prompts)
    throw UsageError(fmt::format("--warmup {}: must be smaller than --num-prompts {}", f.warmup, f.num_prompts));
  if (!(f.timeout_s > 0)) throw UsageError(fmt::format("--timeout-s {}: must be a positive number of seconds", f.timeout_s));
  if (f.model.empty() && f.served_model_name.empty())
    throw UsageError("--model is required: the model the server serves (--served-model-name: a different name in requests)");
  // vLLM's rule: requests name --served-model-name, else --model.
  const std::string request_model = f.served_model_name.empty() ? f.model : f.served_model_name;

  loadgen::LoadgenOptions opt;
  opt.client.base_url = f.base_url;
  opt.client.endpoint = f.endpoint;
  opt.client.model = request_model;
  opt.client.api_key = f.api_key;
  for (const auto& h : f.headers) opt.client.headers.push_back(header_line(h));
  opt.client.timeout_s = f.timeout_s;
  opt.client.continuous_usage = !f.no_continuous_usage;
  opt.client.keep_text = true;
  opt.warmup = f.warmup;
  opt.max_connections = f.max_connections;
  opt.debug_loop_stall_ns = static_cast<Nanos>(f.debug_client_stall_us * 1000.0);
  opt.metrics.client_bound_threshold_ms = f.client_bound_threshold_ms;
  opt.metrics.percentiles = loadgen::parse_percentiles(f.percentiles);
  for (const auto& s : f.slos) opt.metrics.slos.push_back(loadgen::parse_slo(s));
  opt.progress = isatty(STDERR_FILENO);
  opt.cancel = &g_interrupted;

  workload::DatasetOptions ds;
  ds.spec = f.dataset;
  ds.num_prompts = f.num_prompts;
  ds.input_len = f.input_len;
  ds.output_len = f.output_len;
  ds.range_ratio = f.range_ratio;
  ds.seed = f.seed;
  ds.num_fewshot = f.num_fewshot;
  ds.turns = f.turns;
  ds.think_time_s = f.think_time_s;
  ds.num_prefixes = f.num_prefixes;
  ds.prefix_len = f.prefix_len;
  if (!f.trace_window.empty()) workload::parse_trace_window(f.trace_window, ds);
  std::function<int(const std::string&)> counter;
  if (f.exact_lengths) {
    counter = client::server_token_counter(f.base_url, request_model, f.api_key);
    ds.token_counter = &counter;
  }
  workload::ArrivalOptions ar;
  ar.kind = f.arrival;
  ar.request_rate = parse_rate(f.request_rate);
  ar.burstiness = f.burstiness;
  ar.max_concurrency = f.max_concurrency;
  ar.trace_time_scale = f.trace_time_scale;
  ar.ramp_start_rate = f.ramp_start_rate;
  ar.ramp_end_rate = f.ramp_end_rate;
  ar.seed = f.seed;
  const workload::Schedule schedule = workload::build_schedule(ds, ar);

  loadgen::RunInfo info;
  info.backend = f.endpoint.find("chat") != std::string::npos ? "openai-chat" : "openai";
  info.base_url = f.base_url;
  info.endpoint = f.endpoint;
  info.model_id = request_model;
  info.dataset = f.dataset;
  info.arrival = schedule.arrival_kind;
  info.request_rate = ar.request_rate;
  info.burstiness = f.burstiness;
  info.max_concurrency = f.max_concurrency;
  info.seed = f.seed;

  // Energy: one telemetry session with an idle baseline before the load (exec::EnergyObserver).
  std::unique_ptr<exec::EnergyObserver> energy;
  if (f.energy != "none") {
    energy = std::make_unique<exec::EnergyObserver>(exec::EnergyOptions{f.energy, f.power_interval_ms, f.idle_seconds});
    for (const auto& n : energy->notes()) fmt::print(stderr, "energy: {}\n", n);
    energy->prepare();
    opt.observers.push_back(energy.get());
  }
  // Quality under load: the responses of this very run are scored against the dataset's answers.
  std::unique_ptr<quality::LoadScoreObserver> scorer;
  if (f.score) {
    const std::string task = quality::load_score_task(f.dataset);
    if (task.empty()) throw UsageError(fmt::format("--score: the dataset '{}' has no answers to score (use gsm8k:PATH)", f.dataset));
    scorer = std::make_unique<quality::LoadScoreObserver>(schedule, task);
    opt.observers.push_back(scorer.get());
  }
  auto old_handler = std::signal(SIGINT, on_sigint_bench);
  loadgen::LoadgenResult result = loadgen::run_load(schedule, opt, info);
  std::signal(SIGINT, old_handler);

  fmt::print("{}", loadgen::format_summary(result, opt.metrics));
  std::fflush(stdout);
  if (!f.output_json.empty()) loadgen::write_output_json(f.output_json, result, opt.metrics);
  if (!f.save_requests.empty()) loadgen::write_requests_jsonl(f.save_requests, result.records);
  if (g_interrupted.load()) {
    fmt::print(stderr, "qmeter: interrupted: unfinished requests were recorded as cancelled\n");
    verb_exit_code() = 130;
  } else if (f.strict_token_count && result.metrics.token_count_mismatches > 0) {
    fmt::print(stderr,
               "qmeter: error: --strict-token-count: {} completed request(s) where the server's usage disagrees "
               "with the tokens counted in the stream\n",
               result.metrics.token_count_mismatches);
    verb_exit_code() = 1;
  }
}

}  // namespace

void add_bench_verb(CLI::App& app) {
  auto* bench = app.add_subcommand("bench", "Benchmarks");
  bench->require_subcommand(1);
  auto* serve = bench->add_subcommand("serve", "Online serving benchmark against an OpenAI-compatible server");
  auto f = std::make_shared<BenchServeFlags>();
  serve->add_option("--base-url", f->base_url, "Server URL, http(s)://HOST:PORT")->required();
  serve->add_option("--model", f->model, "The model the server serves; requests name it unless --served-model-name is given");
  serve->add_option("--served-model-name", f->served_model_name, "Model name sent in each request (default: --model)");
  serve->add_option("--endpoint", f->endpoint, "/v1/completions or /v1/chat/completions")->capture_default_str();
  serve->add_option("--dataset", f->dataset,
                    "random | sharegpt:PATH | jsonl:PATH | azure:PATH | gsm8k:PATH | mooncake:PATH | burstgpt:PATH | "
                    "trace:PATH | sharegpt-multiturn:PATH | multiturn | prefix | longdoc:PATH")
      ->capture_default_str();
  serve->add_option("--turns", f->turns, "multiturn: turns per conversation")->check(CLI::PositiveNumber)->capture_default_str();
  serve->add_option(renamed("--think-time-s", {"--think-time"}), f->think_time_s, "Multi-turn: seconds between a reply and the next turn")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  serve->add_option("--num-prefixes", f->num_prefixes, "prefix: distinct shared system prompts")->check(CLI::PositiveNumber)->capture_default_str();
  serve->add_option("--prefix-len", f->prefix_len, "prefix: tokens of each shared system prompt (--input-len = suffix)")
      ->check(CLI::PositiveNumber)->capture_default_str();
  serve->add_option("--trace-window", f->trace_window, "Traces: replay only START,DURATION seconds of the trace (DURATION inf: to the end)");
  serve->add_flag("--exact-lengths", f->exact_lengths,
                  "Count prompt tokens through the server's /tokenize so synthetic prompts have exact token lengths");
  serve->add_option(renamed("--input-len", {"--random-input-len"}), f->input_len, "Input tokens per request (synthetic datasets)")->check(CLI::PositiveNumber)->capture_default_str();
  serve->add_option(renamed("--output-len", {"--random-output-len"}), f->output_len, "Output tokens per request")->check(CLI::PositiveNumber)->capture_default_str();
  serve->add_option(renamed("--range-ratio", {"--random-range-ratio"}), f->range_ratio, "Lengths uniform in len*[1-r, 1+r]")->check(CLI::Range(0.0, 1.0))->capture_default_str();
  serve->add_option("--num-prompts", f->num_prompts, "Requests to send")->check(CLI::PositiveNumber)->capture_default_str();
  serve->add_option("--request-rate", f->request_rate, "Requests/s or inf (a rate alone means Poisson arrivals)")->capture_default_str();
  serve->add_option("--arrival", f->arrival, "constant | poisson | gamma | inf | closed | trace | ramp");
  serve->add_option("--burstiness", f->burstiness, "Gamma shape (1 = Poisson)")->check(CLI::PositiveNumber)->capture_default_str();
  serve->add_option("--max-concurrency", f->max_concurrency, "Closed loop: at most C requests in flight")->check(CLI::NonNegativeNumber);
  serve->add_option("--max-connections", f->max_connections,
                    "Open connections at most; requests beyond wait in the client, latency still from their scheduled time")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  serve->add_option("--client-bound-threshold-ms", f->client_bound_threshold_ms,
                    "p99 client lag or connection wait above this marks the point client-bound (default max(1 ms, 1% of median TTFT))")
      ->check(CLI::PositiveNumber);
  // A test hook, not a tuning knob: it starves the client on purpose.
  serve->add_option("--debug-client-stall-us", f->debug_client_stall_us, "")->check(CLI::NonNegativeNumber)->group("");
  serve->add_option("--warmup", f->warmup, "First N requests are sent but excluded from metrics")->check(CLI::NonNegativeNumber);
  serve->add_option(renamed("--timeout-s", {"--timeout"}), f->timeout_s, "Per-request timeout in seconds")->capture_default_str();
  serve->add_option("--slo", f->slos, "SLO class NAME:ttft=MS,tpot=MS,e2e=MS,itl=MS (repeatable)");
  serve->add_option("--percentiles", f->percentiles, "Percentiles to report")->capture_default_str();
  serve->add_option("--energy", f->energy, "Energy source: auto, nvml, rapl, model or none (default none)")
      ->check(CLI::IsMember({"auto", "nvml", "rapl", "model", "none"}));
  serve->add_option("--power-interval-ms", f->power_interval_ms, "Power sampling interval (default 50 ms = 20 Hz)")
      ->check(CLI::PositiveNumber);
  serve->add_option(renamed("--idle-s", {"--idle-seconds"}), f->idle_seconds, "Idle baseline measured before the load (default 2 s)")
      ->check(CLI::NonNegativeNumber);
  serve->add_flag("--score", f->score, "Score the responses produced under load against the dataset's answers (gsm8k:PATH)");
  serve->add_option("--num-fewshot", f->num_fewshot, "gsm8k: exemplars before each question (default 0)")
      ->check(CLI::NonNegativeNumber);
  serve->add_option("--seed", f->seed, "Seed of the schedule (same seed, same schedule)")->capture_default_str();
  serve->add_option("--output-json", f->output_json, "Write vLLM-compatible results JSON here");
  serve->add_option("--save-requests", f->save_requests, "Write every per-request record here (JSON lines)");
  serve->add_option("--api-key", f->api_key, "Bearer token")->envname("OPENAI_API_KEY");
  serve->add_option("--header", f->headers, "Extra request header NAME:VALUE (repeatable)");
  serve->add_flag("--no-continuous-usage", f->no_continuous_usage,
                  "Do not request stream_options.continuous_usage_stats (plain OpenAI rejects it)");
  serve->add_flag("--strict-token-count", f->strict_token_count,
                  "Exit 1 when any server usage count disagrees with the streamed tokens");
  serve->add_option("--trace-time-scale", f->trace_time_scale, "Trace replay speed factor (2 = twice as fast)")
      ->check(CLI::PositiveNumber);
  serve->add_option("--ramp-start-rate", f->ramp_start_rate, "Ramp arrivals: rate at the start (req/s)")->check(CLI::NonNegativeNumber);
  serve->add_option("--ramp-end-rate", f->ramp_end_rate, "Ramp arrivals: rate at the end (req/s)")->check(CLI::NonNegativeNumber);
  serve->callback([f] { run_bench_serve(*f); });
}

}  // namespace qmeter::cli
