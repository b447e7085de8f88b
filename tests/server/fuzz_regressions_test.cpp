// Requests the serve fuzz target (fuzz/fuzz_serve_request.cpp) found: each gets an OpenAI-style
// 4xx reply from `qmeter serve` (in-process, tiny synthetic model) instead of an exception
// escaping the handler.
#include <gtest/gtest.h>

#include <curl/curl.h>

#include <nlohmann/json.hpp>

#include "qmeter/engine/model.h"
#include "qmeter/server/inference_server.h"

namespace qmeter {
namespace {

std::size_t append(char* p, std::size_t size, std::size_t n, void* out) {
  static_cast<std::string*>(out)->append(p, size * n);
  return size * n;
}

std::pair<long, std::string> post(const std::string& url, const std::string& body) {
  CURL* c = curl_easy_init();
  std::string reply;
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, append);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &reply);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
  long status = 0;
  if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(c);
  return {status, reply};
}

// A body that is not valid JSON and carries a byte that is not UTF-8: the parse error's message
// quotes the byte, and dumping the error reply threw nlohmann type_error 316 out of the handler.
TEST(ServeFuzzRegressions, InvalidJsonWithNonUtf8BytesGetsA400) {
  auto model = std::shared_ptr<engine::Model>(engine::make_synthetic_model("synthetic:tiny", {}).release());
  server::ServeOptions o;
  o.model = "synthetic:tiny";
  o.port = 0;
  server::InferenceServer srv(o, model);
  srv.start();
  for (const char* path : {"/v1/completions", "/v1/chat/completions", "/tokenize", "/detokenize"}) {
    const auto [status, body] = post(srv.base_url() + path, std::string("{\"prompt\": \"x\", \"n\"\xA7: 2}"));
    EXPECT_EQ(status, 400) << path << ": " << body;
    const auto j = nlohmann::json::parse(body, nullptr, false);
    ASSERT_TRUE(j.is_object()) << path << ": " << body;
    EXPECT_TRUE(j.contains("error")) << path << ": " << body;
  }
  // The server still answers.
  EXPECT_EQ(post(srv.base_url() + "/tokenize", R"({"prompt": "hi"})").first, 200);
}

}  // namespace
}  // namespace qmeter
