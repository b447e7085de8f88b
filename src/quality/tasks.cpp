// The task registry (one table) and the lm-evaluation-harness-shaped output.
#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "qmeter/core/clock.h"
#include "qmeter/core/error.h"
#include "task_common.h"

namespace qmeter::quality {

namespace detail {
TaskResult run_perplexity(const TaskSpec&, Scorer&, const EvalOptions&);
TaskResult run_multiple_choice(const TaskSpec&, Scorer&, const EvalOptions&);
TaskResult run_gsm8k(const TaskSpec&, Scorer&, const EvalOptions&);
TaskResult run_kl(const TaskSpec&, Scorer&, const EvalOptions&, Scorer* baseline);
TaskResult run_winogrande(const TaskSpec&, Scorer&, const EvalOptions&);
TaskResult run_lambada(const TaskSpec&, Scorer&, const EvalOptions&);
TaskResult run_mmlu(const TaskSpec&, Scorer&, const EvalOptions&);
TaskResult run_truthfulqa_mc(const TaskSpec&, Scorer&, const EvalOptions&);
}  // namespace detail

namespace {

// What a task needs from the scorer beyond generation (which every server offers).
enum Need : unsigned {
  kPromptLogprobs = 1,  // echo + logprobs
  kTopLogprobs = 2,
  kTokenize = 4,
  kChat = 8,
};

struct TaskEntry {
  const char* kind;
  const char* argument;  // what follows the ':'
  const char* what;
  unsigned needs;
  TaskResult (*run)(const TaskSpec&, Scorer&, const EvalOptions&, Scorer*);
};

const TaskEntry kTasks[] = {
    {"perplexity", "PATH", "token, word and byte perplexity of a text (echo + logprobs)",
     kPromptLogprobs,  // window mode also needs kTokenize (see unsupported_reason)
     [](const TaskSpec& s, Scorer& sc, const EvalOptions& o, Scorer*) { return detail::run_perplexity(s, sc, o); }},
    {"mc", "PATH", "multiple choice by log-likelihood (ARC, PIQA or generic JSONL): acc, acc_norm",
     kPromptLogprobs,
     [](const TaskSpec& s, Scorer& sc, const EvalOptions& o, Scorer*) { return detail::run_multiple_choice(s, sc, o); }},
    {"winogrande", "PATH", "WinoGrande by partial evaluation (lm-eval winogrande): acc", kPromptLogprobs,
     [](const TaskSpec& s, Scorer& sc, const EvalOptions& o, Scorer*) { return detail::run_winogrande(s, sc, o); }},
    {"lambada", "PATH", "LAMBADA last word (lm-eval lambada_openai): acc (greedy), perplexity", kPromptLogprobs | kTopLogprobs,
     [](const TaskSpec& s, Scorer& sc, const EvalOptions& o, Scorer*) { return detail::run_lambada(s, sc, o); }},
    {"mmlu", "PATH", "MMLU k-shot from each subject's dev split (lm-eval mmlu): acc, acc_macro, per subject", kPromptLogprobs,
     [](const TaskSpec& s, Scorer& sc, const EvalOptions& o, Scorer*) { return detail::run_mmlu(s, sc, o); }},
    {"truthfulqa_mc", "PATH", "TruthfulQA multiple choice (lm-eval truthfulqa_mc1/mc2): mc1, mc2", kPromptLogprobs,
     [](const TaskSpec& s, Scorer& sc, const EvalOptions& o, Scorer*) { return detail::run_truthfulqa_mc(s, sc, o); }},
    {"gsm8k", "PATH", "k-shot greedy math word problems: exact match, strict and flexible",
     0,
     [](const TaskSpec& s, Scorer& sc, const EvalOptions& o, Scorer*) { return detail::run_gsm8k(s, sc, o); }},
    {"kl", "BASE_URL", "fidelity to a baseline model: mean KL divergence and top-1 agreement",
     kPromptLogprobs | kTopLogprobs | kTokenize,
     [](const TaskSpec& s, Scorer& sc, const EvalOptions& o, Scorer* b) { return detail::run_kl(s, sc, o, b); }},
};

const TaskEntry& find_task(const std::string& kind) {
  for (const auto& t : kTasks)
    if (kind == t.kind) return t;
  std::string known;
  for (const auto& t : kTasks) known += fmt::format("{}{}:{}", known.empty() ? "" : ", ", t.kind, t.argument);
  throw UsageError(fmt::format("unknown quality task '{}' (known: {})", kind, known));
}

}  // namespace

std::vector<std::string> task_kinds() {
  std::vector<std::string> out;
  for (const auto& t : kTasks) out.emplace_back(t.kind);
  return out;
}

TaskSpec parse_task_spec(const std::string& text) {
  const auto colon = text.find(':');
  TaskSpec s;
  s.kind = text.substr(0, colon);
  s.arg = colon == std::string::npos ? "" : text.substr(colon + 1);
  const auto& entry = find_task(s.kind);
  if (s.arg.empty() && s.kind != "kl")
    throw UsageError(fmt::format("task '{}' needs its argument: {}:{}", text, entry.kind, entry.argument));
  return s;
}

std::string unsupported_reason(const TaskSpec& spec, const EvalOptions& options, const Capabilities& caps) {
  unsigned needs = find_task(spec.kind).needs;
  if (spec.kind == "perplexity" && options.ppl_mode == "window") needs |= kTokenize;
  // A chat prompt without a local template is rendered by the server's chat endpoint.
  if (spec.kind == "gsm8k" && options.apply_chat_template && options.chat_template_path.empty()) needs |= kChat;
  const std::pair<unsigned, const Capability*> checks[] = {{kPromptLogprobs, &caps.prompt_logprobs},
                                                           {kTopLogprobs, &caps.top_logprobs},
                                                           {kTokenize, &caps.tokenize},
                                                           {kChat, &caps.chat}};
  for (const auto& [need, cap] : checks)
    if ((needs & need) && !cap->supported) return cap->reason;
  return "";
}

TaskResult unsupported_result(const TaskSpec& spec, const std::string& reason) {
  TaskResult r;
  r.task = spec.name();
  r.kind = spec.kind;
  r.unsupported = reason;
  return r;
}

std::string Capabilities::json() const {
  nlohmann::ordered_json j;
  const std::pair<const char*, const Capability*> all[] = {
      {"prompt_logprobs", &prompt_logprobs}, {"top_logprobs", &top_logprobs}, {"tokenize", &tokenize}, {"chat", &chat},
      {"chat_template", &chat_template}};
  for (const auto& [name, c] : all) j[name] = {{"supported", c->supported}, {"reason", c->reason}};
  return j.dump();
}

const Metric* TaskResult::find(const std::string& metric) const {
  for (const auto& m : metrics)
    if (m.name == metric) return &m;
  return nullptr;
}

TaskResult run_task(const TaskSpec& spec, Scorer& scorer, const EvalOptions& options, Scorer* baseline) {
  const auto& entry = find_task(spec.kind);
  if (options.concurrency < 1) throw UsageError(options.field_names("concurrency") + ": must be >= 1");
  const Nanos t0 = steady_now_ns();
  TaskResult r = entry.run(spec, scorer, options, baseline);
  r.task = spec.name();
  r.kind = spec.kind;
  r.seconds = ns_to_s(steady_now_ns() - t0);
  return r;
}

std::string results_json(const std::vector<TaskResult>& results, const std::string& config_json) {
  nlohmann::ordered_json j;
  auto& res = j["results"] = nlohmann::ordered_json::object();
  nlohmann::ordered_json unsupported = nlohmann::ordered_json::object();
  for (const auto& r : results) {
    if (!r.unsupported.empty()) {
      unsupported[r.task] = {{"status", "unsupported"}, {"reason", r.unsupported}};
      continue;
    }
    auto& t = res[r.task] = nlohmann::ordered_json::object();
    int n = 0;
    for (const auto& m : r.metrics) {
      t[m.name] = m.value;
      t[m.name + "_stderr"] = m.stderr_;
      n = std::max(n, m.n);
    }
    t["n"] = n;
    t["seconds"] = r.seconds;
    t["items_per_second"] = r.seconds > 0 ? static_cast<double>(r.items.size()) / r.seconds : 0.0;
  }
  if (!unsupported.empty()) j["unsupported"] = unsupported;
  j["config"] = config_json.empty() ? nlohmann::ordered_json::object() : nlohmann::ordered_json::parse(config_json);
  return j.dump(2) + "\n";
}

std::vector<std::string> results_table(const std::vector<TaskResult>& results) {
  std::vector<std::string> lines;
  lines.push_back(fmt::format("{:<40} {:<22} {:>12} {:>10} {:>8}", "task", "metric", "value", "stderr", "n"));
  for (const auto& r : results) {
    if (!r.unsupported.empty()) lines.push_back(fmt::format("{:<40} UNSUPPORTED: {}", r.task.substr(0, 40), r.unsupported));
    for (const auto& m : r.metrics)
      lines.push_back(fmt::format("{:<40} {:<22} {:>12.6g} {:>10.4g} {:>8}", r.task.substr(0, 40), m.name, m.value, m.stderr_, m.n));
  }
  return lines;
}

}  // namespace qmeter::quality
