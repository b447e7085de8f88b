// The qmeter binary: the verbs (app.cpp's table) parsed by CLI11, errors turned into exit codes.
#include <fmt/core.h>

#include <csignal>
#include <cstdio>

#include "qmeter/core/error.h"
#include "qmeter/core/paths.h"
#include "verbs.h"

int main(int argc, char** argv) {
  using namespace qmeter::cli;
  CLI::App app{"qmeter: characterize quantized LLMs under online serving (performance, energy, quality)"};
  app.require_subcommand(1);
  // A file-size limit (or a full quota) must reach us as a write error that names the file,
  // not as SIGXFSZ killing the process with a core dump and no word about which file.
  std::signal(SIGXFSZ, SIG_IGN);
  app.set_version_flag("--version", qmeter::qmeter_version());
  add_verbs(app);
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
