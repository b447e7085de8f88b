// mmlu:PATH (the test file; the few-shot examples come from mmlu_dev.jsonl beside it, or
// --fewshot-split FILE). lm-evaluation-harness's `mmlu` (default variant): per subject, the
// description "The following are multiple choice questions (with answers) about SUBJECT.\n\n"
// (SUBJECT with '_' as ' '), then the subject's first k dev questions (first_n sampler, k =
// --num-fewshot, default 5), each "Q\nA. a\nB. b\nC. c\nD. d\nAnswer: X" followed by "\n\n", then
// the question "Q\nA. ...\nAnswer:" (Q = question.strip()); each letter scored as " A" .. " D".
// acc per subject (metric "mmlu_SUBJECT.acc"), "acc" over all questions (micro, lm-eval's group
// figure weighted by size) and "acc_macro" (the mean of the subject figures).
// --limit applies per subject (as lm-eval's limit applies per subtask).
#include <fmt/format.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "qmeter/core/error.h"
#include "task_common.h"

namespace qmeter::quality::detail {

namespace {

using nlohmann::json;

struct MmluItem {
  std::string subject, question;
  std::vector<std::string> choices;
  int answer = 0;
  int line = 0;
};

std::vector<MmluItem> read_mmlu(const std::string& path) {
  std::vector<MmluItem> out;
  for (const auto& l : read_jsonl(path)) {
    const json j = json::parse(l.json);
    auto where = [&](const char* f) { return fmt::format("{}:{}: field '{}'", path, l.line, f); };
    MmluItem it;
    it.line = l.line;
    if (!j.contains("subject") || !j["subject"].is_string()) throw UsageError(where("subject") + " must be a string");
    if (!j.contains("question") || !j["question"].is_string()) throw UsageError(where("question") + " must be a string");
    if (!j.contains("choices") || !j["choices"].is_array() || j["choices"].size() != 4)
      throw UsageError(where("choices") + " must be a list of 4 strings");
    for (const auto& c : j["choices"]) {
      if (!c.is_string()) throw UsageError(where("choices") + " must hold strings");
      it.choices.push_back(c.get<std::string>());
    }
    const std::string a = j.contains("answer") && j["answer"].is_string() ? j["answer"].get<std::string>() : "";
    if (a.size() != 1 || a[0] < 'A' || a[0] > 'D') throw UsageError(where("answer") + " must be one of \"A\", \"B\", \"C\", \"D\"");
    it.answer = a[0] - 'A';
    it.subject = j["subject"].get<std::string>();
    it.question = j["question"].get<std::string>();
    out.push_back(std::move(it));
  }
  return out;
}

std::string question_text(const MmluItem& it) {
  return fmt::format("{}\nA. {}\nB. {}\nC. {}\nD. {}\nAnswer:", py_strip(it.question), it.choices[0], it.choices[1],
                     it.choices[2], it.choices[3]);
}

}  // namespace

std::string mmlu_description(const std::string& subject) {
  std::string subj = subject;
  for (char& c : subj)
    if (c == '_') c = ' ';
  return "The following are multiple choice questions (with answers) about " + subj + ".\n\n";
}

std::string mmlu_fewshot_block(const std::vector<std::string>& fewshot_texts, const std::vector<char>& fewshot_letters) {
  std::string p;
  for (std::size_t i = 0; i < fewshot_texts.size(); ++i) p += fewshot_texts[i] + " " + fewshot_letters[i] + "\n\n";
  return p;
}

std::string mmlu_prompt(const std::string& subject, const std::vector<std::string>& fewshot_texts,
                        const std::vector<char>& fewshot_letters, const std::string& question) {
  return mmlu_description(subject) + mmlu_fewshot_block(fewshot_texts, fewshot_letters) + question;
}

// Under a chat template, as lm-eval's fewshot_context builds it: the description as the system
// turn, the shots' block and the question as one user turn (or, with --fewshot-as-multiturn, each
// shot's question a user turn and its letter an assistant turn).
std::string mmlu_chat_prompt(const ChatTemplate& t, const std::string& subject, const std::vector<std::string>& fewshot_texts,
                             const std::vector<char>& fewshot_letters, const std::string& question, bool multiturn) {
  std::vector<std::pair<std::string, std::string>> shots;
  for (std::size_t i = 0; i < fewshot_texts.size(); ++i) shots.emplace_back(fewshot_texts[i], std::string(1, fewshot_letters[i]));
  return t.prompt(lm_eval_chat_messages(mmlu_description(subject), shots, mmlu_fewshot_block(fewshot_texts, fewshot_letters),
                                               question, multiturn), true);
}

TaskResult run_mmlu(const TaskSpec& spec, Scorer& scorer, const EvalOptions& o) {
  const std::string dev_path = !o.fewshot_split.empty()
                                   ? o.fewshot_split
                                   : (std::filesystem::path(spec.arg).parent_path() / "mmlu_dev.jsonl").string();
  const auto test = read_mmlu(spec.arg);
  std::map<std::string, std::vector<const MmluItem*>> dev;
  std::vector<MmluItem> dev_items;
  if (o.num_fewshot > 0) {
    dev_items = read_mmlu(dev_path);
    for (const auto& d : dev_items) dev[d.subject].push_back(&d);
  }
  // The questions scored: each subject's first --limit, in file order.
  std::vector<const MmluItem*> items;
  std::map<std::string, int> taken;
  for (const auto& t : test)
    if (o.limit <= 0 || taken[t.subject]++ < o.limit) items.push_back(&t);
  std::vector<LoglikRequest> requests;
  const auto chat = loglik_chat_template(o, "mmlu");
  for (const auto* it : items) {
    std::vector<std::string> shots;
    std::vector<char> letters;
    const auto& pool = dev[it->subject];
    if (static_cast<int>(pool.size()) < o.num_fewshot)
      throw UsageError(fmt::format("{}: subject '{}' has {} dev questions; --num-fewshot is {}", dev_path, it->subject,
                                   pool.size(), o.num_fewshot));
    for (int k = 0; k < o.num_fewshot; ++k) {
      shots.push_back(question_text(*pool[static_cast<std::size_t>(k)]));
      letters.push_back(static_cast<char>('A' + pool[static_cast<std::size_t>(k)]->answer));
    }
    if (chat) {  // the letters follow the assistant's header without the " " delimiter
      const std::string context = mmlu_chat_prompt(*chat, it->subject, shots, letters, question_text(*it), o.fewshot_as_multiturn);
      for (const char* letter : {"A", "B", "C", "D"}) requests.push_back({context, letter});
      continue;
    }
    const std::string context = mmlu_prompt(it->subject, shots, letters, question_text(*it));
    for (const char* letter : {" A", " B", " C", " D"}) requests.push_back({context, letter});
  }
  const auto scored = score_logliks(scorer, requests, o, false, "mmlu request");
  TaskResult result;
  std::vector<double> all;
  std::map<std::string, std::vector<double>> by_subject;
  for (std::size_t i = 0; i < items.size(); ++i) {
    std::vector<double> ll;
    for (std::size_t c = 0; c < 4; ++c) ll.push_back(scored[4 * i + c].ll);
    const int pred = first_argmax(ll);
    const double ok = pred == items[i]->answer;
    all.push_back(ok);
    by_subject[items[i]->subject].push_back(ok);
    result.items.push_back({static_cast<int>(i), json{{"line", items[i]->line}, {"subject", items[i]->subject},
                                                      {"loglikelihoods", ll}, {"gold", items[i]->answer}, {"pred", pred},
                                                      {"acc", ok}}.dump()});
  }
  result.metrics.push_back(mean_metric("acc", all));
  std::vector<double> subject_means;
  std::vector<Metric> per_subject;
  for (const auto& [subject, values] : by_subject) {
    Metric m = mean_metric("mmlu_" + subject + ".acc", values);
    subject_means.push_back(m.value);
    per_subject.push_back(m);
  }
  Metric macro = mean_metric("acc_macro", subject_means);
  macro.n = static_cast<int>(all.size());
  result.metrics.push_back(macro);
  for (auto& m : per_subject) result.metrics.push_back(std::move(m));
  return result;
}

}  // namespace qmeter::quality::detail
