// Prometheus text exposition format 0.0.4:
//   # HELP name docstring          (docstring escapes: \\ and \n)
//   # TYPE name counter|gauge|histogram|summary|untyped
//   # anything else                (a comment)
//   name{label="value",...} value [timestamp_ms]   (label value escapes: \\ \" \n)
#include <fmt/core.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "qmeter/core/error.h"
#include "qmeter/telemetry/prometheus.h"

namespace qmeter::telemetry {
namespace {

bool name_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':'; }
bool name_char(char c) { return name_start(c) || std::isdigit(static_cast<unsigned char>(c)); }

class LineParser {
 public:
  LineParser(std::string_view line, int line_no) : s_(line), line_no_(line_no) {}

  [[noreturn]] void fail(std::string_view what) const {
    throw Error(fmt::format("prometheus text line {}: {} (at column {}: '{}')", line_no_, what, pos_ + 1,
                            std::string(s_.substr(0, 80))));
  }
  void skip_blanks() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t')) ++pos_;
  }
  bool at_end() const { return pos_ >= s_.size(); }
  char peek() const { return at_end() ? '\0' : s_[pos_]; }

  std::string metric_name(bool allow_colon = true) {
    std::size_t start = pos_;
    if (at_end() || !name_start(s_[pos_]) || (!allow_colon && s_[pos_] == ':'))
      fail(allow_colon ? "expected a metric name" : "expected a label name");
    while (pos_ < s_.size() && name_char(s_[pos_]) && (allow_colon || s_[pos_] != ':')) ++pos_;
    return std::string(s_.substr(start, pos_ - start));
  }

  std::string token() {
    std::size_t start = pos_;
    while (pos_ < s_.size() && s_[pos_] != ' ' && s_[pos_] != '\t') ++pos_;
    return std::string(s_.substr(start, pos_ - start));
  }

  std::string rest() {
    std::string out(s_.substr(std::min(pos_, s_.size())));
    pos_ = s_.size();
    return out;
  }

  std::string quoted_label_value() {
    if (peek() != '"') fail("expected '\"' to open a label value");
    ++pos_;
    std::string v;
    while (true) {
      if (at_end()) fail("unterminated label value");
      char c = s_[pos_++];
      if (c == '"') return v;
      if (c == '\\') {
        if (at_end()) fail("unterminated escape in a label value");
        char e = s_[pos_++];
        if (e == 'n') v += '\n';
        else if (e == '\\' || e == '"') v += e;
        else fail(fmt::format("unknown escape '\\{}' in a label value", e));
      } else {
        v += c;
      }
    }
  }

  Labels labels() {
    Labels out;
    ++pos_;  // '{'
    while (true) {
      skip_blanks();
      if (peek() == '}') {
        ++pos_;
        return out;
      }
      std::string key = metric_name(false);
      skip_blanks();
      if (peek() != '=') fail(fmt::format("expected '=' after label name '{}'", key));
      ++pos_;
      skip_blanks();
      std::string value = quoted_label_value();
      for (const auto& [k, v] : out)
        if (k == key) fail(fmt::format("label '{}' appears twice", key));
      out.emplace_back(std::move(key), std::move(value));
      skip_blanks();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == '}') continue;
      fail("expected ',' or '}' after a label");
    }
  }

 private:
  std::string_view s_;
  std::size_t pos_ = 0;
  int line_no_;
};

double parse_value(const std::string& text, const LineParser& p) {
  if (text.empty()) p.fail("missing sample value");
  std::string lower;
  for (char c : text) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "nan") return std::nan("");
  if (lower == "+inf" || lower == "inf") return HUGE_VAL;
  if (lower == "-inf") return -HUGE_VAL;
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || std::isnan(v) || std::isinf(v))
    p.fail(fmt::format("'{}' is not a number", text));
  return v;
}

std::string unescape_help(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && (s[i + 1] == 'n' || s[i + 1] == '\\')) {
      out += s[i + 1] == 'n' ? '\n' : '\\';
      ++i;
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace

const std::string* PromSample::label(std::string_view key) const {
  for (const auto& [k, v] : labels)
    if (k == key) return &v;
  return nullptr;
}

const PromFamily* PromText::family_of(const PromSample& s) const {
  if (auto it = families.find(s.name); it != families.end()) return &it->second;
  for (std::string_view suffix : {"_bucket", "_sum", "_count", "_created"}) {
    std::string_view n = s.name;
    if (n.size() > suffix.size() && n.substr(n.size() - suffix.size()) == suffix) {
      auto it = families.find(std::string(n.substr(0, n.size() - suffix.size())));
      if (it != families.end() && (it->second.type == "histogram" || it->second.type == "summary")) return &it->second;
    }
  }
  return nullptr;
}

std::optional<double> PromText::sum(std::string_view name) const {
  std::optional<double> total;
  for (const auto& s : samples)
    if (s.name == name) total = total.value_or(0) + s.value;
  return total;
}

PromText parse_prometheus_text(std::string_view text) {
  PromText out;
  int line_no = 0;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() + 1 : nl + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    LineParser p(line, line_no);
    p.skip_blanks();
    if (p.at_end()) continue;
    if (p.peek() == '#') {
      std::string hash = p.token();
      p.skip_blanks();
      std::string keyword = p.token();
      if (hash != "#" || (keyword != "HELP" && keyword != "TYPE")) continue;  // a plain comment
      p.skip_blanks();
      std::string name = p.metric_name();
      p.skip_blanks();
      PromFamily& fam = out.families[name];
      fam.name = name;
      if (keyword == "HELP") {
        fam.help = unescape_help(p.rest());
      } else {
        std::string type = p.token();
        if (type != "counter" && type != "gauge" && type != "histogram" && type != "summary" && type != "untyped")
          p.fail(fmt::format("unknown metric type '{}' for '{}'", type, name));
        fam.type = type;
      }
      continue;
    }
    PromSample s;
    s.name = p.metric_name();
    p.skip_blanks();
    if (p.peek() == '{') s.labels = p.labels();
    p.skip_blanks();
    s.value = parse_value(p.token(), p);
    p.skip_blanks();
    if (!p.at_end()) {
      std::string ts = p.token();
      char* end = nullptr;
      errno = 0;
      long long v = std::strtoll(ts.c_str(), &end, 10);
      if (ts.empty() || end != ts.c_str() + ts.size() || errno != 0)
        p.fail(fmt::format("'{}' is not a timestamp in milliseconds", ts));
      s.timestamp_ms = v;
      p.skip_blanks();
      if (!p.at_end()) p.fail("unexpected text after the timestamp");
    }
    out.samples.push_back(std::move(s));
  }
  return out;
}

std::vector<std::string> default_scraped_metrics() {
  return {"vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
          "vllm:gpu_cache_usage_perc", "vllm:num_preemptions_total", "vllm:num_preemptions",
          "qmeter:*",                  "qmeter_*"};
}

}  // namespace qmeter::telemetry
