// Line-per-record JSON datasets, used in file order (starting over when num_prompts is larger):
//   `jsonl:PATH`  {"prompt": "...", "max_tokens": 64 (optional), "reference": "..." (optional)}
//   `gsm8k:PATH`  GSM8K {"question": "...", "answer": "... #### 18"}: the question is the prompt
//                 and the final answer after "#### " the reference, for quality under load.
// Blank lines are skipped; every other line must be one JSON object.
#include <algorithm>
#include <cctype>

#include <fmt/format.h>

#include "qmeter/core/error.h"
#include "dataset_input.h"
#include "datasets.h"
#include "json_input.h"

namespace qmeter::workload::detail {

namespace {

// Calls `record(object, line_number)` for each non-blank line; the error formats name the line.
template <class OnRecord>
std::size_t for_each_record(const std::string& spec, const std::string& text, OnRecord record) {
  std::size_t count = 0;
  for (const NumberedLine& line : split_lines(text)) {
    if (line.text.find_first_not_of(" \t") == std::string_view::npos) continue;
    const nlohmann::json value = parse_json(spec, line.text, line.number);
    if (!value.is_object()) fail_at(spec, line.number, "expected a JSON object, got " + json_kind(value));
    record(value, line.number);
    ++count;
  }
  return count;
}

const std::string& required_string(const std::string& spec, const nlohmann::json& obj, const char* field, std::size_t line) {
  auto it = obj.find(field);
  if (it == obj.end()) fail_at(spec, line, fmt::format("missing string field '{}'", field));
  if (!it->is_string()) fail_at(spec, line, fmt::format("field '{}' must be a string, got {}", field, json_kind(*it)));
  const auto& s = it->get_ref<const std::string&>();
  if (s.empty()) fail_at(spec, line, fmt::format("field '{}' is empty", field));
  return s;
}

DatasetSample pick_in_order(const std::string& spec, std::vector<Prompt>& all, const DatasetOptions& options) {
  if (all.empty()) fail(spec, "no records (the file is empty)");
  DatasetSample sample;
  for (std::size_t i : in_order_picks(all.size(), static_cast<std::size_t>(options.num_prompts))) sample.prompts.push_back(all[i]);
  sample.description = fmt::format("{} ({} records)", spec, all.size());
  return sample;
}

}  // namespace

DatasetSample load_jsonl(const std::string& spec, const std::string& path, const DatasetOptions& options) {
  const std::string text = read_dataset_file(spec, path);
  std::vector<Prompt> all;
  for_each_record(spec, text, [&](const nlohmann::json& obj, std::size_t line) {
    Prompt p;
    p.text = required_string(spec, obj, "prompt", line);
    p.max_tokens = options.output_len;
    if (auto it = obj.find("max_tokens"); it != obj.end()) {
      if (!it->is_number_integer() || it->get<long long>() < 1)
        fail_at(spec, line, "field 'max_tokens' must be a positive integer, got " + it->dump());
      if (!options.fixed_output_len) p.max_tokens = static_cast<int>(std::min<long long>(it->get<long long>(), 1 << 30));
    }
    if (auto it = obj.find("reference"); it != obj.end()) {
      if (!it->is_string()) fail_at(spec, line, "field 'reference' must be a string, got " + json_kind(*it));
      p.reference = it->get<std::string>();
    }
    p.prompt_tokens = counted_tokens(options, p.text);
    all.push_back(std::move(p));
  });
  return pick_in_order(spec, all, options);
}

}  // namespace qmeter::workload::detail

namespace qmeter::workload {
std::string gsm8k_fewshot_prompt(const std::vector<std::pair<std::string, std::string>>& shots, const std::string& question) {
  std::string p;
  for (const auto& [q, a] : shots) p += "Question: " + q + "\nAnswer: " + a + "\n\n";
  return p + "Question: " + question + "\nAnswer:";
}
}  // namespace qmeter::workload

namespace qmeter::workload::detail {

DatasetSample load_gsm8k(const std::string& spec, const std::string& path, const DatasetOptions& options) {
  const std::string text = read_dataset_file(spec, path);
  std::vector<Prompt> all;
  std::vector<std::pair<std::string, std::string>> shots;
  if (options.num_fewshot < 0) throw UsageError(fmt::format("{}: num_fewshot must be >= 0", spec));
  for_each_record(spec, text, [&](const nlohmann::json& obj, std::size_t line) {
    Prompt p;
    p.text = required_string(spec, obj, "question", line);
    const std::string& answer = required_string(spec, obj, "answer", line);
    if (static_cast<int>(shots.size()) < options.num_fewshot) {
      shots.emplace_back(p.text, answer);  // an exemplar, not a request
      return;
    }
    if (options.num_fewshot > 0) p.text = gsm8k_fewshot_prompt(shots, p.text);
    const std::size_t mark = answer.rfind("####");
    if (mark == std::string::npos) fail_at(spec, line, "field 'answer' has no final answer after '####'");
    std::string_view final_answer = std::string_view(answer).substr(mark + 4);
    while (!final_answer.empty() && std::isspace(static_cast<unsigned char>(final_answer.front()))) final_answer.remove_prefix(1);
    while (!final_answer.empty() && std::isspace(static_cast<unsigned char>(final_answer.back()))) final_answer.remove_suffix(1);
    if (final_answer.empty()) fail_at(spec, line, "field 'answer' has no final answer after '####'");
    p.reference = std::string(final_answer);
    p.max_tokens = options.output_len;
    p.prompt_tokens = counted_tokens(options, p.text);
    all.push_back(std::move(p));
  });
  return pick_in_order(spec, all, options);
}

}  // namespace qmeter::workload::detail
