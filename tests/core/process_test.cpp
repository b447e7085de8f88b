#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "qmeter/core/clock.h"
#include "qmeter/core/error.h"
#include "qmeter/core/process.h"
#include "test_support.h"

using namespace qmeter;

TEST(Process, ArgvReachesChildByteForByte) {
  auto dir = qmeter::testing::test_output_dir("process_argv");
  const std::vector<std::string> tricky = {"a b", "'single'", "\"double\"", "$(echo pwned)", "`x`", "; rm -rf /", ""};
  SpawnOptions o;
  o.argv = {"/usr/bin/printf", "[%s]\\n"};
  o.argv.insert(o.argv.end(), tricky.begin(), tricky.end());
  o.log_path = dir + "/out.log";
  auto p = ChildProcess::spawn(o);
  ASSERT_EQ(p.wait(10), 0);
  std::string expected;
  for (const auto& t : tricky) expected += "[" + t + "]\n";
  EXPECT_EQ(read_file(o.log_path), expected);
}

TEST(Process, EnvironmentAndExitStatus) {
  auto dir = qmeter::testing::test_output_dir("process_env");
  SpawnOptions o;
  o.argv = {"/bin/sh", "-c", "echo \"$QMETER_X\"; exit 7"};
  o.env = {{"QMETER_X", "v a l"}};
  o.log_path = dir + "/out.log";
  auto p = ChildProcess::spawn(o);
  EXPECT_EQ(p.wait(10), 7);
  EXPECT_EQ(read_file(o.log_path), "v a l\n");
  EXPECT_EQ(file_tail(o.log_path, 4), "a l\n");
}

TEST(Process, MissingProgramIsAClearError) {
  SpawnOptions o;
  o.argv = {"/no/such/program-qmeter"};
  try {
    ChildProcess::spawn(o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/no/such/program-qmeter"), std::string::npos);
  }
}

// True while the pid exists and is not a zombie.
static bool alive(int pid) {
  std::ifstream s("/proc/" + std::to_string(pid) + "/stat");
  std::string a, b, state;
  if (!(s >> a >> b >> state)) return false;
  return state != "Z";
}

TEST(Process, StopReachesTheWholeGroupAndEscalatesToSigkill) {
  auto dir = qmeter::testing::test_output_dir("process_stop");
  SpawnOptions o;
  // The shell ignores SIGTERM and has a grandchild; stop() must still end both.
  o.argv = {"/bin/sh", "-c", std::string("trap '' TERM; sleep 100 & echo $! > ") + dir + "/grandchild.pid; wait"};
  auto p = ChildProcess::spawn(o);
  const Nanos deadline = steady_now_ns() + s_to_ns(5);
  while (!std::filesystem::exists(dir + "/grandchild.pid") && steady_now_ns() < deadline) {
    sleep_until_ns(steady_now_ns() + ms_to_ns(10));
  }
  sleep_until_ns(steady_now_ns() + ms_to_ns(50));
  int gpid = 0;
  std::ifstream(dir + "/grandchild.pid") >> gpid;
  ASSERT_GT(gpid, 0);
  const Nanos t0 = steady_now_ns();
  int st = p.stop(0.3);
  EXPECT_EQ(st, 128 + 9);  // SIGKILL after the grace period
  EXPECT_LT(ns_to_s(steady_now_ns() - t0), 5.0);
  sleep_until_ns(steady_now_ns() + ms_to_ns(100));
  EXPECT_FALSE(alive(gpid)) << "grandchild " << gpid << " survived stop()";
}
