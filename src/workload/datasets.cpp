// The dataset table: adding a dataset = one dataset_<name>.cpp + one row here.
#include <array>
#include <cmath>

#include <fmt/format.h>

#include "datasets.h"
#include "qmeter/core/error.h"

namespace qmeter::workload {

namespace {

constexpr std::array<Dataset, 5> kDatasets = {{
    {"random", false, "random common words; lengths --input-len/--output-len +- --range-ratio", detail::load_random},
    {"sharegpt", true, "ShareGPT JSON: first human turn; output length from the first gpt reply or --output-len",
     detail::load_sharegpt},
    {"jsonl", true, "one JSON object per line: prompt, optional max_tokens and reference", detail::load_jsonl},
    {"azure", true, "Azure LLM inference trace CSV (TIMESTAMP,ContextTokens,GeneratedTokens), replayable",
     detail::load_azure},
    {"gsm8k", true, "GSM8K JSONL: question as prompt, final answer as reference", detail::load_gsm8k},
}};

std::string known_datasets() {
  std::string out;
  for (const Dataset& d : kDatasets) {
    if (!out.empty()) out += ", ";
    out += d.name;
    if (d.needs_path) out += ":PATH";
  }
  return out;
}

}  // namespace

std::span<const Dataset> dataset_table() { return kDatasets; }

DatasetSample load_dataset(const DatasetOptions& options) {
  if (options.num_prompts < 1) throw UsageError(fmt::format("--num-prompts must be at least 1, got {}", options.num_prompts));
  if (options.output_len < 1) throw UsageError(fmt::format("--output-len must be at least 1, got {}", options.output_len));
  if (!(options.range_ratio >= 0.0 && options.range_ratio < 1.0))
    throw UsageError(fmt::format("--range-ratio must be in [0, 1), got {}", options.range_ratio));

  const std::string& spec = options.spec;
  const std::size_t colon = spec.find(':');
  const std::string kind = spec.substr(0, colon);
  const std::string path = colon == std::string::npos ? std::string() : spec.substr(colon + 1);
  for (const Dataset& d : kDatasets) {
    if (d.name != kind) continue;
    if (d.needs_path && path.empty())
      throw UsageError(fmt::format("--dataset {}: needs a file, as {}:PATH", spec, kind));
    if (!d.needs_path && colon != std::string::npos)
      throw UsageError(fmt::format("--dataset {}: '{}' takes no path", spec, kind));
    if (kind == "random" && options.input_len < 1)
      throw UsageError(fmt::format("--input-len must be at least 1, got {}", options.input_len));
    DatasetSample sample = d.load(spec, path, options);
    if (sample.prompts.size() != static_cast<std::size_t>(options.num_prompts))
      throw Error(fmt::format("internal: dataset {} gave {} prompts for --num-prompts {}", spec, sample.prompts.size(),
                              options.num_prompts));
    return sample;
  }
  throw UsageError(fmt::format("--dataset {}: unknown dataset kind '{}' (known: {})", spec, kind, known_datasets()));
}

}  // namespace qmeter::workload
