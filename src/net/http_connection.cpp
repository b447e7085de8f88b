// HTTP/1.1 server on Boost.Asio + Beast. Design notes:
//  - one io_context per io thread (no strands needed): a connection, its timers and its
//    ResponseWriter work all run on the thread that owns the connection;
//  - Beast parses requests; responses are framed here (status line, headers, chunked encoding) so
//    a streamed chunk costs one small string and one gather write;
//  - while a response is in progress a 'watch' read stays posted on the socket: it sees the client
//    going away (EOF / reset) at once, which on_close callbacks need (qmeter serve frees the KV
//    cache of an abandoned request), and it buffers pipelined bytes of the next request.
#include "http_server_internal.h"

#include <fmt/core.h>
#include <sys/socket.h>

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <charconv>
#include <cstdio>
#include <list>

#include "net_text.h"
#include "qmeter/core/error.h"

namespace qmeter::net {

namespace beast = boost::beast;
namespace http = beast::http;

namespace {

constexpr std::size_t kMaxBufferedPipelineBytes = 64 * 1024;
constexpr std::size_t kWatchReadBytes = 4096;
// A connection over the limit only gets to ask for /health: a short time to send it.
constexpr double kOverLimitRequestTimeoutS = 5;

std::string_view to_std(boost::beast::string_view s) { return {s.data(), s.size()}; }

// A Beast parse error (as opposed to the peer closing or a socket error).
bool is_http_parse_error(const boost::system::error_code& ec) {
  return ec.category() == http::make_error_code(http::error::end_of_stream).category() &&
         ec != http::error::end_of_stream && ec != http::error::partial_message;
}

}  // namespace

namespace detail {

class Exchange;

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(std::shared_ptr<HttpServer::Impl> server, Worker& worker, Socket socket, std::uint64_t id)
      : server_(std::move(server)), worker_(worker), socket_(std::move(socket)), id_(id) {}
  ~Connection() {
    if (!closed_) {  // only when a loop was stopped with this connection's operations pending
      server_->open_connections.fetch_sub(1);
      worker_.connections.erase(this);
    }
  }

  asio::io_context& ioc() { return worker_.ioc; }
  bool on_thread() { return worker_.ioc.get_executor().running_in_this_thread(); }
  HttpServer::Impl& server() { return *server_; }

  void start(bool over_limit) {
    over_limit_ = over_limit;
    worker_.connections.insert(this);
    read_request();
  }

  // --- called on the io thread by Exchange (gen identifies the request; stale calls are ignored)
  void respond(std::uint64_t gen, HttpResponse r);
  void start_stream(std::uint64_t gen, int status, std::string content_type, std::vector<HttpHeader> headers);
  void write_chunk(std::uint64_t gen, std::string data);
  void end(std::uint64_t gen);
  void abort(std::uint64_t gen) {
    if (gen != gen_ || !exchange_active_ || closed_) return;
    if (writing_ || !pending_.empty()) {
      reply_ = Reply::kAborting;  // what was written still goes out; nothing more is accepted
      return;
    }
    close();
  }
  void add_close_callback(std::uint64_t gen, std::function<void()> cb) {
    if (gen == gen_ && exchange_active_ && !closed_) close_callbacks_.push_back(std::move(cb));
  }
  void handle_released(std::uint64_t gen) {
    if (gen != gen_ || !exchange_active_ || closed_) return;
    if (reply_ == Reply::kNone) {
      respond(gen, HttpResponse{500, "application/json",
                                error_json(500, "the request handler released the request without a response"),
                                {}});
    } else if (reply_ == Reply::kStreaming) {
      close();  // a stream that its producer abandoned must not look complete
    }
  }
  void run_at(Nanos deadline_ns, std::function<void()> fn);

  // --- server stop
  void begin_shutdown() {
    if (!exchange_active_) {
      close();
    } else {
      close_after_response_ = true;
    }
  }
  void close();

 private:
  enum class Reply { kNone, kStreaming, kDone, kAborting };
  struct PendingTimer {
    explicit PendingTimer(asio::io_context& ioc, std::function<void()> f) : timer(ioc), fn(std::move(f)) {}
    Timer timer;
    std::function<void()> fn;
  };

