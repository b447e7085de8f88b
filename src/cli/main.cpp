#include <fmt/core.h>

#include <csignal>
#include <cstdio>

#include "qmeter/core/error.h"
#include "qmeter/core/paths.h"
#include "verbs.h"

namespace qmeter::cli {

void add_connection_limit_flags(CLI::App* sub, net::ConnectionLimits& limits) {
  sub->add_option("--request-timeout-s", limits.request_timeout_s,
                  "a request (headers and body) must arrive whole within this many seconds of the server waiting "
                  "for it, keep-alive idleness included; else the connection is closed (408 when part came); 0: none")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  sub->add_option("--write-stall-timeout-s", limits.write_stall_timeout_s,
                  "a client that reads nothing of its response for this many seconds is disconnected (its "
                  "request cancelled); 0: none")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  sub->add_option("--max-connections", limits.max_connections,
                  "connections beyond this many get HTTP 503 (GET /health still answers); 0: no limit")
      ->capture_default_str();
}

int& verb_exit_code() {
  static int code = 0;
  return code;
}

void add_version_verb(CLI::App& app) {
  auto* sub = app.add_subcommand("version", "Print qmeter's version");
  sub->callback([] { fmt::print("qmeter {}\n", qmeter_version()); });
}

// clang-format off
constexpr AddVerb kVerbs[] = {
    add_version_verb,
    add_export_verb,
    add_ls_verb,
    add_run_verb,
    add_serve_verb,
    add_train_verb,
    add_generate_verb,
    add_bench_verb,
    add_energy_verb,
    add_mock_server_verb,
    add_report_verb,
    add_quantize_verb,
    add_plan_verb,
    add_tune_verb,
    add_eval_verb,
    add_slurm_verb,
    // verb table: one line per verb
};
// clang-format on

}  // namespace qmeter::cli

int main(int argc, char** argv) {
  using namespace qmeter::cli;
  CLI::App app{"qmeter: characterize quantized LLMs under online serving (performance, energy, quality)"};
  app.require_subcommand(1);
  // A file-size limit (or a full quota) must reach us as a write error that names the file,
  // not as SIGXFSZ killing the process with a core dump and no word about which file.
  std::signal(SIGXFSZ, SIG_IGN);
  app.set_version_flag("--version", qmeter::qmeter_version());
  for (auto add : kVerbs) add(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;  // every flag or argument error exits with 2
  } catch (const qmeter::Error& e) {
    std::fflush(stdout);
    fmt::print(stderr, "qmeter: error: {}\n", e.what());
    return e.exit_code();
  } catch (const std::exception& e) {
    std::fflush(stdout);
    fmt::print(stderr, "qmeter: error: {}\n", e.what());
    return 1;
  }
  return verb_exit_code();
}
