#pragma once
// Quality tasks (one registry table, tasks.cpp): perplexity, multiple choice, GSM8K and fidelity
// (KL divergence to a baseline). Each task scores items through a Scorer and returns metrics with
// standard errors in lm-evaluation-harness's shape, plus one record per item for the store.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "qmeter/quality/scorer.h"

namespace qmeter::quality {

// "perplexity:PATH", "mc:PATH", "gsm8k:PATH", "kl:BASE_URL" (or "kl:engine" for the in-process
// baseline given to run_task).
struct TaskSpec {
  std::string kind;
  std::string arg;
  std::string name() const { return kind + ":" + arg; }
};
TaskSpec parse_task_spec(const std::string& text);  // UsageError naming the known kinds
std::vector<std::string> task_kinds();

struct EvalOptions {
  int limit = 0;        // items scored (0: all)
  int concurrency = 1;  // requests in flight (capped by the scorer)
  std::string ppl_mode = "document";  // document | window
  int window = 0;                     // window length in tokens (0: the context length)
  int num_fewshot = 5;
  std::string fewshot_path;  // gsm8k exemplars; empty: the first items, excluded from scoring
  int max_gen_tokens = 256;
  int top_logprobs = 20;     // kl through a server
  std::string kl_text;       // kl: the text scored by both models
  int bootstrap_resamples = 1000;
  std::uint64_t seed = 1234;
  std::function<void(int done, int total)> progress;
};

struct Metric {
  std::string name;  // perplexity, word_perplexity, byte_perplexity, bits_per_byte, acc, acc_norm, ...
  double value = 0;
  double stderr_ = 0;
  int n = 0;
};

struct ItemRecord {
  int index = 0;
  std::string json;  // the item's request, reply and score
};

struct TaskResult {
  std::string task;  // the spec as given ("mc:/path/arc.jsonl")
  std::string kind;  // "perplexity", "mc", ...
  std::vector<Metric> metrics;
  std::vector<ItemRecord> items;
  double seconds = 0;
  const Metric* find(const std::string& metric) const;
};

// Runs one task. `baseline` is the reference model for kl (null: the task's BASE_URL is used).
TaskResult run_task(const TaskSpec& spec, Scorer& scorer, const EvalOptions& options, Scorer* baseline = nullptr);

// {"results": {task: {metric: v, metric_stderr: s, n: N, ...}}, "config": {...}} as text.
std::string results_json(const std::vector<TaskResult>& results, const std::string& config_json);
std::vector<std::string> results_table(const std::vector<TaskResult>& results);

// Scoring helpers, exposed for tests and for scoring responses produced under load.
// GSM8K answer extraction: "#### N" (strict) and the last number in the text (flexible); numbers
// are normalized (commas, "$" and a trailing "." removed). Empty when there is none.
std::string gsm8k_strict_answer(const std::string& text);
std::string gsm8k_flexible_answer(const std::string& text);
std::string gsm8k_target(const std::string& answer_field);
bool gsm8k_numbers_equal(const std::string& a, const std::string& b);
// Cuts a generation at the first of gsm8k's stop sequences ("Question:", "</s>", "<|im_end|>"), as
// the server would have with `stop` (responses produced under load carry no stop sequences).
std::string gsm8k_cut_at_stop(const std::string& text);
extern const std::vector<std::string> kGsm8kStops;

}  // namespace qmeter::quality
