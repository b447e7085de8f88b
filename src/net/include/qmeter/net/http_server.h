#pragma once
// An event-driven HTTP/1.1 server: a few io threads, no thread per connection, so one process can
// hold tens of thousands of open streaming responses (SSE over chunked transfer encoding).
// Used by `qmeter mock-server` and `qmeter serve`. Boost.Asio/Beast stay inside the .cpp.
//
// A handler is called on an io thread for every complete request. It answers through the
// ResponseWriter it is given, at once or later and from any thread:
//   - respond(HttpResponse)            one plain reply (Content-Length);
//   - start_stream() + write_chunk()*  a chunked reply, ended by end() or cut by abort().
// Timers (run_at / run_after) run callbacks on the connection's io thread, so a handler can pace a
// stream with no thread of its own.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "qmeter/core/clock.h"

namespace qmeter::net {

struct HttpHeader {
  std::string name;
  std::string value;
};

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // as sent: "/v1/models?x=1"
  std::string path;    // target before '?'
  std::string query;   // target after '?', not decoded ("" when none)
  std::vector<HttpHeader> headers;
  std::string body;
  int version = 11;          // 10 or 11
  bool keep_alive = true;    // what the request asked for
  Nanos arrival_ns = 0;      // steady clock when the whole request (headers + body) had been read
  std::uint64_t connection_id = 0;
  std::uint64_t sequence_on_connection = 0;  // 0 for a connection's first request

  // The first header of that name (case-insensitive), or "" when absent.
  std::string_view header(std::string_view name) const;
  bool has_header(std::string_view name) const;
  // The percent-decoded value of a query parameter, or nullopt when absent.
  std::optional<std::string> query_param(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<HttpHeader> headers;  // extra headers (Content-Length/Type are added by the server)
};

// The reply side of one request. Shared: the handler may keep it, copy it to other threads and use
// it from any of them; every call is thread-safe and cheap (calls from other threads are posted to
// the connection's io thread and done there in call order).
//
// If the last reference is dropped before a response was sent, the server replies 500; if it is
// dropped mid-stream, the connection is aborted (the client must not mistake a cut stream for a
// complete one).
class ResponseWriter {
 public:
  virtual ~ResponseWriter() = default;

  virtual const HttpRequest& request() const = 0;

  // A whole reply. Ignored when a response was already started or the connection is closed.
  virtual void respond(HttpResponse response) = 0;
  // Sends the status line and headers of a chunked reply (Transfer-Encoding: chunked; for an
  // HTTP/1.0 client the body is close-delimited instead).
  virtual void start_stream(int status = 200, std::string content_type = "text/event-stream",
                            std::vector<HttpHeader> headers = {}) = 0;
  // One chunk of a started stream (empty data is skipped: an empty chunk would end the body).
  // Returns false when nothing more can be written (is_closed()).
  virtual bool write_chunk(std::string data) = 0;
  // Ends the stream with the terminating chunk; the connection then serves its next request.
  virtual void end() = 0;
  // Drops the TCP connection mid-response: the bytes already written still go out, then the
  // connection is closed with no terminating chunk (the client sees an incomplete body).
  virtual void abort() = 0;

  // True once nothing more may be written: the response was finished (respond / end / abort) or
  // the connection closed (client gone, write error, server stop).
  virtual bool is_closed() const = 0;
  // True when the connection closed before this response was completely written.
  virtual bool disconnected() const = 0;
  // `callback` runs once on the io thread when the connection closes before this response was
  // completely written: the client went away, abort(), a network error or the server stopping.
  // It does not run when the response completes. Registered after such a close: it runs at once.
  virtual void on_close(std::function<void()> callback) = 0;

  // Runs `fn` on this connection's io thread at steady-clock time `deadline_ns` (or after
  // `delay_ns`). Timers of a connection are cancelled when it closes: `fn` then never runs
  // (on_close is the place for clean-up).
  virtual void run_at(Nanos deadline_ns, std::function<void()> fn) = 0;
  virtual void run_after(Nanos delay_ns, std::function<void()> fn) = 0;
  // Runs `fn` on this connection's io thread as soon as possible.
  virtual void post(std::function<void()> fn) = 0;
  // True when the caller is this connection's io thread.
  virtual bool on_io_thread() const = 0;
};

using ResponseWriterPtr = std::shared_ptr<ResponseWriter>;
using HttpHandler = std::function<void(const HttpRequest& request, const ResponseWriterPtr& writer)>;

// What a client may hold of a server, so that hostile or broken clients cannot stall it.
struct ConnectionLimits {
  // A request (headers and body) must arrive whole within this long of the moment the server
  // starts waiting for it, keep-alive idleness included; otherwise the connection closes (with
  // a 408 when part of a request came), so a client trickling bytes holds nothing for long.
  // 0 = no limit.
  double request_timeout_s = 60;
  // A response the client does not read for this long closes the connection (and so ends its
  // stream: qmeter serve then frees the request's KV cache). 0 = no limit.
  double write_stall_timeout_s = 30;
  // Connections open beyond this many are answered 503 and closed after one request, except
  // GET /health, so a flood cannot hide the server's health from its supervisor. 0 = no limit.
  std::size_t max_connections = 0;
};

struct HttpServerOptions {
  std::string host = "127.0.0.1";  // address or name to bind ("0.0.0.0", "::", "localhost")
  int port = 0;                    // 0: the kernel picks a free port; see HttpServer::port()
  int io_threads = 1;              // each owns an event loop; connections are spread round-robin
  int listen_backlog = 65535;      // the kernel caps it at net.core.somaxconn
  std::size_t max_body_bytes = 64u << 20;  // larger request bodies get 413
  ConnectionLimits limits;
};

class HttpServer {
 public:
  HttpServer(HttpServerOptions options, HttpHandler handler);
  ~HttpServer();  // stop(0)
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Raises the open-file limit, binds, listens and starts the io threads. Throws qmeter::Error
  // naming the address when it cannot bind.
  void start();
  int port() const;  // the bound port (the real one when options.port was 0)
  const std::string& host() const;

  // Graceful stop: stops accepting, closes idle keep-alive connections, lets responses in
  // progress finish for up to `grace_ns`, then closes every connection (on_close callbacks run)
  // and joins the io threads. Idempotent; writers kept by handlers afterwards do nothing.
  void stop(Nanos grace_ns = 0);

  std::uint64_t open_connections() const;   // currently open TCP connections
  std::uint64_t active_responses() const;   // requests whose response is not completely written
  std::uint64_t requests_handled() const;   // requests passed to the handler so far

  struct Impl;  // opaque; public only so the implementation's helpers can name it

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace qmeter::net
