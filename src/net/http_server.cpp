// HTTP/1.1 server on Boost.Asio + Beast: the acceptor, the io threads (one io_context each) and
// start/stop. One connection's work is in http_connection.cpp.
#include "http_server_internal.h"

#include <fmt/core.h>
#include <sys/resource.h>

#include <boost/asio/post.hpp>
#include <cstdio>
#include <future>

#include "qmeter/core/error.h"
#include "qmeter/core/open_file_limit.h"

namespace qmeter::net {

namespace {

bool is_fd_exhaustion(const boost::system::error_code& ec) {
  return ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space ||
         ec == asio::error::no_memory || ec.value() == ENFILE;
}

}  // namespace
// ---------------------------------------------------------------------------------------------
// HttpServer::Impl

void HttpServer::Impl::accept_next() {
  Worker& target = *workers[next_worker++ % workers.size()];
  acceptor->async_accept(target.ioc, [self = shared_from_this(), &target](const boost::system::error_code& ec,
                                                                          Socket socket) mutable {
    if (ec == asio::error::operation_aborted || self->stopping.load()) return;
    if (ec) {
      if (is_fd_exhaustion(ec)) {
        // Out of descriptors: wait for connections to close instead of spinning on accept.
        self->accept_retry->expires_after(std::chrono::milliseconds(20));
        self->accept_retry->async_wait([self](const boost::system::error_code& e) {
          if (!e && !self->stopping.load()) self->accept_next();
        });
        return;
      }
      self->accept_next();
      return;
    }
    asio::post(target.ioc, [self, &target, s = std::move(socket)]() mutable { self->adopt(target, std::move(s)); });
    self->accept_next();
  });
}

void HttpServer::Impl::adopt(Worker& worker, Socket socket) {
  boost::system::error_code ignored;
  if (stopping.load()) {
    socket.close(ignored);
    return;
  }
  socket.set_option(tcp::no_delay(true), ignored);  // every SSE chunk goes out at once
  const std::uint64_t open_before = open_connections.fetch_add(1);
  const bool over_limit = options.limits.max_connections > 0 && open_before >= options.limits.max_connections;
  detail::start_connection(shared_from_this(), worker, std::move(socket), next_connection_id.fetch_add(1), over_limit);
}

void HttpServer::Impl::run_on_all(const std::function<void(Worker&, std::size_t)>& fn) {
  std::vector<std::future<void>> done;
  for (std::size_t i = 0; i < workers.size(); ++i) {
    auto promise = std::make_shared<std::promise<void>>();
    done.push_back(promise->get_future());
    asio::post(workers[i]->ioc, [&fn, w = workers[i].get(), i, promise] {
      fn(*w, i);
      promise->set_value();
    });
  }
  for (auto& f : done) f.wait();
}

void HttpServer::Impl::stop(Nanos grace_ns) {
  std::lock_guard lock(stop_mutex);
  if (!started.load() || stopped.load()) return;
  for (auto& w : workers) {
    if (w->ioc.get_executor().running_in_this_thread()) {
      throw Error("HttpServer::stop() called from one of its own io threads");
    }
  }
  stopping.store(true);
  run_on_all([this](Worker& w, std::size_t i) {
    if (i == 0) {
      boost::system::error_code ignored;
      acceptor->close(ignored);
      accept_retry->cancel();
    }
    std::vector<detail::Connection*> conns(w.connections.begin(), w.connections.end());
    for (auto* c : conns) detail::begin_connection_shutdown(*c);
  });
  const Nanos deadline = steady_now_ns() + grace_ns;
  while (active_responses.load() > 0 && steady_now_ns() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  run_on_all([](Worker& w, std::size_t) {
    std::vector<detail::Connection*> conns(w.connections.begin(), w.connections.end());
    for (auto* c : conns) detail::close_connection(*c);
  });
  stopped.store(true);
  for (auto& w : workers) w->guard.reset();
  // The loops end once the cancelled operations have drained; a handler's own work still queued
  // after a while is abandoned.
  const Nanos join_deadline = steady_now_ns() + s_to_ns(2);
  auto all_finished = [this] {
    for (auto& w : workers) {
      if (!w->finished.load()) return false;
    }
    return true;
  };
  while (!all_finished() && steady_now_ns() < join_deadline) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  for (auto& w : workers) {
    if (!w->finished.load()) w->ioc.stop();
  }
  for (auto& w : workers) {
    if (w->thread.joinable()) w->thread.join();
  }
}

// ---------------------------------------------------------------------------------------------
// HttpServer

HttpServer::HttpServer(HttpServerOptions options, HttpHandler handler) : impl_(std::make_shared<Impl>()) {
  if (options.io_threads < 1) throw UsageError(fmt::format("io threads must be at least 1 (got {})", options.io_threads));
  if (options.port < 0 || options.port > 65535) throw UsageError(fmt::format("port {} is out of range 0..65535", options.port));
  impl_->options = std::move(options);
  impl_->handler = std::move(handler);
}

HttpServer::~HttpServer() {
  try {
    stop(0);
  } catch (...) {
  }
}

void HttpServer::start() {
  Impl& s = *impl_;
  if (s.started.load()) return;
  raise_open_file_limit();
  for (int i = 0; i < s.options.io_threads; ++i) s.workers.push_back(std::make_unique<Worker>());
  asio::io_context& ioc0 = s.workers[0]->ioc;

  const std::string where = fmt::format("{}:{}", s.options.host, s.options.port);
  boost::system::error_code ec;
  tcp::resolver resolver(ioc0);
  auto results = resolver.resolve(s.options.host, std::to_string(s.options.port),
                                  tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || results.empty()) throw Error(fmt::format("cannot resolve listen address {}: {}", where, ec.message()));
  tcp::endpoint endpoint = results.begin()->endpoint();

  s.acceptor.emplace(ioc0);
  s.acceptor->open(endpoint.protocol(), ec);
  if (!ec) s.acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) s.acceptor->bind(endpoint, ec);
  if (!ec) s.acceptor->listen(s.options.listen_backlog, ec);
  if (ec) throw Error(fmt::format("cannot listen on {}: {}", where, ec.message()));
  s.bound_port = s.acceptor->local_endpoint().port();
  s.accept_retry.emplace(ioc0);

  s.started.store(true);
  s.accept_next();
  for (auto& w : s.workers) {
    w->guard.emplace(w->ioc.get_executor());
    Worker* wp = w.get();
    w->thread = std::thread([wp] {
      for (;;) {
        try {
          wp->ioc.run();
          break;
        } catch (const std::exception& e) {
          std::fprintf(stderr, "qmeter net: io thread caught: %s\n", e.what());
        }
      }
      wp->finished.store(true);
    });
  }
}

int HttpServer::port() const { return impl_->bound_port; }
const std::string& HttpServer::host() const { return impl_->options.host; }
void HttpServer::stop(Nanos grace_ns) { impl_->stop(grace_ns); }
std::uint64_t HttpServer::open_connections() const { return impl_->open_connections.load(); }
std::uint64_t HttpServer::active_responses() const { return impl_->active_responses.load(); }
std::uint64_t HttpServer::requests_handled() const { return impl_->requests_handled.load(); }

}  // namespace qmeter::net

