#include "qmeter/server/inference_server.h"

#include <fmt/core.h>

#include <fstream>

#include "openai_api.h"
#include "qmeter/core/error.h"
#include "qmeter/engine/kv_cache.h"
#include "qmeter/net/http_server.h"
#include "qmeter/quant/quantize.h"
#include "server_metrics.h"

namespace qmeter::server {

struct InferenceServer::Impl {
  ServeOptions options;
  std::shared_ptr<const engine::Model> model;
  std::unique_ptr<Scheduler> scheduler;
  ServerMetrics metrics;
  ApiContext ctx;
  std::unique_ptr<net::HttpServer> http;
};

// MemAvailable of /proc/meminfo in bytes (the kernel's estimate of what can be allocated without
// swapping), -1 when absent.
static double available_memory_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  double kib = 0;
  while (in >> key >> kib >> unit) {
    if (key == "MemAvailable:") return kib * 1024.0;
  }
  return -1;
}

static std::shared_ptr<const engine::Model> load(const ServeOptions& o) {
  if (!o.quantization.empty()) {
    if (!o.dtype.empty()) {
      throw UsageError("--dtype and --quantization are exclusive (use --quantization fp32, bf16 or fp16 for a plain dtype)");
    }
    auto m = quant::load_quantized_from_options(o.model, o.quantization, o.quant_options);
    engine::set_kv_cache_dtype(*m, o.kv_cache_dtype);
    if (o.max_model_len > 0 && o.max_model_len < m->config.max_seq_len) m->config.max_seq_len = o.max_model_len;
    return m;
  }
  if (!o.quant_options.empty()) {
    throw UsageError("quantization options (--" + o.quant_options.begin()->first + ") need --quantization NAME");
  }
  engine::LoadOptions lo;
  if (!o.dtype.empty()) lo.weight_dtype = engine::parse_dtype(o.dtype);
  lo.max_seq_len = o.max_model_len;
  lo.kv_cache_dtype = o.kv_cache_dtype;
  return engine::load_model(o.model, lo);
}

InferenceServer::InferenceServer(ServeOptions options) : InferenceServer(options, load(options)) {}

InferenceServer::InferenceServer(ServeOptions options, std::shared_ptr<const engine::Model> model)
    : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  impl_->model = std::move(model);
  if (!impl_->model->tokenizer) throw Error("model '" + impl_->options.model + "' has no tokenizer; serving needs one");
  auto& o = impl_->options;
  if (o.served_model_name.empty()) {
    o.served_model_name = o.model.substr(o.model.find_last_of('/') + 1);
    if (o.served_model_name.empty()) o.served_model_name = o.model;
  }
  if (o.kv_cache_memory_fraction > 0) {
    if (o.kv_cache_memory_fraction > 1) throw UsageError("--kv-cache-fraction must be in (0, 1]");
    const double available = available_memory_bytes();
    if (available <= 0) throw Error("--kv-cache-fraction: /proc/meminfo has no MemAvailable; give --kv-cache-mb");
    o.scheduler.kv_cache_bytes = static_cast<std::size_t>(o.kv_cache_memory_fraction * available);
  }
  impl_->scheduler = std::make_unique<Scheduler>(*impl_->model, o.scheduler);
  auto& c = impl_->ctx;
  c.model = impl_->model.get();
  c.scheduler = impl_->scheduler.get();
  c.metrics = &impl_->metrics;
  c.served_model_name = o.served_model_name;
  c.api_key = o.api_key;
  c.max_model_len = impl_->model->config.max_seq_len;
  if (o.max_model_len > 0) c.max_model_len = std::min(c.max_model_len, o.max_model_len);
  c.chat_template = model_chat_template_text(o.model);
}

InferenceServer::~InferenceServer() { stop(); }

void InferenceServer::start() {
  net::HttpServerOptions ho;
  ho.host = impl_->options.host;
  ho.port = impl_->options.port;
  ho.io_threads = impl_->options.io_threads;
  ho.limits = impl_->options.connection_limits;
  const ApiContext* ctx = &impl_->ctx;
  impl_->http = std::make_unique<net::HttpServer>(
      ho, [ctx](const net::HttpRequest& r, const net::ResponseWriterPtr& w) { handle_request(*ctx, r, w); });
  impl_->http->start();
}

void InferenceServer::stop() {
  if (impl_->http) impl_->http->stop(ms_to_ns(200));
}

int InferenceServer::port() const { return impl_->http ? impl_->http->port() : 0; }
std::string InferenceServer::base_url() const { return fmt::format("http://{}:{}", impl_->options.host, port()); }
const std::string& InferenceServer::served_model_name() const { return impl_->ctx.served_model_name; }
const engine::Model& InferenceServer::model() const { return *impl_->model; }
Scheduler& InferenceServer::scheduler() { return *impl_->scheduler; }

}  // namespace qmeter::server