  void read_request();
  void on_header(const boost::system::error_code& ec);
  void on_body(const boost::system::error_code& ec);
  void on_read_error(const boost::system::error_code& ec);
  void dispatch_request(Nanos arrival_ns);
  void watch();
  void on_watch(const boost::system::error_code& ec, std::size_t n);
  void queue(std::string bytes);
  void flush();
  void on_written(const boost::system::error_code& ec);
  void maybe_complete();
  void on_response_complete();
  void reply_error_and_close(int status, std::string_view message);
  void arm_deadline(std::optional<Timer>& timer, double timeout_s, std::uint64_t& epoch,
                    void (Connection::*on_expiry)(std::uint64_t));
  double request_timeout_s() const;
  void on_request_deadline(std::uint64_t epoch);
  void on_write_deadline(std::uint64_t epoch);
  std::string head(int status, std::string_view content_type, const std::vector<HttpHeader>& extra);

  std::shared_ptr<HttpServer::Impl> server_;
  Worker& worker_;
  Socket socket_;
  std::uint64_t id_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;

  std::uint64_t gen_ = 0;  // number of requests handed to the handler so far
  Reply reply_ = Reply::kNone;
  bool exchange_active_ = false;  // the current response is not completely written
  bool chunked_ = true;           // false for an HTTP/1.0 client (close-delimited stream)
  bool head_request_ = false;
  bool close_after_response_ = false;
  bool closed_ = false;
  bool watching_ = false;
  bool reading_request_ = false;
  bool writing_ = false;
  bool over_limit_ = false;        // opened beyond max_connections: /health only, then closed
  std::uint64_t read_epoch_ = 0;   // which wait for a request a deadline belongs to
  std::uint64_t write_epoch_ = 0;  // which asynchronous write a stall deadline belongs to
  std::optional<Timer> read_deadline_, write_deadline_;
  std::vector<std::string> pending_;
  std::vector<std::string> inflight_;
  std::vector<asio::const_buffer> buffers_;
  std::vector<std::function<void()>> close_callbacks_;
  std::weak_ptr<Exchange> exchange_;
  std::list<PendingTimer> timers_;       // armed
  std::list<PendingTimer> idle_timers_;  // fired, kept for reuse

  friend class Exchange;
};

// The ResponseWriter handed to handlers: a thin, thread-safe handle onto its connection.
class Exchange final : public ResponseWriter, public std::enable_shared_from_this<Exchange> {
 public:
  Exchange(std::shared_ptr<Connection> conn, std::uint64_t gen, HttpRequest request)
      : conn_(std::move(conn)), gen_(gen), request_(std::move(request)) {}
  ~Exchange() override {
    if (conn_->server().stopped.load()) return;
    asio::post(conn_->ioc(), [c = conn_, g = gen_] { c->handle_released(g); });
  }

  const HttpRequest& request() const override { return request_; }

  void respond(HttpResponse response) override {
    if (finished_.exchange(true)) return;
    call([r = std::move(response)](Connection& c, std::uint64_t g) mutable { c.respond(g, std::move(r)); });
  }
  void start_stream(int status, std::string content_type, std::vector<HttpHeader> headers) override {
    call([status, ct = std::move(content_type), h = std::move(headers)](Connection& c, std::uint64_t g) mutable {
      c.start_stream(g, status, std::move(ct), std::move(h));
    });
  }
  bool write_chunk(std::string data) override {
    if (is_closed()) return false;
    call([d = std::move(data)](Connection& c, std::uint64_t g) mutable { c.write_chunk(g, std::move(d)); });
    return true;
  }
  void end() override {
    if (finished_.exchange(true)) return;
    call([](Connection& c, std::uint64_t g) { c.end(g); });
  }
  void abort() override {
    finished_.store(true);
    call([](Connection& c, std::uint64_t g) { c.abort(g); });
  }
  bool is_closed() const override { return finished_.load() || disconnected_.load(); }
  bool disconnected() const override { return disconnected_.load(); }
  void on_close(std::function<void()> callback) override {
    auto self = shared_from_this();
    call([self, cb = std::move(callback)](Connection& c, std::uint64_t g) mutable {
      if (self->disconnected_.load()) {
        cb();
      } else {
        c.add_close_callback(g, std::move(cb));
      }
    });
  }
  void run_at(Nanos deadline_ns, std::function<void()> fn) override {
    call([deadline_ns, f = std::move(fn)](Connection& c, std::uint64_t) mutable { c.run_at(deadline_ns, std::move(f)); });
  }
  void run_after(Nanos delay_ns, std::function<void()> fn) override { run_at(steady_now_ns() + delay_ns, std::move(fn)); }
  void post(std::function<void()> fn) override {
    if (conn_->server().stopped.load()) return;
    asio::post(conn_->ioc(), [c = conn_, f = std::move(fn)] {
      try {
        f();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "qmeter net: posted callback threw: %s\n", e.what());
      }
    });
  }
  bool on_io_thread() const override { return conn_->on_thread(); }

