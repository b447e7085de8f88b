// How many concurrent paced streams `qmeter mock-server` holds on this machine, and how
// precisely it keeps their schedule. Starts the mock as a separate process (as the load generator
// uses it), opens N streaming requests from one epoll loop, and reports the peak number of streams
// open at once, chunk lateness against the configured schedule, and the server's CPU use.
//
//   mock_capacity_bench [--streams 10000] [--itl-ms 100] [--ttft-ms 100] [--tokens 40] [--threads 2]
//                       [--request-log PATH]
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "qmeter/core/clock.h"
#include "qmeter/core/open_file_limit.h"
#include "qmeter/core/process.h"

namespace {

using qmeter::Nanos;

struct Stream {
  int fd = -1;
  Nanos sent_ns = 0;
  bool headers = false, done = false, failed = false;
  int token_chunks = 0;
  std::string pending;
};

double cpu_seconds_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(in)), {});
  auto close_paren = s.rfind(')');
  std::vector<std::string> f;
  std::string cur;
  for (std::size_t i = close_paren + 2; i < s.size(); ++i) {
    if (s[i] == ' ') {
      f.push_back(cur);
      cur.clear();
    } else {
      cur += s[i];
    }
  }
  // fields after ')' start at 3 (state); utime is 14, stime 15 -> indices 11, 12
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  return (std::stod(f.at(11)) + std::stod(f.at(12))) / ticks;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  double pos = p / 100.0 * static_cast<double>(v.size() - 1);
  std::size_t lo = static_cast<std::size_t>(pos);
  std::size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

}  // namespace

