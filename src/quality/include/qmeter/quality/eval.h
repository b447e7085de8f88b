#pragma once
// Quality tasks (one registry table, tasks.cpp): perplexity, multiple choice, GSM8K and fidelity
// (KL divergence to a baseline). Each task scores items through a Scorer and returns metrics with
// standard errors in lm-evaluation-harness's shape, plus one record per item for the store.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "qmeter/core/error.h"
#include "qmeter/core/option_schema.h"
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
  int max_length = 0;                 // document mode: tokens per scoring request (0: context length - 1)
  int truncate = 0;                   // document mode: keep each document's first N tokens (0: all)
  int num_fewshot = 5;
  std::string fewshot_path;  // gsm8k exemplars; empty: the first items, excluded from scoring
  int max_gen_tokens = 256;
  std::string preprocess;    // mc: "hellaswag" applies lm-eval's HellaSwag preprocessing
  std::string fewshot_split; // mmlu: the dev (few-shot) file; empty: mmlu_dev.jsonl beside the test file
  bool apply_chat_template = false;  // render prompts through the model's chat template
  // The template: tokenizer_config.json, a model folder, a .gguf or a template file; empty: the
  // server's chat endpoint (generation tasks only).
  std::string chat_template_path;
  bool fewshot_as_multiturn = false;  // chat: each shot a user + assistant turn (default: one user turn, as lm-eval)
  int top_logprobs = 20;     // kl through a server
  std::string kl_text;       // kl: the text scored by both models
  int bootstrap_resamples = 1000;
  std::uint64_t seed = 1234;
  // What the scorer serves (probe_capabilities, once per eval / quality phase): a task picks its
  // way where there are several (document perplexity without /tokenize scores whole texts).
  Capabilities capabilities;
  std::function<void(int done, int total)> progress;
  // How the caller names these options in messages: the CLI's flags (--max-length, the default),
  // or a spec's fields (quality[0].max_length); keys as in quality/task_options.h.
  FieldNames field_names;
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
  std::string unsupported;  // non-empty: the task was not run, and why (the server cannot serve it)
  const Metric* find(const std::string& metric) const;
};

// Thrown where a task is not run because the server cannot serve it (recorded "unsupported").
struct UnsupportedTask : Error {
  using Error::Error;
};

// Why the scorer cannot serve the task ("" when it can): e.g. perplexity and multiple choice need
// prompt log-probabilities; generation tasks (gsm8k) run on any server.
std::string unsupported_reason(const TaskSpec& spec, const EvalOptions& options, const Capabilities& caps);
// The result recorded for a task that was not run because of `reason`.
TaskResult unsupported_result(const TaskSpec& spec, const std::string& reason);

// Rolling perplexity (lm-evaluation-harness's loglikelihood_rolling): the windows one document is
// scored in. The sequence is `prefix` (BOS, or nothing) + `doc`; every token of it after the first
// is scored exactly once. The first window is the sequence's first max_length tokens; each later
// window scores the next w = min(remaining, max_length - 1) tokens conditioned on the
// max_length - w tokens right before them, so every request holds max_length tokens (the last
// may be shorter only when the whole sequence is). `scored` = how many of a window's last tokens count.
struct RollingWindow {
  std::vector<int> tokens;
  int scored = 0;
};
std::vector<RollingWindow> rolling_windows(const std::vector<int>& prefix, const std::vector<int>& doc, int max_length);

// Runs one task. `baseline` is the reference model for kl (null: the task's BASE_URL is used).
TaskResult run_task(const TaskSpec& spec, Scorer& scorer, const EvalOptions& options, Scorer* baseline = nullptr);

// {"results": {task: {metric: v, metric_stderr: s, n: N, ...}}, "unsupported": {task: reason},
// "config": {...}} as text (the "unsupported" object only when some task was not run).
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
// lm-evaluation-harness's HellaSwag text preprocessing (strip, " [title]" -> ". ", "[...]" removed,
// double spaces halved).
std::string hellaswag_preprocess(const std::string& text);

}  // namespace qmeter::quality
