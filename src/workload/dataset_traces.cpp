// The production traces beside `azure:PATH` (dataset_azure.cpp), their shared window and prompts:
//   mooncake:PATH  Mooncake (FAST'25) JSONL, one object per line:
//                  {"timestamp": ms, "input_length": n, "output_length": m, "hash_ids": [ids]}
//                  hash_ids[k] names the k-th 512-token block of the prompt; requests that share an
//                  id share that block, so the prompt of each id is one fixed block of words that
//                  are one token each (TokenBlockWords): shared ids become identical token blocks.
//   burstgpt:PATH  BurstGPT CSV: Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type
//                  (Timestamp in seconds). Rows with 0 request or response tokens are failed
//                  requests of the original service and are skipped (counted in the description).
//   trace:PATH     any of the three (and azure), told apart by the file's first line.
#include <algorithm>
#include <cmath>
#include <optional>

#include <fmt/format.h>

#include "dataset_input.h"
#include "qmeter/core/error.h"
#include "qmeter/core/parse_number.h"
#include "datasets.h"
#include "json_input.h"
#include "trace_rows.h"
#include "word_prompt.h"

namespace qmeter::workload::detail {

namespace {

Nanos seconds_to_ns(double s) { return static_cast<Nanos>(std::llround(s * 1e9)); }

// Seconds as written in BurstGPT ("5", "12.5").
std::optional<double> parse_seconds(std::string_view s) {
  const auto v = parse_double(s);
  return v && std::isfinite(*v) && *v >= 0 ? v : std::nullopt;
}

std::string_view first_line(std::string_view text) {
  for (const auto& l : split_lines(text))
    if (!trim(l.text).empty()) return trim(l.text);
  return {};
}

}  // namespace

CsvTrace::CsvTrace(const std::string& spec, std::string_view text, std::string_view expected_header)
    : spec_(spec), expected_(expected_header), lines_(split_lines(text)) {
  if (lines_.empty() || trim(lines_[0].text).empty()) fail(spec, fmt::format("empty file (expected the header {})", expected_header));
  header_ = split_commas(lines_[0].text);
}

std::size_t CsvTrace::column(std::string_view name) const {
  for (std::size_t i = 0; i < header_.size(); ++i)
    if (iequals(header_[i], name)) return i;
  fail_at(spec_, 1, fmt::format("missing column '{}' in the header '{}' (expected {})", name, lines_[0].text, expected_));
}

void CsvTrace::rows(const std::function<bool(std::size_t, const std::vector<std::string_view>&)>& row) const {
  for (std::size_t li = 1; li < lines_.size(); ++li) {
    const auto& line = lines_[li];
    if (trim(line.text).empty()) continue;
    const auto fields = split_commas(line.text);
    if (fields.size() != header_.size())
      fail_at(spec_, line.number, fmt::format("expected {} comma-separated fields, got {}", header_.size(), fields.size()));
    if (!row(line.number, fields)) return;
  }
}

TraceWindow::TraceWindow(const DatasetOptions& o)
    : start_ns_(seconds_to_ns(o.trace_window_start_s)),
      duration_ns_(o.trace_window_duration_s < 0 ? -1 : seconds_to_ns(o.trace_window_duration_s)) {
  if (!(o.trace_window_start_s >= 0 && std::isfinite(o.trace_window_start_s)))
    throw UsageError(fmt::format("--trace-window: the start must be >= 0 seconds, got {}", o.trace_window_start_s));
  if (std::isnan(o.trace_window_duration_s) || o.trace_window_duration_s == 0)
    throw UsageError(fmt::format("--trace-window: the duration must be > 0 seconds, got {}", o.trace_window_duration_s));
}

TraceWindow::Verdict TraceWindow::offer(Nanos t) {
  if (!have_origin_) {
    have_origin_ = true;
    origin_ns_ = t;
  }
  const Nanos rel = t - origin_ns_;
  if (rel < start_ns_) return Verdict::kSkip;
  if (duration_ns_ >= 0 && rel >= start_ns_ + duration_ns_) return Verdict::kStop;
  return Verdict::kTake;
}

std::string TraceWindow::describe() const {
  if (start_ns_ == 0 && duration_ns_ < 0) return "";
  return duration_ns_ < 0 ? fmt::format("window from {} s", static_cast<double>(start_ns_) / 1e9)
                          : fmt::format("window {} s + {} s", static_cast<double>(start_ns_) / 1e9,
                                        static_cast<double>(duration_ns_) / 1e9);
}

DatasetSample trace_sample(const std::string& spec, std::vector<TraceRow> rows, const DatasetOptions& options,
                           std::size_t rows_seen, const TraceWindow& window) {
  const std::string in_window = window.describe().empty() ? "" : " in the " + window.describe();
  if (rows.size() < static_cast<std::size_t>(options.num_prompts))
    fail(spec, fmt::format("the trace has {} requests{}; --num-prompts {} asks for more", rows.size(), in_window,
                           options.num_prompts));
  rows.resize(static_cast<std::size_t>(options.num_prompts));
  const bool blocks = std::any_of(rows.begin(), rows.end(), [](const TraceRow& r) { return !r.hash_ids.empty(); });
  std::optional<TokenBlockWords> block_words;
  if (blocks) block_words.emplace(options.token_counter);

  DatasetSample sample;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const TraceRow& row = rows[i];
    Prompt p;
    if (!row.hash_ids.empty()) {
      // Block k: kMooncakeBlockTokens words of the id's seed, the last one cut to what is left.
      int left = row.input_tokens;
      for (std::int64_t id : row.hash_ids) {
        const int n = std::min(left, kMooncakeBlockTokens);
        if (!p.text.empty()) p.text.push_back(' ');
        p.text += block_words->block(derive_seed(options.seed, kHashBlockBase + static_cast<std::uint64_t>(id)), n);
        left -= n;
      }
      p.prompt_tokens = row.input_tokens;
    } else {
      SeededRng words(derive_seed(options.seed, kPromptWordsBase + i));
      WordPrompt built = build_word_prompt(row.input_tokens, words, options.token_counter);
      p.text = std::move(built.text);
      p.prompt_tokens = built.tokens;
    }
    p.max_tokens = options.fixed_output_len ? options.output_len : row.output_tokens;
    sample.prompts.push_back(std::move(p));
  }
  Nanos first = rows.front().time_ns;
  for (const auto& r : rows) first = std::min(first, r.time_ns);
  for (const auto& r : rows) sample.trace_offsets_ns.push_back(r.time_ns - first);
  sample.description = fmt::format("{} ({}first {} of {} rows read)", spec, window.describe().empty() ? "" : window.describe() + ", ",
                                   rows.size(), rows_seen);
  return sample;
}

