// Many simultaneously open streams on a couple of io threads (no thread per connection).
#include <gtest/gtest.h>

#include <mutex>
#include <thread>

#include "net/raw_http_client.h"
#include "qmeter/net/http_server.h"

namespace qmeter::net {
namespace {

using qmeter::testing::RawHttpConnection;
using qmeter::testing::ResponseParser;

TEST(HttpServerConcurrency, HoldsAThousandOpenStreamsAtOnce) {
  constexpr int kStreams = 1000;
  std::mutex mu;
  std::vector<ResponseWriterPtr> open;
  std::atomic<std::uint64_t> open_connections_when_all_arrived{0}, active_when_all_arrived{0};
  HttpServerOptions opts;
  opts.io_threads = 2;
  HttpServer* server_ptr = nullptr;
  HttpServer server(opts, [&](const HttpRequest& req, const ResponseWriterPtr& w) {
    w->start_stream();
    w->write_chunk("data: " + req.path + "\n\n");
    std::vector<ResponseWriterPtr> release;
    {
      std::lock_guard lock(mu);
      open.push_back(w);
      // Every stream stays open until all of them have arrived, so they are provably concurrent.
      if (static_cast<int>(open.size()) == kStreams) {
        open_connections_when_all_arrived = server_ptr->open_connections();
        active_when_all_arrived = server_ptr->active_responses();
        release.swap(open);
      }
    }
    for (auto& s : release) {  // each finishes on its own io thread (posted there)
      s->post([s] {
        s->write_chunk("data: [DONE]\n\n");
        s->end();
      });
    }
  });
  server_ptr = &server;
  server.start();

  std::vector<std::unique_ptr<RawHttpConnection>> clients;
  std::vector<ResponseParser> parsers(kStreams);
  for (int i = 0; i < kStreams; ++i) {
    clients.push_back(std::make_unique<RawHttpConnection>(server.port(), /*nonblocking=*/true));
    clients.back()->send_request("GET", "/s" + std::to_string(i));
  }
  int done = 0;
  std::vector<pollfd> fds(kStreams);
  const Nanos deadline = steady_now_ns() + s_to_ns(60);
  while (done < kStreams && steady_now_ns() < deadline) {
    for (int i = 0; i < kStreams; ++i) fds[i] = pollfd{parsers[i].done() ? -1 : clients[i]->fd(), POLLIN, 0};
    ASSERT_GE(::poll(fds.data(), fds.size(), 1000), 0);
    for (int i = 0; i < kStreams; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      int r = clients[i]->read_some(steady_now_ns() + ms_to_ns(1));
      if (r < 0) parsers[i].peer_closed();
      parsers[i].feed(clients[i]->buffer(), steady_now_ns());
      if (parsers[i].done() || r < 0) ++done;
    }
  }
  ASSERT_EQ(done, kStreams);
  EXPECT_EQ(open_connections_when_all_arrived.load(), static_cast<std::uint64_t>(kStreams));
  EXPECT_EQ(active_when_all_arrived.load(), static_cast<std::uint64_t>(kStreams));
  for (int i = 0; i < kStreams; ++i) {
    auto& r = parsers[i].response();
    ASSERT_TRUE(r.complete) << "stream " << i;
    EXPECT_EQ(r.body, "data: /s" + std::to_string(i) + "\n\ndata: [DONE]\n\n");
  }
  // The server counts a response finished when its write completes, which may be just after the
  // client has read the last byte.
  const Nanos settle = steady_now_ns() + s_to_ns(10);
  while (server.active_responses() > 0 && steady_now_ns() < settle) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(server.active_responses(), 0u);
  server.stop();
}

}  // namespace
}  // namespace qmeter::net
