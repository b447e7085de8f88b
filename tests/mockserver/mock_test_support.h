#pragma once
// Helpers of the mock-server tests: an in-process mock on a free port, a raw-socket driver that
// sends many requests at once and collects exactly what came back, and the request log reader.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "net/raw_http_client.h"
#include "qmeter/mockserver/mock_server.h"
#include "test_support.h"

namespace qmeter::mockserver::testing {

using nlohmann::json;
using qmeter::testing::RawHttpConnection;
using qmeter::testing::RawResponse;
using qmeter::testing::ResponseParser;
using qmeter::testing::sse_data_payloads;

// A mock on a free loopback port, with its request log in the test's output folder.
struct RunningMock {
  explicit RunningMock(MockServerConfig config, const std::string& test_name) {
    log_path = qmeter::testing::test_output_dir(test_name) + "/requests.jsonl";
    config.request_log_path = log_path;
    this->config = config;
    server = std::make_unique<MockServer>(config);
    server->start();
  }
  int port() const { return server->port(); }
  // Stops the server (flushing the log) and returns the records by index.
  std::map<std::uint64_t, json> stop_and_read_log() {
    server->stop();
    std::map<std::uint64_t, json> out;
    std::ifstream in(log_path);
    std::string line;
    while (std::getline(in, line)) {
      json j = json::parse(line);
      out[j.at("index").get<std::uint64_t>()] = j;
    }
    return out;
  }
  MockServerConfig config;
  std::string log_path;
  std::unique_ptr<MockServer> server;
};

inline std::string post_text(const std::string& path, const json& body) {
  return RawHttpConnection::request_text("POST", path, body.dump());
}

// One request on its own connection and its reply as read off the socket.
inline RawResponse exchange(int port, const std::string& path, const json& body, Nanos timeout = s_to_ns(10)) {
  RawHttpConnection c(port);
  c.send_raw(post_text(path, body));
  return c.read_response(timeout);
}

// Sends every request at once, each on its own connection, and reads all replies until each is
// complete, the server closed it, or `quiet_timeout` passed with no byte from anyone (stalls).
inline std::vector<RawResponse> run_concurrently(int port, const std::vector<std::string>& requests,
                                                 Nanos quiet_timeout = s_to_ns(1)) {
  const std::size_t n = requests.size();
  std::vector<std::unique_ptr<RawHttpConnection>> conns;
  std::vector<ResponseParser> parsers(n);
  std::vector<bool> finished(n, false);
  for (const auto& r : requests) {
    conns.push_back(std::make_unique<RawHttpConnection>(port, /*nonblocking=*/true));
    conns.back()->send_raw(r);
  }
  std::size_t done = 0;
  Nanos last_activity = steady_now_ns();
  std::vector<pollfd> fds(n);
  while (done < n && steady_now_ns() - last_activity < quiet_timeout) {
    for (std::size_t i = 0; i < n; ++i) fds[i] = pollfd{finished[i] ? -1 : conns[i]->fd(), POLLIN, 0};
    if (::poll(fds.data(), fds.size(), 20) <= 0) continue;
    for (std::size_t i = 0; i < n; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      last_activity = steady_now_ns();
      int r = conns[i]->read_some(steady_now_ns() + ms_to_ns(1));
      parsers[i].feed(conns[i]->buffer(), steady_now_ns());
      if (r < 0) parsers[i].peer_closed();
      if (parsers[i].done() || r < 0) {
        finished[i] = true;
        ++done;
      }
    }
  }
  std::vector<RawResponse> out;
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(std::move(parsers[i].response()));
    if (!finished[i]) out.back().timed_out = true;
  }
  return out;  // connections close here: a stalled reply's server side sees the client leave
}

// The JSON payloads of a streamed reply; `malformed` counts data lines that are not JSON.
struct StreamPayloads {
  std::vector<json> chunks;  // parsed, in order ([DONE] excluded)
  std::vector<std::size_t> event_of_chunk;  // index among all SSE events
  bool done = false;  // saw data: [DONE]
  int malformed = 0;
  std::size_t malformed_event = 0;
};
inline StreamPayloads parse_stream(const RawResponse& r) {
  StreamPayloads out;
  auto payloads = sse_data_payloads(r.body);
  for (std::size_t i = 0; i < payloads.size(); ++i) {
    if (payloads[i] == "[DONE]") {
      out.done = true;
      continue;
    }
    json j = json::parse(payloads[i], nullptr, false);
    if (j.is_discarded()) {
      out.malformed++;
      out.malformed_event = i;
      continue;
    }
    out.chunks.push_back(std::move(j));
    out.event_of_chunk.push_back(i);
  }
  return out;
}

// The generated text of one chunk (completions: text; chat: delta.content), "" when none.
inline std::string chunk_text(const json& chunk) {
  if (chunk.at("choices").empty()) return "";
  const json& c = chunk["choices"][0];
  if (c.contains("text")) return c["text"].get<std::string>();
  if (c.contains("delta") && c["delta"].contains("content")) return c["delta"]["content"].get<std::string>();
  return "";
}

inline int word_count(const std::string& s) {
  int n = 0;
  bool in = false;
  for (char ch : s) {
    bool sp = ch == ' ';
    if (!sp && !in) ++n;
    in = !sp;
  }
  return n;
}

}  // namespace qmeter::mockserver::testing
