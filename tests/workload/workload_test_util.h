#pragma once
// Small helpers for the workload tests.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <string>

#include "qmeter/core/error.h"
#include "qmeter/workload/schedule.h"
#include "test_support.h"

namespace qmeter::workload::testing {

inline std::string write_file(const std::string& dir, const std::string& name, const std::string& content) {
  const std::string path = dir + "/" + name;
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

// The UsageError message `fn` throws ("" and a test failure if it throws nothing or another type).
inline std::string usage_error(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const qmeter::UsageError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected UsageError, got another exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected UsageError, nothing was thrown";
  return "";
}

inline int count_words(const std::string& s) {
  int n = 0;
  bool in_word = false;
  for (char c : s) {
    const bool space = c == ' ' || c == '\t' || c == '\n' || c == '\r';
    if (!space && !in_word) ++n;
    in_word = !space;
  }
  return n;
}

inline std::vector<double> gaps_seconds(const Schedule& s) {
  std::vector<double> gaps;
  for (std::size_t i = 1; i < s.requests.size(); ++i)
    gaps.push_back(static_cast<double>(s.requests[i].offset_ns - s.requests[i - 1].offset_ns) / 1e9);
  return gaps;
}

}  // namespace qmeter::workload::testing
