// Internals of the HTTP server shared by its two halves: http_server.cpp (acceptor, io threads,
// start/stop) and http_connection.cpp (one connection: parsing, deadlines, response framing).
// Not a public header: only these two files include it.
#pragma once

#include "qmeter/net/http_server.h"

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_set>
#include <vector>

namespace qmeter::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Executor = asio::io_context::executor_type;
using Socket = tcp::socket::rebind_executor<Executor>::other;
using Timer = asio::basic_waitable_timer<std::chrono::steady_clock,
                                         asio::wait_traits<std::chrono::steady_clock>, Executor>;

struct Worker;

namespace detail {
class Connection;
// Serves a freshly accepted socket on `worker`'s thread (called there). A connection over the
// server's limit only gets to ask for /health.
void start_connection(std::shared_ptr<HttpServer::Impl> server, Worker& worker, Socket socket, std::uint64_t id,
                      bool over_limit);
// Both on the connection's own thread: stop reading new requests (the one in progress may end) /
// close the socket now, running the on_close callbacks of a response still in progress.
void begin_connection_shutdown(Connection& c);
void close_connection(Connection& c);
}  // namespace detail

struct Worker {
  asio::io_context ioc{1};
  std::optional<asio::executor_work_guard<Executor>> guard;
  std::thread thread;
  std::atomic<bool> finished{false};
  std::unordered_set<detail::Connection*> connections;  // touched only on this worker's thread
};

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  HttpServerOptions options;
  HttpHandler handler;
  std::vector<std::unique_ptr<Worker>> workers;  // declared before the acceptor: destroyed last
  std::optional<tcp::acceptor::rebind_executor<Executor>::other> acceptor;
  std::optional<Timer> accept_retry;
  std::size_t next_worker = 0;  // worker 0's thread only
  int bound_port = 0;

  std::mutex stop_mutex;
  std::atomic<bool> started{false}, stopping{false}, stopped{false};
  std::atomic<std::uint64_t> open_connections{0}, active_responses{0}, requests_handled{0};
  std::atomic<std::uint64_t> next_connection_id{1};

  void accept_next();
  void adopt(Worker& worker, Socket socket);
  // Runs fn(worker) on every worker's thread and waits for all of them.
  void run_on_all(const std::function<void(Worker&, std::size_t)>& fn);
  void stop(Nanos grace_ns);
};

}  // namespace qmeter::net
