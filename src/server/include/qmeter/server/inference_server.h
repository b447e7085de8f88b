#pragma once
// `qmeter serve`: an OpenAI-compatible HTTP server over the embedded engine (the same
// event-driven HTTP layer as the mock server), with continuous batching (scheduler.h).
// Endpoints: /v1/completions, /v1/chat/completions (SSE streaming or not), /v1/models, /health,
// /tokenize, /detokenize, /metrics (Prometheus text, vLLM's metric names).
#include <map>
#include <memory>
#include <string>

#include "qmeter/engine/model.h"
#include "qmeter/net/http_server.h"
#include "qmeter/server/scheduler.h"

namespace qmeter::server {

struct ServeOptions {
  std::string model;              // any engine model spec (path, synthetic:SHAPE)
  std::string dtype;              // "" keep stored, else f32 | bf16 | f16
  // Quantize at load time: a quantization registry name (quant::method_names(): w8a16, gptq, ...),
  // "" for none. Excludes `dtype` (the plain-dtype methods fp32/bf16/fp16 cover it).
  std::string quantization;
  // The method's options (keys as quant::parse_options: bits, group-size, sym, act-order, damp,
  // calib-samples, calib-seq-len), plus "calib" = the calibration text file for methods that need one.
  std::map<std::string, std::string> quant_options;
  // KV-cache element type (kv_cache.h): int8 / fp8 hold ~4x the positions of f32 in the same
  // kv_cache_bytes. Applied at load; a model passed in already loaded keeps its own setting.
  engine::KvDType kv_cache_dtype = engine::KvDType::kF32;
  std::string host = "127.0.0.1";
  int port = 8000;                // 0: pick a free port
  int io_threads = 1;
  net::ConnectionLimits connection_limits;
  std::string api_key;            // non-empty: requests need "Authorization: Bearer KEY"
  std::string served_model_name;  // "" = the model spec's last path component
  int max_model_len = 0;          // caps the context (0 = the model's)
  // > 0: the KV pool is this fraction of the memory available once the model is loaded
  // (/proc/meminfo MemAvailable), instead of scheduler.kv_cache_bytes.
  double kv_cache_memory_fraction = 0;
  SchedulerOptions scheduler;
};

class InferenceServer {
 public:
  explicit InferenceServer(ServeOptions options);  // loads the model
  // Serves an already loaded model (tests, the embedded backend after quantization).
  InferenceServer(ServeOptions options, std::shared_ptr<const engine::Model> model);
  ~InferenceServer();
  void start();
  void stop();
  int port() const;
  std::string base_url() const;
  const std::string& served_model_name() const;
  const engine::Model& model() const;
  Scheduler& scheduler();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qmeter::server
