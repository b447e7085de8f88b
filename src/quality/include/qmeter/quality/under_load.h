#pragma once
// Quality under load: scores the responses a load run produced (not a separate quiet pass), so
// the effects of batching, preemption and load on outputs show beside latency and energy.
// Today's scorer: GSM8K exact match (strict and flexible) against each request's reference answer.
#include <memory>
#include <string>

#include "qmeter/loadgen/loadgen.h"
#include "qmeter/quality/eval.h"
#include "qmeter/workload/schedule.h"

namespace qmeter::quality {

class LoadScoreObserver final : public loadgen::RunObserver {
 public:
  // `task` names the scoring ("gsm8k"); UsageError when the schedule's prompts carry no reference.
  LoadScoreObserver(const workload::Schedule& schedule, std::string task);
  void on_run_stop(std::span<const client::RequestRecord> records, Nanos start_ns, Nanos stop_ns,
                   loadgen::ResultExtras& extras) override;
  // The last run's scores and per-request items (for the store).
  const TaskResult& result() const { return result_; }

 private:
  const workload::Schedule& schedule_;
  std::string task_;
  TaskResult result_;
};

// The load-scoring task for a dataset spec ("gsm8k:PATH" -> "gsm8k"), or "" when none applies.
std::string load_score_task(const std::string& dataset_spec);

}  // namespace qmeter::quality
