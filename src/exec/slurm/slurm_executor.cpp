// The Slurm coordinator: submission, reconciliation with Slurm's view, merging, status, cancel.
#include "qmeter/exec/slurm_executor.h"

#include <fmt/core.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "../record_rows.h"
#include "../run_phases.h"
#include "qmeter/core/error.h"
#include "qmeter/core/process.h"
#include "qmeter/quant/method_options.h"
#include "qmeter/store/store.h"
#include "reconciler.h"
#include "results_layout.h"
#include "slurm_client.h"

namespace qmeter::exec {

namespace {

namespace fs = std::filesystem;
using slurm::ResultsLayout;
using slurm::TaskState;
using slurm::is_live;
using slurm::kNotSubmitted;
using slurm::kSubmitting;
using slurm::now_ms;
using slurm::Reconciler;

std::string sh_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string hms(std::int64_t ms) {
  const std::int64_t s = std::max<std::int64_t>(0, ms / 1000);
  return fmt::format("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
}


// What one array task asks Slurm for; runs asking the same share an array.
struct Resources {
  std::string partition;
  int gpus = 0, cpus = 0;
  bool operator<(const Resources& o) const {
    return std::tie(partition, gpus, cpus) < std::tie(o.partition, o.gpus, o.cpus);
  }
};

Resources resources_for(const spec::RunConfig& run, const spec::SlurmSpec& s, const SlurmOptions& o) {
  Resources r;
  r.partition = !run.hardware.partition.empty() ? run.hardware.partition : !o.partition.empty() ? o.partition : s.partition;
  // A command backend is a GPU server (vLLM, SGLang, TGI...): one GPU per tensor-parallel rank.
  r.gpus = s.gpus_per_run >= 0 ? s.gpus_per_run : (run.backend.kind == "command" ? run.tp : 0);
  if (s.cpus_per_run > 0) {
    r.cpus = s.cpus_per_run;
  } else if (run.backend.kind == "embedded") {
    auto it = run.backend.options.find("threads");
    r.cpus = it != run.backend.options.end() ? std::max(1, std::atoi(it->second.c_str())) : 1;
  }
  return r;
}

std::string self_exe() {
  std::error_code ec;
  auto p = fs::read_symlink("/proc/self/exe", ec);
  if (ec) throw Error("cannot find this executable (/proc/self/exe) for the Slurm tasks");
  return p.string();
}

std::string sanitize(const std::string& s) {
  std::string out;
  for (char c : s) out += std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' ? c : '-';
  return out;
}

// The study database of `slurm status|collect|cancel`: it must exist (they never create one).
std::unique_ptr<store::Store> open_existing(const std::string& db_path) {
  if (!std::ifstream(db_path)) throw UsageError("--db: no results database at '" + db_path + "'");
  return store::Store::open(db_path);
}

struct Submission {
  Resources res;
  std::vector<const spec::RunConfig*> runs;
  slurm::ArraySubmission array;
  std::string tag;
};

}  // namespace

StudySummary run_study_on_slurm(const StudyOptions& o, const SlurmOptions& so) {
  const auto spec = spec::parse_study_spec_file(o.spec_path, known_names());
  auto runs = spec::expand_runs(spec);
  if (!o.only_run.empty()) runs = select_run(runs, o.only_run, o.spec_path);
  StudySummary summary;
  summary.total = static_cast<int>(runs.size());
  if (o.dry_run) {
    fmt::print("{}", describe_plan(spec, runs));
    return summary;
  }
  const ResultsLayout layout(o.db_path);
  layout.create();
  auto db = store::Store::open(o.db_path);
  db->put_study(spec.name, spec.text);
  Reconciler reconciler(*db, layout);
  auto say = [&](const std::string& line) {
    if (o.progress) fmt::print(stderr, "{}\n", line);
  };
  for (const auto& line : reconciler.run(true)) say(line);

  // What to submit: neither complete here nor live in Slurm (failed ones only when asked).
  std::map<Resources, Submission> groups;
  std::set<std::string> study_runs;
  int in_flight = 0, failed_kept = 0;
  for (const auto& run : runs) {
    study_runs.insert(run.id);
    const auto status = db->run_status(run.id);
    const auto placed = db->placement(run.id);
    if (status == store::RunStatus::kComplete) {
      ++summary.skipped;
      continue;
    }
    if (placed && is_live(*placed)) {
      ++in_flight;
      continue;
    }
    if (status == store::RunStatus::kFailed && !so.retry_failed) {
      ++failed_kept;
      continue;
    }
    const Resources res = resources_for(run, spec.slurm, so);
    auto& g = groups[res];
    g.res = res;
    g.runs.push_back(&run);
  }
  const std::string exe = so.qmeter_binary.empty() ? self_exe() : so.qmeter_binary;
  const int max_parallel = so.max_parallel >= 0 ? so.max_parallel : spec.slurm.max_parallel;
  std::vector<Submission*> order;
  int serial = 0;
  for (auto& [res, g] : groups) {
    g.tag = fmt::format("{}-{}", now_ms(), serial++);
    auto& a = g.array;
    a.job_name = "qmeter-" + sanitize(spec.name) + "-" + g.tag;
    a.script_path = (layout.jobs / (g.tag + ".sh")).string();
    a.chdir = fs::current_path().string();
    a.log_pattern = (layout.logs / "%A_%a.log").string();
    a.tasks = static_cast<int>(g.runs.size());
    a.max_parallel = max_parallel;
    a.partition = res.partition;
    a.account = !so.account.empty() ? so.account : spec.slurm.account;
    a.time_limit = !so.time_limit.empty() ? so.time_limit : spec.slurm.time;
    a.mem = !so.mem.empty() ? so.mem : spec.slurm.mem;
    a.gpus_per_task = res.gpus;
    a.cpus_per_task = res.cpus;
    a.requeue = so.requeue;
    a.extra_args = spec.slurm.sbatch_args;
    a.extra_args.insert(a.extra_args.end(), so.sbatch_args.begin(), so.sbatch_args.end());
    order.push_back(&g);
  }
  // Scripts first (sbatch --test-only reads them), then every array is validated before any is
  // submitted: a refusal submits nothing.
  for (auto* g : order) {
    const fs::path runs_file = layout.jobs / (g->tag + ".runs");
    const fs::path spec_copy = layout.jobs / (g->tag + ".yaml");
    std::ofstream rf(runs_file);
    for (const auto* r : g->runs) rf << r->id << "\n";
    std::ofstream(spec_copy) << spec.text;
    std::ofstream sh(g->array.script_path);
    sh << "#!/bin/bash\n"
       << "# qmeter study '" << spec.name << "', submission " << g->tag << ": array task i runs the run on line\n"
       << "# i+1 of the .runs file beside this script, into shards/<run>.db (see `qmeter slurm status`).\n"
       << "exec " << sh_quote(exe) << " slurm task --spec " << sh_quote(spec_copy.string()) << " --runs-file "
       << sh_quote(runs_file.string()) << " --results " << sh_quote(layout.dir.string()) << "\n";
    sh.close();
    fs::permissions(g->array.script_path, fs::perms::owner_all | fs::perms::group_read | fs::perms::others_read);
  }
  for (auto* g : order) reconciler.client().validate(g->array);
  std::vector<std::string> submitted_jobs;
  for (auto* g : order) {
    for (std::size_t i = 0; i < g->runs.size(); ++i) {
      const auto* r = g->runs[i];
      store::PlacementRow p;
      p.run_id = r->id;
      p.executor = "slurm";
      p.label = fmt::format("{} {} tp={} {}", r->model.name, r->method.label(), r->tp, r->hardware.label());
      p.task_id = static_cast<int>(i);
      p.state = kSubmitting;
      p.reason = g->array.job_name;
      p.shard_path = layout.shard(r->id);
      if (auto old = db->placement(r->id)) p.attempt = old->state == kNotSubmitted ? old->attempt : old->attempt + 1;
      // An earlier attempt's shard is kept for inspection under its attempt number.
      std::error_code ec;
      if (fs::exists(p.shard_path)) {
        fs::rename(p.shard_path, layout.shards / fmt::format("{}.attempt{}.db", r->id, p.attempt - 1), ec);
      }
      fs::remove(layout.task_file(r->id), ec);
      db->put_placement(p);
    }
    std::string job;
    try {
      job = reconciler.client().submit(g->array);
    } catch (...) {
      for (const auto* r : g->runs) {
        auto p = *db->placement(r->id);
        p.state = kNotSubmitted;
        db->put_placement(p);
      }
      for (const auto& j : submitted_jobs) reconciler.client().cancel(j);
      throw;
    }
    submitted_jobs.push_back(job);
    for (const auto* r : g->runs) {
      auto p = *db->placement(r->id);
      p.job_id = job;
      p.state = "PENDING";
      p.reason = "";
      p.submit_unix_ms = now_ms();
      db->put_placement(p);
      store::RunRow row;
      row.id = r->id;
      row.study = r->study;
      row.model = r->model.name;
      row.method = r->method.label();
      row.config_json = r->normalized_json;
      row.properties_json = quant::configuration_properties(r->method.name, r->method.options).to_json();
      row.host_json = "{}";
      row.versions_json = versions_json();
      db->begin_run(row, store::RunStatus::kPending);
    }
    say(fmt::format("submitted job {}: {} run(s) as array tasks 0-{}{} ({}{}{})", job, g->runs.size(),
                    g->runs.size() - 1, max_parallel > 0 ? fmt::format(" %{}", max_parallel) : "",
                    g->res.partition.empty() ? "default partition" : "partition " + g->res.partition,
                    g->res.gpus > 0 ? fmt::format(", {} GPU(s)", g->res.gpus) : "",
                    g->res.cpus > 0 ? fmt::format(", {} CPU(s)", g->res.cpus) : ""));
  }
  if (failed_kept) say(fmt::format("{} failed run(s) not resubmitted (--retry-failed resubmits them)", failed_kept));
  if (in_flight) say(fmt::format("{} run(s) already pending or running in Slurm: followed, not resubmitted", in_flight));

  auto count = [&](store::RunStatus want) {
    int n = 0;
    for (const auto& id : study_runs) n += db->run_status(id) == want;
    return n;
  };
  auto live_runs = [&] {
    std::vector<store::PlacementRow> live;
    for (const auto& id : study_runs) {
      auto p = db->placement(id);
      if (p && is_live(*p)) live.push_back(*p);
    }
    return live;
  };
  if (so.detach) {
    std::string jobs;
    for (const auto& j : submitted_jobs) jobs += (jobs.empty() ? "" : ",") + j;
    fmt::print("submitted job(s) {} ({} live run(s)); follow with `qmeter slurm status --db {}`, merge with "
               "`qmeter slurm collect --db {}`\n",
               jobs.empty() ? "none" : jobs, live_runs().size(), o.db_path, o.db_path);
    summary.completed = count(store::RunStatus::kComplete) - summary.skipped;
    summary.cancelled = static_cast<int>(live_runs().size());
    summary.detached = true;
    return summary;
  }

  // Attached: follow the tasks, merging as they finish.
  const auto started = now_ms();
  std::vector<double> durations_s;
  int unanswered = 0;
  while (true) {
    // A controller that does not answer for a while (restart, overload) is waited out; the
    // tasks keep running meanwhile. Ten questions in a row without an answer end the wait.
    std::vector<std::string> lines;
    try {
      lines = reconciler.run(true);
      unanswered = 0;
    } catch (const Error& e) {
      if (++unanswered >= 10) throw;
      say(fmt::format("warning: {} (retrying; the tasks keep running)", e.what()));
    }
    for (const auto& line : lines) {
      say(line);
    }
    const auto live = live_runs();
    if (!lines.empty()) {
      for (const auto& id : study_runs) {
        auto p = db->placement(id);
        if (p && p->merged_unix_ms > started && p->end_unix_ms > p->start_unix_ms && p->start_unix_ms > 0) {
          durations_s.push_back(static_cast<double>(p->end_unix_ms - p->start_unix_ms) / 1000.0);
        }
      }
      const int running = static_cast<int>(std::count_if(live.begin(), live.end(), [](const auto& p) { return p.state == "RUNNING"; }));
      std::string eta = "";
      if (!durations_s.empty() && !live.empty()) {
        double mean = 0;
        for (double d : durations_s) mean += d;
        mean /= static_cast<double>(durations_s.size());
        eta = fmt::format(", ETA ~{:.0f} s", std::ceil(static_cast<double>(live.size()) / std::max(1, running)) * mean);
      }
      durations_s.clear();
      say(fmt::format("[slurm] {}/{} complete, {} failed, {} running, {} pending{}", count(store::RunStatus::kComplete),
                      study_runs.size(), count(store::RunStatus::kFailed), running, live.size() - running, eta));
    }
    if (live.empty()) break;
    if (o.cancel && o.cancel->load()) {
      bool cancel_tasks = so.cancel_on_interrupt;
      if (!cancel_tasks && isatty(STDIN_FILENO)) {
        fmt::print(stderr, "\ninterrupted: cancel the {} live Slurm task(s)? [y/N] ", live.size());
        std::string answer;
        std::getline(std::cin, answer);
        cancel_tasks = !answer.empty() && (answer[0] == 'y' || answer[0] == 'Y');
      }
      if (cancel_tasks) {
        for (const auto& p : live) {
          if (!p.job_id.empty()) reconciler.client().cancel(p.job_id, p.task_id);
        }
        std::this_thread::sleep_for(std::chrono::seconds(1));
        for (const auto& line : reconciler.run(true)) say(line);
        say(fmt::format("cancelled {} task(s); their runs are recorded failed (CANCELLED)", live.size()));
      } else {
        say(fmt::format("detached: {} task(s) keep running; `qmeter slurm collect --db {}` (or the same `qmeter run`) "
                        "merges them",
                        live.size(), o.db_path));
        summary.detached = true;
      }
      summary.cancelled = static_cast<int>(live.size());
      break;
    }
    for (int i = 0; i < static_cast<int>(so.poll_interval_s * 10) && !(o.cancel && o.cancel->load()); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  summary.completed = count(store::RunStatus::kComplete) - summary.skipped;
  summary.failed = count(store::RunStatus::kFailed);
  for (const auto& r : db->runs(spec.name)) {
    if (r.status == store::RunStatus::kFailed && study_runs.count(r.id)) {
      summary.failures.push_back(fmt::format("{} {} {}: {}", r.id, r.model, r.method, r.error));
    }
  }
  summary.summary_table = summary_table(*db, spec.name);
  if (o.write_report && summary.cancelled == 0) write_study_report(*db, spec.name, o, summary);
  return summary;
}

std::vector<SlurmRunStatus> slurm_status(const std::string& db_path) {
  auto db = open_existing(db_path);
  const ResultsLayout layout(db_path);
  Reconciler(*db, layout).run(false);
  std::vector<SlurmRunStatus> out;
  const auto now = now_ms();
  for (const auto& p : db->placements()) {
    if (p.executor != "slurm") continue;
    SlurmRunStatus s;
    s.run_id = p.run_id;
    s.label = p.label;
    s.job_id = p.job_id;
    s.task_id = p.task_id;
    s.node = p.node;
    s.slurm_state = p.state;
    s.exit_code = p.exit_code;
    s.reason = p.reason;
    if (p.start_unix_ms > 0) s.elapsed = hms((p.end_unix_ms > 0 ? p.end_unix_ms : now) - p.start_unix_ms);
    const auto st = db->run_status(p.run_id);
    if (st == store::RunStatus::kComplete) {
      s.status = "complete";
    } else if (st == store::RunStatus::kFailed) {
      s.status = "failed";
    } else if (p.state == "RUNNING" || p.state == "COMPLETING" || p.state == "CONFIGURING") {
      s.status = "running";
    } else if (is_live(p)) {
      s.status = "pending";
    } else if (p.state == kNotSubmitted) {
      s.status = "not submitted";
    } else {
      s.status = "finished (not merged: qmeter slurm collect)";
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::string format_slurm_status(const std::vector<SlurmRunStatus>& runs) {
  std::string out = fmt::format("{:<17} {:<10} {:<12} {:<6} {:<10} {:<12} {:<6}  {}\n", "run", "status", "job", "node",
                                "elapsed", "slurm", "exit", "run / reason");
  std::map<std::string, int> counts;
  for (const auto& r : runs) {
    ++counts[r.status];
    out += fmt::format("{:<17} {:<10} {:<12} {:<6} {:<10} {:<12} {:<6}  {}{}\n", r.run_id, r.status.substr(0, r.status.find(' ')),
                       r.job_id.empty() ? "-" : fmt::format("{}_{}", r.job_id, r.task_id), r.node.empty() ? "-" : r.node,
                       r.elapsed.empty() ? "-" : r.elapsed, r.slurm_state, r.exit_code.empty() ? "-" : r.exit_code, r.label,
                       r.reason.empty() ? "" : "  (" + r.reason + ")");
  }
  std::string totals;
  for (const auto& [k, v] : counts) totals += (totals.empty() ? "" : ", ") + fmt::format("{} {}", v, k);
  return out + fmt::format("{} run(s): {}\n", runs.size(), totals.empty() ? "none placed on Slurm" : totals);
}

CollectSummary slurm_collect(const std::string& db_path) {
  auto db = open_existing(db_path);
  const ResultsLayout layout(db_path);
  CollectSummary s;
  s.lines = Reconciler(*db, layout).run(true);
  for (const auto& p : db->placements()) {
    if (p.executor != "slurm") continue;
    if (is_live(p)) {
      ++s.live;
    } else if (db->run_status(p.run_id) == store::RunStatus::kFailed) {
      ++s.failed;
    } else if (db->run_status(p.run_id) == store::RunStatus::kComplete) {
      ++s.merged;
    }
  }
  return s;
}

int slurm_cancel(const std::string& db_path, const std::string& run_id) {
  auto db = open_existing(db_path);
  const ResultsLayout layout(db_path);
  Reconciler reconciler(*db, layout);
  reconciler.run(false);
  if (!run_id.empty() && !db->placement(run_id)) throw UsageError("--run: no run " + run_id + " was placed on Slurm from this database");
  int n = 0;
  for (const auto& p : db->placements()) {
    if (p.executor != "slurm" || !is_live(p) || p.job_id.empty()) continue;
    if (!run_id.empty() && p.run_id != run_id) continue;
    reconciler.client().cancel(p.job_id, p.task_id);
    ++n;
  }
  return n;
}

}  // namespace qmeter::exec
