#include "task_common.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "qmeter/core/error.h"

namespace qmeter::quality::detail {

void for_each_item(int n, int concurrency, const std::function<void(int)>& fn,
                   const std::function<void(int, int)>& progress, const char* what) {
  std::atomic<int> next{0}, done{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  std::string first_error;
  int first_index = -1;
  auto worker = [&] {
    for (int i = next++; i < n && !failed; i = next++) {
      try {
        fn(i);
      } catch (const std::exception& e) {
        std::lock_guard lock(mu);
        if (!failed.exchange(true)) {
          first_error = e.what();
          first_index = i;
        }
        return;
      }
      const int d = ++done;
      if (progress) {
        std::lock_guard lock(mu);
        progress(d, n);
      }
    }
  };
  const int threads = std::max(1, std::min(concurrency, n));
  if (threads == 1) {
    worker();
  } else {
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) pool.emplace_back(worker);
    for (auto& t : pool) t.join();
  }
  if (failed) throw Error(fmt::format("{} item {}: {}", what, first_index, first_error));
}

double binomial_stderr(double p, int n) {
  if (n < 2) return 0;
  return std::sqrt(std::max(0.0, p * (1 - p)) / (n - 1));
}

double bootstrap_stderr(int n, int resamples, std::uint64_t seed, const std::function<double(const std::vector<int>&)>& f) {
  if (n < 2 || resamples < 2) return 0;
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> pick(0, n - 1);
  std::vector<int> sample(static_cast<std::size_t>(n));
  std::vector<double> stats;
  stats.reserve(static_cast<std::size_t>(resamples));
  for (int r = 0; r < resamples; ++r) {
    for (auto& s : sample) s = pick(rng);
    const double v = f(sample);
    if (std::isfinite(v)) stats.push_back(v);
  }
  if (stats.size() < 2) return 0;
  double mean = 0;
  for (double v : stats) mean += v;
  mean /= static_cast<double>(stats.size());
  double ss = 0;
  for (double v : stats) ss += (v - mean) * (v - mean);
  return std::sqrt(ss / static_cast<double>(stats.size() - 1));
}

std::vector<std::string> split_documents(const std::string& text) {
  std::vector<std::string> docs;
  for (std::size_t start = 0; start < text.size();) {
    std::size_t end = text.find("\n\n", start);
    if (end == std::string::npos) end = text.size();
    if (end > start) docs.push_back(text.substr(start, end - start));
    start = end + 2;
  }
  return docs;
}

std::string read_text_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError(fmt::format("{}: cannot read {} file", path, what));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<JsonlLine> read_jsonl(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw UsageError(fmt::format("{}: cannot read the dataset file", path));
  std::vector<JsonlLine> out;
  std::string line;
  for (int no = 1; std::getline(in, line); ++no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    if (!nlohmann::json::accept(line))
      throw UsageError(fmt::format("{}:{}: not a JSON object (JSONL: one object per line)", path, no));
    out.push_back({no, line});
  }
  if (out.empty()) throw UsageError(fmt::format("{}: the dataset has no items", path));
  return out;
}

double continuation_logprob(const std::vector<ScoredToken>& tokens, std::size_t continuation_bytes, int* counted) {
  double sum = 0;
  std::size_t covered = 0;
  int n = 0;
  for (std::size_t i = tokens.size(); i-- > 1 && covered < continuation_bytes;) {
    covered += tokens[i].text.size();
    sum += tokens[i].logprob;
    ++n;
  }
  if (counted) *counted = n;
  return sum;
}

void append_windows(const std::vector<int>& bos, const std::vector<int>& ids, int body, int limit, std::size_t min_size,
                    std::vector<std::vector<int>>& windows) {
  const auto step = static_cast<std::size_t>(body);
  for (std::size_t s = 0; s < ids.size() && (limit <= 0 || static_cast<int>(windows.size()) < limit); s += step) {
    std::vector<int> w = bos;
    w.insert(w.end(), ids.begin() + static_cast<std::ptrdiff_t>(s),
             ids.begin() + static_cast<std::ptrdiff_t>(std::min(ids.size(), s + step)));
    if (w.size() >= min_size) windows.push_back(std::move(w));
  }
}

std::vector<ScoredToken> score_text_fitting(Scorer& scorer, const std::string& text, int top_n) {
  try {
    return scorer.score_text(text, top_n);
  } catch (const Error& first) {
    // Only a prompt that is too long is retried; anything else fails as it came.
    std::vector<int> ids;
    int ctx = 0;
    try {
      ids = scorer.tokenize(text, true);
      ctx = scorer.context_length();
    } catch (const Error&) {
      throw first;
    }
    if (static_cast<int>(ids.size()) < ctx) throw;
    ids.erase(ids.begin(), ids.end() - (ctx - 1));
    return scorer.score_tokens(ids, top_n);
  }
}

std::string generate_fitting(Scorer& scorer, const GenerateRequest& request) {
  try {
    return scorer.generate(request);
  } catch (const Error& first) {
    std::vector<int> ids;
    int ctx = 0;
    try {
      ids = scorer.tokenize(request.prompt, false);
      ctx = scorer.context_length();
    } catch (const Error&) {
      throw first;
    }
    const int keep = ctx - request.max_tokens - 1;
    if (static_cast<int>(ids.size()) <= keep || keep < 1) throw;
    GenerateRequest cut = request;
    cut.prompt_tokens.assign(ids.end() - keep, ids.end());
    return scorer.generate(cut);
  }
}

std::vector<ScoredToken> score_loglik_fitted(Scorer& scorer, const std::string& text, std::size_t continuation_bytes,
                                             int top_n, int context_length, bool can_tokenize) {
  // One position stays free for the one token the scoring request generates (max_tokens 1).
  const int limit = context_length - 1;
  // Surely fits: every token holds at least one byte, plus BOS and a tokenizer's dummy space.
  if (limit <= 0 || text.size() + 2 <= static_cast<std::size_t>(limit)) return score_text_fitting(scorer, text, top_n);
  if (can_tokenize) {
    std::vector<int> ids;
    bool tokenized = true;
    try {
      ids = scorer.tokenize(text, true);
    } catch (const Error&) {  // capabilities not probed (default: all) on a server without /tokenize
      tokenized = false;
    }
    if (tokenized && static_cast<int>(ids.size()) <= limit) return score_text_fitting(scorer, text, top_n);
    if (tokenized) {
      ids.erase(ids.begin(), ids.end() - limit);  // lm-eval: (context_enc + continuation_enc)[-max_length:]
      return scorer.score_tokens(ids, top_n);
    }
  }
  // Only a character estimate: keep the last limit - 2 bytes (then it surely fits), cut at a UTF-8
  // boundary. Fewer tokens of context than lm-eval keeps; a continuation that long is sent whole.
  if (continuation_bytes + 2 > static_cast<std::size_t>(limit)) return score_text_fitting(scorer, text, top_n);
  std::size_t start = text.size() - static_cast<std::size_t>(limit - 2);
  while (start < text.size() && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) ++start;
  return score_text_fitting(scorer, text.substr(start), top_n);
}

std::vector<Loglik> score_logliks(Scorer& scorer, const std::vector<LoglikRequest>& requests, const EvalOptions& o,
                                  bool want_greedy, const char* what) {
  std::vector<Loglik> out(requests.size());
  // The context length, learned once (a server's /v1/models); 0 where the scorer does not say,
  // and then a prompt too long is only cut after the server refuses it (score_text_fitting).
  int context_length = 0;
  try {
    context_length = requests.empty() ? 0 : scorer.context_length();
  } catch (const Error&) {
  }
  for_each_item(static_cast<int>(requests.size()), std::min(o.concurrency, scorer.max_concurrency()),
                [&](int r) {
                  const auto& q = requests[static_cast<std::size_t>(r)];
                  const auto scored = score_loglik_fitted(scorer, q.context + q.continuation, q.continuation.size(),
                                                          want_greedy ? 1 : 0, context_length,
                                                          o.capabilities.tokenize.supported);
                  int counted = 0;
                  Loglik& l = out[static_cast<std::size_t>(r)];
                  l.ll = continuation_logprob(scored, q.continuation.size(), &counted);
                  l.greedy = want_greedy;
                  for (std::size_t i = scored.size() - static_cast<std::size_t>(counted); i < scored.size(); ++i) {
                    const auto& t = scored[i];
                    // Greedy: no alternative more likely than the token itself (ties count as greedy).
                    if (t.top.empty() || t.top.front().second > t.logprob + 1e-9) l.greedy = false;
                  }
                },
                o.progress, what);
  return out;
}

int first_argmax(const std::vector<double>& v) {
  int best = 0;
  for (int i = 1; i < static_cast<int>(v.size()); ++i)
    if (v[static_cast<std::size_t>(i)] > v[static_cast<std::size_t>(best)]) best = i;
  return best;
}

Metric mean_metric(const std::string& name, const std::vector<double>& values) {
  Metric m;
  m.name = name;
  m.n = static_cast<int>(values.size());
  if (values.empty()) return m;
  double sum = 0;
  for (double v : values) sum += v;
  m.value = sum / static_cast<double>(values.size());
  if (values.size() > 1) {
    double ss = 0;
    for (double v : values) ss += (v - m.value) * (v - m.value);
    m.stderr_ = std::sqrt(ss / static_cast<double>(values.size() - 1) / static_cast<double>(values.size()));
  }
  return m;
}

std::optional<ChatTemplate> loglik_chat_template(const EvalOptions& o, const char* task) {
  if (!o.apply_chat_template) return std::nullopt;
  if (o.chat_template_path.empty() && !o.capabilities.chat_template_text.empty())
    return ChatTemplate::from_text(o.capabilities.chat_template_text, "the server's /props chat_template",
                                   o.capabilities.chat_bos_token, o.capabilities.chat_eos_token);
  if (o.chat_template_path.empty())
    throw UsageError(fmt::format("task {}: --apply-chat-template on a log-likelihood task needs the model's template "
                                 "(--chat-template tokenizer_config.json | model folder | model.gguf | template file; "
                                 "spec option chat_template), or a server whose GET /props has a chat_template: a "
                                 "server's chat endpoint returns no prompt log-probabilities",
                                 task));
  return ChatTemplate::load(o.chat_template_path);
}

std::string py_strip(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\n\r\f\v");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\n\r\f\v") - b + 1);
}

std::size_t utf8_length(const std::string& s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

}  // namespace qmeter::quality::detail
