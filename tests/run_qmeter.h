#pragma once
// Runs the qmeter binary under test with `args`, stdout and stderr into `log_path`; returns its exit
// status, or -1 when it did not end within `timeout_s` (it is then stopped).
#include <string>
#include <vector>

#include "qmeter/core/process.h"
#include "test_support.h"

namespace qmeter::testing {

inline int run_qmeter(const std::vector<std::string>& args, const std::string& log_path, double timeout_s) {
  SpawnOptions o;
  o.argv = {qmeter_bin()};
  o.argv.insert(o.argv.end(), args.begin(), args.end());
  o.log_path = log_path;
  auto p = ChildProcess::spawn(o);
  return p.wait(timeout_s).value_or(-1);
}

}  // namespace qmeter::testing
