// gsm8k:PATH. k-shot, greedy, "Question: q\nAnswer: a\n\n" exemplars then "Question: q\nAnswer:",
// stop sequences as lm-evaluation-harness's gsm8k task ("Question:", "</s>", "<|im_end|>").
// Scored by exact match of the normalized number: strict takes the number after "####", flexible
// the last number anywhere in the reply. Numbers compare by value (so "1,000" = "1000" and
// "18.00" = "18"; lm-evaluation-harness compares the strings after removing "," "$" and a final ".").
#include <fmt/format.h>

#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include <optional>

#include "qmeter/core/error.h"
#include "qmeter/quality/chat_template.h"
#include "qmeter/workload/schedule.h"
#include "task_common.h"

namespace qmeter::quality {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Number-like spans: optional '-', optional '$', a digit, then digits, ',' and '.'. Returned
// normalized: without ',' and '$', without a trailing '.'.
std::vector<std::string> numbers_in(const std::string& s) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < s.size();) {
    std::size_t j = i;
    bool neg = false;
    if (s[j] == '-') {
      neg = true;
      ++j;
    }
    if (j < s.size() && s[j] == '$') ++j;
    if (j < s.size() && is_digit(s[j])) {
      std::string num = neg ? "-" : "";
      while (j < s.size() && (is_digit(s[j]) || s[j] == ',' || s[j] == '.')) {
        if (s[j] == ',') {
          // A thousands separator is followed by a digit; a trailing comma ends the number.
          if (j + 1 >= s.size() || !is_digit(s[j + 1])) break;
        } else if (s[j] == '.' && (j + 1 >= s.size() || !is_digit(s[j + 1]))) {
          break;  // sentence-final period
        }
        if (s[j] != ',') num += s[j];
        ++j;
      }
      out.push_back(num);
      i = j;
    } else {
      ++i;
    }
  }
  return out;
}

}  // namespace

std::string gsm8k_strict_answer(const std::string& text) {
  const auto p = text.find("####");
  if (p == std::string::npos) return "";
  std::size_t q = p + 4;
  while (q < text.size() && (text[q] == ' ' || text[q] == '\t')) ++q;
  // Strict: the number must come right after "#### ".
  if (q >= text.size() || !(is_digit(text[q]) || text[q] == '-' || text[q] == '$')) return "";
  const auto nums = numbers_in(text.substr(q, std::min<std::size_t>(64, text.size() - q)));
  return nums.empty() ? "" : nums.front();
}

std::string gsm8k_flexible_answer(const std::string& text) {
  const auto nums = numbers_in(text);
  return nums.empty() ? "" : nums.back();
}

std::string gsm8k_target(const std::string& answer_field) {
  const std::string t = gsm8k_strict_answer(answer_field);
  return t.empty() ? gsm8k_flexible_answer(answer_field) : t;
}

const std::vector<std::string> kGsm8kStops = {"Question:", "</s>", "<|im_end|>"};

std::string gsm8k_cut_at_stop(const std::string& text) {
  std::size_t cut = text.size();
  for (const auto& s : kGsm8kStops) cut = std::min(cut, text.find(s));
  return text.substr(0, cut);
}

bool gsm8k_numbers_equal(const std::string& a, const std::string& b) {
  if (a.empty() || b.empty()) return false;
  char* ea = nullptr;
  char* eb = nullptr;
  const long double x = std::strtold(a.c_str(), &ea), y = std::strtold(b.c_str(), &eb);
  if (*ea != '\0' || *eb != '\0') return a == b;
  return std::fabs(static_cast<double>(x - y)) <= 1e-9 * std::max(1.0, std::fabs(static_cast<double>(y)));
}

