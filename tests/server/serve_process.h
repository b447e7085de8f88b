#pragma once
// Helpers of the tests that run the `qmeter serve` binary: one blocking HTTP request (libcurl's
// easy interface) and a server on a free port, waited for until /health answers.
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "qmeter/backend/backend.h"
#include "qmeter/core/clock.h"
#include "qmeter/core/process.h"
#include "test_support.h"

namespace qmeter::testing {

// POST `body` as JSON to `url` (GET when `post` is false); returns (status, body), status 0 on
// failure. An empty body may be posted (bad-request tests do).
inline std::pair<long, std::string> http_fetch(const std::string& url, const std::string& body, bool post) {
  CURL* c = curl_easy_init();
  std::string out;
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_slist* h = curl_slist_append(nullptr, "Content-Type: application/json");
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  if (post) curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, +[](char* p, size_t s, size_t n, void* o) {
    static_cast<std::string*>(o)->append(p, s * n);
    return s * n;
  });
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
  long code = 0;
  if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
  return {code, out};
}

// GET `url`, or POST when a body is given.
inline std::pair<long, std::string> http_fetch(const std::string& url, const std::string& body = "") {
  return http_fetch(url, body, !body.empty());
}

// POSTs `body` to /v1/completions on 127.0.0.1:`port` over a raw socket and returns the socket
// once the reply has started (-1 on failure), so a test can close it mid-stream: a client gone.
inline int open_completion_stream(int port, const std::string& body) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const std::string req = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
                          std::to_string(body.size()) + "\r\n\r\n" + body;
  char buf[512];
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size()) || read(fd, buf, sizeof buf) <= 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  return fd;
}

// The value of the Prometheus line "NAME{...} VALUE" in a /metrics text, or -1 when absent.
inline double metric_value(const std::string& text, const std::string& name) {
  const auto pos = text.find("\n" + name + "{");
  if (pos == std::string::npos) return -1;
  return std::stod(text.substr(text.find("} ", pos) + 2));
}

// Starts `qmeter serve --port P FLAGS...` logging to DIR/serve.log; waits (up to 120 s) for
// /health. `base` receives http://127.0.0.1:P.
inline ChildProcess spawn_serve(const std::string& dir, const std::vector<std::string>& flags, std::string& base) {
  const std::string port = std::to_string(backend::pick_free_port());
  base = "http://127.0.0.1:" + port;
  SpawnOptions so;
  so.argv = {qmeter_bin(), "serve", "--port", port};
  so.argv.insert(so.argv.end(), flags.begin(), flags.end());
  so.log_path = dir + "/serve.log";
  auto p = ChildProcess::spawn(so);
  const Nanos deadline = steady_now_ns() + s_to_ns(120);
  while (steady_now_ns() < deadline && http_fetch(base + "/health").first != 200)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  return p;
}

}  // namespace qmeter::testing
