// Load generator benchmark against `qmeter mock-server` (both on this machine):
//   1. the highest sustained Poisson request rate whose p99 send lag stays under 1 ms
//      (16 output tokens, no server delays): every request completes and throughput keeps up;
//   2. the most concurrent open streams held (ITL 100 ms): all complete, ITL stays near 100 ms;
//   3. client CPU time per streamed token (process user+system time / output tokens) in each.
// Usage: bench_loadgen [--rates 1000,2000,...] [--streams N] [--seconds S] [--qmeter PATH]
#include <fmt/core.h>
#include <sys/resource.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include "qmeter/core/error.h"
#include "qmeter/core/process.h"
#include "qmeter/client/stream_decoder.h"
#include "qmeter/loadgen/loadgen.h"

using namespace qmeter;

namespace {

std::string g_qmeter = QMETER_BIN_PATH;

double cpu_seconds(int who) {
  rusage ru{};
  getrusage(who, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + 1e-6 * static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

class Mock {
 public:
  explicit Mock(std::vector<std::string> args) {
    out_ = "/tmp/bench_loadgen_mock_" + std::to_string(getpid()) + ".out";
    std::remove(out_.c_str());
    SpawnOptions so;
    so.argv = {g_qmeter, "mock-server", "--host", "127.0.0.1", "--port", "0"};
    so.argv.insert(so.argv.end(), args.begin(), args.end());
    so.log_path = out_;
    child_ = ChildProcess::spawn(so);
    const std::string marker = "mock-server listening on ";
    for (int i = 0; i < 1000 && url_.empty(); ++i) {
      std::ifstream in(out_);
      std::string line;
      while (std::getline(in, line))
        if (auto p = line.find(marker); p != std::string::npos) url_ = line.substr(p + marker.size());
      if (url_.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (url_.empty()) throw Error("mock-server did not start: " + file_tail(out_));
  }
  ~Mock() { child_.stop(5); }
  const std::string& url() const { return url_; }
  void stop() { child_.stop(5); }

 private:
  std::string out_, url_;
  ChildProcess child_;
};

struct Point {
  loadgen::Metrics m;
  double client_cpu_s = 0;
};

Point run_point(const std::string& url, double rate, int n, int output_len, int input_len) {
  workload::DatasetOptions ds;
  ds.num_prompts = n;
  ds.input_len = input_len;
  ds.output_len = output_len;
  workload::ArrivalOptions ar;
  ar.request_rate = rate;
  ar.kind = "poisson";
  const auto schedule = workload::build_schedule(ds, ar);
  loadgen::LoadgenOptions opt;
  opt.client.base_url = url;
  opt.client.model = "m";
  opt.client.keep_text = false;
  opt.client.timeout_s = 120;
  opt.metrics.percentiles = {50, 99};
  opt.start_delay_ns = 200'000'000;
  const double cpu0 = cpu_seconds(RUSAGE_SELF);
  auto res = loadgen::run_load(schedule, opt, {});
  Point p{res.metrics, cpu_seconds(RUSAGE_SELF) - cpu0};
  return p;
}

double p99(const loadgen::LatencyStats& s) { return s.percentiles_ms.empty() ? 0 : s.percentiles_ms.back().second; }

}  // namespace

int main(int argc, char** argv) {
  std::vector<double> rates = {1000, 2000, 3000, 4000, 5000, 6000, 8000, 10000, 12000};
  std::vector<int> stream_counts = {10000};
  double seconds = 4;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--rates") {
      rates.clear();
      std::string s = argv[i + 1];
      for (std::size_t pos = 0; pos <= s.size();) {
        auto c = s.find(',', pos);
        rates.push_back(std::stod(s.substr(pos, c - pos)));
        if (c == std::string::npos) break;
        pos = c + 1;
      }
    } else if (a == "--streams") {
      stream_counts.clear();
      std::string s = argv[i + 1];
      for (std::size_t pos = 0; pos <= s.size();) {
        auto c = s.find(',', pos);
        stream_counts.push_back(std::stoi(s.substr(pos, c - pos)));
        if (c == std::string::npos) break;
        pos = c + 1;
      }
    } else if (a == "--qmeter") {
      g_qmeter = argv[i + 1];
    } else if (a == "--seconds") {
      seconds = std::stod(argv[i + 1]);
    }
  }
  try {
    {
      // 0. Decoding cost per chunk (vLLM-shaped chat chunk with continuous usage): fast scan vs
      // the general JSON parser it falls back to.
      const std::string chunk =
          R"({"id":"chatcmpl-mock-17","object":"chat.completion.chunk","created":1700000000,"model":"m",)"
          R"("choices":[{"index":0,"delta":{"content":" tok42"},"logprobs":null,"finish_reason":null}],)"
          R"("usage":{"prompt_tokens":128,"total_tokens":170,"completion_tokens":42}})";
      for (bool fast : {true, false}) {
        constexpr int kChunks = 200000;
        client::RequestRecord rec;
        rec.chunks.reserve(kChunks);
        client::StreamDecoder dec(rec, false);
        dec.set_fast_path(fast);
        const Nanos t0 = steady_now_ns();
        for (int i = 0; i < kChunks; ++i) dec.on_event("message", chunk, i + 1);
        fmt::print("== 0. decode one chunk ({}): {:.0f} ns\n", fast ? "fast scan" : "general JSON parser",
                   static_cast<double>(steady_now_ns() - t0) / kChunks);
      }
    }
    fmt::print("== 1. sustained request rate, p99 send lag < 1 ms (16 output tokens, no delays, {} s per rate)\n", seconds);
    fmt::print("{:>8} {:>9} {:>7} {:>10} {:>12} {:>12} {:>12} {:>14}\n", "rate", "requests", "failed", "achieved",
               "p50 lag ms", "p99 lag ms", "p99 e2e ms", "cpu us/token");
    double best = 0;
    {
      Mock mock({"--ttft-ms", "0", "--itl-ms", "0", "--tokens-before-eos", "16", "--io-threads", "1"});
      for (double rate : rates) {
        const int n = static_cast<int>(rate * seconds);
        const Point p = run_point(mock.url(), rate, n, 16, 8);
        const bool ok = p.m.failed == 0 && p.m.completed == n && p99(p.m.send_lag) < 1.0 &&
                        p.m.request_throughput > 0.9 * rate;
        fmt::print("{:>8.0f} {:>9} {:>7} {:>10.0f} {:>12.3f} {:>12.3f} {:>12.2f} {:>14.2f}  {}\n", rate, n, p.m.failed,
                   p.m.request_throughput, p.m.send_lag.median_ms, p99(p.m.send_lag), p99(p.m.e2el),
                   1e6 * p.client_cpu_s / std::max<std::int64_t>(1, p.m.total_output_tokens), ok ? "ok" : "FAILS");
        std::fflush(stdout);
        if (ok) best = std::max(best, rate);
        if (!ok) break;
      }
    }
    fmt::print("highest sustained rate with p99 send lag < 1 ms: {:.0f} req/s\n\n", best);

    fmt::print("== 2. concurrent open streams (ITL 100 ms, 100 tokens each = ~10 s streams, opened at 5000/s)\n");
    for (int streams : stream_counts) {
      Mock mock({"--ttft-ms", "0", "--itl-ms", "100", "--tokens-before-eos", "100", "--io-threads", "1"});
      const double cpu_mock0 = cpu_seconds(RUSAGE_CHILDREN);
      const Point p = run_point(mock.url(), 5000, streams, 100, 8);
      mock.stop();
      fmt::print("streams requested {}, held at once (max concurrent) {}, completed {}, failed {}\n", streams,
                 p.m.max_concurrent_requests, p.m.completed, p.m.failed);
      for (const auto& [k, v] : p.m.failed_by_kind) fmt::print("  failed {}: {}\n", k, v);
      fmt::print("  ITL median {:.2f} ms, p99 {:.2f} ms; TTFT p99 {:.2f} ms; p99 send lag {:.3f} ms\n", p.m.itl.median_ms,
                 p99(p.m.itl), p99(p.m.ttft), p99(p.m.send_lag));
      fmt::print("  client CPU {:.2f} s for {} tokens = {:.2f} us/token; mock CPU {:.2f} s\n", p.client_cpu_s,
                 p.m.total_output_tokens, 1e6 * p.client_cpu_s / std::max<std::int64_t>(1, p.m.total_output_tokens),
                 cpu_seconds(RUSAGE_CHILDREN) - cpu_mock0);
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "bench_loadgen: {}\n", e.what());
    return 1;
  }
  return 0;
}
