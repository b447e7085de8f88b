#pragma once
// Slurm through its own commands (sbatch, scontrol, sacct, scancel): qmeter schedules nothing
// itself. Private to exec; the parsers are declared here so tests can feed them Slurm's text.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace qmeter::exec::slurm {

// One job array: every task runs the same script with its own SLURM_ARRAY_TASK_ID.
struct ArraySubmission {
  std::string job_name;
  std::string script_path;
  std::string chdir;        // the tasks' working directory (the coordinator's: relative spec paths)
  std::string log_pattern;  // --output, with %A (array job) and %a (task)
  int tasks = 0;
  int max_parallel = 0;     // the %N throttle; 0 = none
  std::string partition, account, time_limit, mem;
  int gpus_per_task = 0;    // --gres=gpu:N when > 0
  int cpus_per_task = 0;    // --cpus-per-task when > 0
  bool requeue = false;     // --requeue (else --no-requeue: a node failure ends the task failed)
  std::vector<std::string> extra_args;  // --sbatch-arg values, passed as they are
};

// sbatch's argv for a submission (test_only: validate against the controller, submit nothing).
std::vector<std::string> sbatch_argv(const ArraySubmission& s, bool test_only);

// One array task as Slurm reports it.
struct TaskState {
  std::string job_id;  // the array job id
  int task_id = -1;
  std::string state;   // Slurm's JobState (PENDING, RUNNING, COMPLETED, CANCELLED, NODE_FAIL, ...)
  std::string node, exit_code, reason, elapsed;
  std::int64_t submit_unix_ms = 0, start_unix_ms = 0, end_unix_ms = 0;
};

// States in which the task may still run (or run again): anything not final.
bool is_live_state(const std::string& state);

// `scontrol show job -o` records (one per line); a pending array's record ("ArrayTaskId=3-7%2")
// becomes one PENDING state per task.
std::vector<TaskState> parse_scontrol_jobs(const std::string& text);
// `sacct -n -P -X --format=JobID,State,ExitCode,NodeList,Submit,Start,End,Elapsed,Reason`.
std::vector<TaskState> parse_sacct(const std::string& text);
// "1,3,5-7%2" -> {1,3,5,6,7}
std::vector<int> parse_task_range(const std::string& s);
// Slurm's local time "2026-12-06T04:30:00" -> unix ms; "Unknown", "None", "" -> 0.
std::int64_t parse_slurm_time(const std::string& s);

// The command-line option that an sbatch refusal is about ("--partition", "--account", ...), ""
// when the message names none.
std::string refused_option(const std::string& sbatch_message);

class SlurmClient {
 public:
  // Submits (after a --test-only validation when validate is set); returns the array job id.
  // Throws UsageError naming the option and Slurm's message when sbatch refuses, Error when
  // Slurm is not installed or its controller cannot be reached.
  std::string submit(const ArraySubmission& s);
  void validate(const ArraySubmission& s);
  // The state of every task of these array jobs that Slurm still knows (scontrol, then sacct for
  // jobs the controller has forgotten). Keyed by "JOB_TASK".
  std::map<std::string, TaskState> query(const std::vector<std::string>& job_ids);
  // The array job ids of pending or running jobs with this name (a submission whose id was never
  // recorded: the coordinator died between sbatch and its write).
  std::vector<std::string> jobs_named(const std::string& job_name);
  // scancel one task (task_id >= 0) or a whole array.
  void cancel(const std::string& job_id, int task_id = -1);
};

std::string task_key(const std::string& job_id, int task_id);

}  // namespace qmeter::exec::slurm
