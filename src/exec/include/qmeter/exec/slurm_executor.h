#pragma once
// `qmeter run --executor slurm`: the study fans out over a Slurm cluster as job arrays (one array
// task per run, one array per distinct resource request), each task running the local code path
// for its one run (`qmeter slurm task`) into its own SQLite shard, and the coordinator merging
// finished shards into the study database, one transaction per run. Everything the coordinator
// knows is in the study database (run_placements) and the results folder beside it, so it can
// be killed at any moment and run again: live tasks are found, finished shards merged once.
#include <atomic>
#include <string>
#include <vector>

#include "qmeter/exec/study_runner.h"

namespace qmeter::exec {

struct SlurmOptions {
  // Resource flags; each overrides the spec's `executor.slurm` field of the same name.
  std::string partition, account, time_limit, mem;
  int max_parallel = -1;                  // -1: the spec's (0 = no throttle)
  std::vector<std::string> sbatch_args;   // passed to sbatch as they are (after the spec's)
  bool detach = false;                    // submit and return
  bool retry_failed = false;              // resubmit runs that failed (else they stay failed)
  bool requeue = false;                   // let Slurm requeue a task whose node failed
  bool cancel_on_interrupt = false;       // Ctrl-C cancels the live tasks without asking
  double poll_interval_s = 5;             // how often the attached coordinator asks Slurm
  std::string qmeter_binary;              // what the tasks run; "" = this executable
};

// Submits the runs that are neither complete in the database nor live in Slurm, then (unless
// detached) follows them to the end, merging as they finish.
StudySummary run_study_on_slurm(const StudyOptions& study, const SlurmOptions& slurm);

// The folder beside the database that holds the shards, job scripts and task logs.
std::string slurm_results_dir(const std::string& db_path);

// One run as `qmeter slurm status` shows it.
struct SlurmRunStatus {
  std::string run_id, label;
  std::string status;      // pending | running | complete | failed | finished (not merged yet)
  std::string job_id;
  int task_id = -1;
  std::string node, slurm_state, exit_code, reason, elapsed;
};

// Asks Slurm for the state of every placed run and records it (nothing is merged).
std::vector<SlurmRunStatus> slurm_status(const std::string& db_path);
std::string format_slurm_status(const std::vector<SlurmRunStatus>& runs);

struct CollectSummary {
  int merged = 0, failed = 0, live = 0, done_before = 0;
  std::vector<std::string> lines;  // one per run whose state changed
};
// Merges every finished shard and records every task that ended without a result.
CollectSummary slurm_collect(const std::string& db_path);

// scancel the live tasks (all, or the one of run_id); returns how many were cancelled.
int slurm_cancel(const std::string& db_path, const std::string& run_id = "");

// The body of one array task (`qmeter slurm task`): the run on line SLURM_ARRAY_TASK_ID + 1 of
// runs_file, executed by the local code path into results_dir/shards/<run>.db. Returns the exit
// status the task should end with (0 complete, 3 the run failed).
int run_slurm_task(const std::string& spec_path, const std::string& runs_file, const std::string& results_dir,
                   const std::atomic<bool>* cancel);

}  // namespace qmeter::exec
