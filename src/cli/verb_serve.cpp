// `qmeter serve`: the OpenAI-compatible serving engine over the embedded engine.
#include <fmt/core.h>

#include <atomic>
#include <csignal>
#include <thread>

#include "qmeter/core/error.h"
#include "qmeter/engine/kv_cache.h"
#include "qmeter/quant/quantize.h"
#include "flag_names.h"
#include "qmeter/server/inference_server.h"
#include "verbs.h"

namespace qmeter::cli {

namespace {
std::atomic<bool> g_serve_stop{false};
extern "C" void on_signal_serve(int) { g_serve_stop.store(true); }
}  // namespace

void add_serve_verb(CLI::App& app) {
  auto o = std::make_shared<server::ServeOptions>();
  auto kv_mb = std::make_shared<double>(256);
  auto* sub = app.add_subcommand("serve", "Serve a model over an OpenAI-compatible API with continuous batching");
  sub->add_option("--model", o->model, "model path (llama2.c .bin, HF folder, .gguf) or synthetic:SHAPE")->required();
  sub->add_option("--dtype", o->dtype, "weight dtype: f32, bf16 or f16 (default: as stored)");
  sub->add_option("--quantization,-q", o->quantization,
                  "quantize at load time with this method: " + quantization_methods());
  add_quant_option_flags(sub, &o->quant_options);
  sub->add_option("--host", o->host, "address to bind (default 127.0.0.1)");
  sub->add_option("--port", o->port, "port (0: a free one)")->check(CLI::Range(0, 65535));
  add_connection_limit_flags(sub, o->connection_limits);
  sub->add_option("--threads", o->scheduler.threads, "engine compute threads")->check(CLI::Range(1, 1024));
  sub->add_option("--max-num-seqs", o->scheduler.max_num_seqs, "most sequences in one batch")->check(CLI::Range(1, 100000));
  sub->add_option("--max-num-batched-tokens", o->scheduler.max_num_batched_tokens, "most tokens in one step")
      ->check(CLI::Range(1, 10000000));
  auto* kv_memory = sub->add_option(renamed("--kv-cache-mb", {"--kv-cache-memory"}), *kv_mb,
                                    "KV-cache pool size in MiB (the spec's backend option kv_cache_mb)")
                        ->check(CLI::PositiveNumber)
                        ->capture_default_str();
  sub->add_option("--kv-cache-fraction", o->kv_cache_memory_fraction,
                  "KV-cache pool as a fraction of the memory available after loading (instead of --kv-cache-mb)")
      ->check(CLI::Range(0.0, 1.0))
      ->excludes(kv_memory);
  auto kv_dtype = std::make_shared<std::string>("f32");
  sub->add_option("--kv-cache-dtype", *kv_dtype,
                  "KV-cache element type: f32, int8 or fp8 (E4M3), one scale per token and head; int8/fp8 hold ~4x the "
                  "tokens in the same --kv-cache-mb");
  sub->add_flag("--enable-prefix-caching,!--no-enable-prefix-caching", o->scheduler.enable_prefix_caching,
                "reuse the KV blocks of prompt prefixes seen before (vLLM's automatic prefix caching; on by default)");
  sub->add_option("--max-queue", o->scheduler.max_queue, "waiting requests beyond this get HTTP 429")->check(CLI::Range(1, 10000000));
  sub->add_option("--max-model-len", o->max_model_len, "cap the context length");
  sub->add_option("--api-key", o->api_key, "require this bearer token");
  sub->add_option("--served-model-name", o->served_model_name, "model name in /v1/models");
  sub->callback([o, kv_mb, kv_dtype] {
    o->kv_cache_dtype = engine::parse_kv_dtype(*kv_dtype, "--kv-cache-dtype");
    o->scheduler.kv_cache_bytes = static_cast<std::size_t>(*kv_mb * (1 << 20));
    server::InferenceServer srv(*o);
    srv.start();
    const server::SchedulerStats st = srv.scheduler().stats();
    fmt::print("qmeter serve: {} ({}), {} KV blocks = {} tokens ({} KV cache), prefix caching {}\n",
               srv.served_model_name(), srv.model().description, st.kv_total_blocks, st.kv_capacity_tokens,
               st.kv_cache_dtype, st.prefix_caching ? "on" : "off");
    fmt::print("serving on {}\n", srv.base_url());
    std::fflush(stdout);
    std::signal(SIGINT, on_signal_serve);
    std::signal(SIGTERM, on_signal_serve);
    while (!g_serve_stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    srv.stop();
  });
}

}  // namespace qmeter::cli
