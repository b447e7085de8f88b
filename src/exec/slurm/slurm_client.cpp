#include "slurm_client.h"

#include <algorithm>
#include <ctime>
#include <cstdlib>
#include <limits>
#include <optional>
#include <sstream>

#include "qmeter/core/error.h"
#include "qmeter/core/parse_number.h"
#include "qmeter/core/text.h"
#include "qmeter/core/process.h"

namespace qmeter::exec::slurm {

namespace {

bool contains(const std::string& s, const char* what) { return s.find(what) != std::string::npos; }

// A task index as Slurm writes it in a range ("[0-3,7]%2"); nullopt for anything else.
std::optional<int> task_index(std::string_view s) {
  const auto v = parse_int64(s);
  if (!v || *v < 0 || *v > std::numeric_limits<int>::max()) return std::nullopt;
  return static_cast<int>(*v);
}

// Runs a Slurm client command; "not installed" and "controller unreachable" become one clear
// error each, whichever command met them first.
CommandResult slurm_command(const std::vector<std::string>& argv, double timeout_s = 60) {
  CommandResult r;
  try {
    r = run_command(argv, timeout_s);
  } catch (const Error&) {
    throw Error("no Slurm on this machine: '" + argv[0] +
                "' is not installed or not on PATH (Debian: apt-get install slurm-client; or run with --executor local)");
  }
  const std::string msg = r.err + r.out;
  if (r.status == -1) throw Error("'" + argv[0] + "' did not answer within " + std::to_string(int(timeout_s)) + " s (slurmctld overloaded or unreachable)");
  if (r.status != 0 && (contains(msg, "Unable to contact slurm controller") || contains(msg, "Connection refused") ||
                        contains(msg, "Socket timed out") || contains(msg, "Unable to establish controller"))) {
    const char* conf = std::getenv("SLURM_CONF");
    throw Error("slurmctld unreachable (" + std::string(conf ? "SLURM_CONF=" + std::string(conf) : "default slurm.conf") +
                "): " + std::string(trim(msg)));
  }
  return r;
}

std::map<std::string, std::string> key_values(const std::string& line) {
  // Values may contain spaces (Command=, WorkDir=, Reason=...): a token without '=' continues the
  // previous value.
  std::map<std::string, std::string> kv;
  std::istringstream in(line);
  std::string tok, last;
  while (in >> tok) {
    const auto eq = tok.find('=');
    if (eq == std::string::npos || eq == 0) {
      if (!last.empty()) kv[last] += " " + tok;
      continue;
    }
    last = tok.substr(0, eq);
    kv[last] = tok.substr(eq + 1);
  }
  return kv;
}

std::string none_to_empty(const std::string& s) {
  return (s == "(null)" || s == "None" || s == "None assigned" || s == "Unknown" || s == "N/A") ? "" : s;
}

}  // namespace

std::string task_key(const std::string& job_id, int task_id) { return job_id + "_" + std::to_string(task_id); }

std::vector<std::string> sbatch_argv(const ArraySubmission& s, bool test_only) {
  std::vector<std::string> a = {"sbatch", "--parsable"};
  if (test_only) a.push_back("--test-only");
  a.push_back("--job-name=" + s.job_name);
  std::string array = "--array=0-" + std::to_string(s.tasks - 1);
  if (s.max_parallel > 0) array += "%" + std::to_string(s.max_parallel);
  a.push_back(array);
  if (!s.partition.empty()) a.push_back("--partition=" + s.partition);
  if (!s.account.empty()) a.push_back("--account=" + s.account);
  if (!s.time_limit.empty()) a.push_back("--time=" + s.time_limit);
  if (!s.mem.empty()) a.push_back("--mem=" + s.mem);
  if (s.gpus_per_task > 0) a.push_back("--gres=gpu:" + std::to_string(s.gpus_per_task));
  if (s.cpus_per_task > 0) a.push_back("--cpus-per-task=" + std::to_string(s.cpus_per_task));
  a.push_back(s.requeue ? "--requeue" : "--no-requeue");
  a.push_back("--ntasks=1");
  if (!s.chdir.empty()) a.push_back("--chdir=" + s.chdir);
  if (!s.log_pattern.empty()) a.push_back("--output=" + s.log_pattern);
  a.insert(a.end(), s.extra_args.begin(), s.extra_args.end());
  a.push_back(s.script_path);
  return a;
}

bool is_live_state(const std::string& state) {
  static const char* kFinal[] = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
                                 "PREEMPTED", "BOOT_FAIL", "DEADLINE", "REVOKED", "SPECIAL_EXIT"};
  for (const char* f : kFinal) {
    if (state.rfind(f, 0) == 0) return false;
  }
  return !state.empty();
}

