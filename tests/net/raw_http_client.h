#pragma once
// A deliberately small HTTP/1.1 client on raw sockets for the server tests: it sees exactly what
// went over the wire (every chunk of a chunked body with its arrival time, a connection dropped
// mid-body, a stall), which a full client library would hide. Independent of qmeter's own client.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "qmeter/core/clock.h"

namespace qmeter::testing {

struct ReceivedChunk {
  Nanos t_ns = 0;  // when the read that completed this chunk returned
  std::string data;
};

struct RawResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  Nanos headers_ns = 0;
  bool chunked = false;
  std::vector<ReceivedChunk> chunks;  // chunked bodies only
  std::string body;                   // whole body (chunks concatenated)
  bool complete = false;  // terminating chunk / Content-Length reached / EOF for close-delimited
  bool peer_closed = false;
  bool timed_out = false;

  std::string header(const std::string& name) const {
    for (const auto& [k, v] : headers) {
      if (strcasecmp(k.c_str(), name.c_str()) == 0) return v;
    }
    return {};
  }
};

// Incremental parser of one response: feed bytes as they arrive.
class ResponseParser {
 public:
  // Consumes what it can from `buf` (leaves the bytes of a following response there).
  void feed(std::string& buf, Nanos now) {
    for (;;) {
      if (state_ == State::kHeaders) {
        auto end = buf.find("\r\n\r\n");
        if (end == std::string::npos) return;
        std::string head = buf.substr(0, end);
        buf.erase(0, end + 4);
        parse_head(head);
        r_.headers_ns = now;
        if (r_.status == 100) {  // interim reply: the real one follows
          r_ = RawResponse{};
          continue;
        }
        std::string te = r_.header("Transfer-Encoding");
        std::string cl = r_.header("Content-Length");
        if (te.find("chunked") != std::string::npos) {
          r_.chunked = true;
          state_ = State::kChunkSize;
        } else if (!cl.empty()) {
          remaining_ = std::stoul(cl);
          state_ = State::kFixedBody;
        } else {
          state_ = State::kUntilClose;
        }
      } else if (state_ == State::kChunkSize) {
        auto eol = buf.find("\r\n");
        if (eol == std::string::npos) return;
        remaining_ = std::stoul(buf.substr(0, eol), nullptr, 16);
        buf.erase(0, eol + 2);
        state_ = remaining_ == 0 ? State::kTrailer : State::kChunkData;
      } else if (state_ == State::kChunkData) {
        if (buf.size() < remaining_ + 2) return;
        ReceivedChunk c{now, buf.substr(0, remaining_)};
        if (buf.compare(remaining_, 2, "\r\n") != 0) throw std::runtime_error("chunk not followed by CRLF");
        buf.erase(0, remaining_ + 2);
        r_.body += c.data;
        r_.chunks.push_back(std::move(c));
        state_ = State::kChunkSize;
      } else if (state_ == State::kTrailer) {
        if (buf.size() < 2) return;
        if (buf.compare(0, 2, "\r\n") != 0) throw std::runtime_error("trailers are not expected");
        buf.erase(0, 2);
        r_.complete = true;
        state_ = State::kDone;
      } else if (state_ == State::kFixedBody) {
        std::size_t take = std::min(remaining_, buf.size());
        r_.body.append(buf, 0, take);
        buf.erase(0, take);
        remaining_ -= take;
        if (remaining_ > 0) return;
        r_.complete = true;
        state_ = State::kDone;
      } else if (state_ == State::kUntilClose) {
        r_.body += buf;
        buf.clear();
        return;
      } else {
        return;
      }
    }
  }
  void peer_closed() {
    r_.peer_closed = true;
    if (state_ == State::kUntilClose) {
      r_.complete = true;
      state_ = State::kDone;
    }
  }
  bool done() const { return state_ == State::kDone; }
  bool got_headers() const { return state_ != State::kHeaders; }
  RawResponse& response() { return r_; }

