#pragma once
// The Slurm results folder beside a study database (private to exec):
//   <db stem>.slurm/jobs/<tag>.sh|.runs|.yaml   each submission's script, run list and frozen spec
//   <db stem>.slurm/logs/<job>_<task>.log       each task's stdout and stderr
//   <db stem>.slurm/shards/<run>.db             each run's own SQLite file (rollback journal)
//   <db stem>.slurm/shards/<run>.task.json      where and when the task started
//   <db stem>.slurm/out/<run>/                  server logs and run files, as `--out` locally
#include <filesystem>
#include <string>

namespace qmeter::exec::slurm {

struct ResultsLayout {
  explicit ResultsLayout(const std::string& db_path);
  void create() const;
  std::filesystem::path dir, jobs, logs, shards, out;
  std::string shard(const std::string& run_id) const { return (shards / (run_id + ".db")).string(); }
  std::string task_file(const std::string& run_id) const { return (shards / (run_id + ".task.json")).string(); }
  std::string log(const std::string& job_id, int task_id) const {
    return (logs / (job_id + "_" + std::to_string(task_id) + ".log")).string();
  }
};

}  // namespace qmeter::exec::slurm