std::vector<int> parse_task_range(const std::string& text) {
  std::vector<int> out;
  std::string s = text.substr(0, text.find('%'));
  if (!s.empty() && s.front() == '[') s = s.substr(1);
  if (!s.empty() && s.back() == ']') s.pop_back();
  std::istringstream in(s);
  std::string part;
  while (std::getline(in, part, ',')) {
    // A malformed range names no task.
    const auto dash = part.find('-');
    const auto lo = task_index(std::string_view(part).substr(0, dash));
    const auto hi = dash == std::string::npos ? lo : task_index(std::string_view(part).substr(dash + 1));
    if (lo && hi)
      for (int i = *lo; i <= *hi && *hi - *lo < 1000000; ++i) out.push_back(i);
  }
  return out;
}

std::int64_t parse_slurm_time(const std::string& s) {
  std::tm tm{};
  if (s.size() < 19 || !strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) return 0;
  tm.tm_isdst = -1;
  const std::time_t t = std::mktime(&tm);
  return t < 0 ? 0 : static_cast<std::int64_t>(t) * 1000;
}

std::vector<TaskState> parse_scontrol_jobs(const std::string& text) {
  std::vector<TaskState> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    auto kv = key_values(line);
    if (!kv.count("JobState")) continue;
    TaskState t;
    t.job_id = kv.count("ArrayJobId") ? kv["ArrayJobId"] : kv["JobId"];
    t.state = kv["JobState"];
    t.node = none_to_empty(kv["NodeList"]);
    if (t.node.empty()) t.node = none_to_empty(kv["BatchHost"]);
    t.exit_code = kv["ExitCode"];
    t.reason = none_to_empty(kv["Reason"]);
    t.elapsed = kv["RunTime"];
    t.submit_unix_ms = parse_slurm_time(kv["SubmitTime"]);
    t.start_unix_ms = t.state == "PENDING" ? 0 : parse_slurm_time(kv["StartTime"]);
    t.end_unix_ms = is_live_state(t.state) ? 0 : parse_slurm_time(kv["EndTime"]);
    for (int task : parse_task_range(kv.count("ArrayTaskId") ? kv["ArrayTaskId"] : "0")) {
      t.task_id = task;
      out.push_back(t);
    }
  }
  return out;
}

std::vector<TaskState> parse_sacct(const std::string& text) {
  std::vector<TaskState> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::istringstream fields(line);
    std::string x;
    while (std::getline(fields, x, '|')) f.push_back(x);
    if (f.size() < 8) continue;
    const auto us = f[0].find('_');
    TaskState t;
    t.job_id = f[0].substr(0, us);
    t.state = f[1].substr(0, f[1].find(' '));  // "CANCELLED by 0" -> CANCELLED
    t.exit_code = f[2];
    t.node = none_to_empty(f[3]);
    t.submit_unix_ms = parse_slurm_time(f[4]);
    t.start_unix_ms = parse_slurm_time(f[5]);
    t.end_unix_ms = parse_slurm_time(f[6]);
    t.elapsed = f[7];
    if (f.size() > 8) t.reason = none_to_empty(f[8]);
    for (int task : parse_task_range(us == std::string::npos ? "0" : f[0].substr(us + 1))) {
      t.task_id = task;
      out.push_back(t);
    }
  }
  return out;
}