 private:
  enum class State { kHeaders, kChunkSize, kChunkData, kTrailer, kFixedBody, kUntilClose, kDone };
  void parse_head(const std::string& head) {
    std::size_t pos = head.find("\r\n");
    std::string status_line = head.substr(0, pos);
    if (status_line.rfind("HTTP/1.", 0) != 0) throw std::runtime_error("bad status line: " + status_line);
    r_.status = std::stoi(status_line.substr(9, 3));
    while (pos != std::string::npos) {
      std::size_t start = pos + 2;
      pos = head.find("\r\n", start);
      std::string line = head.substr(start, pos == std::string::npos ? std::string::npos : pos - start);
      auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      r_.headers.emplace_back(line.substr(0, colon), value);
    }
  }
  State state_ = State::kHeaders;
  std::size_t remaining_ = 0;
  RawResponse r_;
};

class RawHttpConnection {
 public:
  explicit RawHttpConnection(int port, bool nonblocking = false) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      int e = errno;
      ::close(fd_);
      throw std::runtime_error(std::string("connect: ") + std::strerror(e));
    }
    if (nonblocking) ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
  }
  ~RawHttpConnection() { close(); }
  RawHttpConnection(const RawHttpConnection&) = delete;
  RawHttpConnection& operator=(const RawHttpConnection&) = delete;

  int fd() const { return fd_; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  void send_raw(const std::string& bytes) {
    std::size_t off = 0;
    while (off < bytes.size()) {
      ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        pollfd p{fd_, POLLOUT, 0};
        ::poll(&p, 1, 1000);
        continue;
      }
      if (n <= 0) throw std::runtime_error(std::string("send: ") + std::strerror(errno));
      off += static_cast<std::size_t>(n);
    }
  }

  static std::string request_text(const std::string& method, const std::string& target, const std::string& body = "",
                                  const std::string& extra_headers = "") {
    std::string r = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    if (!body.empty() || method == "POST") {
      r += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
    }
    r += extra_headers;
    r += "\r\n";
    r += body;
    return r;
  }
  void send_request(const std::string& method, const std::string& target, const std::string& body = "",
                    const std::string& extra_headers = "") {
    send_raw(request_text(method, target, body, extra_headers));
  }

  // Reads one whole response (or until the peer closes / the timeout passes).
  RawResponse read_response(Nanos timeout_ns = s_to_ns(10)) {
    ResponseParser parser;
    parser.feed(buf_, steady_now_ns());
    const Nanos deadline = steady_now_ns() + timeout_ns;
    while (!parser.done()) {
      int r = read_some(deadline);
      if (r == 0) {
        parser.response().timed_out = true;
        break;
      }
      if (r < 0) {
        parser.peer_closed();
        break;
      }
      parser.feed(buf_, steady_now_ns());
    }
    return std::move(parser.response());
  }

  // True when the server closed the connection within the timeout (bytes read meanwhile are kept).
  bool wait_peer_closed(Nanos timeout_ns) {
    const Nanos deadline = steady_now_ns() + timeout_ns;
    for (;;) {
      int r = read_some(deadline);
      if (r < 0) return true;
      if (r == 0) return false;
    }
  }

  // 1: got bytes into the buffer; 0: timed out; -1: peer closed or error.
  int read_some(Nanos deadline) {
    for (;;) {
      Nanos left = deadline - steady_now_ns();
      if (left <= 0) return 0;
      pollfd p{fd_, POLLIN, 0};
      int pr = ::poll(&p, 1, static_cast<int>(left / 1000000 + 1));
      if (pr == 0) continue;
      if (pr < 0 && errno == EINTR) continue;
      char tmp[16384];
      ssize_t n = ::recv(fd_, tmp, sizeof(tmp), 0);
      if (n > 0) {
        buf_.append(tmp, static_cast<std::size_t>(n));
        return 1;
      }
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      return -1;
    }
  }
  std::string& buffer() { return buf_; }

 private:
  int fd_ = -1;
  std::string buf_;
};

// The `data:` payloads of an SSE body, in order (events end with a blank line).
inline std::vector<std::string> sse_data_payloads(const std::string& body) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < body.size()) {
    std::size_t eol = body.find('\n', pos);
    std::string line = body.substr(pos, eol == std::string::npos ? std::string::npos : eol - pos);
    pos = eol == std::string::npos ? body.size() : eol + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.rfind("data:", 0) == 0) {
      std::string v = line.substr(5);
      if (!v.empty() && v.front() == ' ') v.erase(0, 1);
      out.push_back(v);
    }
  }
  return out;
}

}  // namespace qmeter::testing
