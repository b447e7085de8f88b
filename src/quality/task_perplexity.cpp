// perplexity:PATH. Document mode: each block between blank lines is scored from a fresh context
// (BOS where the model adds one), the NLL of every token after the first; a document longer than
// one request (max_length tokens, default the context length - 1, which leaves an echo request
// room for its one generated token) is scored in lm-evaluation-harness's rolling windows
// (rolling_windows in eval.h): every token once, each window after the first conditioned on the
// tokens right before it. The server's /tokenize splits documents; a server without it scores each
// document as text in one request. --truncate N keeps each document's first N tokens (word and
// byte counts then scale with the share of tokens kept). Window mode: the whole
// file is tokenized once and scored in non-overlapping windows of the context length, each
// starting from BOS. Word and byte perplexity and bits per byte follow lm-evaluation-harness:
// exp(NLL / words), exp(NLL / UTF-8 bytes), NLL / bytes / ln 2, over the same text.
#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "qmeter/core/error.h"
#include "task_common.h"

namespace qmeter::quality {

using detail::for_each_item;

namespace {

struct Piece {
  double nll = 0;
  long tokens = 0;
  int windows = 1;
  double words = 0, bytes = 0;
};

std::size_t count_words(const std::string& s) {
  std::size_t n = 0;
  bool in_word = false;
  for (unsigned char c : s) {
    const bool space = std::isspace(c) != 0;
    if (!space && !in_word) ++n;
    in_word = !space;
  }
  return n;
}

double sum_nll(const std::vector<ScoredToken>& scored, long* tokens) {
  double nll = 0;
  long n = 0;
  for (std::size_t i = 1; i < scored.size(); ++i) {
    if (!std::isfinite(scored[i].logprob)) throw Error(fmt::format("token {} has no finite log-probability", i));
    nll -= scored[i].logprob;
    ++n;
  }
  *tokens = n;
  return nll;
}

// Negative log-likelihood of a window's scored tokens (its last `scored`).
double window_nll(const std::vector<ScoredToken>& scored, int count) {
  if (count < 1 || scored.size() < static_cast<std::size_t>(count) + 1)
    throw Error(fmt::format("the scorer returned {} tokens for a window that scores {}", scored.size(), count));
  double nll = 0;
  for (std::size_t i = scored.size() - static_cast<std::size_t>(count); i < scored.size(); ++i) {
    if (!std::isfinite(scored[i].logprob)) throw Error(fmt::format("token {} has no finite log-probability", i));
    nll -= scored[i].logprob;
  }
  return nll;
}

void score_documents(const std::vector<std::string>& docs, Scorer& scorer, const EvalOptions& o, std::vector<Piece>& pieces) {
  const int conc = std::min(o.concurrency, scorer.max_concurrency());
  pieces.resize(docs.size());
  if (!o.capabilities.tokenize.supported) {
    if (o.truncate > 0)
      throw UsageError(fmt::format("{}: needs the server's /tokenize ({})", o.field_names("truncate"), o.capabilities.tokenize.reason));
    for_each_item(static_cast<int>(docs.size()), conc,
                  [&](int i) {
                    const auto& d = docs[static_cast<std::size_t>(i)];
                    Piece& p = pieces[static_cast<std::size_t>(i)];
                    p.nll = sum_nll(scorer.score_text(d, 0), &p.tokens);
                    p.words = static_cast<double>(count_words(d));
                    p.bytes = static_cast<double>(d.size());
                  },
                  o.progress, "perplexity document");
    return;
  }
  const auto prefix = scorer.tokenize("", true);  // [BOS] or nothing
  const int max_length = o.max_length > 0 ? o.max_length : scorer.context_length() - 1;
  if (max_length < 2)
    throw UsageError(fmt::format("{} {}: too short (at least 2 tokens)", o.field_names("max_length"), max_length));
  // Documents are tokenized, split into windows, and every window of every document is scored in
  // one pool, so a few long documents still use every connection.
  std::vector<std::vector<RollingWindow>> windows(docs.size());
  for_each_item(static_cast<int>(docs.size()), conc,
                [&](int i) {
                  const auto& d = docs[static_cast<std::size_t>(i)];
                  auto ids = scorer.tokenize(d, false);
                  double share = 1;
                  if (o.truncate > 0 && ids.size() > static_cast<std::size_t>(o.truncate)) {
                    share = static_cast<double>(o.truncate) / static_cast<double>(ids.size());
                    ids.resize(static_cast<std::size_t>(o.truncate));
                  }
                  Piece& p = pieces[static_cast<std::size_t>(i)];
                  p.windows = 0;  // counted below
                  p.words = static_cast<double>(count_words(d)) * share;
                  p.bytes = static_cast<double>(d.size()) * share;
                  windows[static_cast<std::size_t>(i)] = rolling_windows(prefix, ids, max_length);
                },
                nullptr, "perplexity document (tokenizing)");
  std::vector<std::pair<int, int>> work;  // (document, window)
  for (std::size_t i = 0; i < windows.size(); ++i)
    for (std::size_t w = 0; w < windows[i].size(); ++w) work.emplace_back(static_cast<int>(i), static_cast<int>(w));
  std::vector<double> nll(work.size());
  for_each_item(static_cast<int>(work.size()), conc,
                [&](int k) {
                  const auto [i, w] = work[static_cast<std::size_t>(k)];
                  const auto& win = windows[static_cast<std::size_t>(i)][static_cast<std::size_t>(w)];
                  nll[static_cast<std::size_t>(k)] = window_nll(scorer.score_tokens(win.tokens, 0), win.scored);
                },
                o.progress, "perplexity window");
  for (std::size_t k = 0; k < work.size(); ++k) {
    const auto [i, w] = work[k];
    Piece& p = pieces[static_cast<std::size_t>(i)];
    p.nll += nll[k];
    p.tokens += windows[static_cast<std::size_t>(i)][static_cast<std::size_t>(w)].scored;
    p.windows += 1;
  }
}

}  // namespace

std::vector<RollingWindow> rolling_windows(const std::vector<int>& prefix, const std::vector<int>& doc, int max_length) {
  if (max_length < 2) throw UsageError(fmt::format("rolling windows need max_length >= 2 (got {})", max_length));
  std::vector<int> seq = prefix;
  seq.insert(seq.end(), doc.begin(), doc.end());
  std::vector<RollingWindow> out;
  if (seq.size() < 2) return out;  // nothing predicts the only token
  const auto L = static_cast<std::size_t>(max_length);
  const std::size_t first = std::min(L, seq.size());
  out.push_back({std::vector<int>(seq.begin(), seq.begin() + static_cast<std::ptrdiff_t>(first)), static_cast<int>(first - 1)});
  for (std::size_t done = first; done < seq.size();) {  // seq[0, done) scored (or the unscored first)
    const std::size_t w = std::min(seq.size() - done, L - 1);
    const std::size_t end = done + w;
    out.push_back({std::vector<int>(seq.begin() + static_cast<std::ptrdiff_t>(end - L), seq.begin() + static_cast<std::ptrdiff_t>(end)),
                   static_cast<int>(w)});
    done = end;
  }
  return out;
}

namespace detail {
TaskResult run_perplexity(const TaskSpec& spec, Scorer& scorer, const EvalOptions& o) {
  const std::string text = read_text_file(spec.arg, "perplexity text");
  TaskResult result;
  std::vector<Piece> pieces;
  if (o.ppl_mode == "document") {
    auto docs = split_documents(text);
    if (o.limit > 0 && static_cast<int>(docs.size()) > o.limit) docs.resize(static_cast<std::size_t>(o.limit));
    if (docs.empty()) throw UsageError(fmt::format("{}: no documents (blocks separated by blank lines)", spec.arg));
    score_documents(docs, scorer, o, pieces);
  } else if (o.ppl_mode == "window") {
    const auto bos = scorer.tokenize("", true);  // [BOS] or nothing
    const auto ids = scorer.tokenize(text, false);
    // Servers score echo requests with one generated token, so a window leaves room for it.
    const int ctx = o.window > 0 ? o.window : scorer.context_length() - 1;
    const int body = ctx - static_cast<int>(bos.size());
    if (body < 2) throw UsageError(fmt::format("{} {}: too short", o.field_names("window"), ctx));
    std::vector<std::vector<int>> windows;
    append_windows(bos, ids, body, o.limit, 0, windows);
    if (windows.empty()) throw UsageError(fmt::format("{}: the text has no tokens", spec.arg));
    pieces.resize(windows.size());
    for_each_item(static_cast<int>(windows.size()), std::min(o.concurrency, scorer.max_concurrency()),
                  [&](int i) {
                    Piece& p = pieces[static_cast<std::size_t>(i)];
                    p.nll = sum_nll(scorer.score_tokens(windows[static_cast<std::size_t>(i)], 0), &p.tokens);
                  },
                  o.progress, "perplexity window");
    // Words and bytes of the text actually scored, shared over the windows by their token counts
    // (a window boundary need not fall between words).
    long scored_ids = 0;
    std::size_t covered = 0;  // text tokens inside the scored windows
    for (std::size_t i = 0; i < pieces.size(); ++i) {
      scored_ids += pieces[i].tokens;
      covered += windows[i].size() - bos.size();
    }
    const double share = static_cast<double>(covered) / static_cast<double>(ids.size());
    const double words = static_cast<double>(count_words(text)) * share;
    const double bytes = static_cast<double>(text.size()) * share;
    for (auto& p : pieces) {
      p.words = words * static_cast<double>(p.tokens) / static_cast<double>(std::max(1L, scored_ids));
      p.bytes = bytes * static_cast<double>(p.tokens) / static_cast<double>(std::max(1L, scored_ids));
    }
  } else {
    throw UsageError(fmt::format("{}: '{}' is not one of document, window", o.field_names("ppl_mode"), o.ppl_mode));
  }

  auto totals = [&](const std::vector<int>* sample) {
    Piece t;
    auto add = [&](const Piece& p) {
      t.nll += p.nll;
      t.tokens += p.tokens;
      t.words += p.words;
      t.bytes += p.bytes;
    };
    if (sample)
      for (int i : *sample) add(pieces[static_cast<std::size_t>(i)]);
    else
      for (const auto& p : pieces) add(p);
    return t;
  };
  const Piece all = totals(nullptr);
  if (all.tokens == 0) throw Error(fmt::format("{}: no token was scored", spec.arg));
  const int n = static_cast<int>(pieces.size());
  using Fn = double (*)(const Piece&);
  const std::vector<std::pair<const char*, Fn>> metrics = {
      {"perplexity", [](const Piece& t) { return std::exp(t.nll / static_cast<double>(t.tokens)); }},
      {"word_perplexity", [](const Piece& t) { return std::exp(t.nll / t.words); }},
      {"byte_perplexity", [](const Piece& t) { return std::exp(t.nll / t.bytes); }},
      {"bits_per_byte", [](const Piece& t) { return t.nll / t.bytes / std::log(2.0); }},
      {"mean_nll", [](const Piece& t) { return t.nll / static_cast<double>(t.tokens); }},
  };
  for (const auto& [name, fn] : metrics) {
    Metric m;
    m.name = name;
    m.value = fn(all);
    m.n = n;
    m.stderr_ = bootstrap_stderr(n, o.bootstrap_resamples, o.seed, [&](const std::vector<int>& s) { return fn(totals(&s)); });
    result.metrics.push_back(m);
  }
  result.metrics.push_back({"tokens", static_cast<double>(all.tokens), 0, n});
  for (int i = 0; i < n; ++i) {
    const auto& p = pieces[static_cast<std::size_t>(i)];
    nlohmann::json j = {{"mode", o.ppl_mode}, {"tokens", p.tokens}, {"nll", p.nll}, {"words", p.words}, {"bytes", p.bytes}};
    if (o.ppl_mode == "document") j["windows"] = p.windows;
    result.items.push_back({i, j.dump()});
  }
  return result;
}

}  // namespace detail
}  // namespace qmeter::quality
