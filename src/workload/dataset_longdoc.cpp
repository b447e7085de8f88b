// `longdoc:PATH`: long prompts cut from real text (no needle, no task): prompt i is the text of
// PATH from a seeded word boundary, cut to exactly --input-len tokens (+- --range-ratio). With a
// token counter (the server's /tokenize) the cut is found by bisection on the character count
// (it may fall inside a word: the point is the length); without one a token is a whitespace
// word (the mock's count). The text wraps around at its end, so any length can be cut from a
// short file; asking for --output-len tokens.
#include <algorithm>
#include <cctype>

#include <fmt/format.h>

#include "dataset_input.h"
#include "datasets.h"
#include "qmeter/core/error.h"

namespace qmeter::workload::detail {

namespace {

// Byte offsets where words start (after whitespace).
std::vector<std::size_t> word_starts(const std::string& text) {
  std::vector<std::size_t> out;
  bool space = true;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const bool s = std::isspace(static_cast<unsigned char>(text[i])) != 0;
    if (!s && space) out.push_back(i);
    space = s;
  }
  return out;
}

}  // namespace

DatasetSample load_longdoc(const std::string& spec, const std::string& path, const DatasetOptions& options) {
  if (options.input_len < 1)
    throw UsageError(fmt::format("{} must be at least 1, got {}", options.field_names("input_len"), options.input_len));
  const std::string text = read_dataset_file(spec, path);
  const std::vector<std::size_t> starts = word_starts(text);
  if (starts.size() < 2) fail(spec, "the file has fewer than 2 words of text");
  const LengthRange in = length_range(options.input_len, options.range_ratio);
  SeededRng lengths(derive_seed(options.seed, kLengthStream));
  SeededRng picks(derive_seed(options.seed, kPickStream));
  DatasetSample sample;
  for (int i = 0; i < options.num_prompts; ++i) {
    const int target = static_cast<int>(lengths.uniform_int(in.lo, in.hi));
    const std::size_t w0 = static_cast<std::size_t>(picks.uniform_int(0, static_cast<std::int64_t>(starts.size()) - 1));
    // Enough text from the start word on (wrapping around): whole words, target of them plus
    // margin, which is at least target tokens for any tokenizer that gives a word >= 1 token.
    std::string window;
    for (std::size_t k = 0, w = w0; k < static_cast<std::size_t>(target) + 1; ++k, w = (w + 1) % starts.size()) {
      const std::size_t end = w + 1 < starts.size() ? starts[w + 1] : text.size();
      window.append(text, starts[w], end - starts[w]);
      if (w + 1 == starts.size()) window.push_back('\n');
    }
    Prompt p;
    p.max_tokens = options.output_len;
    if (!options.token_counter || !*options.token_counter) {
      // A token is a word: the first `target` words.
      const auto ws = word_starts(window);
      std::size_t cut = ws.size() > static_cast<std::size_t>(target) ? ws[static_cast<std::size_t>(target)] : window.size();
      while (cut > 0 && std::isspace(static_cast<unsigned char>(window[cut - 1]))) --cut;
      p.text = window.substr(0, cut);
      p.prompt_tokens = target;
    } else {
      const auto& count = *options.token_counter;
      // The longest prefix with at most `target` tokens (token counts grow with the prefix), cut
      // only between UTF-8 characters.
      std::vector<std::size_t> cuts;
      for (std::size_t k = 0; k <= window.size(); ++k)
        if (k == window.size() || (static_cast<unsigned char>(window[k]) & 0xC0) != 0x80) cuts.push_back(k);
      std::size_t lo = 0, hi = cuts.size() - 1;
      while (lo < hi) {
        const std::size_t mid = (lo + hi + 1) / 2;
        if (count(window.substr(0, cuts[mid])) <= target) lo = mid;
        else hi = mid - 1;
      }
      p.text = window.substr(0, cuts[lo]);
      p.prompt_tokens = count(p.text);
    }
    sample.prompts.push_back(std::move(p));
  }
  sample.description = fmt::format("{} in={} out={}{}", spec, options.input_len, options.output_len,
                                   options.range_ratio > 0 ? fmt::format(" range={}", options.range_ratio) : "");
  return sample;
}

}  // namespace qmeter::workload::detail