DatasetSample load_mooncake(const std::string& spec, const std::string& path, const DatasetOptions& options) {
  const std::string text = read_dataset_file(spec, path);
  TraceWindow window(options);
  std::vector<TraceRow> rows;
  std::size_t seen = 0;
  const auto wanted = static_cast<std::size_t>(options.num_prompts);
  Nanos last_ms = -1;
  for (const auto& line : split_lines(text)) {
    if (rows.size() >= wanted) break;
    if (trim(line.text).empty()) continue;
    auto bad = [&](const std::string& what) { fail_at(spec, line.number, what); };
    nlohmann::json j = nlohmann::json::parse(line.text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) bad("expected a JSON object {timestamp, input_length, output_length, hash_ids}");
    auto integer = [&](const char* field, std::int64_t min) {
      auto f = j.find(field);
      if (f == j.end()) bad(fmt::format("missing field '{}'", field));
      if (!f->is_number_integer() || f->get<std::int64_t>() < min)
        bad(fmt::format("field '{}': expected an integer >= {}, got {}", field, min, f->dump()));
      return f->get<std::int64_t>();
    };
    const std::int64_t ms = integer("timestamp", 0);
    const std::int64_t input = integer("input_length", 1), output = integer("output_length", 1);
    if (input > 10'000'000 || output > 10'000'000) bad("field 'input_length' or 'output_length': implausibly large");
    if (ms < last_ms) bad(fmt::format("field 'timestamp': {} ms is before the previous row's {} ms", ms, last_ms));
    last_ms = ms;
    auto ids = j.find("hash_ids");
    if (ids == j.end() || !ids->is_array()) bad("missing list field 'hash_ids'");
    const std::size_t expect = static_cast<std::size_t>((input + kMooncakeBlockTokens - 1) / kMooncakeBlockTokens);
    if (ids->size() != expect)
      bad(fmt::format("field 'hash_ids': {} ids for input_length {} (expected ceil({} / {}) = {})", ids->size(), input, input,
                      kMooncakeBlockTokens, expect));
    TraceRow row{line.number, ms * 1'000'000, static_cast<int>(input), static_cast<int>(output), {}};
    for (const auto& id : *ids) {
      if (!id.is_number_integer() || id.get<std::int64_t>() < 0)
        bad(fmt::format("field 'hash_ids': expected non-negative integers, got {}", id.dump()));
      row.hash_ids.push_back(id.get<std::int64_t>());
    }
    ++seen;
    const auto verdict = window.offer(row.time_ns);
    if (verdict == TraceWindow::Verdict::kStop) break;
    if (verdict == TraceWindow::Verdict::kTake) rows.push_back(std::move(row));
  }
  if (seen == 0) fail(spec, "no requests (empty file)");
  return trace_sample(spec, std::move(rows), options, seen, window);
}

