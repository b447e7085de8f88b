#pragma once
// A tiny HTTP/1.1 server on loopback for tests that need exact control of the bytes on the wire:
// it serves ONE connection at a time (so it is also a server slower than any arrival rate), hands
// the raw request to a handler that writes the reply in chosen pieces, then closes the connection.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace qmeter::testing {

class ScriptedConnection {
 public:
  explicit ScriptedConnection(int fd) : fd_(fd) {}
  void write(const std::string& bytes) {
    std::size_t off = 0;
    while (off < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return;  // the client went away
      off += static_cast<std::size_t>(n);
    }
  }
  void sleep_ms(double ms) { std::this_thread::sleep_for(std::chrono::microseconds(static_cast<long>(ms * 1000))); }
  // Status line + headers of a close-delimited SSE reply.
  void sse_headers(int status = 200) {
    write("HTTP/1.1 " + std::to_string(status) +
          " OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n");
  }

 private:
  int fd_;
};

class ScriptedServer {
 public:
  using Handler = std::function<void(const std::string& request, ScriptedConnection& conn)>;

  explicit ScriptedServer(Handler handler) : handler_(std::move(handler)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::listen(listen_fd_, 1024);
    socklen_t len = sizeof addr;
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~ScriptedServer() {
    stop_ = true;
    thread_.join();
    ::close(listen_fd_);
  }

  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<std::string> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  static std::string read_request(int fd) {
    std::string req;
    char buf[4096];
    std::size_t body_needed = std::string::npos;
    while (true) {
      const auto head_end = req.find("\r\n\r\n");
      if (head_end != std::string::npos && body_needed == std::string::npos) {
        std::size_t content_length = 0;
        std::string lower = req.substr(0, head_end);
        for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (auto p = lower.find("content-length:"); p != std::string::npos) content_length = std::stoul(lower.substr(p + 15));
        body_needed = head_end + 4 + content_length;
      }
      if (body_needed != std::string::npos && req.size() >= body_needed) return req;
      pollfd pfd{fd, POLLIN, 0};
      if (::poll(&pfd, 1, 2000) <= 0) return req;
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return req;
      req.append(buf, static_cast<std::size_t>(n));
    }
  }

  void serve() {
    while (!stop_) {
      pollfd pfd{listen_fd_, POLLIN, 0};
      if (::poll(&pfd, 1, 20) <= 0) continue;
      const int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) continue;
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      const std::string req = read_request(fd);
      {
        std::lock_guard<std::mutex> lock(mu_);
        requests_.push_back(req);
      }
      ScriptedConnection conn(fd);
      if (!req.empty()) handler_(req, conn);
      ::shutdown(fd, SHUT_WR);
      ::close(fd);
    }
  }

  Handler handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> requests_;
};

}  // namespace qmeter::testing
