#include "reconciler.h"

#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>

#include "qmeter/core/error.h"
#include "qmeter/core/process.h"

namespace qmeter::exec::slurm {

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool is_live(const store::PlacementRow& p) { return p.state == kSubmitting || is_live_state(p.state); }

namespace {

namespace fs = std::filesystem;

// Settled: merged, or ended failed and recorded so in the runs table.
bool is_settled(const store::PlacementRow& p, const store::Store& db) {
  if (p.merged_unix_ms > 0 || p.state == kNotSubmitted) return true;
  if (is_live(p)) return false;
  const auto st = db.run_status(p.run_id);
  return st == store::RunStatus::kFailed || st == store::RunStatus::kComplete;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The job id a started task wrote into its task file ("" when it never started).
std::string job_from_task_file(const std::string& path) {
  try {
    auto j = nlohmann::json::parse(read_text(path));
    return j.value("job_id", "");
  } catch (const std::exception&) {
    return "";
  }
}

}  // namespace

std::vector<std::string> Reconciler::run(bool merge) {
  std::vector<std::string> lines;
  std::vector<store::PlacementRow> open;
  for (auto& p : db_.placements()) {
    if (p.executor == "slurm" && !is_settled(p, db_)) open.push_back(std::move(p));
  }
  if (open.empty()) return lines;
  recover_submitting(open);
  std::vector<std::string> jobs;
  for (const auto& p : open) {
    if (!p.job_id.empty() && std::find(jobs.begin(), jobs.end(), p.job_id) == jobs.end()) jobs.push_back(p.job_id);
  }
  const auto states = client_.query(jobs);
  for (auto& p : open) {
    if (p.state == kSubmitting || p.state == kNotSubmitted) continue;
    const std::string before = p.state + "|" + p.node;
    const auto it = states.find(task_key(p.job_id, p.task_id));
    const bool known = it != states.end();
    if (known) apply(it->second, p);
    std::string line;
    if (known && is_live_state(p.state)) {
      db_.put_placement(p);
    } else if (merge) {
      line = settle(p, known);
    } else {
      db_.put_placement(p);
    }
    if (line.empty() && before != p.state + "|" + p.node) line = describe(p);
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

std::string Reconciler::describe(const store::PlacementRow& p) {
  std::string where = p.node.empty() ? "" : " on " + p.node;
  return fmt::format("run {} ({}) {}{} [job {}_{}]", p.run_id, p.label, p.state, where, p.job_id, p.task_id);
}

void Reconciler::apply(const TaskState& t, store::PlacementRow& p) {
  p.state = t.state;
  if (t.state == "PENDING") {  // (again, when requeued): where and when it ran before is void
    p.node.clear();
    p.start_unix_ms = p.end_unix_ms = 0;
  }
  if (!t.node.empty()) p.node = t.node;
  if (t.submit_unix_ms) p.submit_unix_ms = t.submit_unix_ms;
  if (t.start_unix_ms) p.start_unix_ms = t.start_unix_ms;
  if (t.end_unix_ms) p.end_unix_ms = t.end_unix_ms;
  p.exit_code = t.exit_code;
  p.reason = t.reason;
}

// A submission whose job id was never written (the coordinator died between sbatch and its
// write): adopt the job Slurm has under the submission's name, or the id its tasks wrote.
void Reconciler::recover_submitting(std::vector<store::PlacementRow>& open) {
  std::map<std::string, std::string> adopted;  // job name -> id
  for (auto& p : open) {
    if (p.state != kSubmitting) continue;
    const std::string name = p.reason;
    if (!adopted.count(name)) {
      auto ids = client_.jobs_named(name);
      adopted[name] = ids.empty() ? "" : ids.front();
    }
    std::string id = adopted[name];
    if (id.empty()) id = job_from_task_file(layout_.task_file(p.run_id));
    if (id.empty()) {
      for (const auto& q : open) {
        if (q.reason == name && !job_from_task_file(layout_.task_file(q.run_id)).empty()) {
          id = job_from_task_file(layout_.task_file(q.run_id));
          break;
        }
      }
    }
    if (!id.empty()) adopted[name] = id;
    p.job_id = id;
    p.state = id.empty() ? kNotSubmitted : "PENDING";
    p.reason = id.empty() ? "never submitted (the coordinator stopped before sbatch answered)" : "";
    db_.put_placement(p);
  }
}

// A task Slurm reports finished, or no longer knows.
std::string Reconciler::settle(store::PlacementRow& p, bool known) {
  const bool ended_by_itself = !known || p.state == "COMPLETED" || p.state == "FAILED";
  if (ended_by_itself) {
    const auto t0 = std::chrono::steady_clock::now();
    auto outcome = store::MergeOutcome::kShardIncomplete;
    try {
      outcome = db_.merge_run(p.shard_path, p.run_id);
    } catch (const Error& e) {
      // A shard that cannot be read (missing, corrupt) fails its run, not the coordinator.
      p.reason = e.what();
    }
    const double merge_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (outcome != store::MergeOutcome::kShardIncomplete) {
      p.merged_unix_ms = now_ms();
      if (!known && p.state.empty()) p.state = "COMPLETED";
      db_.put_placement(p);
      const auto st = db_.run_status(p.run_id);
      return fmt::format("run {} ({}) {} on {}, {}", p.run_id, p.label,
                         st == store::RunStatus::kComplete ? "complete" : "FAILED (the run itself)", p.node,
                         outcome == store::MergeOutcome::kAlreadyComplete ? "merged before"
                                                                           : fmt::format("merged in {:.1f} ms", merge_ms));
    }
  }
  // Cut off by Slurm (cancelled, node failure, time limit, out of memory) or lost: the run is
  // failed with Slurm's word for it; its partial shard stays for inspection, unmerged.
  if (!known) {
    p.reason = "Slurm no longer knows this task and its shard holds no finished run" +
               (p.reason.empty() ? "" : " (last reason: " + p.reason + ")");
    if (p.state.empty() || is_live_state(p.state)) p.state = "LOST";
  }
  const std::string error =
      fmt::format("slurm: {} (exit {}{}) on {} [job {}_{}]; partial shard kept unmerged: {}", p.state,
                  p.exit_code.empty() ? "?" : p.exit_code, p.reason.empty() ? "" : ", reason " + p.reason,
                  p.node.empty() ? "?" : p.node, p.job_id, p.task_id, p.shard_path);
  if (!db_.run_status(p.run_id)) {
    store::RunRow row;
    row.id = p.run_id;
    row.study = "";
    db_.begin_run(row, store::RunStatus::kPending);
  }
  db_.finish_run(p.run_id, store::RunStatus::kFailed, error, file_tail(layout_.log(p.job_id, p.task_id), 4096));
  db_.put_placement(p);
  return fmt::format("run {} ({}) FAILED: {}", p.run_id, p.label, error);
}

}  // namespace qmeter::exec::slurm
