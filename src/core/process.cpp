#include "qmeter/core/process.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>

#include "qmeter/core/clock.h"
#include "qmeter/core/error.h"

extern char** environ;

namespace qmeter {

static int decode_status(int st) {
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  return -1;
}

ChildProcess ChildProcess::spawn(const SpawnOptions& opts) {
  if (opts.argv.empty()) throw UsageError("cannot start a process: empty argv");
  // Build argv/envp before fork: the child may only call async-signal-safe functions.
  std::vector<char*> argv;
  for (const auto& a : opts.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    const std::string key = kv.substr(0, kv.find('='));
    if (!opts.env.count(key)) env_strings.push_back(kv);
  }
  for (const auto& [k, v] : opts.env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);

  int log_fd = -1, err_fd = -1;
  if (!opts.log_path.empty()) {
    log_fd = ::open(opts.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) throw Error("cannot open log file '" + opts.log_path + "': " + std::strerror(errno));
  }
  if (!opts.stderr_path.empty()) {
    err_fd = ::open(opts.stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (err_fd < 0) {
      if (log_fd >= 0) close(log_fd);
      throw Error("cannot open log file '" + opts.stderr_path + "': " + std::strerror(errno));
    }
  }
  // A pipe with CLOEXEC tells the parent whether exec succeeded: it closes on exec, or carries errno.
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) throw Error(std::string("pipe: ") + std::strerror(errno));
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) throw Error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    if (opts.own_process_group) setpgid(0, 0);
    if (opts.parent_death_signal > 0) {
      prctl(PR_SET_PDEATHSIG, opts.parent_death_signal);
      if (getppid() != parent) _exit(127);  // the parent died before prctl took effect
    }
    signal(SIGPIPE, SIG_DFL);
    if (log_fd >= 0) {
      dup2(log_fd, 1);
      dup2(log_fd, 2);
    }
    if (err_fd >= 0) dup2(err_fd, 2);
    if (!opts.cwd.empty() && chdir(opts.cwd.c_str()) != 0) {
      int e = errno;
      (void)!write(pipefd[1], &e, sizeof e);
      _exit(127);
    }
    execvpe(argv[0], argv.data(), envp.data());
    int e = errno;
    (void)!write(pipefd[1], &e, sizeof e);
    _exit(127);
  }
  if (opts.own_process_group) setpgid(pid, pid);  // also from the parent, so the group exists before any stop()
  close(pipefd[1]);
  if (log_fd >= 0) close(log_fd);
  if (err_fd >= 0) close(err_fd);
  int child_errno = 0;
  ssize_t n = read(pipefd[0], &child_errno, sizeof child_errno);
  close(pipefd[0]);
  if (n == sizeof child_errno) {
    int st = 0;
    waitpid(pid, &st, 0);
    throw Error("cannot start '" + opts.argv[0] + "': " + std::strerror(child_errno));
  }
  ChildProcess p;
  p.pid_ = pid;
  p.group_leader_ = opts.own_process_group;
  return p;
}

ChildProcess::ChildProcess(ChildProcess&& o) noexcept : pid_(o.pid_), group_leader_(o.group_leader_), status_(o.status_) {
  o.pid_ = -1;
}
ChildProcess& ChildProcess::operator=(ChildProcess&& o) noexcept {
  if (this != &o) {
    if (pid_ > 0 && !status_) stop(2.0);
    pid_ = o.pid_;
    group_leader_ = o.group_leader_;
    status_ = o.status_;
    o.pid_ = -1;
  }
  return *this;
}
ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !status_) stop(2.0);
}

bool ChildProcess::running() {
  if (pid_ <= 0 || status_) return false;
  int st = 0;
  pid_t r = waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = decode_status(st);
    return false;
  }
  return r == 0;
}