int main(int argc, char** argv) {
  int streams = 10000, tokens = 40, threads = 2;
  std::string request_log;  // passed to the mock (--request-log) for a server-side view
  double itl_ms = 100, ttft_ms = 100;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--streams") streams = std::stoi(argv[i + 1]);
    else if (a == "--itl-ms") itl_ms = std::stod(argv[i + 1]);
    else if (a == "--ttft-ms") ttft_ms = std::stod(argv[i + 1]);
    else if (a == "--tokens") tokens = std::stoi(argv[i + 1]);
    else if (a == "--threads") threads = std::stoi(argv[i + 1]);
    else if (a == "--request-log") request_log = argv[i + 1];
    else {
      std::fprintf(stderr, "unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  const std::uint64_t open_files = qmeter::raise_open_file_limit();
  if (open_files < static_cast<std::uint64_t>(streams) + 64) {
    std::fprintf(stderr, "open-file limit %llu is below %d streams\n", static_cast<unsigned long long>(open_files), streams);
    return 2;
  }

  const std::string out_path = "/tmp/qmeter_mock_capacity_" + std::to_string(getpid()) + ".txt";
  qmeter::SpawnOptions opts;
  opts.argv = {QMETER_BIN_PATH, "mock-server", "--port", "0", "--ttft-ms", std::to_string(ttft_ms), "--itl-ms",
               std::to_string(itl_ms), "--io-threads", std::to_string(threads)};
  if (!request_log.empty()) {
    opts.argv.push_back("--request-log");
    opts.argv.push_back(request_log);
  }
  opts.log_path = out_path;
  qmeter::ChildProcess server = qmeter::ChildProcess::spawn(opts);
  std::regex ready(R"(listening on http://127\.0\.0\.1:(\d+))");
  std::smatch m;
  int port = 0;
  for (int tries = 0; tries < 2000 && port == 0; ++tries) {
    std::ifstream in(out_path);
    std::string text((std::istreambuf_iterator<char>(in)), {});
    if (std::regex_search(text, m, ready)) port = std::stoi(m[1]);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (port == 0) {
    std::fprintf(stderr, "mock-server did not start\n");
    return 1;
  }

  const std::string body = R"({"model":"m","prompt":"p","max_tokens":)" + std::to_string(tokens) +
                           R"(,"stream":true,"ignore_eos":true})";
  const std::string request = "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                              "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  int ep = epoll_create1(0);
  std::vector<Stream> s(static_cast<std::size_t>(streams));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

  const double server_cpu_start = cpu_seconds_of(server.pid());
  rusage ru0{};
  getrusage(RUSAGE_SELF, &ru0);
  const Nanos t_start = qmeter::steady_now_ns();
  // Connect in blocking mode (loopback connects complete at once), in batches so the listen
  // backlog never overflows, then switch to non-blocking for the event loop.
  int opened = 0, open_now = 0, peak_open = 0, finished = 0, failed = 0;
  std::vector<double> lateness_ms;
  lateness_ms.reserve(static_cast<std::size_t>(streams) * static_cast<std::size_t>(tokens));
  std::vector<epoll_event> events(4096);
  char buf[65536];
  while (finished + failed < streams) {
    // open up to 1000 more connections per loop turn
    for (int k = 0; k < 1000 && opened < streams; ++k, ++opened) {
      Stream& st = s[static_cast<std::size_t>(opened)];
      st.fd = socket(AF_INET, SOCK_STREAM, 0);
      int one = 1;
      setsockopt(st.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      if (st.fd < 0 || connect(st.fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
        st.failed = true;
        ++failed;
        continue;
      }
      fcntl(st.fd, F_SETFL, fcntl(st.fd, F_GETFL) | O_NONBLOCK);
      st.sent_ns = qmeter::steady_now_ns();
      if (send(st.fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
        st.failed = true;
        ++failed;
        continue;
      }
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u32 = static_cast<uint32_t>(opened);
      epoll_ctl(ep, EPOLL_CTL_ADD, st.fd, &ev);
    }
    int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), opened < streams ? 0 : 200);
    const Nanos now = qmeter::steady_now_ns();
    for (int i = 0; i < n; ++i) {
      Stream& st = s[events[static_cast<std::size_t>(i)].data.u32];
      ssize_t r = recv(st.fd, buf, sizeof(buf), 0);
      if (r <= 0) {
        if (r < 0 && errno == EAGAIN) continue;
        if (!st.done) {
          st.failed = true;
          ++failed;
          if (st.headers) --open_now;
        }
        epoll_ctl(ep, EPOLL_CTL_DEL, st.fd, nullptr);
        close(st.fd);
        continue;
      }
      st.pending.append(buf, static_cast<std::size_t>(r));
      if (!st.headers) {
        auto h = st.pending.find("\r\n\r\n");
        if (h == std::string::npos) continue;
        st.headers = true;
        peak_open = std::max(peak_open, ++open_now);
        st.pending.erase(0, h + 4);
      }
      std::size_t pos;
      while ((pos = st.pending.find("\n\n")) != std::string::npos) {
        const bool done = st.pending.compare(0, pos, "[DONE]") == 0 ||
                          st.pending.substr(0, pos).find("[DONE]") != std::string::npos;
        st.pending.erase(0, pos + 2);
        if (done) {
          st.done = true;
          ++finished;
          --open_now;
          epoll_ctl(ep, EPOLL_CTL_DEL, st.fd, nullptr);
          close(st.fd);
          break;
        }
        const Nanos due = st.sent_ns + qmeter::ms_to_ns(ttft_ms + itl_ms * st.token_chunks);
        lateness_ms.push_back(qmeter::ns_to_ms(now - due));
        ++st.token_chunks;
      }
    }
  }
  const Nanos t_end = qmeter::steady_now_ns();
  const double server_cpu = cpu_seconds_of(server.pid()) - server_cpu_start;
  rusage ru1{};
  getrusage(RUSAGE_SELF, &ru1);
  auto tv = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  const double client_cpu = tv(ru1.ru_utime) - tv(ru0.ru_utime) + tv(ru1.ru_stime) - tv(ru0.ru_stime);
  const double wall = qmeter::ns_to_s(t_end - t_start);
  server.stop(10);

  std::printf("mock-server capacity: %d streams requested, ITL %.0f ms, TTFT %.0f ms, %d tokens each, %d io threads\n",
              streams, itl_ms, ttft_ms, tokens, threads);
  std::printf("  completed streams           %d (failed %d)\n", finished, failed);
  std::printf("  peak concurrent open streams %d\n", peak_open);
  std::printf("  token chunks received        %zu (%.0f /s over %.1f s)\n", lateness_ms.size(),
              static_cast<double>(lateness_ms.size()) / wall, wall);
  std::printf("  chunk lateness vs schedule   p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", percentile(lateness_ms, 50),
              percentile(lateness_ms, 99), percentile(lateness_ms, 100));
  std::printf("  server CPU                   %.2f s (%.0f%% of one core), %.2f us per chunk\n", server_cpu,
              100.0 * server_cpu / wall, 1e6 * server_cpu / static_cast<double>(std::max<std::size_t>(1, lateness_ms.size())));
  std::printf("  bench client CPU             %.2f s\n", client_cpu);
  return finished == streams ? 0 : 1;
}
