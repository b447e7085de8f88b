#include "qmeter/quality/under_load.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "qmeter/core/error.h"
#include "task_common.h"

namespace qmeter::quality {

std::string load_score_task(const std::string& dataset_spec) {
  return dataset_spec.rfind("gsm8k:", 0) == 0 ? "gsm8k" : "";
}

LoadScoreObserver::LoadScoreObserver(const workload::Schedule& schedule, std::string task)
    : schedule_(schedule), task_(std::move(task)) {
  if (task_ != "gsm8k") throw UsageError(fmt::format("--score: no scoring for '{}' under load (supported: gsm8k)", task_));
  for (const auto& r : schedule_.requests)
    if (r.prompt.reference.empty())
      throw UsageError("--score needs a dataset whose prompts carry reference answers (gsm8k:PATH)");
}

void LoadScoreObserver::on_run_stop(std::span<const client::RequestRecord> records, Nanos, Nanos,
                                    loadgen::ResultExtras& extras) {
  result_ = TaskResult{};
  result_.task = task_ + " (under load)";
  result_.kind = task_;
  int n = 0, strict_ok = 0, flex_ok = 0, failed = 0;
  for (const auto& r : records) {
    if (r.warmup) continue;
    if (!r.ok()) {
      ++failed;
      continue;
    }
    if (r.index < 0 || static_cast<std::size_t>(r.index) >= schedule_.requests.size()) continue;
    const std::string target = gsm8k_flexible_answer(schedule_.requests[static_cast<std::size_t>(r.index)].prompt.reference);
    const std::string reply = gsm8k_cut_at_stop(r.generated_text);
    const std::string strict = gsm8k_strict_answer(reply), flex = gsm8k_flexible_answer(reply);
    const bool s_ok = gsm8k_numbers_equal(strict, target), f_ok = gsm8k_numbers_equal(flex, target);
    strict_ok += s_ok;
    flex_ok += f_ok;
    ++n;
    nlohmann::json j = {{"request", r.index}, {"target", target}, {"reply", reply}, {"strict", strict},
                        {"flexible", flex}, {"exact_match_strict", s_ok ? 1 : 0}, {"exact_match_flexible", f_ok ? 1 : 0}};
    result_.items.push_back({static_cast<int>(r.index), j.dump()});
  }
  extras.strings.emplace_back("score_task", task_);
  extras.numbers.emplace_back("score_n", n);
  extras.numbers.emplace_back("score_failed_requests", failed);
  if (n == 0) {
    extras.summary_lines.push_back(fmt::format("quality under load ({}): no completed request to score", task_));
    return;
  }
  const double s = static_cast<double>(strict_ok) / n, f = static_cast<double>(flex_ok) / n;
  result_.metrics.push_back({"exact_match_strict", s, detail::binomial_stderr(s, n), n});
  result_.metrics.push_back({"exact_match_flexible", f, detail::binomial_stderr(f, n), n});
  for (const auto& m : result_.metrics) {
    extras.numbers.emplace_back(m.name, m.value);
    extras.numbers.emplace_back(m.name + "_stderr", m.stderr_);
  }
  extras.summary_lines.push_back(fmt::format("quality under load ({}, {} completed, {} failed): exact match strict {:.4f} "
                                             "+/- {:.4f}, flexible {:.4f} +/- {:.4f}",
                                             task_, n, failed, s, result_.metrics[0].stderr_, f, result_.metrics[1].stderr_));
}

}  // namespace qmeter::quality
