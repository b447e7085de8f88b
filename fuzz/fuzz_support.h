#pragma once
// Shared pieces of the fuzz targets (issue #21). Each target feeds the fuzzer's bytes to one
// parser through its real entry point. A qmeter::Error (the "clear error naming the file / line /
// field" every parser owes bad input) is the expected outcome of bad bytes; anything else that
// escapes (a std::out_of_range, a nlohmann type_error, bad_alloc) is a finding, reported by
// aborting so libFuzzer saves the input.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <typeinfo>
#include <vector>

#include "qmeter/core/error.h"

namespace qmeter::fuzz {

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Runs `body`; a qmeter::Error is fine, any other exception aborts with its type and message.
template <class F>
void expect_only_qmeter_errors(F&& body) {
  try {
    body();
  } catch (const qmeter::Error& e) {
    // QMETER_FUZZ_VERBOSE=1 prints the message: how a seed is checked to reach the deep paths.
    static const bool verbose = std::getenv("QMETER_FUZZ_VERBOSE") != nullptr;
    if (verbose) std::fprintf(stderr, "fuzz: qmeter::Error: %s\n", e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz: unexpected %s escaped the parser: %s\n", typeid(e).name(), e.what());
    std::abort();
  }
}

// Inputs that hold several files (a HF folder: config.json + model.safetensors) are split at
// this line; the seeds and dictionaries use it so the fuzzer keeps the structure.
inline constexpr std::string_view kFileSeparator = "\n--qmeter-fuzz-file--\n";

inline std::vector<std::string_view> split_files(std::string_view input, std::size_t max_parts) {
  std::vector<std::string_view> parts;
  while (parts.size() + 1 < max_parts) {
    const auto at = input.find(kFileSeparator);
    if (at == std::string_view::npos) break;
    parts.push_back(input.substr(0, at));
    input.remove_prefix(at + kFileSeparator.size());
  }
  parts.push_back(input);
  return parts;
}

// A private scratch folder for loaders that take a path (in /dev/shm when there is one, so the
// writes stay in memory). Made once per process; files are overwritten for each input.
inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    std::filesystem::path base = std::filesystem::exists("/dev/shm") ? "/dev/shm" : std::filesystem::temp_directory_path();
    auto d = base / ("qmeter-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    // Removed at exit so long runs leave nothing behind.
    std::atexit([] { std::error_code ec; std::filesystem::remove_all(scratch_dir(), ec); });
    return d;
  }();
  return dir;
}

inline std::string write_scratch(const std::string& name, std::string_view bytes) {
  const auto path = scratch_dir() / name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path.string();
}

inline void remove_scratch(const std::string& name) {
  std::error_code ec;
  std::filesystem::remove(scratch_dir() / name, ec);
}

}  // namespace qmeter::fuzz
