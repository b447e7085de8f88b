// The HTTP server against hostile or broken clients, on loopback with a raw-socket client:
// headers trickled a byte at a time, a client that never reads its stream, a connection flood
// beyond the limit, an idle keep-alive connection. Each must be closed by its deadline without
// disturbing a well-behaved stream served beside it.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <iostream>
#include <memory>
#include <thread>
#include <vector>

#include "net/raw_http_client.h"
#include "qmeter/net/http_server.h"

namespace qmeter::net {
namespace {

using qmeter::testing::RawHttpConnection;
using qmeter::testing::RawResponse;

// Writes 256 KiB chunks every 5 ms until its client goes away. Owned only by its pending timer,
// so it goes when the connection's timers do (no reference cycle).
struct FloodPump : std::enable_shared_from_this<FloodPump> {
  explicit FloodPump(ResponseWriterPtr writer) : w(std::move(writer)) {}
  void pump() {
    if (w->is_closed()) return;
    w->write_chunk(std::string(256 * 1024, 'x'));
    w->run_after(ms_to_ns(5), [self = shared_from_this()] { self->pump(); });
  }
  ResponseWriterPtr w;
};

// /tick: 40 chunks 10 ms apart (a token stream at 100 tok/s); /flood: 256 KiB chunks as fast as
// the socket takes them, until the client goes away (counted in `flood_closed`); /health: 200.
struct StreamingServer {
  std::atomic<int> flood_closed{0};
  std::unique_ptr<HttpServer> server;

  explicit StreamingServer(HttpServerOptions opts) {
    opts.io_threads = 1;  // one loop: a client that could stall the server would stall this one
    server = std::make_unique<HttpServer>(opts, [this](const HttpRequest& req, const ResponseWriterPtr& w) {
      if (req.path == "/health") {
        w->respond({200, "text/plain", "ok", {}});
      } else if (req.path == "/tick") {
        w->start_stream();
        const Nanos t0 = steady_now_ns();
        for (int i = 0; i < 40; ++i) {
          w->run_at(t0 + ms_to_ns(10) * (i + 1), [w, i] {
            w->write_chunk("data: " + std::to_string(i) + "\n\n");
            if (i == 39) w->end();
          });
        }
      } else if (req.path == "/flood") {
        w->start_stream();
        w->on_close([this] { flood_closed.fetch_add(1); });
        std::make_shared<FloodPump>(w)->pump();
      } else {
        w->respond({200, "text/plain", "hello", {}});
      }
    });
    server->start();
  }
  int port() const { return server->port(); }
};

// Inter-chunk gaps of one /tick stream, in ms.
std::vector<double> tick_gaps(int port) {
  RawHttpConnection c(port);
  c.send_request("GET", "/tick");
  RawResponse r = c.read_response(s_to_ns(20));
  std::vector<double> gaps;
  if (!r.complete || r.chunks.size() != 40) return gaps;
  for (std::size_t i = 1; i < r.chunks.size(); ++i) gaps.push_back(ns_to_ms(r.chunks[i].t_ns - r.chunks[i - 1].t_ns));
  return gaps;
}

double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())))];
}

