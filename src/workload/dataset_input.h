#pragma once
// Shared plumbing for the file-backed datasets: reading the file with a UsageError that names it,
// walking lines with their numbers, the error formats, and picking num_prompts items.
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "qmeter/workload/sampling.h"
#include "qmeter/workload/schedule.h"

namespace qmeter::workload::detail {

// Error formats (every dataset uses these, so messages look alike):
//   "<spec>: <what>"                   (whole-file problems: unreadable, empty)
//   "<spec> line <n>: <what>"          (a problem at a line)
// where <spec> is the --dataset value, e.g. "jsonl:/x.jsonl line 7: missing string field 'prompt'".
[[noreturn]] void fail(std::string_view spec, std::string_view what);
[[noreturn]] void fail_at(std::string_view spec, std::size_t line, std::string_view what);

// The whole file; UsageError "<spec>: cannot read file (<reason>)" when it cannot be read.
std::string read_dataset_file(const std::string& spec, const std::string& path);

struct NumberedLine {
  std::size_t number;     // 1-based
  std::string_view text;  // without the line ending ("\n" or "\r\n")
};
std::vector<NumberedLine> split_lines(std::string_view text);

// Line number (1-based) of byte offset `offset` in `text`.
std::size_t line_of_offset(std::string_view text, std::size_t offset);

// The rough token count used when no token counter is given: OpenAI's rule of thumb of one
// token per 4 characters of English text (rounded up).
int estimate_tokens(std::string_view text);

// Indices of num_prompts items drawn from `available` items: a seeded Fisher-Yates shuffle,
// reshuffled each time the items run out (each item is used k times before any is used k+1).
std::vector<std::size_t> shuffled_picks(std::size_t available, std::size_t num_prompts, SeededRng& rng);
// The first num_prompts items in file order, starting over when they run out.
std::vector<std::size_t> in_order_picks(std::size_t available, std::size_t num_prompts);

// Counts tokens as the server will when DatasetOptions::token_counter is set, else -1.
int counted_tokens(const DatasetOptions& options, const std::string& text);

// Stream numbers for derive_seed, so each use of the seed draws its own sequence.
enum SeedStream : std::uint64_t {
  kLengthStream = 1,   // random dataset lengths
  kPickStream = 2,     // which items a file dataset uses
  kArrivalStream = 3,  // arrival gaps
  kShuffleStream = 4,  // the order in which the prefix dataset interleaves its groups
  kSessionLengthStream = 5,  // multiturn turn lengths
  kPromptWordsBase = 1000,  // + prompt index: the words of prompt i
  kPrefixBase = 1ull << 40,  // + group: the shared system prompt of the prefix dataset's group
  kHashBlockBase = 1ull << 41,  // + hash id: a Mooncake 512-token block
};

}  // namespace qmeter::workload::detail
