// mc:PATH. Multiple choice by log-likelihood, as lm-evaluation-harness scores ARC and PIQA: the
// log-probability of " " + choice after the context; acc = argmax (the first of equal maxima),
// acc_norm = argmax of that log-probability divided by the choice's length in characters.
//
// Layouts (one JSON object per line, detected per line):
//   ARC      {"prompt": question, "choices": [...], "answer_idx": i}   context "Question: q\nAnswer:"
//   PIQA     {"query": "Question: ...", "choices": [...], "gold": i}    context query + "\nAnswer:"
//   generic  {"context": text, "choices": [...], "answer": i}          context as given
//   HellaSwag-style {"ctx": text, "endings": [...], "label": i or "i"} context as given; with
//            --preprocess hellaswag (spec `preprocess: hellaswag`) lm-evaluation-harness's
//            HellaSwag processing: context = preprocess(activity_label + ": " + ctx_a + " " +
//            capitalize(ctx_b)) (or of ctx where ctx_a/ctx_b are absent), each ending preprocessed:
//            strip, " [title]" -> ". ", drop every "[...]", "  " -> " ".
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "qmeter/core/error.h"
#include "qmeter/core/parse_number.h"
#include "task_common.h"

namespace qmeter::quality::detail {

namespace {

using nlohmann::json;

struct ChoiceItem {
  std::string context;
  std::vector<std::string> choices;
  int gold = 0;
};

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (std::size_t p = 0; (p = s.find(from, p)) != std::string::npos; p += to.size()) s.replace(p, from.size(), to);
}

// Python's str.capitalize() on ASCII: first letter upper, the rest lower.
std::string capitalize(std::string s) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    s[i] = static_cast<char>(i == 0 ? std::toupper(c) : std::tolower(c));
  }
  return s;
}

}  // namespace
}  // namespace qmeter::quality::detail

namespace qmeter::quality {

std::string hellaswag_preprocess(const std::string& text) {
  using detail::replace_all;
  std::string t = detail::py_strip(text);
  replace_all(t, " [title]", ". ");
  std::string out;  // re.sub("\\[.*?\\]", "", t): every shortest "[...]" removed
  for (std::size_t i = 0; i < t.size();) {
    if (t[i] == '[') {
      const auto close = t.find(']', i + 1);
      if (close != std::string::npos) {
        i = close + 1;
        continue;
      }
    }
    out += t[i++];
  }
  replace_all(out, "  ", " ");  // one pass, as Python's str.replace
  return out;
}

}  // namespace qmeter::quality

namespace qmeter::quality::detail {

namespace {

ChoiceItem parse_choice_item(const std::string& path, const JsonlLine& line, bool hellaswag) {
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
  } else if (j.contains("ctx") && j.contains("endings") && j.contains("label")) {
    if (!j["ctx"].is_string()) throw UsageError(where("ctx") + " must be a string");
    if (!j["endings"].is_array()) throw UsageError(where("endings") + " must be a list of strings");
    std::string ctx = j["ctx"].get<std::string>();
    if (hellaswag) {
      if (j.contains("ctx_a") && j.contains("ctx_b") && j["ctx_a"].is_string() && j["ctx_b"].is_string())
        ctx = j["ctx_a"].get<std::string>() + " " + capitalize(j["ctx_b"].get<std::string>());
      if (j.contains("activity_label") && j["activity_label"].is_string()) ctx = j["activity_label"].get<std::string>() + ": " + ctx;
      ctx = hellaswag_preprocess(ctx);
    }
    item.context = ctx;
    for (const auto& e : j["endings"]) {
      if (!e.is_string()) throw UsageError(where("endings") + " must hold strings");
      item.choices.push_back(hellaswag ? hellaswag_preprocess(e.get<std::string>()) : e.get<std::string>());
    }
    const auto& label = j["label"];
    try {
      if (label.is_string()) {
        const auto gold = parse_int64(label.get<std::string>());  // "12abc" is no label
        if (!gold || *gold != static_cast<int>(*gold)) throw std::invalid_argument("label");
        item.gold = static_cast<int>(*gold);
      } else {
        item.gold = label.get<int>();
      }
    } catch (const std::exception&) {
      throw UsageError(where("label") + " must be an integer (or its decimal string)");
    }
    if (item.choices.size() < 2) throw UsageError(where("endings") + " must be a list of at least 2 strings");
    if (item.gold < 0 || item.gold >= static_cast<int>(item.choices.size()))
      throw UsageError(where("label") + fmt::format(" = {} is not an ending index (0..{})", item.gold, item.choices.size() - 1));
    return item;
  } else if (j.contains("context") && j.contains("answer")) {
    if (!j["context"].is_string()) throw UsageError(where("context") + " must be a string");
    item.context = j["context"].get<std::string>();
    gold_field = "answer";
  } else {
    throw UsageError(fmt::format("{}:{}: unknown layout: expected ARC (prompt, choices, answer_idx), PIQA (query, "
                                 "choices, gold), generic (context, choices, answer) or HellaSwag-style (ctx, endings, label)",
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

}  // namespace

TaskResult run_multiple_choice(const TaskSpec& spec, Scorer& scorer, const EvalOptions& o) {
  auto lines = read_jsonl(spec.arg);
  if (o.limit > 0 && static_cast<int>(lines.size()) > o.limit) lines.resize(static_cast<std::size_t>(o.limit));
  std::vector<ChoiceItem> items;
  if (!o.preprocess.empty() && o.preprocess != "hellaswag")
    throw UsageError(fmt::format("{} '{}': the only preprocessing is 'hellaswag'", o.field_names("preprocess"), o.preprocess));
  for (const auto& l : lines) items.push_back(parse_choice_item(spec.arg, l, o.preprocess == "hellaswag"));
  // One request per (item, choice), all in one pool. Under a chat template (lm-eval's
  // --apply_chat_template) the context is the user turn of a rendered prompt that ends with the
  // assistant's header, and the choice follows it without the " " target delimiter.
  const auto chat = loglik_chat_template(o, "mc");
  std::vector<LoglikRequest> requests;
  for (const auto& item : items) {
    const std::string context = chat ? chat->prompt({{"user", item.context}}, true) : item.context;
    for (const auto& c : item.choices) requests.push_back({context, (chat ? "" : " ") + c});
  }
  const auto scored = score_logliks(scorer, requests, o, false, "multiple-choice request");
  std::vector<std::vector<double>> ll(items.size());
  for (std::size_t i = 0, r = 0; i < items.size(); ++i)
    for (std::size_t c = 0; c < items[i].choices.size(); ++c) ll[i].push_back(scored[r++].ll);
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