std::optional<int> ChildProcess::wait(double timeout_s) {
  if (pid_ <= 0) return status_;
  if (status_) return status_;
  if (timeout_s < 0) {
    int st = 0;
    while (waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
    status_ = decode_status(st);
    return status_;
  }
  const Nanos deadline = steady_now_ns() + s_to_ns(timeout_s);
  while (running()) {
    if (steady_now_ns() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return status_;
}

int ChildProcess::stop(double grace_s) {
  if (pid_ <= 0) return status_.value_or(-1);
  // A group leader is signalled with its group (-pid); a child in the caller's group alone.
  const pid_t target = group_leader_ ? -pid_ : pid_;
  if (running()) {
    kill(target, SIGTERM);
    if (!wait(grace_s)) {
      kill(target, SIGKILL);
      wait();
    }
  }
  // Grandchildren that outlived the leader still belong to the group.
  if (group_leader_) kill(-pid_, SIGKILL);
  return status_.value_or(-1);
}

CommandResult run_command(const std::vector<std::string>& argv, double timeout_s,
                          const std::map<std::string, std::string>& env) {
  // Output goes through two temporary files: no pipe to drain while waiting, and no deadlock on
  // a command that writes more than a pipe buffer.
  char out_tmpl[] = "/tmp/qmeter-cmd-out-XXXXXX";
  char err_tmpl[] = "/tmp/qmeter-cmd-err-XXXXXX";
  const int out_fd = mkstemp(out_tmpl);
  const int err_fd = mkstemp(err_tmpl);
  if (out_fd >= 0) close(out_fd);
  if (err_fd >= 0) close(err_fd);
  if (out_fd < 0 || err_fd < 0) throw Error(std::string("mkstemp: ") + std::strerror(errno));
  struct Cleanup {
    const char* a;
    const char* b;
    ~Cleanup() {
      ::unlink(a);
      ::unlink(b);
    }
  } cleanup{out_tmpl, err_tmpl};
  SpawnOptions o;
  o.argv = argv;
  o.env = env;
  o.log_path = out_tmpl;
  o.stderr_path = err_tmpl;
  ChildProcess child = ChildProcess::spawn(o);
  CommandResult r;
  if (auto st = child.wait(timeout_s)) {
    r.status = *st;
  } else {
    child.stop(1.0);
    r.status = -1;
  }
  auto slurp = [](const char* path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  };
  r.out = slurp(out_tmpl);
  r.err = slurp(err_tmpl);
  return r;
}

namespace {

// Field 22 of /proc/PID/stat (the start time in clock ticks since boot), and field 3 (the state);
// both after the command name, which is in parentheses and may itself hold ") ".
bool read_proc_stat(pid_t pid, unsigned long long& start_ticks, char& state, pid_t& pgrp) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return false;
  const auto close = line.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  std::vector<std::string> f;
  while (rest >> field) f.push_back(field);
  // f[0] is field 3 (state), so field N is f[N - 3].
  if (f.size() < 20) return false;
  state = f[0].empty() ? '?' : f[0][0];
  pgrp = static_cast<pid_t>(std::stol(f[2]));
  start_ticks = std::stoull(f[19]);
  return true;
}

// Members of a process group that are not zombies (a zombie holds nothing and is not ours to reap).
std::vector<pid_t> live_group_members(pid_t pgid) {
  std::vector<pid_t> out;
  DIR* d = opendir("/proc");
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    char* end = nullptr;
    const long pid = std::strtol(e->d_name, &end, 10);
    if (pid <= 0 || *end != '\0') continue;
    unsigned long long start = 0;
    char state = '?';
    pid_t pgrp = 0;
    if (read_proc_stat(static_cast<pid_t>(pid), start, state, pgrp) && pgrp == pgid && state != 'Z') {
      out.push_back(static_cast<pid_t>(pid));
    }
  }
  closedir(d);
  return out;
}

bool wait_group_gone(pid_t pgid, double timeout_s) {
  const Nanos deadline = steady_now_ns() + s_to_ns(timeout_s);
  while (!live_group_members(pgid).empty()) {
    if (steady_now_ns() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

}  // namespace

void write_process_record(const std::string& path, pid_t pgid) {
  unsigned long long start = 0;
  char state = '?';
  pid_t pgrp = 0;
  if (!read_proc_stat(pgid, start, state, pgrp)) return;  // already gone: nothing to remember
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << pgid << " " << start << "\n";
    if (!out) throw Error("cannot write process record '" + tmp + "'");
  }
  std::filesystem::rename(tmp, path);  // whole or absent, whenever we are killed
}

bool stop_recorded_process_group(const std::string& path, double grace_s) {
  std::ifstream in(path);
  long long pgid = 0;
  unsigned long long recorded_start = 0;
  if (!(in >> pgid >> recorded_start) || pgid <= 1) {
    std::error_code ec;
    std::filesystem::remove(path, ec);
    return false;
  }
  in.close();
  const auto g = static_cast<pid_t>(pgid);
  unsigned long long start = 0;
  char state = '?';
  pid_t pgrp = 0;
  // A live leader with another start time means the number was reused: not our group. A dead
  // leader with live members is ours: Linux does not reuse a number still naming a group.
  const bool leader_is_other = read_proc_stat(g, start, state, pgrp) && start != recorded_start;
  bool stopped = false;
  if (!leader_is_other && !live_group_members(g).empty()) {
    kill(-g, SIGTERM);
    if (!wait_group_gone(g, grace_s)) {
      kill(-g, SIGKILL);
      wait_group_gone(g, 5.0);
    }
    stopped = true;
  }
  std::error_code ec;
  std::filesystem::remove(path, ec);
  return stopped;
}

std::string file_tail(const std::string& path, std::size_t max_bytes) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return "";
  const auto size = static_cast<std::size_t>(in.tellg());
  const std::size_t start = size > max_bytes ? size - max_bytes : 0;
  in.seekg(static_cast<std::streamoff>(start));
  std::string out(size - start, '\0');
  in.read(out.data(), static_cast<std::streamsize>(out.size()));
  return out;
}

}  // namespace qmeter
