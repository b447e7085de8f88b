#include <gtest/gtest.h>

#include "qmeter/backend/backend.h"
#include "qmeter/core/clock.h"
#include "qmeter/core/error.h"
#include "qmeter/core/paths.h"
#include "test_support.h"

using namespace qmeter;
using namespace qmeter::backend;

namespace {

RunContext context(const std::string& dir) {
  RunContext c;
  c.run_id = "r1";
  c.model_name = "tiny model";
  c.model_path = "/models/a b";
  c.method = "gptq";
  c.method_options = {{"bits", "4"}};
  c.log_path = dir + "/server.log";
  return c;
}

}  // namespace

TEST(CommandBackend, StartsARealServerFromTheTemplateAndStopsIt) {
  auto dir = qmeter::testing::test_output_dir("backend_mock");
  spec::BackendSpec s;
  s.kind = "command";
  s.argv = {qmeter::testing::qmeter_bin(), "mock-server", "--port", "{port}", "--ttft-ms", "1", "--itl-ms", "1"};
  s.startup_timeout_s = 20;
  auto b = make_backend(s);
  b->start(context(dir));
  EXPECT_TRUE(b->alive());
  EXPECT_EQ(b->served_model(), "tiny model");
  EXPECT_TRUE(wait_until_ready(b->base_url() + "/v1/models", 5, nullptr));
  EXPECT_NE(b->describe().find("\"mock-server\""), std::string::npos);
  b->stop();
  EXPECT_FALSE(b->alive());
  EXPECT_FALSE(wait_until_ready(b->base_url() + "/health", 0.3, nullptr));
}

TEST(CommandBackend, ServerThatExitsAtOnceFailsFastWithItsLogTail) {
  auto dir = qmeter::testing::test_output_dir("backend_exit");
  spec::BackendSpec s;
  s.kind = "command";
  s.argv = {"/bin/sh", "-c", "echo 'CUDA out of memory: model {model} too big'; exit 3"};
  s.startup_timeout_s = 30;
  auto b = make_backend(s);
  const Nanos t0 = steady_now_ns();
  try {
    b->start(context(dir));
    FAIL() << "start succeeded";
  } catch (const BackendError& e) {
    EXPECT_NE(std::string(e.what()).find("exited during startup with status 3"), std::string::npos) << e.what();
    EXPECT_NE(e.log_tail().find("CUDA out of memory: model tiny model too big"), std::string::npos) << e.log_tail();
  }
  EXPECT_LT(ns_to_s(steady_now_ns() - t0), 5.0);  // not the 30 s startup timeout
}

TEST(CommandBackend, ServerThatNeverBecomesReadyTimesOutAndIsKilled) {
  auto dir = qmeter::testing::test_output_dir("backend_hang");
  spec::BackendSpec s;
  s.kind = "command";
  s.argv = {"/bin/sh", "-c", "echo loading weights; exec sleep 100"};
  s.startup_timeout_s = 0.5;
  auto b = make_backend(s);
  try {
    b->start(context(dir));
    FAIL() << "start succeeded";
  } catch (const BackendError& e) {
    EXPECT_NE(std::string(e.what()).find("did not become ready"), std::string::npos) << e.what();
    EXPECT_NE(e.log_tail().find("loading weights"), std::string::npos);
  }
  EXPECT_FALSE(b->alive());
}

TEST(Backend, UnknownKindAndUnreachableUrl) {
  spec::BackendSpec s;
  s.kind = "kubernetes";
  EXPECT_THROW(make_backend(s), UsageError);
  s.kind = "url";
  s.url = "http://127.0.0.1:" + std::to_string(pick_free_port());
  s.startup_timeout_s = 0.3;
  auto b = make_backend(s);
  auto dir = qmeter::testing::test_output_dir("backend_url");
  EXPECT_THROW(b->start(context(dir)), BackendError);
}
