#pragma once
// Errors that reach the user. UsageError (bad flags, malformed input files) exits with code 2;
// every other Error exits with 1. Messages name the file, line, field or flag at fault.
#include <stdexcept>
#include <string>

namespace qmeter {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
  virtual int exit_code() const { return 1; }
};

class UsageError : public Error {
 public:
  explicit UsageError(const std::string& what) : Error(what) {}
  int exit_code() const override { return 2; }
};

}  // namespace qmeter
