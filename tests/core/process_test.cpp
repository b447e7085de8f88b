#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

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

static bool wait_dead(int pid, double timeout_s) {
  const Nanos deadline = steady_now_ns() + s_to_ns(timeout_s);
  while (alive(pid)) {
    if (steady_now_ns() > deadline) return false;
    sleep_until_ns(steady_now_ns() + ms_to_ns(10));
  }
  return true;
}

// A middle process spawns a server-like child (its own group, as a backend server) and is then
// killed with SIGKILL, as a `qmeter run` can be. Returns the child's pid.
static int spawn_then_kill_the_parent(int parent_death_signal) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  const pid_t middle = fork();
  if (middle < 0) return -1;
  if (middle == 0) {
    close(fds[0]);
    SpawnOptions o;
    o.argv = {"sleep", "100"};
    o.parent_death_signal = parent_death_signal;
    auto c = ChildProcess::spawn(o);
    const int pid = c.pid();
    (void)!write(fds[1], &pid, sizeof pid);
    pause();
    _exit(0);
  }
  close(fds[1]);
  int child = -1;
  if (read(fds[0], &child, sizeof child) != static_cast<ssize_t>(sizeof child)) child = -1;
  close(fds[0]);
  kill(middle, SIGKILL);
  int st = 0;
  waitpid(middle, &st, 0);
  return child;
}

TEST(Process, AChildDiesWithItsParentEvenAfterSigkill) {
  const int child = spawn_then_kill_the_parent(SIGTERM);
  ASSERT_GT(child, 0);
  EXPECT_TRUE(wait_dead(child, 5.0)) << "child " << child << " outlived its killed parent";
  kill(child, SIGKILL);  // only if the assertion failed: leave nothing behind
}

TEST(Process, WithoutAParentDeathSignalTheChildOutlivesItsParent) {
  // The control for the test above: the option is what kills the child, not the test's setup.
  const int child = spawn_then_kill_the_parent(0);
  ASSERT_GT(child, 0);
  sleep_until_ns(steady_now_ns() + ms_to_ns(300));
  EXPECT_TRUE(alive(child));
  // The record of a leftover group is how a resumed study finds and stops such a child.
  auto dir = qmeter::testing::test_output_dir("process_record");
  const std::string record = dir + "/server.pgid";
  write_process_record(record, child);
  ASSERT_TRUE(std::filesystem::exists(record));
  EXPECT_TRUE(stop_recorded_process_group(record, 2.0));
  EXPECT_TRUE(wait_dead(child, 2.0));
  EXPECT_FALSE(std::filesystem::exists(record)) << "the record goes with the group";
  EXPECT_FALSE(stop_recorded_process_group(record, 2.0)) << "no record: nothing to stop";
  kill(child, SIGKILL);  // only if an assertion failed: leave nothing behind
}

TEST(Process, ARecordWhoseNumberWasReusedStopsNothing) {
  auto dir = qmeter::testing::test_output_dir("process_record_reused");
  SpawnOptions o;
  o.argv = {"sleep", "100"};
  auto c = ChildProcess::spawn(o);
  const std::string record = dir + "/server.pgid";
  // Same number, another start time: a later group that happens to have the old number.
  std::ofstream(record) << c.pid() << " 1\n";
  EXPECT_FALSE(stop_recorded_process_group(record, 1.0));
  EXPECT_TRUE(c.running()) << "an unrelated group must not be stopped";
  EXPECT_FALSE(std::filesystem::exists(record));
  std::ofstream(record) << "garbage\n";
  EXPECT_FALSE(stop_recorded_process_group(record, 1.0));
  c.stop(1.0);
}
