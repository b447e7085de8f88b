#pragma once
// Server lifecycle behind one interface: the system under test of a run. One registry table
// (backend_registry.cpp) maps the spec's `backend.kind` to a factory.
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "qmeter/spec/study_spec.h"

namespace qmeter::backend {

// What a backend needs to know about the run it serves (fills the argv template placeholders).
struct RunContext {
  std::string run_id;
  std::string model_name;
  std::string model_path;
  std::string checkpoint;                      // what to serve ({checkpoint}); "" = model_path
  std::string method;                          // registry name
  std::map<std::string, std::string> method_options;
  int tp = 1;
  std::string log_path;  // server stdout/stderr go here
  // Where a started server's process group is remembered while it runs ("" = nowhere), so that
  // the resume of a killed study can stop a server its dead predecessor left behind.
  std::string process_record_path;
  std::string host = "127.0.0.1";
};

// Thrown when a backend fails to start, dies or hangs; carries the log tail for the run record.
class BackendError : public std::runtime_error {
 public:
  BackendError(const std::string& what, std::string log_tail)
      : std::runtime_error(what), log_tail_(std::move(log_tail)) {}
  const std::string& log_tail() const { return log_tail_; }

 private:
  std::string log_tail_;
};

class Backend {
 public:
  virtual ~Backend() = default;
  // Starts the server and blocks until its readiness probe answers 200 (or throws BackendError).
  virtual void start(const RunContext& ctx) = 0;
  virtual std::string base_url() const = 0;     // "http://127.0.0.1:PORT"
  virtual std::string served_model() const = 0;  // model name to put in requests
  virtual bool alive() = 0;                      // false once the server has exited or crashed
  virtual void stop() = 0;                       // idempotent
  virtual std::string describe() const = 0;      // JSON: kind, argv/url, pid, ...
  virtual std::string log_tail() const { return ""; }
};

// The context of one expanded run: the fields its spec decides (the caller adds log_path and
// process_record_path).
RunContext run_context(const spec::RunConfig& run);

// What a command backend launches for a run: argv and extra environment with every placeholder
// filled and optional {?...} entries kept or dropped. No process is started. `port` is what
// {port} becomes: the run's port, or "{port}" where a plan shows commands before ports exist.
struct LaunchCommand {
  std::vector<std::string> argv;
  std::map<std::string, std::string> env;
};
LaunchCommand command_line(const spec::BackendSpec& spec, const RunContext& ctx, const std::string& port);
// The command as one line a POSIX shell would run as is (VAR=value ... argv, each word quoted
// where it needs it): what a dry run shows and a person can paste.
std::string shell_line(const LaunchCommand& command);

using BackendFactory = std::function<std::unique_ptr<Backend>(const spec::BackendSpec&)>;

// The registry: kind -> factory. The embedded backend registers itself from the server side
// (it needs the engine), so the table is open for one extra entry.
std::unique_ptr<Backend> make_backend(const spec::BackendSpec& spec);
void register_backend(const std::string& kind, BackendFactory factory);

// Polls GET base_url + path until it answers 200; false on timeout. `alive` is consulted
// between polls so a server that exits during startup fails at once instead of at the timeout.
bool wait_until_ready(const std::string& url, double timeout_s, const std::function<bool()>& alive);
// A TCP port on 127.0.0.1 that was free a moment ago.
int pick_free_port();

}  // namespace qmeter::backend