  void mark_disconnected() { disconnected_.store(true); }

 private:
  // Runs f on the connection's io thread: inline when already there, else posted (in order).
  template <class F>
  void call(F&& f) {
    if (conn_->server().stopped.load()) return;
    if (conn_->on_thread()) {
      f(*conn_, gen_);
    } else {
      asio::post(conn_->ioc(), [c = conn_, g = gen_, fn = std::forward<F>(f)]() mutable { fn(*c, g); });
    }
  }

  std::shared_ptr<Connection> conn_;
  std::uint64_t gen_;
  HttpRequest request_;
  std::atomic<bool> finished_{false};
  std::atomic<bool> disconnected_{false};
};

// --- Connection: reading requests

void Connection::read_request() {
  if (closed_) return;
  reading_request_ = true;
  arm_deadline(read_deadline_, request_timeout_s(), read_epoch_, &Connection::on_request_deadline);
  parser_.emplace();
  parser_->body_limit(server_->options.max_body_bytes);
  parser_->header_limit(64 * 1024);
  http::async_read_header(socket_, buffer_, *parser_,
                          [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
                            self->on_header(ec);
                          });
}

void Connection::on_header(const boost::system::error_code& ec) {
  if (closed_) return;
  if (ec) {
    reading_request_ = false;
    on_read_error(ec);
    return;
  }
  // curl and others wait (up to a second) for this before sending a large body.
  if (iequals(to_std(parser_->get()[http::field::expect]), "100-continue")) queue("HTTP/1.1 100 Continue\r\n\r\n");
  http::async_read(socket_, buffer_, *parser_,
                   [self = shared_from_this()](const boost::system::error_code& e, std::size_t) { self->on_body(e); });
}

// One timer per connection and purpose, re-armed per request or write (a keep-alive connection
// serving thousands of requests must not pile up thousands of pending timers). Re-arming cancels
// the previous wait; the epoch tells a stale expiry from a live one.
void Connection::arm_deadline(std::optional<Timer>& timer, double timeout_s, std::uint64_t& epoch,
                              void (Connection::*on_expiry)(std::uint64_t)) {
  if (timeout_s <= 0 || closed_) return;
  if (!timer) timer.emplace(worker_.ioc);
  const std::uint64_t e = ++epoch;
  timer->expires_after(std::chrono::nanoseconds(s_to_ns(timeout_s)));
  timer->async_wait([self = shared_from_this(), e, on_expiry](const boost::system::error_code& ec) {
    if (!ec && !self->closed_) ((*self).*on_expiry)(e);
  });
}

double Connection::request_timeout_s() const {
  const double t = server_->options.limits.request_timeout_s;
  if (!over_limit_) return t;
  return t > 0 ? std::min(t, kOverLimitRequestTimeoutS) : kOverLimitRequestTimeoutS;
}

