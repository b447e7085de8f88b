#include "dataset_input.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "qmeter/core/error.h"

namespace qmeter::workload::detail {

void fail(std::string_view spec, std::string_view what) {
  throw UsageError(std::string(spec) + ": " + std::string(what));
}

void fail_at(std::string_view spec, std::size_t line, std::string_view what) {
  throw UsageError(std::string(spec) + " line " + std::to_string(line) + ": " + std::string(what));
}

std::string read_dataset_file(const std::string& spec, const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) fail(spec, "cannot read file (it is a directory)");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(spec, std::string("cannot read file (") + std::strerror(errno) + ")");
  std::ostringstream content;
  content << in.rdbuf();
  if (in.bad()) fail(spec, "cannot read file (read error)");
  return content.str();
}

std::vector<NumberedLine> split_lines(std::string_view text) {
  std::vector<NumberedLine> lines;
  std::size_t start = 0, number = 1;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back({number++, line});
    start = end + 1;
  }
  return lines;
}

std::size_t line_of_offset(std::string_view text, std::size_t offset) {
  offset = std::min(offset, text.size());
  return 1 + static_cast<std::size_t>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(offset), '\n'));
}

int estimate_tokens(std::string_view text) { return static_cast<int>((text.size() + 3) / 4); }

std::vector<std::size_t> shuffled_picks(std::size_t available, std::size_t num_prompts, SeededRng& rng) {
  std::vector<std::size_t> picks;
  picks.reserve(num_prompts);
  std::vector<std::size_t> order(available);
  while (picks.size() < num_prompts) {
    for (std::size_t i = 0; i < available; ++i) order[i] = i;
    for (std::size_t i = available; i > 1; --i) {
      const auto j = static_cast<std::size_t>(rng.uniform_int(0, static_cast<std::int64_t>(i - 1)));
      std::swap(order[i - 1], order[j]);
    }
    for (std::size_t i = 0; i < available && picks.size() < num_prompts; ++i) picks.push_back(order[i]);
  }
  return picks;
}

std::vector<std::size_t> in_order_picks(std::size_t available, std::size_t num_prompts) {
  std::vector<std::size_t> picks(num_prompts);
  for (std::size_t i = 0; i < num_prompts; ++i) picks[i] = i % available;
  return picks;
}

int counted_tokens(const DatasetOptions& options, const std::string& text) {
  return (options.token_counter && *options.token_counter) ? (*options.token_counter)(text) : -1;
}

}  // namespace qmeter::workload::detail
