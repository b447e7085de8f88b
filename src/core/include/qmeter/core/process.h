#pragma once
// Child processes without a shell: argv passes to execvp byte for byte (spaces, quotes and
// $(...) included). Each child leads its own process group so stop() reaches everything it
// started (a server's workers too): SIGTERM to the group, then SIGKILL after a grace period.
// A child also dies with its parent (PR_SET_PDEATHSIG): a `qmeter run` killed with SIGKILL must
// not leave a server holding a GPU behind it. Linux sends that signal when the *thread* that
// spawned the child ends, so long-lived children are spawned from long-lived threads.
#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace qmeter {

struct SpawnOptions {
  std::vector<std::string> argv;
  std::map<std::string, std::string> env;  // added to (and overriding) the parent's environment
  std::string log_path;                    // stdout+stderr appended here ("" = inherit)
  std::string stderr_path;                 // set: stderr goes here instead (truncated), stdout to log_path
  std::string cwd;                         // "" = the parent's
  int parent_death_signal = 15;            // SIGTERM to the child when its parent dies; 0 = none
  // false: the child stays in the caller's process group, so the terminal's Ctrl-C reaches it as
  // it reaches the caller (`qmeter energy -- CMD` runs CMD as a shell would, in the foreground);
  // stop() then signals the child alone.
  bool own_process_group = true;
};

class ChildProcess {
 public:
  // Throws Error naming argv[0] when it cannot be started (not found, not executable).
  static ChildProcess spawn(const SpawnOptions& opts);
  ChildProcess() = default;
  ChildProcess(ChildProcess&& o) noexcept;
  ChildProcess& operator=(ChildProcess&& o) noexcept;
  ~ChildProcess();  // stops the group if still running

  pid_t pid() const { return pid_; }
  bool running();  // reaps the child when it has exited
  // The exit status as a shell reports it: the exit code, or 128 + signal number.
  std::optional<int> exit_status() const { return status_; }
  // SIGTERM to the whole group, wait up to grace_s, then SIGKILL. Returns the exit status.
  int stop(double grace_s = 10.0);
  // Blocks until the child exits (timeout_s < 0: forever); nullopt on timeout.
  std::optional<int> wait(double timeout_s = -1);

 private:
  pid_t pid_ = -1;
  bool group_leader_ = true;  // SpawnOptions::own_process_group
  std::optional<int> status_;
};

// A short command whose output is read (a scheduler's client: sbatch, squeue, ...).
struct CommandResult {
  int status = -1;          // exit status as a shell reports it; -1: timed out (killed)
  std::string out, err;     // stdout and stderr, separately
};
// Runs argv without a shell and waits (at most timeout_s, then kills its group). Throws Error
// naming argv[0] when it cannot be started (not installed).
CommandResult run_command(const std::vector<std::string>& argv, double timeout_s = 60,
                          const std::map<std::string, std::string>& env = {});

// A process group that a killed qmeter may have left behind, remembered in a small file beside
// the server's log: "<pgid> <start time of the leader in clock ticks>". The start time tells the
// group from a later one that reused the number.
void write_process_record(const std::string& path, pid_t pgid);
// Stops the group a record names if it still exists (SIGTERM, then SIGKILL after grace_s) and
// removes the record. Returns true when a live group was found and stopped.
bool stop_recorded_process_group(const std::string& path, double grace_s = 10.0);

// The last `max_bytes` of a file (a crashed server's log tail for the failure record).
std::string file_tail(const std::string& path, std::size_t max_bytes = 4096);

}  // namespace qmeter