void Connection::on_request_deadline(std::uint64_t epoch) {
  // Waiting for a request means no response in progress (the wait may be a watch read, idle
  // on a keep-alive connection, or the parser's read of a request begun).
  if (exchange_active_ || epoch != read_epoch_) return;
  // Part of a request came: say why (best effort: the client may not read), then close; the
  // parser holds half a request, so the read cannot go on.
  if (buffer_.size() > 0 || (parser_ && parser_->got_some())) {
    const std::string body = error_json(408, fmt::format("the request did not arrive within {:g} s", request_timeout_s()));
    const std::string out = status_line(408) + "Content-Type: application/json\r\nConnection: close\r\n" +
                            fmt::format("Content-Length: {}\r\n\r\n", body.size()) + body;
    (void)!::send(socket_.native_handle(), out.data(), out.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  }
  close();
}

void Connection::on_write_deadline(std::uint64_t epoch) {
  // The same write still waits for the client: it stopped reading. Closing ends the stream
  // (on_close callbacks free what the request held, e.g. its KV cache).
  if (writing_ && epoch == write_epoch_) close();
}

void Connection::on_body(const boost::system::error_code& ec) {
  const Nanos arrival = steady_now_ns();
  reading_request_ = false;
  if (closed_) return;
  if (ec) {
    on_read_error(ec);
    return;
  }
  dispatch_request(arrival);
}

void Connection::on_read_error(const boost::system::error_code& ec) {
  if (!is_http_parse_error(ec)) {
    close();  // the client closed (or the socket failed)
  } else if (ec == http::error::body_limit) {
    reply_error_and_close(413, fmt::format("request body larger than {} bytes", server_->options.max_body_bytes));
  } else if (ec == http::error::header_limit) {
    reply_error_and_close(431, "request header fields too large");
  } else {
    reply_error_and_close(400, "malformed HTTP request: " + ec.message());
  }
}

void Connection::dispatch_request(Nanos arrival_ns) {
  auto& msg = parser_->get();
  HttpRequest req;
  req.method = std::string(msg.method_string());
  req.target = std::string(msg.target());
  std::size_t q = req.target.find('?');
  req.path = req.target.substr(0, q);
  if (q != std::string::npos) req.query = req.target.substr(q + 1);
  req.headers.reserve(8);
  for (const auto& field : msg) req.headers.push_back({std::string(field.name_string()), std::string(field.value())});
  req.version = static_cast<int>(msg.version());
  req.keep_alive = msg.keep_alive();
  req.body = std::move(msg.body());
  req.arrival_ns = arrival_ns;
  req.connection_id = id_;
  req.sequence_on_connection = gen_;
  parser_.reset();
  if (over_limit_ && !(req.method == "GET" && req.path == "/health")) {
    reply_error_and_close(503, fmt::format("too many connections: the server accepts {} at once; retry later",
                                           server_->options.limits.max_connections));
    return;
  }
  if (over_limit_) close_after_response_ = true;

  ++gen_;
  reply_ = Reply::kNone;
  exchange_active_ = true;
  close_callbacks_.clear();
  chunked_ = req.version >= 11;
  head_request_ = req.method == "HEAD";
  if (!req.keep_alive || server_->stopping.load()) close_after_response_ = true;
  server_->active_responses.fetch_add(1);
  server_->requests_handled.fetch_add(1);

  auto exchange = std::make_shared<Exchange>(shared_from_this(), gen_, std::move(req));
  exchange_ = exchange;
  watch();
  try {
    server_->handler(exchange->request(), exchange);
  } catch (const std::exception& e) {
    respond(gen_, HttpResponse{500, "application/json", error_json(500, e.what()), {}});
  }
}

void Connection::watch() {
  if (watching_ || closed_ || buffer_.size() >= kMaxBufferedPipelineBytes) return;
  watching_ = true;
  socket_.async_read_some(buffer_.prepare(kWatchReadBytes),
                          [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
                            self->on_watch(ec, n);
                          });
}

void Connection::on_watch(const boost::system::error_code& ec, std::size_t n) {
  watching_ = false;
  if (closed_) return;
  if (ec == asio::error::operation_aborted) {  // cancelled to serve a pipelined request
    if (!exchange_active_ && !reading_request_) read_request();
    return;
  }
  if (ec) {
    close();  // the client went away (EOF or reset) or the socket failed
    return;
  }
  buffer_.commit(n);
  if (exchange_active_) {
    watch();
  } else if (!reading_request_) {
    read_request();
  }
}

// --- Connection: writing responses

std::string Connection::head(int status, std::string_view content_type, const std::vector<HttpHeader>& extra) {
  std::string out = status_line(status);
  if (!content_type.empty()) {
    out += "Content-Type: ";
    out += content_type;
    out += "\r\n";
  }
  append_headers(out, extra);
  return out;
}

void Connection::respond(std::uint64_t gen, HttpResponse r) {
  if (gen != gen_ || !exchange_active_ || reply_ != Reply::kNone || closed_) return;
  reply_ = Reply::kDone;
  if (server_->stopping.load()) close_after_response_ = true;
  std::string out = head(r.status, r.content_type, r.headers);
  out += fmt::format("Content-Length: {}\r\n", r.body.size());
  if (close_after_response_) {
    out += "Connection: close\r\n";
  } else if (!chunked_) {
    out += "Connection: keep-alive\r\n";  // HTTP/1.0 client that asked for keep-alive
  }
  out += "\r\n";
  if (!head_request_) out += r.body;
  queue(std::move(out));
}

void Connection::start_stream(std::uint64_t gen, int status, std::string content_type, std::vector<HttpHeader> headers) {
  if (gen != gen_ || !exchange_active_ || reply_ != Reply::kNone || closed_) return;
  reply_ = Reply::kStreaming;
  if (!chunked_) close_after_response_ = true;  // HTTP/1.0: the body ends when the connection does
  std::string out = head(status, content_type, headers);
  out += "Cache-Control: no-cache\r\n";
  if (chunked_) out += "Transfer-Encoding: chunked\r\n";
  if (close_after_response_) out += "Connection: close\r\n";
  out += "\r\n";
  queue(std::move(out));
}

void Connection::write_chunk(std::uint64_t gen, std::string data) {
  if (gen != gen_ || reply_ != Reply::kStreaming || closed_ || data.empty() || head_request_) return;
  if (!chunked_) {
    queue(std::move(data));
    return;
  }
  char size_hex[24];
  auto res = std::to_chars(size_hex, size_hex + sizeof(size_hex), data.size(), 16);
  std::string framed;
  framed.reserve(static_cast<std::size_t>(res.ptr - size_hex) + data.size() + 4);
  framed.append(size_hex, res.ptr);
  framed += "\r\n";
  framed += data;
  framed += "\r\n";
  queue(std::move(framed));
}

void Connection::end(std::uint64_t gen) {
  if (gen != gen_ || reply_ != Reply::kStreaming || closed_) return;
  reply_ = Reply::kDone;
  if (chunked_ && !head_request_) {
    queue("0\r\n\r\n");
  } else if (!writing_ && pending_.empty()) {
    asio::post(worker_.ioc, [self = shared_from_this()] { self->maybe_complete(); });
  }
}

void Connection::queue(std::string bytes) {
  if (!writing_ && pending_.empty() && !closed_) {
    // Fast path (most SSE chunks): nothing is in flight, so try the socket directly; this skips
    // an asynchronous operation and its completion per chunk. What does not fit goes the
    // asynchronous way. Completion and errors are handled from a posted handler, never inside
    // the caller's write_chunk/end (a handler must not be re-entered from its own call).
    const ssize_t n = ::send(socket_.native_handle(), bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n == static_cast<ssize_t>(bytes.size())) {
      if (reply_ == Reply::kDone) asio::post(worker_.ioc, [self = shared_from_this()] { self->maybe_complete(); });
      return;
    }
    if (n > 0) {
      bytes.erase(0, static_cast<std::size_t>(n));
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      asio::post(worker_.ioc, [self = shared_from_this()] { self->close(); });
      return;
    }
  }
  pending_.push_back(std::move(bytes));
  if (!writing_) flush();
}

void Connection::flush() {
  if (pending_.empty() || closed_) return;
  inflight_.swap(pending_);
  buffers_.clear();
  for (const auto& s : inflight_) buffers_.emplace_back(s.data(), s.size());
  writing_ = true;
  arm_deadline(write_deadline_, server_->options.limits.write_stall_timeout_s, write_epoch_, &Connection::on_write_deadline);
  asio::async_write(socket_, buffers_,
                    [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) { self->on_written(ec); });
}

void Connection::on_written(const boost::system::error_code& ec) {
  writing_ = false;
  inflight_.clear();
  if (closed_) return;
  if (ec) {
    close();
    return;
  }
  if (!pending_.empty()) {
    flush();
    return;
  }
  if (reply_ == Reply::kAborting && exchange_active_) {
    close();
    return;
  }
  maybe_complete();
}

void Connection::maybe_complete() {
  if (exchange_active_ && reply_ == Reply::kDone && !writing_ && pending_.empty()) on_response_complete();
}

void Connection::on_response_complete() {
  exchange_active_ = false;
  exchange_.reset();
  close_callbacks_.clear();
  server_->active_responses.fetch_sub(1);
  if (close_after_response_ || server_->stopping.load()) {
    boost::system::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    close();
    return;
  }
  arm_deadline(read_deadline_, request_timeout_s(), read_epoch_, &Connection::on_request_deadline);
  if (!watching_ && !reading_request_) {
    read_request();
  } else if (watching_ && buffer_.size() > 0) {
    // A pipelined request is already buffered while the watch read waits for more bytes that may
    // never come: cancel it (no write is pending now) and parse the buffered request.
    boost::system::error_code ignored;
    socket_.cancel(ignored);
  }
}

void Connection::reply_error_and_close(int status, std::string_view message) {
  ++gen_;
  reply_ = Reply::kNone;
  exchange_active_ = true;
  exchange_.reset();
  close_after_response_ = true;
  server_->active_responses.fetch_add(1);
  respond(gen_, HttpResponse{status, "application/json", error_json(status, message), {}});
}

void Connection::run_at(Nanos deadline_ns, std::function<void()> fn) {
  if (closed_) return;
  // A paced stream arms one timer per chunk: fired timers are kept for reuse (no allocation and
  // no timer construction on that path).
  std::list<PendingTimer>::iterator it;
  if (!idle_timers_.empty()) {
    timers_.splice(timers_.end(), idle_timers_, idle_timers_.begin());
    it = std::prev(timers_.end());
    it->fn = std::move(fn);
  } else {
    it = timers_.emplace(timers_.end(), worker_.ioc, std::move(fn));
  }
  it->timer.expires_at(std::chrono::steady_clock::time_point(
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::nanoseconds(deadline_ns))));
  it->timer.async_wait([self = shared_from_this(), it](const boost::system::error_code& ec) {
    std::function<void()> f = std::move(it->fn);
    it->fn = nullptr;
    self->idle_timers_.splice(self->idle_timers_.end(), self->timers_, it);
    if (ec || self->closed_) return;
    try {
      f();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "qmeter net: timer callback threw: %s\n", e.what());
    }
  });
}

