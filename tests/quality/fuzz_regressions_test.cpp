// Server replies the scorer fuzz target (fuzz/fuzz_tokenize_reply.cpp) found: each is now a
// qmeter::Error naming the server and the endpoint, not undefined behaviour or a JSON exception.
#include <gtest/gtest.h>

#include <mutex>

#include "qmeter/core/error.h"
#include "qmeter/net/http_server.h"
#include "qmeter/quality/scorer.h"

namespace qmeter::quality {
namespace {

// A loopback server that answers every request with one fixed JSON body.
struct FixedReplyServer {
  std::string reply;
  net::HttpServer server{net::HttpServerOptions{}, [this](const net::HttpRequest&, const net::ResponseWriterPtr& w) {
                           net::HttpResponse r;
                           r.content_type = "application/json";
                           r.body = reply;
                           w->respond(std::move(r));
                         }};
  explicit FixedReplyServer(std::string body) : reply(std::move(body)) { server.start(); }
  std::unique_ptr<Scorer> scorer() {
    ServerScorerOptions o;
    o.base_url = "http://127.0.0.1:" + std::to_string(server.port());
    o.model = "m";
    return make_server_scorer(o);
  }
};

std::string tokenize_error(const std::string& reply) {
  FixedReplyServer srv(reply);
  try {
    (void)srv.scorer()->tokenize("Hello", true);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// {"tokens": [1e300]} used to convert 1e300 to int (undefined behaviour; UBSan stops there).
TEST(ScorerFuzzRegressions, TokenIdsThatAreNotIntsAreAClearError) {
  for (const char* reply : {R"({"tokens":[1e300]})", R"({"tokens":[1.5]})", R"({"tokens":[3000000000]})",
                            R"({"tokens":[-1]})", R"({"tokens":["a"]})", R"({"tokens":[null]})"}) {
    const std::string msg = tokenize_error(reply);
    EXPECT_NE(msg.find("/tokenize"), std::string::npos) << reply << " -> " << msg;
    EXPECT_NE(msg.find("token id"), std::string::npos) << reply << " -> " << msg;
  }
}

TEST(ScorerFuzzRegressions, ValidTokenIdsStillParse) {
  FixedReplyServer srv(R"({"count":3,"max_model_len":64,"tokens":[1,15043,0]})");
  EXPECT_EQ(srv.scorer()->tokenize("Hello", true), (std::vector<int>{1, 15043, 0}));
}

}  // namespace
}  // namespace qmeter::quality
