// mc:PATH. Multiple choice by log-likelihood, as lm-evaluation-harness scores ARC and PIQA: the
// log-probability of " " + choice after the context; acc = argmax (the first of equal maxima),
// acc_norm = argmax of that log-probability divided by the choice's length in characters.
//
// Layouts (one JSON object per line, detected per line):
//   ARC      {"prompt": question, "choices": [...], "answer_idx": i}   context "Question: q\nAnswer:"
//   PIQA     {"query": "Question: ...", "choices": [...], "gold": i}    context query + "\nAnswer:"
//   generic  {"context": text, "choices": [...], "answer": i}          context as given
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "qmeter/core/error.h"
#include "task_common.h"

namespace qmeter::quality::detail {

namespace {

using nlohmann::json;

struct ChoiceItem {
  std::string context;
  std::vector<std::string> choices;
  int gold = 0;
};

ChoiceItem parse_choice_item(const std::string& path, const JsonlLine& line) {
  const json j = json::parse(line.json);
  auto where = [&](const char* field) { return fmt::format("{}:{}: field '{}'", path, line.line, field); };
  ChoiceItem item;
  const char* gold_field = nullptr;
  if (j.contains("prompt") && j.contains("answer_idx")) {
    if (!j["prompt"].is_string()) throw UsageError(where("prompt") + " must be a string");
    item.context = "Question: " + j["prompt"].get<std::string>() + "\nAnswer:";
    gold_field = "answer_idx";
  } else if (j.contains("query") && j.contains("gold")) {
    if (!j["query"].is_string()) throw UsageError(where("query") + " must be a string");
    item.context = j["query"].get<std::string>() + "\nAnswer:";
    gold_field = "gold";
  } else if (j.contains("context") && j.contains("answer")) {
    if (!j["context"].is_string()) throw UsageError(where("context") + " must be a string");
    item.context = j["context"].get<std::string>();
    gold_field = "answer";
  } else {
    throw UsageError(fmt::format("{}:{}: unknown layout: expected ARC (prompt, choices, answer_idx), PIQA (query, "
                                 "choices, gold) or generic (context, choices, answer)",
                                 path, line.line));
  }
  if (!j.contains("choices") || !j["choices"].is_array() || j["choices"].size() < 2)
    throw UsageError(where("choices") + " must be a list of at least 2 strings");
  for (const auto& c : j["choices"]) {
    if (!c.is_string()) throw UsageError(where("choices") + " must hold strings");
    item.choices.push_back(c.get<std::string>());
  }
  if (!j[gold_field].is_number_integer()) throw UsageError(where(gold_field) + " must be an integer");
  item.gold = j[gold_field].get<int>();
  if (item.gold < 0 || item.gold >= static_cast<int>(item.choices.size()))
    throw UsageError(where(gold_field) + fmt::format(" = {} is not a choice index (0..{})", item.gold, item.choices.size() - 1));
  return item;
}

int first_argmax(const std::vector<double>& v) {
  int best = 0;
  for (int i = 1; i < static_cast<int>(v.size()); ++i)
    if (v[static_cast<std::size_t>(i)] > v[static_cast<std::size_t>(best)]) best = i;
  return best;
}

}  // namespace

TaskResult run_multiple_choice(const TaskSpec& spec, Scorer& scorer, const EvalOptions& o) {
  auto lines = read_jsonl(spec.arg);
  if (o.limit > 0 && static_cast<int>(lines.size()) > o.limit) lines.resize(static_cast<std::size_t>(o.limit));
  std::vector<ChoiceItem> items;
  for (const auto& l : lines) items.push_back(parse_choice_item(spec.arg, l));
  // One request per (item, choice), all in one pool.
  std::vector<std::pair<int, int>> requests;
  std::vector<std::vector<double>> ll(items.size());
  for (std::size_t i = 0; i < items.size(); ++i) {
    ll[i].assign(items[i].choices.size(), 0);
    for (std::size_t c = 0; c < items[i].choices.size(); ++c) requests.emplace_back(static_cast<int>(i), static_cast<int>(c));
  }
  for_each_item(static_cast<int>(requests.size()), std::min(o.concurrency, scorer.max_concurrency()),
                [&](int r) {
                  const auto [i, c] = requests[static_cast<std::size_t>(r)];
                  const auto& item = items[static_cast<std::size_t>(i)];
                  const std::string continuation = " " + item.choices[static_cast<std::size_t>(c)];
                  const auto scored = score_text_fitting(scorer, item.context + continuation);
                  ll[static_cast<std::size_t>(i)][static_cast<std::size_t>(c)] =
                      continuation_logprob(scored, continuation.size(), nullptr);
                },
                o.progress, "multiple-choice request");
  TaskResult result;
  int correct = 0, correct_norm = 0;
  for (std::size_t i = 0; i < items.size(); ++i) {
    std::vector<double> norm(ll[i].size());
    for (std::size_t c = 0; c < norm.size(); ++c)
      norm[c] = ll[i][c] / static_cast<double>(std::max<std::size_t>(1, utf8_length(items[i].choices[c])));
    const int pred = first_argmax(ll[i]), pred_norm = first_argmax(norm);
    correct += pred == items[i].gold;
    correct_norm += pred_norm == items[i].gold;
    json j = {{"line", lines[i].line}, {"loglikelihoods", ll[i]}, {"gold", items[i].gold}, {"pred", pred},
              {"pred_norm", pred_norm}, {"acc", pred == items[i].gold ? 1 : 0}, {"acc_norm", pred_norm == items[i].gold ? 1 : 0}};
    result.items.push_back({static_cast<int>(i), j.dump()});
  }
  const int n = static_cast<int>(items.size());
  const double acc = static_cast<double>(correct) / n, acc_norm = static_cast<double>(correct_norm) / n;
  result.metrics.push_back({"acc", acc, binomial_stderr(acc, n), n});
  result.metrics.push_back({"acc_norm", acc_norm, binomial_stderr(acc_norm, n), n});
  return result;
}

}  // namespace qmeter::quality::detail