void Connection::close() {
  if (closed_) return;
  closed_ = true;
  const bool was_active = exchange_active_;
  if (was_active) {
    exchange_active_ = false;
    server_->active_responses.fetch_sub(1);
    if (auto ex = exchange_.lock()) ex->mark_disconnected();
  }
  boost::system::error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  for (auto& t : timers_) t.timer.cancel();
  if (read_deadline_) read_deadline_->cancel();
  if (write_deadline_) write_deadline_->cancel();
  worker_.connections.erase(this);
  server_->open_connections.fetch_sub(1);
  if (was_active) {
    auto callbacks = std::move(close_callbacks_);
    close_callbacks_.clear();
    for (auto& cb : callbacks) {
      try {
        cb();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "qmeter net: on_close callback threw: %s\n", e.what());
      }
    }
  }
}

void start_connection(std::shared_ptr<HttpServer::Impl> server, Worker& worker, Socket socket, std::uint64_t id,
                      bool over_limit) {
  auto conn = std::make_shared<Connection>(std::move(server), worker, std::move(socket), id);
  conn->start(over_limit);
}

void begin_connection_shutdown(Connection& c) { c.begin_shutdown(); }
void close_connection(Connection& c) { c.close(); }

}  // namespace detail

}  // namespace qmeter::net
