// A backend's describe() is stored with the run as JSON: values with quotes and backslashes (a
// model path, an argv entry, a URL) must come back intact through a JSON parser.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "qmeter/backend/backend.h"
#include "test_support.h"

using namespace qmeter;
using namespace qmeter::backend;

namespace {

const std::string kAwkward = "say \"hi\" \\ to C:\\models\\a\tb";

TEST(BackendDescribe, UrlBackendIsValidJsonWithQuotesAndBackslashes) {
  spec::BackendSpec s;
  s.kind = "url";
  s.url = "http://127.0.0.1:9/" + kAwkward;
  const auto j = nlohmann::json::parse(make_backend(s)->describe());
  EXPECT_EQ(j["kind"], "url");
  EXPECT_EQ(j["url"], s.url);
}

TEST(BackendDescribe, CommandBackendIsValidJsonWithQuotesAndBackslashes) {
  auto dir = qmeter::testing::test_output_dir("backend_describe");
  spec::BackendSpec s;
  s.kind = "command";
  // The shell only passes the mock server its port; the last argument carries the awkward text.
  s.argv = {"/bin/sh", "-c", "exec \"$0\" mock-server --port \"$1\"", qmeter::testing::qmeter_bin(), "{port}", kAwkward};
  s.startup_timeout_s = 20;
  auto b = make_backend(s);
  RunContext c;
  c.run_id = "r1";
  c.model_name = "m";
  c.log_path = dir + "/server.log";
  b->start(c);
  const auto j = nlohmann::json::parse(b->describe());
  b->stop();
  EXPECT_EQ(j["kind"], "command");
  ASSERT_EQ(j["argv"].size(), 6u);
  EXPECT_EQ(j["argv"][2], "exec \"$0\" mock-server --port \"$1\"");
  EXPECT_EQ(j["argv"][5], kAwkward);
  EXPECT_EQ(j["argv"][4], std::to_string(j["port"].get<int>()));
  EXPECT_GT(j["pid"].get<int>(), 0);
}

}  // namespace
