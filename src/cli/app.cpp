// The verb table of the qmeter binary and the pieces every verb shares.
#include <fmt/core.h>

#include "flag_names.h"
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

void add_help_verb(CLI::App& app) {
  auto* sub = app.add_subcommand("help", "Print the verbs; --markdown: every verb's flags (docs/CLI-flags.md)");
  auto markdown = std::make_shared<bool>(false);
  sub->add_flag("--markdown", *markdown, "the flag reference of every verb as Markdown");
  sub->callback([&app, markdown] { fmt::print("{}", *markdown ? flags_markdown(app) : app.help()); });
}

// clang-format off
constexpr AddVerb kVerbs[] = {
    add_version_verb,
    add_help_verb,
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

void add_verbs(CLI::App& app) {
  // Set before the verbs exist: each subcommand copies its parent's formatter when it is made.
  app.formatter(std::make_shared<HelpFormatter>());
  for (auto add : kVerbs) add(app);
}

}  // namespace qmeter::cli
