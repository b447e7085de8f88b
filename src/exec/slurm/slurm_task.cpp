// One array task on its node: the local code path for one run, into the run's own shard.
#include <fmt/core.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "qmeter/core/error.h"
#include "qmeter/core/parse_number.h"
#include "qmeter/exec/slurm_executor.h"
#include "results_layout.h"

namespace qmeter::exec {

namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

}  // namespace

slurm::ResultsLayout::ResultsLayout(const std::string& db_path) {
  const auto db = std::filesystem::absolute(db_path);
  dir = db.parent_path() / (db.stem().string() + ".slurm");
  jobs = dir / "jobs";
  logs = dir / "logs";
  shards = dir / "shards";
  out = dir / "out";
}

void slurm::ResultsLayout::create() const {
  for (const auto& d : {jobs, logs, shards, out}) std::filesystem::create_directories(d);
}

std::string slurm_results_dir(const std::string& db_path) { return slurm::ResultsLayout(db_path).dir.string(); }

int run_slurm_task(const std::string& spec_path, const std::string& runs_file, const std::string& results_dir,
                   const std::atomic<bool>* cancel) {
  const char* index_env = std::getenv("SLURM_ARRAY_TASK_ID");
  if (!index_env || !*index_env) throw UsageError("qmeter slurm task runs inside a Slurm array task (SLURM_ARRAY_TASK_ID is not set)");
  const auto index = static_cast<int>(parse_int_field(index_env, "SLURM_ARRAY_TASK_ID", 0, 1 << 30));
  std::ifstream in(runs_file);
  if (!in) throw UsageError("--runs-file: cannot read '" + runs_file + "'");
  std::string run_id;
  for (int i = 0; i <= index; ++i) {
    if (!std::getline(in, run_id)) throw UsageError(fmt::format("{}: no line {} (array task {})", runs_file, index + 1, index));
  }
  // A layout from the results folder itself: <dir>/shards, <dir>/out.
  const std::filesystem::path dir(results_dir);
  const std::string shard = (dir / "shards" / (run_id + ".db")).string();
  {
    char host[256] = {0};
    gethostname(host, sizeof host - 1);
    const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch()).count();
    nlohmann::json task = {{"run_id", run_id},
                           {"job_id", env_or("SLURM_ARRAY_JOB_ID", "")},
                           {"task_id", index},
                           {"node", env_or("SLURMD_NODENAME", host)},
                           {"host", host},
                           {"start_unix_ms", now_ms},
                           {"pid", static_cast<long>(getpid())}};
    std::ofstream((dir / "shards" / (run_id + ".task.json")).string()) << task.dump() << "\n";
  }
  fmt::print(stderr, "qmeter slurm task: run {} (array task {}) on {} -> {}\n", run_id, index,
             env_or("SLURMD_NODENAME", "?"), shard);
  StudyOptions o;
  o.spec_path = spec_path;
  o.db_path = shard;
  o.out_dir = (dir / "out").string();
  o.only_run = run_id;
  o.shard = true;
  o.write_report = false;
  o.cancel = cancel;
  const auto s = run_study(o);
  fmt::print("{}", s.summary_table);
  for (const auto& f : s.failures) fmt::print("FAILED {}\n", f);
  if (s.cancelled) return 130;
  return s.failed ? 3 : 0;
}

}  // namespace qmeter::exec
