// The HTTP server layer against a raw-socket client on loopback: request fields, keep-alive and
// pipelining, plain and chunked replies, writers used from other threads, abort, disconnect
// detection, error replies, graceful stop.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include "net/raw_http_client.h"
#include "qmeter/core/error.h"
#include "qmeter/net/http_server.h"

namespace qmeter::net {
namespace {

using qmeter::testing::RawHttpConnection;
using qmeter::testing::RawResponse;

// Starts a server with `handler` on a free loopback port.
std::unique_ptr<HttpServer> start_server(HttpHandler handler, int threads = 1) {
  HttpServerOptions opts;
  opts.io_threads = threads;
  auto server = std::make_unique<HttpServer>(opts, std::move(handler));
  server->start();
  return server;
}

TEST(HttpServer, PortZeroBindsAFreePortAndRequestFieldsReachTheHandler) {
  auto server = start_server([](const HttpRequest& req, const ResponseWriterPtr& w) {
    std::string body = req.method + "|" + req.path + "|" + req.query + "|" + std::string(req.header("x-thing")) + "|" +
                       req.query_param("name").value_or("<none>") + "|" + req.query_param("missing").value_or("<none>") +
                       "|" + req.body;
    w->respond(HttpResponse{201, "text/plain", body, {{"X-Reply", "yes"}}});
  });
  ASSERT_GT(server->port(), 0);
  RawHttpConnection c(server->port());
  c.send_request("POST", "/v1/echo?name=a%20b+c&z=1", "hello body", "X-Thing: 42\r\n");
  RawResponse r = c.read_response();
  ASSERT_TRUE(r.complete);
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(r.header("Content-Type"), "text/plain");
  EXPECT_EQ(r.header("X-Reply"), "yes");
  EXPECT_EQ(r.body, "POST|/v1/echo|name=a%20b+c&z=1|42|a b c|<none>|hello body");
}

TEST(HttpServer, KeepAliveAndPipelinedRequestsAreServedInOrderOnOneConnection) {
  auto server = start_server([](const HttpRequest& req, const ResponseWriterPtr& w) {
    w->respond(HttpResponse{200, "text/plain",
                            req.path + " conn=" + std::to_string(req.connection_id) +
                                " seq=" + std::to_string(req.sequence_on_connection),
                            {}});
  });
  RawHttpConnection c(server->port());
  c.send_request("GET", "/a");
  RawResponse a = c.read_response();
  c.send_request("GET", "/b");
  RawResponse b = c.read_response();
  // Two requests in one write: both answered, in order.
  c.send_raw(RawHttpConnection::request_text("GET", "/c") + RawHttpConnection::request_text("GET", "/d"));
  RawResponse cc = c.read_response();
  RawResponse d = c.read_response();
  std::string conn = a.body.substr(a.body.find("conn="), a.body.find(" seq") - a.body.find("conn="));
  EXPECT_EQ(a.body, "/a " + conn + " seq=0");
  EXPECT_EQ(b.body, "/b " + conn + " seq=1");
  EXPECT_EQ(cc.body, "/c " + conn + " seq=2");
  EXPECT_EQ(d.body, "/d " + conn + " seq=3");
  EXPECT_EQ(server->requests_handled(), 4u);
}

TEST(HttpServer, ConnectionCloseRequestGetsClosedAfterTheReply) {
  auto server = start_server([](const HttpRequest&, const ResponseWriterPtr& w) {
    w->respond(HttpResponse{200, "text/plain", "bye", {}});
  });
  RawHttpConnection c(server->port());
  c.send_request("GET", "/", "", "Connection: close\r\n");
  RawResponse r = c.read_response();
  EXPECT_EQ(r.body, "bye");
  EXPECT_EQ(r.header("Connection"), "close");
  EXPECT_TRUE(c.wait_peer_closed(s_to_ns(5)));
}

TEST(HttpServer, StreamPacedByTimersArrivesAsChunksInOrder) {
  auto server = start_server([](const HttpRequest&, const ResponseWriterPtr& w) {
    w->start_stream();
    const Nanos t0 = steady_now_ns();
    for (int i = 0; i < 5; ++i) {
      w->run_at(t0 + ms_to_ns(5) * (i + 1), [w, i] {
        w->write_chunk("data: " + std::to_string(i) + "\n\n");
        if (i == 4) w->end();
      });
    }
  });
  RawHttpConnection c(server->port());
  const Nanos sent = steady_now_ns();
  c.send_request("GET", "/stream");
  RawResponse r = c.read_response();
  ASSERT_TRUE(r.complete);
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.chunked);
  EXPECT_EQ(r.header("Content-Type"), "text/event-stream");
  ASSERT_EQ(r.chunks.size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(r.chunks[i].data, "data: " + std::to_string(i) + "\n\n");
  // The last timer was due 25 ms after the request arrived: it cannot have come earlier.
  EXPECT_GE(r.chunks.back().t_ns - sent, ms_to_ns(25));
  // The connection is reusable after the stream.
  c.send_request("GET", "/stream");
  EXPECT_EQ(c.read_response().chunks.size(), 5u);
}

TEST(HttpServer, WriterCanBeDrivenFromAnotherThread) {
  std::vector<std::thread> producers;
  std::mutex mu;
  auto server = start_server([&](const HttpRequest&, const ResponseWriterPtr& w) {
    std::lock_guard lock(mu);
    producers.emplace_back([w] {  // the handler returns at once; another thread produces
      EXPECT_FALSE(w->on_io_thread());
      w->start_stream(200, "text/event-stream", {{"X-Producer", "thread"}});
      for (int i = 0; i < 100; ++i) w->write_chunk("c" + std::to_string(i) + ";");
      w->end();
      EXPECT_TRUE(w->is_closed());
      EXPECT_FALSE(w->write_chunk("late"));
    });
  });
  RawHttpConnection c(server->port());
  c.send_request("GET", "/");
  RawResponse r = c.read_response();
  ASSERT_TRUE(r.complete);
  EXPECT_EQ(r.header("X-Producer"), "thread");
  std::string expected;
  for (int i = 0; i < 100; ++i) expected += "c" + std::to_string(i) + ";";
  EXPECT_EQ(r.body, expected);
  std::lock_guard lock(mu);
  for (auto& t : producers) t.join();
}

TEST(HttpServer, AbortDropsTheConnectionMidStream) {
  std::promise<void> aborted;
  auto server = start_server([&](const HttpRequest&, const ResponseWriterPtr& w) {
    w->start_stream();
    w->write_chunk("data: one\n\n");
    w->write_chunk("data: two\n\n");
    w->on_close([w, &aborted] {
      EXPECT_TRUE(w->disconnected());
      aborted.set_value();
    });
    w->abort();  // right after the writes: they still go out first
    EXPECT_TRUE(w->is_closed());
    EXPECT_FALSE(w->write_chunk("data: three\n\n"));
  });
  RawHttpConnection c(server->port());
  c.send_request("GET", "/");
  RawResponse r = c.read_response();
  EXPECT_TRUE(r.peer_closed);
  EXPECT_FALSE(r.complete);  // no terminating chunk: the client can tell the stream was cut
  ASSERT_EQ(r.chunks.size(), 2u);
  EXPECT_EQ(r.chunks[1].data, "data: two\n\n");
  aborted.get_future().wait();
}

TEST(HttpServer, ClientDisconnectFiresOnCloseAndFreesTheResponse) {
  std::promise<Nanos> closed_at;
  ResponseWriterPtr kept;  // the handler keeps the stream open and idle, as a slow producer would
  std::mutex mu;
  auto server = start_server([&](const HttpRequest&, const ResponseWriterPtr& w) {
    w->start_stream();
    w->write_chunk("data: hello\n\n");
    w->on_close([&closed_at] { closed_at.set_value(steady_now_ns()); });
    std::lock_guard lock(mu);
    kept = w;
  });
  Nanos client_closed = 0;
  {
    RawHttpConnection c(server->port());
    c.send_request("GET", "/");
    while (c.buffer().find("hello") == std::string::npos) ASSERT_EQ(c.read_some(steady_now_ns() + s_to_ns(5)), 1);
    EXPECT_EQ(server->active_responses(), 1u);
    client_closed = steady_now_ns();
  }
  auto fut = closed_at.get_future();
  ASSERT_EQ(fut.wait_for(std::chrono::seconds(5)), std::future_status::ready) << "on_close never ran";
  EXPECT_GE(fut.get(), client_closed);
  std::lock_guard lock(mu);
  EXPECT_TRUE(kept->disconnected());
  EXPECT_TRUE(kept->is_closed());
  EXPECT_FALSE(kept->write_chunk("data: nobody\n\n"));
  EXPECT_EQ(server->active_responses(), 0u);
  // A callback registered after the disconnect runs at once.
  std::promise<void> late;
  kept->on_close([&late] { late.set_value(); });
  EXPECT_EQ(late.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
}

TEST(HttpServer, OnCloseDoesNotFireWhenTheResponseCompletes) {
  std::atomic<int> fired{0};
  auto server = start_server([&](const HttpRequest&, const ResponseWriterPtr& w) {
    w->on_close([&fired] { fired++; });
    w->start_stream();
    w->write_chunk("x");
    w->end();
  });
  {
    RawHttpConnection c(server->port());
    c.send_request("GET", "/");
    EXPECT_TRUE(c.read_response().complete);
  }  // closing an idle keep-alive connection is not an abandoned response
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(fired.load(), 0);
}

TEST(HttpServer, HandlerThatDropsTheWriterWithoutReplyingYields500) {
  auto server = start_server([](const HttpRequest&, const ResponseWriterPtr&) {});
  RawHttpConnection c(server->port());
  c.send_request("GET", "/");
  RawResponse r = c.read_response();
  EXPECT_EQ(r.status, 500);
  EXPECT_NE(r.body.find("without a response"), std::string::npos);
}

TEST(HttpServer, HandlerExceptionYields500) {
  auto server = start_server([](const HttpRequest&, const ResponseWriterPtr&) { throw std::runtime_error("boom"); });
  RawHttpConnection c(server->port());
  c.send_request("GET", "/");
  RawResponse r = c.read_response();
  EXPECT_EQ(r.status, 500);
  EXPECT_NE(r.body.find("boom"), std::string::npos);
}

TEST(HttpServer, MalformedRequestGets400AndOversizedBody413) {
  HttpServerOptions opts;
  opts.max_body_bytes = 100;
  HttpServer server(opts, [](const HttpRequest&, const ResponseWriterPtr& w) { w->respond({}); });
  server.start();
  {
    RawHttpConnection c(server.port());
    c.send_raw("NOT HTTP AT ALL\r\n\r\n");
    RawResponse r = c.read_response();
    EXPECT_EQ(r.status, 400);
    EXPECT_TRUE(c.wait_peer_closed(s_to_ns(5)));
  }
  {
    RawHttpConnection c(server.port());
    c.send_request("POST", "/", std::string(101, 'x'));
    RawResponse r = c.read_response();
    EXPECT_EQ(r.status, 413);
  }
}

TEST(HttpServer, ExpectContinueGetsAnInterimReplyBeforeTheBody) {
  auto server = start_server([](const HttpRequest& req, const ResponseWriterPtr& w) {
    w->respond(HttpResponse{200, "text/plain", "got " + std::to_string(req.body.size()), {}});
  });
  RawHttpConnection c(server->port());
  c.send_raw("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
  while (c.buffer().find("\r\n\r\n") == std::string::npos) ASSERT_EQ(c.read_some(steady_now_ns() + s_to_ns(5)), 1);
  EXPECT_EQ(c.buffer().rfind("HTTP/1.1 100 Continue\r\n\r\n", 0), 0u);
  c.send_raw("hello");
  RawResponse r = c.read_response();  // skips the interim reply
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "got 5");
}

TEST(HttpServer, Http10StreamIsCloseDelimited) {
  auto server = start_server([](const HttpRequest&, const ResponseWriterPtr& w) {
    w->start_stream();
    w->write_chunk("abc");
    w->write_chunk("def");
    w->end();
  });
  RawHttpConnection c(server->port());
  c.send_raw("GET / HTTP/1.0\r\n\r\n");
  RawResponse r = c.read_response();
  EXPECT_FALSE(r.chunked);
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(r.body, "abcdef");
}

TEST(HttpServer, BindingAPortInUseFailsWithTheAddress) {
  auto first = start_server([](const HttpRequest&, const ResponseWriterPtr& w) { w->respond({}); });
  HttpServerOptions opts;
  opts.port = first->port();
  HttpServer second(opts, [](const HttpRequest&, const ResponseWriterPtr& w) { w->respond({}); });
  try {
    second.start();
    FAIL() << "binding a port in use must fail";
  } catch (const qmeter::Error& e) {
    EXPECT_NE(std::string(e.what()).find("127.0.0.1:" + std::to_string(first->port())), std::string::npos) << e.what();
  }
  EXPECT_THROW(HttpServer(HttpServerOptions{"127.0.0.1", 70000}, nullptr), qmeter::UsageError);
}

TEST(HttpServer, GracefulStopLetsAStreamInProgressFinish) {
  auto server = start_server([](const HttpRequest&, const ResponseWriterPtr& w) {
    w->start_stream();
    for (int i = 1; i <= 4; ++i) {
      w->run_after(ms_to_ns(20) * i, [w, i] {
        w->write_chunk(std::to_string(i));
        if (i == 4) w->end();
      });
    }
  });
  RawHttpConnection c(server->port());
  c.send_request("GET", "/");
  while (c.buffer().find("\r\n\r\n") == std::string::npos) ASSERT_EQ(c.read_some(steady_now_ns() + s_to_ns(5)), 1);
  std::thread stopper([&] { server->stop(s_to_ns(5)); });
  RawResponse r = c.read_response();
  stopper.join();
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(r.body, "1234");
  EXPECT_TRUE(c.wait_peer_closed(s_to_ns(5)));
  // Stopped: new connections are refused.
  EXPECT_THROW(RawHttpConnection again(server->port()), std::runtime_error);
}

TEST(HttpServer, StopWithoutGraceClosesEndlessStreamsAndRunsOnClose) {
  std::atomic<int> closed{0};
  std::vector<ResponseWriterPtr> kept;
  std::mutex mu;
  auto server = start_server(
      [&](const HttpRequest&, const ResponseWriterPtr& w) {
        w->start_stream();
        w->write_chunk("first");
        w->on_close([&closed] { closed++; });
        std::lock_guard lock(mu);
        kept.push_back(w);  // never ends: a stalled stream
      },
      2);
  std::vector<std::unique_ptr<RawHttpConnection>> clients;
  for (int i = 0; i < 4; ++i) {
    clients.push_back(std::make_unique<RawHttpConnection>(server->port()));
    clients.back()->send_request("GET", "/");
  }
  for (auto& c : clients) {
    while (c->buffer().find("first") == std::string::npos) ASSERT_EQ(c->read_some(steady_now_ns() + s_to_ns(5)), 1);
  }
  EXPECT_EQ(server->open_connections(), 4u);
  server->stop(0);
  EXPECT_EQ(closed.load(), 4);
  EXPECT_EQ(server->open_connections(), 0u);
  for (auto& c : clients) EXPECT_TRUE(c->wait_peer_closed(s_to_ns(5)));
  std::lock_guard lock(mu);
  for (auto& w : kept) EXPECT_TRUE(w->is_closed());
  kept.front()->write_chunk("after stop");  // harmless
}

}  // namespace
}  // namespace qmeter::net
