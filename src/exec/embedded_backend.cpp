#include "embedded_backend.h"

#include <nlohmann/json.hpp>

#include "embedded_backend_options.h"
#include "qmeter/backend/backend.h"
#include "qmeter/core/error.h"
#include "qmeter/core/parse_number.h"
#include "qmeter/quant/quantize.h"
#include "qmeter/server/inference_server.h"

namespace qmeter::exec {

namespace {

// The spec's `backend.options` (strings) become server::ServeOptions; the model is loaded (and
// quantized) through the quantization registry, so every method, plain dtypes included, serves.
class EmbeddedBackend : public backend::Backend {
 public:
  explicit EmbeddedBackend(spec::BackendSpec spec) : spec_(std::move(spec)) {}
  void start(const backend::RunContext& ctx) override {
    server::ServeOptions o;
    o.model = ctx.model_path;
    o.port = 0;
    o.served_model_name = ctx.model_name;
    // The options' one table (embedded_backend_options.cpp) checks them here too, for callers
    // that did not come through the spec parser: unknown keys and ranges as the spec reports them.
    std::map<std::string, std::string> checked;
    try {
      checked = check_options(embedded_backend_option_schema(), spec_.options, "backend", FieldNames::spec("backend.options"));
    } catch (const UsageError& e) {
      throw backend::BackendError(e.what(), "");
    }
    auto opt = [&](const char* k) -> const std::string* {
      auto it = checked.find(k);
      return it == checked.end() ? nullptr : &it->second;
    };
    // Strict numbers naming the option: "backend.options.threads: '12abc' is not an integer".
    auto int_option = [&](const char* k, int& out) {
      if (auto v = opt(k)) out = static_cast<int>(parse_int_field(*v, std::string("backend.options.") + k, 0, 1 << 30));
    };
    try {
      int_option("threads", o.scheduler.threads);
      int_option("max_num_seqs", o.scheduler.max_num_seqs);
      int_option("max_num_batched_tokens", o.scheduler.max_num_batched_tokens);
      if (auto v = opt("kv_cache_mb"))
        o.scheduler.kv_cache_bytes = static_cast<std::size_t>(parse_double_field(*v, "backend.options.kv_cache_mb") * (1 << 20));
      int_option("max_model_len", o.max_model_len);
      if (auto v = opt("enable_prefix_caching")) {
        if (*v != "true" && *v != "false")
          throw UsageError("backend.options.enable_prefix_caching: '" + *v + "' is not true or false");
        o.scheduler.enable_prefix_caching = *v == "true";
      }
    } catch (const UsageError& e) {
      throw backend::BackendError(e.what(), "");
    }
    // The method comes from the quantization registry (plain dtypes included); calibration text
    // is the method option `calib` when given, else the registry's default.
    try {
      std::shared_ptr<const engine::Model> model = quant::load_quantized_from_options(ctx.model_path, ctx.method, ctx.method_options);
      server_ = std::make_unique<server::InferenceServer>(o, model);
      server_->start();
    } catch (const std::exception& e) {
      throw backend::BackendError(e.what(), "");
    }
    description_ = server_->model().description;
  }
  std::string base_url() const override { return server_->base_url(); }
  std::string served_model() const override { return server_->served_model_name(); }
  bool alive() override { return server_ != nullptr; }
  void stop() override { server_.reset(); }
  // JSON through nlohmann: a model description may hold quotes or backslashes (a path).
  std::string describe() const override { return nlohmann::json{{"kind", "embedded"}, {"model", description_}}.dump(); }

 private:
  spec::BackendSpec spec_;
  std::unique_ptr<server::InferenceServer> server_;
  std::string description_;
};

}  // namespace

void register_embedded_backend() {
  backend::register_backend("embedded", [](const spec::BackendSpec& s) { return std::make_unique<EmbeddedBackend>(s); });
}

}  // namespace qmeter::exec
