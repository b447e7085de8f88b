// Replies of an OpenAI-compatible server as the quality scorer reads them (src/quality/
// server_scorer.cpp): /tokenize (token ids, max_model_len), /v1/models, echo log-probabilities,
// generation and the capability probes. A loopback server answers every request with the
// fuzzer's bytes (status 200, JSON content type); the first byte picks the call.
#include <atomic>
#include <mutex>

#include "fuzz_support.h"
#include "qmeter/net/http_server.h"
#include "qmeter/quality/scorer.h"

namespace {

using namespace qmeter;

struct ReplyServer {
  std::mutex mu;
  std::string reply;
  net::HttpServer server{net::HttpServerOptions{}, [this](const net::HttpRequest&, const net::ResponseWriterPtr& w) {
                           net::HttpResponse r;
                           r.content_type = "application/json";
                           std::lock_guard lock(mu);
                           r.body = reply;
                           w->respond(std::move(r));
                         }};
  ReplyServer() { server.start(); }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static ReplyServer* srv = new ReplyServer();  // lives for the process
  if (size == 0) return 0;
  {
    std::lock_guard lock(srv->mu);
    srv->reply.assign(reinterpret_cast<const char*>(data + 1), size - 1);
  }
  quality::ServerScorerOptions o;
  o.base_url = "http://127.0.0.1:" + std::to_string(srv->server.port());
  o.model = "m";
  o.timeout_s = 10;
  auto scorer = quality::make_server_scorer(o);
  fuzz::expect_only_qmeter_errors([&] {
    switch (data[0] % 5) {
      case 0: (void)scorer->tokenize("Hello world", true); break;
      case 1: (void)scorer->context_length(); break;
      case 2: (void)scorer->score_text("Hello world", 2); break;
      case 3: (void)scorer->generate({.prompt = "Q: 1+1?\nA:", .max_tokens = 4, .stop = {"\n"}}); break;
      default: (void)scorer->probe_capabilities(); break;
    }
  });
  return 0;
}
