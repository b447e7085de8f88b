// `random`: prompts of random words with lengths uniform around --input-len / --output-len.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "dataset_input.h"
#include "datasets.h"
#include "word_prompt.h"

namespace qmeter::workload::detail {

LengthRange length_range(int len, double range_ratio) {
  // The 1e-9 guards keep float noise (100 * 1.1 = 110.00000000000001) from widening the range.
  const int lo = static_cast<int>(std::floor(len * (1.0 - range_ratio) + 1e-9));
  const int hi = static_cast<int>(std::ceil(len * (1.0 + range_ratio) - 1e-9));
  return {std::max(1, lo), std::max(1, hi)};
}

DatasetSample load_random(const std::string& spec, const std::string& path, const DatasetOptions& options) {
  const LengthRange in = length_range(options.input_len, options.range_ratio);
  const LengthRange out = length_range(options.output_len, options.range_ratio);
  // Lengths and words draw from separate streams, and each prompt's words from its own, so
  // prompt i is the same whatever num_prompts is and whatever the token counter did before it.
  SeededRng lengths(derive_seed(options.seed, kLengthStream));
  DatasetSample sample;
  sample.prompts.reserve(static_cast<std::size_t>(options.num_prompts));
  for (int i = 0; i < options.num_prompts; ++i) {
    const int input_len = static_cast<int>(lengths.uniform_int(in.lo, in.hi));
    const int output_len = static_cast<int>(lengths.uniform_int(out.lo, out.hi));
    SeededRng words(derive_seed(options.seed, kPromptWordsBase + static_cast<std::uint64_t>(i)));
    WordPrompt built = build_word_prompt(input_len, words, options.token_counter);
    Prompt p;
    p.text = std::move(built.text);
    p.prompt_tokens = built.tokens;
    p.max_tokens = output_len;
    sample.prompts.push_back(std::move(p));
  }
  sample.description = options.range_ratio > 0
                           ? fmt::format("random in={} out={} range={}", options.input_len, options.output_len, options.range_ratio)
                           : fmt::format("random in={} out={}", options.input_len, options.output_len);
  return sample;
}

}  // namespace qmeter::workload::detail
