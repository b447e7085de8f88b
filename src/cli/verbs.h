#pragma once
// The verb table of the qmeter binary. Adding a verb = one verb_<name>.cpp defining its
// add_<name>_verb function + one line in kVerbs (app.cpp). Flag names follow docs/CLI.md; a
// renamed flag keeps its old spelling hidden through renamed() (flag_names.h).
// A verb's callback throws qmeter::UsageError (exit 2) or qmeter::Error (exit 1) on failure and
// sets the process exit code through VerbResult when it wants a non-zero code of its own.
#include <CLI/CLI.hpp>

#include "qmeter/net/http_server.h"

namespace qmeter::cli {

// The flags of the servers' client limits (qmeter serve and mock-server name them alike).
void add_connection_limit_flags(CLI::App* sub, net::ConnectionLimits& limits);

// The exit code a verb asks for (for example `qmeter energy` passes its child's status through).
int& verb_exit_code();

using AddVerb = void (*)(CLI::App& app);

// Every verb of the table, with the help formatter that hides old spellings.
void add_verbs(CLI::App& app);

void add_version_verb(CLI::App& app);
void add_help_verb(CLI::App& app);
void add_export_verb(CLI::App& app);
void add_ls_verb(CLI::App& app);
void add_run_verb(CLI::App& app);
void add_serve_verb(CLI::App& app);
void add_train_verb(CLI::App& app);
void add_generate_verb(CLI::App& app);
void add_bench_verb(CLI::App& app);
void add_energy_verb(CLI::App& app);
void add_mock_server_verb(CLI::App& app);
void add_report_verb(CLI::App& app);
void add_quantize_verb(CLI::App& app);
void add_plan_verb(CLI::App& app);
void add_tune_verb(CLI::App& app);
void add_eval_verb(CLI::App& app);
void add_slurm_verb(CLI::App& app);

}  // namespace qmeter::cli
