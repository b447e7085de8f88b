// The streaming client against a scripted loopback server that controls every byte on the wire:
// request shape and headers, replies split at every byte, and each way a reply can go wrong.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <nlohmann/json.hpp>

#include "client/scripted_server.h"
#include "qmeter/client/streaming_client.h"
#include "qmeter/core/error.h"

namespace qmeter::client {
namespace {

using testing::ScriptedConnection;
using testing::ScriptedServer;

std::string body_of(const std::string& request) { return request.substr(request.find("\r\n\r\n") + 4); }

std::vector<StreamRequest> requests_now(int n, Nanos gap_ns = 0, int max_tokens = 4) {
  std::vector<StreamRequest> rs;
  const Nanos t0 = steady_now_ns() + 5'000'000;
  for (int i = 0; i < n; ++i) {
    StreamRequest r;
    r.index = i;
    r.scheduled_ns = t0 + i * gap_ns;
    r.prompt = "hello world";
    r.max_tokens = max_tokens;
    rs.push_back(r);
  }
  return rs;
}

const std::string kChatStream =
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" a\"}}]}\n\n"
    ": keep-alive comment\r\n\r\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" b\"}}]}\r\n\r\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" c\"},\"finish_reason\":\"length\"}]}\n\n"
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":3,\"total_tokens\":5}}\n\n"
    "data: [DONE]\n\n";

TEST(ClientWire, SendsHeadersAndBodyAndDecodesAStreamSplitAtEveryByte) {
  ScriptedServer server([](const std::string&, ScriptedConnection& c) {
    c.sse_headers();
    for (char ch : kChatStream) {  // one byte per TCP segment: every split of the stream
      c.write(std::string(1, ch));
      c.sleep_ms(0.05);
    }
  });
  ClientOptions opt;
  opt.base_url = server.base_url() + "/v1/";  // OpenAI-SDK style base URL is accepted
  opt.endpoint = "/v1/chat/completions";
  opt.model = "m1";
  opt.api_key = "sk-test";
  opt.headers = {"X-Trace: abc"};
  StreamingClient client(opt);
  EXPECT_EQ(client.request_url(), server.base_url() + "/v1/chat/completions");
  const auto recs = client.run(requests_now(1));
  ASSERT_EQ(recs.size(), 1u);
  const auto& r = recs[0];
  EXPECT_TRUE(r.ok()) << r.error_message;
  EXPECT_EQ(r.http_status, 200);
  EXPECT_EQ(r.client_tokens, 3);
  EXPECT_EQ(r.server_completion_tokens, 3);
  EXPECT_EQ(r.generated_text, " a b c");
  ASSERT_EQ(r.chunks.size(), 3u);
  EXPECT_EQ(r.first_token_ns, r.chunks[0].t_ns);
  EXPECT_LT(r.chunks[0].t_ns, r.chunks[1].t_ns);
  EXPECT_GT(r.sent_ns, 0);
  EXPECT_LE(r.sent_ns, r.first_token_ns);
  EXPECT_LE(r.chunks.back().t_ns, r.end_ns);

  const auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].rfind("POST /v1/chat/completions HTTP/1.1\r\n", 0), 0u);
  EXPECT_NE(reqs[0].find("Authorization: Bearer sk-test\r\n"), std::string::npos);
  EXPECT_NE(reqs[0].find("X-Trace: abc\r\n"), std::string::npos);
  EXPECT_EQ(reqs[0].find("Expect:"), std::string::npos);
  const auto body = nlohmann::json::parse(body_of(reqs[0]));
  EXPECT_EQ(body["model"], "m1");
  EXPECT_EQ(body["stream"], true);
  EXPECT_EQ(body["max_tokens"], 4);
  EXPECT_EQ(body["messages"][0]["role"], "user");
  EXPECT_EQ(body["messages"][0]["content"], "hello world");
  EXPECT_EQ(body["stream_options"]["include_usage"], true);
  EXPECT_EQ(body["stream_options"]["continuous_usage_stats"], true);
}

TEST(ClientWire, CompletionsBodyWithoutContinuousUsage) {
  ClientOptions opt;
  opt.base_url = "http://127.0.0.1:1";
  opt.model = "m";
  opt.continuous_usage = false;
  opt.extra_body_json = R"({"ignore_eos": true})";
  StreamingClient client(opt);
  StreamRequest r;
  r.prompt = "p q";
  r.max_tokens = 9;
  const auto body = nlohmann::json::parse(client.request_body(r));
  EXPECT_EQ(body["prompt"], "p q");
  EXPECT_FALSE(body.contains("messages"));
  EXPECT_EQ(body["stream_options"]["include_usage"], true);
  EXPECT_FALSE(body["stream_options"].contains("continuous_usage_stats"));
  EXPECT_EQ(body["ignore_eos"], true);
}

struct FaultCase {
  const char* name;
  std::function<void(ScriptedConnection&)> reply;
  ErrorKind expected;
  int expected_status;
};

