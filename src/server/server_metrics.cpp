#include "server_metrics.h"

#include <fmt/core.h>

namespace qmeter::server {

void Histogram::observe(double v) {
  std::lock_guard lock(mu_);
  std::size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  ++counts_[i];
  sum_ += v;
  ++n_;
}

std::string Histogram::text(const std::string& name, const std::string& labels) const {
  std::lock_guard lock(mu_);
  std::string out = fmt::format("# TYPE {} histogram\n", name);
  std::uint64_t cum = 0;
  for (std::size_t i = 0; i < bounds_.size(); ++i) {
    cum += counts_[i];
    out += fmt::format("{}_bucket{{{},le=\"{}\"}} {}\n", name, labels, bounds_[i], cum);
  }
  cum += counts_.back();
  out += fmt::format("{}_bucket{{{},le=\"+Inf\"}} {}\n", name, labels, cum);
  out += fmt::format("{}_sum{{{}}} {}\n{}_count{{{}}} {}\n", name, labels, sum_, name, labels, n_);
  return out;
}

ServerMetrics::ServerMetrics()
    : ttft_s({0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}),
      e2e_s({0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60}),
      tpot_s({0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5}) {}

namespace {
// A label value as the exposition format writes it: backslash, double quote and line feed
// escaped (a served model name may hold any of them; unescaped, the scrape fails to parse).
std::string label_value(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    out += c == '\n' ? std::string("\\n") : std::string(1, c);
  }
  return out;
}
}  // namespace

std::string ServerMetrics::prometheus_text(const SchedulerStats& s, const std::string& model_name) const {
  const std::string l = fmt::format("model_name=\"{}\"", label_value(model_name));
  std::string out;
  auto gauge = [&](const char* name, const char* help, double v) {
    out += fmt::format("# HELP {} {}\n# TYPE {} gauge\n{}{{{}}} {}\n", name, help, name, name, l, v);
  };
  auto counter = [&](const char* name, const char* help, double v) {
    out += fmt::format("# HELP {} {}\n# TYPE {} counter\n{}{{{}}} {}\n", name, help, name, name, l, v);
  };
  gauge("vllm:num_requests_running", "Sequences in the running batch.", s.running);
  gauge("vllm:num_requests_waiting", "Sequences waiting to be scheduled.", s.waiting);
  gauge("vllm:kv_cache_usage_perc", "Fraction of KV-cache blocks in use (1 = 100%).", s.kv_usage);
  gauge("vllm:gpu_cache_usage_perc", "Alias of vllm:kv_cache_usage_perc for older dashboards.", s.kv_usage);
  gauge("qmeter:kv_cache_capacity_tokens", "Positions the KV-cache block pool holds in all (all sequences together).",
        static_cast<double>(s.kv_capacity_tokens));
  // vLLM's info gauge: the cache configuration as labels, value 1.
  out += fmt::format("# HELP vllm:cache_config_info Information of the KV-cache configuration.\n"
                     "# TYPE vllm:cache_config_info gauge\n"
                     "vllm:cache_config_info{{{},block_size=\"{}\",cache_dtype=\"{}\",enable_prefix_caching=\"{}\","
                     "num_gpu_blocks=\"{}\"}} 1\n",
                     l, s.kv_block_size, s.kv_cache_dtype, s.prefix_caching ? "True" : "False", s.kv_total_blocks);
  counter("vllm:num_preemptions_total", "Sequences preempted (KV blocks freed, recomputed later).",
          static_cast<double>(s.preemptions));
  // vLLM v1's prefix-cache counters (prometheus_client adds _total to a counter's name), in tokens.
  counter("vllm:prefix_cache_queries_total", "Prefix cache queries, in terms of number of queried tokens.",
          static_cast<double>(s.prefix_cache_queries));
  counter("vllm:prefix_cache_hits_total", "Prefix cache hits, in terms of number of cached tokens.",
          static_cast<double>(s.prefix_cache_hits));
  counter("qmeter:prefill_tokens_computed_total", "Positions computed by prefill (recompute after preemption included).",
          static_cast<double>(s.prefill_tokens_computed));
  counter("qmeter:prefill_tokens_cached_total", "Prompt positions taken from the prefix cache instead of computed.",
          static_cast<double>(s.prefill_tokens_cached));
  counter("qmeter:prefix_cache_evictions_total", "Cached KV blocks evicted (reused for other contents).",
          static_cast<double>(s.kv_evictions));
  gauge("qmeter:prefix_cache_blocks", "KV blocks findable in the prefix cache (in use or free).", s.kv_cached_blocks);
  gauge("qmeter:kv_block_references", "Sum of the KV blocks' reference counts (0 when no sequence holds a block).",
        static_cast<double>(s.kv_block_refs));
  counter("vllm:prompt_tokens_total", "Prompt tokens received.", static_cast<double>(s.prompt_tokens));
  counter("vllm:generation_tokens_total", "Tokens generated.", static_cast<double>(s.generation_tokens));
  counter("vllm:request_success_total", "Requests finished (stop or length).", static_cast<double>(success.load()));
  counter("qmeter:request_aborted_total", "Requests cancelled (client gone).", static_cast<double>(aborted.load()));
  counter("qmeter:request_rejected_total", "Requests refused with 429 (queue full).", static_cast<double>(rejected.load()));
  counter("qmeter:engine_steps_total", "Batched forward steps run.", static_cast<double>(s.steps));
  out += ttft_s.text("vllm:time_to_first_token_seconds", l);
  out += tpot_s.text("vllm:time_per_output_token_seconds", l);
  out += e2e_s.text("vllm:e2e_request_latency_seconds", l);
  return out;
}

}  // namespace qmeter::server
