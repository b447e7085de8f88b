#pragma once
// Helpers for the telemetry tests: scoped environment variables and the fake NVML's time origin.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>

#include "qmeter/core/clock.h"

namespace qmeter::telemetry::testing {

// Sets an environment variable for one scope and restores the old value after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) setenv(name_, old_->c_str(), 1);
    else unsetenv(name_);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

// The fake library's time origin (CLOCK_MONOTONIC ns of nvmlInit_v2), read through the same
// loaded object the sampler uses.
inline Nanos fake_nvml_origin_ns() {
  void* lib = dlopen(QMETER_FAKE_NVML_PATH, RTLD_NOW | RTLD_NOLOAD);
  if (lib == nullptr) return -1;
  auto fn = reinterpret_cast<long long (*)()>(dlsym(lib, "qmeterFakeNvmlOriginNs"));
  Nanos origin = fn != nullptr ? fn() : -1;
  dlclose(lib);
  return origin;
}

}  // namespace qmeter::telemetry::testing