TEST(ClientWire, EachBrokenReplyIsClassified) {
  const std::string tok = "data: {\"choices\":[{\"text\":\"x\"}]}\n\n";
  const std::vector<FaultCase> cases = {
      {"http500",
       [](ScriptedConnection& c) {
         c.write("HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
                 "{\"error\":{\"message\":\"engine died\"}}");
       },
       ErrorKind::kHttpStatus, 500},
      {"dropped", [&](ScriptedConnection& c) { c.sse_headers(); c.write(tok + tok); }, ErrorKind::kConnectionDropped, 200},
      {"malformed json", [&](ScriptedConnection& c) { c.sse_headers(); c.write(tok + "data: {oops\n\n" + tok); },
       ErrorKind::kMalformedResponse, 200},
      {"garbage line", [&](ScriptedConnection& c) { c.sse_headers(); c.write(tok + "garbage\n\n" + tok); },
       ErrorKind::kMalformedResponse, 200},
      {"error in stream",
       [&](ScriptedConnection& c) {
         c.sse_headers();
         c.write(tok + "data: {\"error\":{\"message\":\"out of memory\"}}\n\n");
       },
       ErrorKind::kServerError, 200},
      {"stall", [&](ScriptedConnection& c) { c.sse_headers(); c.write(tok); c.sleep_ms(700); }, ErrorKind::kTimeout, 200},
  };
  for (const auto& fc : cases) {
    ScriptedServer server([&](const std::string&, ScriptedConnection& c) { fc.reply(c); });
    ClientOptions opt;
    opt.base_url = server.base_url();
    opt.model = "m";
    opt.timeout_s = 0.3;
    StreamingClient client(opt);
    const Nanos t0 = steady_now_ns();
    const auto recs = client.run(requests_now(1));
    EXPECT_LT(steady_now_ns() - t0, 2'000'000'000) << fc.name;
    ASSERT_EQ(recs.size(), 1u);
    EXPECT_EQ(recs[0].error, fc.expected) << fc.name << ": " << recs[0].error_message;
    EXPECT_EQ(recs[0].http_status, fc.expected_status) << fc.name;
    EXPECT_FALSE(recs[0].error_message.empty()) << fc.name;
    EXPECT_GT(recs[0].end_ns, 0) << fc.name;
    if (fc.expected == ErrorKind::kHttpStatus) EXPECT_NE(recs[0].error_message.find("engine died"), std::string::npos);
  }
}

TEST(ClientWire, NonStreamingJsonReplyIsAccepted) {
  ScriptedServer server([](const std::string&, ScriptedConnection& c) {
    const std::string body =
        R"({"choices":[{"text":" tok0 tok1","finish_reason":"length"}],"usage":{"prompt_tokens":2,"completion_tokens":2}})";
    c.write("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
            "\r\nConnection: close\r\n\r\n" + body);
  });
  ClientOptions opt;
  opt.base_url = server.base_url();
  opt.model = "m";
  StreamingClient client(opt);
  const auto recs = client.run(requests_now(1));
  ASSERT_TRUE(recs[0].ok()) << recs[0].error_message;
  EXPECT_EQ(recs[0].client_tokens, 2);
  EXPECT_EQ(recs[0].generated_text, " tok0 tok1");
}

int closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);  // nothing listens there now
  return ntohs(addr.sin_port);
}

TEST(ClientWire, UnreachableServerGivesOneClearErrorAndEveryRequestFails) {
  ClientOptions opt;
  opt.base_url = "http://127.0.0.1:" + std::to_string(closed_port());
  opt.model = "m";
  opt.timeout_s = 5;
  StreamingClient client(opt);
  try {
    client.check_reachable(2.0);
    FAIL() << "no error for an unreachable server";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot reach the server at " + opt.base_url), std::string::npos) << e.what();
  }
  const Nanos t0 = steady_now_ns();
  const auto recs = client.run(requests_now(20, 1'000'000));
  EXPECT_LT(steady_now_ns() - t0, 3'000'000'000);
  ASSERT_EQ(recs.size(), 20u);
  for (const auto& r : recs) {
    EXPECT_EQ(r.error, ErrorKind::kConnectFailed) << r.error_message;
    EXPECT_EQ(r.sent_ns, 0);
  }
}

TEST(ClientWire, CancelEndsEveryRequest) {
  ScriptedServer server([](const std::string&, ScriptedConnection& c) {
    c.sse_headers();
    c.sleep_ms(300);
  });
  ClientOptions opt;
  opt.base_url = server.base_url();
  opt.model = "m";
  StreamingClient client(opt);
  std::atomic<bool> cancel{false};
  RunControl control;
  control.cancel = &cancel;
  int ended = 0;
  control.on_complete = [&](const RequestRecord&) { ++ended; };
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    cancel = true;
  });
  const auto recs = client.run(requests_now(5, 1'000'000'000), control);  // the last is due in 4 s
  stopper.join();
  EXPECT_EQ(ended, 5);
  for (const auto& r : recs) EXPECT_EQ(r.error, ErrorKind::kCancelled);
}

}  // namespace
}  // namespace qmeter::client
