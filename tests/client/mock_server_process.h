#pragma once
// Runs the real `qmeter mock-server` binary on a free port (--port 0) for a test, and reads its
// per-request log (JSON lines, CLOCK_MONOTONIC ns: the same clock as qmeter::steady_now_ns).
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "qmeter/core/error.h"
#include "qmeter/core/process.h"
#include "test_support.h"

namespace qmeter::testing {

class MockServerProcess {
 public:
  // `args`: mock-server flags after `--port 0`. Output goes to DIR/mock.out.
  MockServerProcess(const std::string& dir, std::vector<std::string> args) : out_path_(dir + "/mock.out") {
    SpawnOptions so;
    so.argv = {qmeter_bin(), "mock-server", "--host", "127.0.0.1", "--port", "0"};
    so.argv.insert(so.argv.end(), args.begin(), args.end());
    so.log_path = out_path_;
    child_ = ChildProcess::spawn(so);
    const std::string marker = "mock-server listening on ";
    for (int i = 0; i < 1500 && base_url_.empty(); ++i) {
      std::ifstream in(out_path_);
      std::string line;
      while (std::getline(in, line)) {
        if (auto pos = line.find(marker); pos != std::string::npos) {
          base_url_ = line.substr(pos + marker.size());
          while (!base_url_.empty() && (base_url_.back() == '\r' || base_url_.back() == ' ')) base_url_.pop_back();
        }
      }
      if (base_url_.empty()) {
        if (!child_.running()) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    if (base_url_.empty()) throw Error("mock-server did not start; its output: " + file_tail(out_path_));
  }
  ~MockServerProcess() { stop(); }

  const std::string& base_url() const { return base_url_; }
  // Stops the server (SIGTERM), which makes it flush its request log.
  int stop() {
    if (stopped_) return status_;
    stopped_ = true;
    status_ = child_.stop(10.0);
    return status_;
  }

 private:
  std::string out_path_, base_url_;
  ChildProcess child_;
  bool stopped_ = false;
  int status_ = 0;
};

inline std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) lines.push_back(line);
  return lines;
}

}  // namespace qmeter::testing