DatasetSample load_burstgpt(const std::string& spec, const std::string& path, const DatasetOptions& options) {
  const std::string text = read_dataset_file(spec, path);
  const CsvTrace csv(spec, text, "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type");
  const std::size_t c_time = csv.column("Timestamp"), c_req = csv.column("Request tokens"),
                    c_resp = csv.column("Response tokens"), c_total = csv.column("Total tokens");
  TraceWindow window(options);
  std::vector<TraceRow> rows;
  std::size_t seen = 0, failed = 0;
  const auto wanted = static_cast<std::size_t>(options.num_prompts);
  double last_s = -1;
  csv.rows([&](std::size_t line, const std::vector<std::string_view>& fields) {
    const auto seconds = parse_seconds(fields[c_time]);
    if (!seconds) fail_at(spec, line, fmt::format("field '{}': expected seconds >= 0, got '{}'", csv.column_name(c_time), fields[c_time]));
    if (*seconds < last_s)
      fail_at(spec, line, fmt::format("field '{}': {} is before the previous row's {}", csv.column_name(c_time), fields[c_time], last_s));
    last_s = *seconds;
    std::int64_t counts[3];
    const std::size_t cols[3] = {c_req, c_resp, c_total};
    for (int k = 0; k < 3; ++k) {
      const auto v = parse_int64(fields[cols[k]]);
      if (!v || *v < 0 || *v > 10'000'000)
        fail_at(spec, line, fmt::format("field '{}': expected a token count >= 0, got '{}'", csv.column_name(cols[k]), fields[cols[k]]));
      counts[k] = *v;
    }
    if (counts[0] + counts[1] != counts[2])
      fail_at(spec, line, fmt::format("field '{}': {} is not {} + {} (request + response tokens)", csv.column_name(c_total),
                                      counts[2], counts[0], counts[1]));
    ++seen;
    const auto verdict = window.offer(seconds_to_ns(*seconds));
    if (verdict == TraceWindow::Verdict::kStop) return false;
    if (verdict == TraceWindow::Verdict::kTake) {
      if (counts[0] == 0 || counts[1] == 0) ++failed;
      else rows.push_back({line, seconds_to_ns(*seconds), static_cast<int>(counts[0]), static_cast<int>(counts[1]), {}});
    }
    return rows.size() < wanted;
  });
  if (seen == 0) fail(spec, "no requests (the file has a header but no rows)");
  DatasetSample sample = trace_sample(spec, std::move(rows), options, seen, window);
  if (failed) sample.description += fmt::format(", {} failed requests skipped", failed);
  return sample;
}

DatasetSample load_trace(const std::string& spec, const std::string& path, const DatasetOptions& options) {
  const std::string head = std::string(first_line(read_dataset_file(spec, path)));
  if (head.empty()) fail(spec, "empty file");
  if (head.front() == '{') return load_mooncake(spec, path, options);
  auto has = [&](std::string_view name) {
    for (auto f : split_commas(head))
      if (iequals(f, name)) return true;
    return false;
  };
  if (has("Request tokens") && has("Response tokens")) return load_burstgpt(spec, path, options);
  if (has("ContextTokens") && has("GeneratedTokens")) return load_azure(spec, path, options);
  fail_at(spec, 1, fmt::format("unknown trace format: the first line '{}' is not a Mooncake JSON object, a BurstGPT "
                               "header (Timestamp,Model,Request tokens,...) or an Azure header (TIMESTAMP,ContextTokens,GeneratedTokens)",
                               head.substr(0, 120)));
}

}  // namespace qmeter::workload::detail

namespace qmeter::workload {

void parse_trace_window(const std::string& text, DatasetOptions& options, const std::string& what) {
  const std::size_t comma = text.find(',');
  auto number = [&](std::string_view s, bool allow_inf) -> double {
    s = detail::trim(s);
    if (allow_inf && (s.empty() || s == "inf")) return -1;
    const double v = parse_double(s).value_or(-1);
    if (!std::isfinite(v) || v < 0 || (allow_inf && v == 0))
      throw UsageError(fmt::format("{} '{}': expected START,DURATION in seconds (START >= 0, DURATION > 0 or inf)", what, text));
    return v;
  };
  if (comma == std::string::npos)
    throw UsageError(fmt::format("{} '{}': expected START,DURATION in seconds (START >= 0, DURATION > 0 or inf)", what, text));
  options.trace_window_start_s = number(std::string_view(text).substr(0, comma), false);
  options.trace_window_duration_s = number(std::string_view(text).substr(comma + 1), true);
}

}  // namespace qmeter::workload