TEST(HostileClients, TrickledHeadersAre408AfterTheTimeoutAndDoNotSlowAStreamBeside) {
  HttpServerOptions o;
  o.limits.request_timeout_s = 1.0;
  StreamingServer s(o);
  const auto alone = tick_gaps(s.port());
  ASSERT_EQ(alone.size(), 39u);
  // 1,000 clients each sending one byte of a request line every 100 ms: never a whole request.
  constexpr int kSlow = 1000;
  std::vector<std::unique_ptr<RawHttpConnection>> slow;
  for (int i = 0; i < kSlow; ++i) slow.push_back(std::make_unique<RawHttpConnection>(s.port(), true));
  std::atomic<bool> stop{false};
  std::thread trickler([&] {
    const std::string line = "GET /never-finished HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    for (std::size_t k = 0; !stop.load(); ++k) {
      for (auto& c : slow) (void)!::send(c->fd(), &line[k % line.size()], 1, MSG_NOSIGNAL | MSG_DONTWAIT);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  const auto beside = tick_gaps(s.port());
  // Every slow client is answered 408 and closed once its second is up.
  int got_408 = 0;
  for (auto& c : slow) {
    RawResponse r = c->read_response(s_to_ns(5));
    if (r.status == 408 && r.body.find("did not arrive within 1 s") != std::string::npos) ++got_408;
  }
  stop.store(true);
  trickler.join();
  EXPECT_EQ(got_408, kSlow);
  ASSERT_EQ(beside.size(), 39u);
  // The stream beside them keeps its 10 ms pace (loose bounds: a 2-core machine under test load).
  EXPECT_NEAR(percentile(beside, 0.5), 10.0, 4.0);
  EXPECT_LT(percentile(beside, 0.9), percentile(alone, 0.9) + 25.0);
  std::cout << "[ hostile ] inter-chunk gap p50/p90/max ms: alone " << percentile(alone, 0.5) << "/"
            << percentile(alone, 0.9) << "/" << percentile(alone, 1.0) << ", beside " << kSlow << " slow clients "
            << percentile(beside, 0.5) << "/" << percentile(beside, 0.9) << "/" << percentile(beside, 1.0) << "\n";
  const Nanos deadline = steady_now_ns() + s_to_ns(5);
  while (s.server->open_connections() > 0 && steady_now_ns() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(s.server->open_connections(), 0u);
}

TEST(HostileClients, AnIdleKeepAliveConnectionIsClosedSilently) {
  HttpServerOptions o;
  o.limits.request_timeout_s = 0.5;
  StreamingServer s(o);
  RawHttpConnection c(s.port());
  c.send_request("GET", "/x");
  EXPECT_EQ(c.read_response().status, 200);
  const Nanos t0 = steady_now_ns();
  ASSERT_TRUE(c.wait_peer_closed(s_to_ns(5)));
  EXPECT_GE(steady_now_ns() - t0, ms_to_ns(400));
  EXPECT_TRUE(c.buffer().empty()) << "no 408 for a connection that sent nothing: " << c.buffer();
}

TEST(HostileClients, AReaderThatNeverReadsIsClosedAndItsStreamEnded) {
  HttpServerOptions o;
  o.limits.write_stall_timeout_s = 0.5;
  StreamingServer s(o);
  RawHttpConnection stalled(s.port());
  stalled.send_request("GET", "/flood");  // and never read
  const Nanos t0 = steady_now_ns();
  // Meanwhile the server answers others.
  RawHttpConnection other(s.port());
  other.send_request("GET", "/x");
  EXPECT_EQ(other.read_response().status, 200);
  while (s.flood_closed.load() == 0 && steady_now_ns() - t0 < s_to_ns(20)) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(s.flood_closed.load(), 1) << "the stream's on_close never ran: a reader that never reads pins it";
  EXPECT_EQ(s.server->active_responses(), 0u);
}

TEST(HostileClients, AFloodBeyondMaxConnectionsIsRefused503WhileHealthStillAnswers) {
  HttpServerOptions o;
  o.limits.max_connections = 8;
  StreamingServer s(o);
  std::vector<std::unique_ptr<RawHttpConnection>> flood;
  for (int i = 0; i < 8; ++i) flood.push_back(std::make_unique<RawHttpConnection>(s.port()));
  const Nanos deadline = steady_now_ns() + s_to_ns(5);
  while (s.server->open_connections() < 8 && steady_now_ns() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(s.server->open_connections(), 8u);
  for (int i = 0; i < 100; ++i) {
    RawHttpConnection extra(s.port());
    extra.send_request("GET", "/x");
    RawResponse r = extra.read_response();
    ASSERT_EQ(r.status, 503) << "connection " << i;
    EXPECT_NE(r.body.find("too many connections: the server accepts 8 at once"), std::string::npos) << r.body;
    EXPECT_NE(r.body.find("\"error\""), std::string::npos);
    EXPECT_TRUE(extra.wait_peer_closed(s_to_ns(5)));
  }
  RawHttpConnection health(s.port());
  health.send_request("GET", "/health");
  RawResponse h = health.read_response();
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.body, "ok");
  // The flood's own connections are served, and when it ends, so is everyone.
  flood[0]->send_request("GET", "/x");
  EXPECT_EQ(flood[0]->read_response().status, 200);
  flood.clear();
  const Nanos d2 = steady_now_ns() + s_to_ns(5);
  while (s.server->open_connections() > 0 && steady_now_ns() < d2) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  RawHttpConnection after(s.port());
  after.send_request("GET", "/x");
  EXPECT_EQ(after.read_response().status, 200);
}

}  // namespace
}  // namespace qmeter::net