namespace detail {

namespace {
struct Problem {
  int line = 0;
  std::string question, answer;
};

std::vector<Problem> read_problems(const std::string& path) {
  std::vector<Problem> out;
  for (const auto& l : read_jsonl(path)) {
    const auto j = nlohmann::json::parse(l.json);
    for (const char* f : {"question", "answer"})
      if (!j.contains(f) || !j[f].is_string())
        throw UsageError(fmt::format("{}:{}: field '{}' must be a string (GSM8K layout: question, answer)", path, l.line, f));
    out.push_back({l.line, j["question"].get<std::string>(), j["answer"].get<std::string>()});
  }
  return out;
}
}  // namespace

TaskResult run_gsm8k(const TaskSpec& spec, Scorer& scorer, const EvalOptions& o) {
  auto problems = read_problems(spec.arg);
  if (o.num_fewshot < 0) throw UsageError(o.field_names("num_fewshot") + ": must be >= 0");
  std::vector<std::pair<std::string, std::string>> shots;
  std::size_t first = 0;
  if (!o.fewshot_path.empty()) {
    const auto ex = read_problems(o.fewshot_path);
    if (static_cast<int>(ex.size()) < o.num_fewshot)
      throw UsageError(fmt::format("{}: {} exemplars, --num-fewshot asks for {}", o.fewshot_path, ex.size(), o.num_fewshot));
    for (int k = 0; k < o.num_fewshot; ++k) shots.emplace_back(ex[static_cast<std::size_t>(k)].question, ex[static_cast<std::size_t>(k)].answer);
  } else {
    if (static_cast<int>(problems.size()) <= o.num_fewshot)
      throw UsageError(fmt::format("{}: {} problems, fewer than --num-fewshot {} exemplars plus one to score", spec.arg,
                                   problems.size(), o.num_fewshot));
    for (int k = 0; k < o.num_fewshot; ++k) shots.emplace_back(problems[static_cast<std::size_t>(k)].question, problems[static_cast<std::size_t>(k)].answer);
    first = static_cast<std::size_t>(o.num_fewshot);  // exemplars are not scored
  }
  std::vector<Problem> scored(problems.begin() + static_cast<std::ptrdiff_t>(first), problems.end());
  if (o.limit > 0 && static_cast<int>(scored.size()) > o.limit) scored.resize(static_cast<std::size_t>(o.limit));
  std::vector<std::string> replies(scored.size());
  // --apply-chat-template: lm-eval's chat prompt (the few-shot block and the question as one user
  // turn, or each shot as a user and an assistant turn with --fewshot-as-multiturn), rendered here
  // by the model's template or by the server's chat endpoint.
  std::optional<ChatTemplate> tmpl;
  if (o.apply_chat_template && !o.chat_template_path.empty()) tmpl = ChatTemplate::load(o.chat_template_path);
  std::vector<std::pair<std::string, std::string>> chat_shots;
  for (const auto& [q, a] : shots) chat_shots.emplace_back("Question: " + q + "\nAnswer:", a);
  const std::string fewshot_block = workload::gsm8k_fewshot_prompt(shots, "");
  const std::string block = fewshot_block.substr(0, fewshot_block.size() - std::string("Question: \nAnswer:").size());
  for_each_item(static_cast<int>(scored.size()), std::min(o.concurrency, scorer.max_concurrency()),
                [&](int i) {
                  GenerateRequest g;
                  const auto& question = scored[static_cast<std::size_t>(i)].question;
                  if (o.apply_chat_template) {
                    const auto messages = lm_eval_chat_messages("", chat_shots, block, "Question: " + question + "\nAnswer:",
                                                                o.fewshot_as_multiturn);
                    if (tmpl) g.prompt = tmpl->prompt(messages, true);
                    else g.messages = messages;
                  } else {
                    g.prompt = workload::gsm8k_fewshot_prompt(shots, question);
                  }
                  g.max_tokens = o.max_gen_tokens;
                  g.stop = kGsm8kStops;
                  replies[static_cast<std::size_t>(i)] = generate_fitting(scorer, g);
                },
                o.progress, "gsm8k problem");
  TaskResult result;
  int strict_ok = 0, flex_ok = 0;
  for (std::size_t i = 0; i < scored.size(); ++i) {
    const std::string target = gsm8k_target(scored[i].answer);
    const std::string strict = gsm8k_strict_answer(replies[i]), flex = gsm8k_flexible_answer(replies[i]);
    const bool s_ok = gsm8k_numbers_equal(strict, target), f_ok = gsm8k_numbers_equal(flex, target);
    strict_ok += s_ok;
    flex_ok += f_ok;
    nlohmann::json j = {{"line", scored[i].line}, {"target", target}, {"reply", replies[i]}, {"strict", strict},
                        {"flexible", flex}, {"exact_match_strict", s_ok ? 1 : 0}, {"exact_match_flexible", f_ok ? 1 : 0}};
    result.items.push_back({static_cast<int>(i), j.dump()});
  }
  const int n = static_cast<int>(scored.size());
  if (n == 0) throw UsageError(fmt::format("{}: no problem left to score", spec.arg));
  const double s = static_cast<double>(strict_ok) / n, f = static_cast<double>(flex_ok) / n;
  result.metrics.push_back({"exact_match_strict", s, binomial_stderr(s, n), n});
  result.metrics.push_back({"exact_match_flexible", f, binomial_stderr(f, n), n});
  return result;
}

}  // namespace detail
}  // namespace qmeter::quality
