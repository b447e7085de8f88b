// The dataset table: adding a dataset = one dataset_<name>.cpp + one row here.
#include <array>
#include <cmath>

#include <fmt/format.h>

#include "datasets.h"
#include "qmeter/core/error.h"

namespace qmeter::workload {

namespace {

constexpr std::array<Dataset, 12> kDatasets = {{
    {"random", false, "random common words; lengths --input-len/--output-len +- --range-ratio", detail::load_random},
    {"sharegpt", true, "ShareGPT JSON: first human turn; output length from the first gpt reply or --output-len",
     detail::load_sharegpt},
    {"jsonl", true, "one JSON object per line: prompt, optional max_tokens and reference", detail::load_jsonl},
    {"azure", true, "Azure LLM inference trace CSV (TIMESTAMP,ContextTokens,GeneratedTokens), replayable",
     detail::load_azure},
    {"gsm8k", true, "GSM8K JSONL: question as prompt, final answer as reference", detail::load_gsm8k},
    {"mooncake", true, "Mooncake trace JSONL (timestamp ms, input_length, output_length, hash_ids of 512-token blocks), replayable",
     detail::load_mooncake},
    {"burstgpt", true, "BurstGPT trace CSV (Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type), replayable",
     detail::load_burstgpt},
    {"trace", true, "a mooncake, burstgpt or azure trace, the format told from the file", detail::load_trace},
    {"sharegpt-multiturn", true, "ShareGPT JSON: every human turn of each conversation, one session per conversation",
     detail::load_sharegpt_multiturn},
    {"multiturn", false, "synthetic conversations: --turns user turns of --input-len, replies of --output-len, --think-time",
     detail::load_multiturn},
    {"prefix", false, "--num-prefixes system prompts of --prefix-len tokens, each shared by num_prompts / num_prefixes "
     "requests with their own --input-len suffix", detail::load_prefix},
    {"longdoc", true, "real text cut to exactly --input-len tokens from seeded word boundaries (long-context prompts)",
     detail::load_longdoc},
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
  if (options.num_prompts < 1) throw UsageError(fmt::format("{} must be at least 1, got {}", options.field_names("num_prompts"), options.num_prompts));
  if (options.output_len < 1) throw UsageError(fmt::format("{} must be at least 1, got {}", options.field_names("output_len"), options.output_len));
  if (!(options.range_ratio >= 0.0 && options.range_ratio < 1.0))
    throw UsageError(fmt::format("{} must be in [0, 1), got {}", options.field_names("range_ratio"), options.range_ratio));

  const std::string& spec = options.spec;
  const std::size_t colon = spec.find(':');
  const std::string kind = spec.substr(0, colon);
  const std::string path = colon == std::string::npos ? std::string() : spec.substr(colon + 1);
  for (const Dataset& d : kDatasets) {
    if (d.name != kind) continue;
    if (d.needs_path && path.empty())
      throw UsageError(fmt::format("{} {}: needs a file, as {}:PATH", options.field_names("dataset"), spec, kind));
    if (!d.needs_path && colon != std::string::npos)
      throw UsageError(fmt::format("{} {}: '{}' takes no path", options.field_names("dataset"), spec, kind));
    if (kind == "random" && options.input_len < 1)
      throw UsageError(fmt::format("{} must be at least 1, got {}", options.field_names("input_len"), options.input_len));
    DatasetSample sample = d.load(spec, path, options);
    // Session datasets give num_prompts conversations of one or more turns each.
    std::size_t units = 0;
    for (const Prompt& p : sample.prompts) units += p.session < 0 || p.turn == 0;
    if (units != static_cast<std::size_t>(options.num_prompts))
      throw Error(fmt::format("internal: dataset {} gave {} prompts for --num-prompts {}", spec, units, options.num_prompts));
    return sample;
  }
  throw UsageError(
      fmt::format("{} {}: unknown dataset kind '{}' (known: {})", options.field_names("dataset"), spec, kind, known_datasets()));
}

}  // namespace qmeter::workload
