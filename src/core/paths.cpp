#include "qmeter/core/paths.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "qmeter/core/error.h"

namespace qmeter {

std::string shared_data_dir() {
  if (const char* env = std::getenv("QMETER_SHARED_DATA"); env && *env) return env;
  return QMETER_DEFAULT_SHARED_DATA;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read file '" + path + "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string qmeter_version() { return QMETER_VERSION; }

}  // namespace qmeter