std::string refused_option(const std::string& m) {
  std::string low;
  for (char c : m) low += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (contains(low, "partition")) return "--partition";
  if (contains(low, "account")) return "--account";
  if (contains(low, "time limit") || contains(low, "--time") || contains(low, "time specification")) return "--time";
  if (contains(low, "qos")) return "--sbatch-arg (qos)";
  if (contains(low, "gres") || contains(low, "generic resource")) return "--gres (executor.slurm.gpus_per_run)";
  if (contains(low, "memory")) return "--mem";
  if (contains(low, "node configuration") || contains(low, "cpu count")) {
    return "the resources asked per task (executor.slurm cpus_per_run / gpus_per_run)";
  }
  return "";
}

static void throw_refused(const ArraySubmission& s, const CommandResult& r) {
  const std::string msg(trim(r.err + "\n" + r.out));
  const std::string opt = refused_option(msg);
  std::string all;
  for (const auto& a : sbatch_argv(s, false)) all += (all.empty() ? "" : " ") + a;
  throw UsageError("sbatch refused the submission" + (opt.empty() ? "" : " (" + opt + ")") + ": " + msg +
                   "\n  command: " + all + "\n  nothing was submitted");
}

void SlurmClient::validate(const ArraySubmission& s) {
  auto r = slurm_command(sbatch_argv(s, true));
  if (r.status != 0) throw_refused(s, r);
}

std::string SlurmClient::submit(const ArraySubmission& s) {
  auto r = slurm_command(sbatch_argv(s, false));
  if (r.status != 0) throw_refused(s, r);
  std::string id(trim(r.out));
  id = id.substr(0, id.find(';'));  // "--parsable" prints "ID" or "ID;cluster"
  if (id.empty() || id.find_first_not_of("0123456789") != std::string::npos) {
    throw Error("sbatch answered '" + std::string(trim(r.out)) + "' instead of a job id");
  }
  return id;
}

std::map<std::string, TaskState> SlurmClient::query(const std::vector<std::string>& job_ids) {
  std::map<std::string, TaskState> out;
  std::vector<std::string> forgotten;
  for (const auto& id : job_ids) {
    auto r = slurm_command({"scontrol", "show", "job", "-o", id});
    if (r.status != 0) {
      forgotten.push_back(id);  // "Invalid job id specified": purged after MinJobAge
      continue;
    }
    for (auto& t : parse_scontrol_jobs(r.out)) out[task_key(t.job_id, t.task_id)] = t;
  }
  if (forgotten.empty()) return out;
  std::string list;
  for (const auto& id : forgotten) list += (list.empty() ? "" : ",") + id;
  // sacct needs Slurm's accounting database; without one it fails and the shards decide.
  auto r = slurm_command({"sacct", "-n", "-P", "-X", "-j", list,
                          "--format=JobID,State,ExitCode,NodeList,Submit,Start,End,Elapsed,Reason"});
  if (r.status == 0) {
    for (auto& t : parse_sacct(r.out)) out.try_emplace(task_key(t.job_id, t.task_id), t);
  }
  return out;
}

std::vector<std::string> SlurmClient::jobs_named(const std::string& job_name) {
  auto r = slurm_command({"squeue", "-h", "-n", job_name, "-o", "%F"});
  std::vector<std::string> ids;
  std::istringstream in(r.out);
  std::string id;
  while (in >> id) {
    if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
  }
  return ids;
}

void SlurmClient::cancel(const std::string& job_id, int task_id) {
  auto r = slurm_command({"scancel", task_id >= 0 ? task_key(job_id, task_id) : job_id});
  if (r.status != 0) throw Error("scancel " + job_id + " failed: " + std::string(trim(r.err + r.out)));
}

}  // namespace qmeter::exec::slurm
