#pragma once
// Helpers shared by the tests: where the qmeter binary, the source tree and the shared data are,
// and a skip that says clearly when the shared data folder is absent.
#include <gtest/gtest.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "qmeter/core/paths.h"

namespace qmeter::testing {

inline std::string qmeter_bin() { return QMETER_BIN_PATH; }
inline std::string source_dir() { return QMETER_SOURCE_DIR; }
// A fresh folder for one test's files (kept after the run for inspection). CTest runs every test
// case as its own process, in parallel, so a suite's shared folder would be wiped and rewritten by
// its sibling processes: the folder is made unique to this process's test filter.
inline std::string test_output_dir(const std::string& name) {
  std::string filter = ::testing::GTEST_FLAG(filter);
  for (char& c : filter)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') c = '_';
  auto dir = std::filesystem::path(QMETER_TEST_OUTPUT_DIR) / name;
  if (!filter.empty() && filter != "_") dir /= filter;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}
// Path of a file in the shared data folder, or "" when it is absent.
inline std::string shared_data_file(const std::string& rel) {
  auto p = std::filesystem::path(qmeter::shared_data_dir()) / rel;
  return std::filesystem::exists(p) ? p.string() : std::string();
}

// Whether a missing shared data file fails the test instead of skipping it: under CI (CI=true or
// CI=1, as CI services set it) or with QMETER_REQUIRE_DATA=1. A CI run whose data folder is
// missing would otherwise pass with every model test skipped.
inline bool shared_data_required() {
  auto set_true = [](const char* name) {
    const char* v = std::getenv(name);
    return v != nullptr && (std::string(v) == "1" || std::string(v) == "true" || std::string(v) == "TRUE" ||
                            std::string(v) == "True");
  };
  return set_true("CI") || set_true("QMETER_REQUIRE_DATA");
}

}  // namespace qmeter::testing

// Binds `var` to the shared data file `rel`. When it is absent: skips the test with a message
// naming the file and how to provide it, or fails it where the data is required (see above).
#define QMETER_REQUIRE_SHARED_DATA(var, rel)                                                       \
  const std::string var = ::qmeter::testing::shared_data_file(rel);                                \
  if (var.empty()) {                                                                               \
    if (::qmeter::testing::shared_data_required())                                                 \
      GTEST_FAIL() << "SHARED DATA REQUIRED (CI or QMETER_REQUIRE_DATA=1): " << rel                \
                   << " not found under '" << ::qmeter::shared_data_dir()                          \
                   << "'; set QMETER_SHARED_DATA to the data folder";                              \
    GTEST_SKIP() << "SHARED DATA ABSENT: " << rel << " not found under '"                          \
                 << ::qmeter::shared_data_dir() << "'; set QMETER_SHARED_DATA to the data folder";   \
  }
