// `command` backend: a server started from an argv template (vLLM, SGLang, TGI, llama.cpp
// server, ...). No shell: each template argument becomes exactly one argv entry.
#include <fmt/core.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <string_view>
#include <fstream>
#include <nlohmann/json.hpp>

#include "qmeter/backend/backend.h"
#include "qmeter/core/error.h"
#include "qmeter/core/process.h"
#include "qmeter/core/text.h"

namespace qmeter::backend {

namespace {

// The values of a run's placeholders (spec::run_placeholders() and opt.NAME).
std::map<std::string, std::string> placeholders(const RunContext& ctx, const std::string& port) {
  std::map<std::string, std::string> vars = {
      {"model", ctx.model_name}, {"model_path", ctx.model_path},
      {"checkpoint", ctx.checkpoint.empty() ? ctx.model_path : ctx.checkpoint},
      {"method", ctx.method}, {"tp", std::to_string(ctx.tp)}, {"port", port},
      {"host", ctx.host}, {"run_id", ctx.run_id}};
  for (const auto& [k, v] : ctx.method_options) vars["opt." + k] = v;
  return vars;
}

class CommandBackend : public Backend {
 public:
  explicit CommandBackend(spec::BackendSpec spec) : spec_(std::move(spec)) {}
  ~CommandBackend() override { stop(); }

  void start(const RunContext& ctx) override {
    port_ = pick_free_port();
    host_ = ctx.host;
    log_path_ = ctx.log_path;
    LaunchCommand launch = command_line(spec_, ctx, std::to_string(port_));
    SpawnOptions opts;
    opts.argv = launch.argv;
    opts.env = std::move(launch.env);
    opts.log_path = ctx.log_path;
    argv_ = opts.argv;
    served_ = spec_.served_model.empty() ? ctx.model_name : spec::expand_template(spec_.served_model, placeholders(ctx, std::to_string(port_)));
    record_path_ = ctx.process_record_path;
    if (!record_path_.empty() && stop_recorded_process_group(record_path_)) {
      std::ofstream(log_path_, std::ios::app) << "qmeter: stopped a server left running by an earlier, killed run\n";
    }
    try {
      child_ = ChildProcess::spawn(opts);
    } catch (const Error& e) {
      throw BackendError(e.what(), "");
    }
    if (!record_path_.empty()) write_process_record(record_path_, child_.pid());
    if (!wait_until_ready(base_url() + spec_.ready_path, spec_.startup_timeout_s, [this] { return child_.running(); })) {
      std::string why = child_.running()
                            ? fmt::format("server did not become ready at {}{} within {} s", base_url(), spec_.ready_path,
                                          spec_.startup_timeout_s)
                            : fmt::format("server exited during startup with status {}", child_.exit_status().value_or(-1));
      stop();
      throw BackendError(why, log_tail());
    }
  }
  std::string base_url() const override { return fmt::format("http://{}:{}", host_, port_); }
  std::string served_model() const override { return served_; }
  bool alive() override { return child_.running(); }
  void stop() override {
    if (child_.pid() > 0) child_.stop(10.0);
    if (!record_path_.empty()) {
      std::error_code ec;
      std::filesystem::remove(record_path_, ec);
    }
  }
  std::string describe() const override {
    // JSON through nlohmann: argv entries are paths and flags, quotes and backslashes included.
    return nlohmann::json{{"kind", "command"}, {"argv", argv_}, {"pid", child_.pid()}, {"port", port_}}.dump();
  }
  std::string log_tail() const override { return file_tail(log_path_, 4096); }

 private:
  spec::BackendSpec spec_;
  ChildProcess child_;
  std::vector<std::string> argv_;
  std::string host_ = "127.0.0.1", log_path_, served_, record_path_;
  int port_ = 0;
};

class UrlBackend : public Backend {
 public:
  explicit UrlBackend(spec::BackendSpec spec) : spec_(std::move(spec)) {
    while (!spec_.url.empty() && spec_.url.back() == '/') spec_.url.pop_back();
  }
  void start(const RunContext& ctx) override {
    served_ = spec_.served_model.empty() ? ctx.model_name : spec_.served_model;
    const std::string ready_url = join_url(spec_.url, spec_.ready_path);
    if (!wait_until_ready(ready_url, std::min(spec_.startup_timeout_s, 30.0), nullptr)) {
      throw BackendError("server at " + spec_.url + " is not reachable (" + ready_url + " did not answer 200)", "");
    }
  }
  std::string base_url() const override { return spec_.url; }
  std::string served_model() const override { return served_; }
  bool alive() override { return true; }
  void stop() override {}
  std::string describe() const override { return nlohmann::json{{"kind", "url"}, {"url", spec_.url}}.dump(); }

 private:
  spec::BackendSpec spec_;
  std::string served_;
};

}  // namespace

RunContext run_context(const spec::RunConfig& run) {
  RunContext ctx;
  ctx.run_id = run.id;
  ctx.model_name = run.model.name;
  ctx.model_path = run.model.path;
  ctx.checkpoint = run.checkpoint;
  ctx.method = run.method.name;
  ctx.method_options = run.method.options;
  ctx.tp = run.tp;
  return ctx;
}

LaunchCommand command_line(const spec::BackendSpec& spec, const RunContext& ctx, const std::string& port) {
  const auto vars = placeholders(ctx, port);
  return {spec::expand_argv(spec.argv, vars), spec::expand_env_template(spec.env, vars)};
}

std::string shell_line(const LaunchCommand& command) {
  // Single quotes keep every byte but the quote itself, which closes, escapes and reopens.
  const auto word = [](const std::string& w) {
    const bool plain = !w.empty() && std::all_of(w.begin(), w.end(), [](char ch) {
      return std::isalnum(static_cast<unsigned char>(ch)) || std::string_view("_-./:=@%+,").find(ch) != std::string_view::npos;
    });
    if (plain) return w;
    std::string q = "'";
    for (char ch : w) q += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
    return q + "'";
  };
  std::string line;
  for (const auto& [k, v] : command.env) line += k + "=" + word(v) + " ";
  for (const auto& a : command.argv) line += word(a) + " ";
  if (!line.empty()) line.pop_back();
  return line;
}

std::unique_ptr<Backend> make_command_backend(const spec::BackendSpec& spec) {
  if (spec.argv.empty()) throw UsageError("backend.argv: a command backend needs an argv template");
  return std::make_unique<CommandBackend>(spec);
}
std::unique_ptr<Backend> make_url_backend(const spec::BackendSpec& spec) {
  if (spec.url.empty()) throw UsageError("backend.url: a url backend needs the server's base URL");
  return std::make_unique<UrlBackend>(spec);
}

}  // namespace qmeter::backend
