// kl: fidelity of the scored model Q to a baseline P (for example the unquantized model) over a
// text: the mean over positions of KL(P || Q) of the next-token distributions, and how often the
// two models' most likely next tokens agree.
//
// Both in-process (engine scorers): the exact full-vocabulary KL. Through servers, only the top-N
// log-probabilities are seen, so each position's distributions are coarse-grained onto the
// baseline's top-N tokens plus the actual next token (set S) and one "rest" bucket:
//   P: p(x) for x in S, p(rest) = 1 - sum p(S);
//   Q: q(x) from Q's own list where it has x; a token of S missing from Q's list gets an equal
//      share of Q's unlisted mass (1 - the mass of everything Q listed), capped at Q's smallest
//      listed probability (it ranked below all of them); q(rest) = 1 - sum q(S).
// With exact q on S this is a lower bound of the full KL (coarse-graining never increases KL).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>

#include "qmeter/core/error.h"
#include "task_common.h"

namespace qmeter::quality::detail {

namespace {

constexpr double kFloor = 1e-12;  // probability floor, so a bucket Q misses costs finite KL

struct DocScore {
  double kl_sum = 0;
  int positions = 0;
  int agree = 0;
};

DocScore full_vocab(Scorer& test, Scorer& base, const std::vector<int>& ids) {
  const auto p = base.log_distributions(ids), q = test.log_distributions(ids);
  if (p.size() != q.size()) throw Error("the baseline and the scored model returned different position counts");
  DocScore d;
  for (std::size_t t = 0; t < p.size(); ++t) {
    if (p[t].size() != q[t].size()) throw Error("the baseline and the scored model have different vocabularies");
    double kl = 0;
    for (std::size_t x = 0; x < p[t].size(); ++x) {
      const double lp = p[t][x];
      if (lp > -700) kl += std::exp(lp) * (lp - static_cast<double>(q[t][x]));
    }
    d.kl_sum += std::max(0.0, kl);
    d.agree += std::max_element(p[t].begin(), p[t].end()) - p[t].begin() == std::max_element(q[t].begin(), q[t].end()) - q[t].begin();
    ++d.positions;
  }
  return d;
}

double top_n_kl(const ScoredToken& pb, const ScoredToken& qt) {
  std::map<std::string, double> p, q;  // probabilities on S
  for (const auto& [tok, lp] : pb.top) p[tok] = std::exp(lp);
  p[pb.text] = std::exp(pb.logprob);
  std::map<std::string, double> q_listed;
  for (const auto& [tok, lp] : qt.top) q_listed[tok] = std::exp(lp);
  q_listed[qt.text] = std::exp(qt.logprob);
  double q_listed_mass = 0, q_min = 1;
  for (const auto& [tok, v] : q_listed) {
    q_listed_mass += v;
    q_min = std::min(q_min, v);
  }
  int missing = 0;
  for (const auto& [tok, v] : p) missing += !q_listed.count(tok);
  const double unlisted = std::max(0.0, 1.0 - q_listed_mass);
  const double share = missing > 0 ? std::min(q_min, unlisted / missing) : 0;
  double p_s = 0, q_s = 0;
  for (const auto& [tok, v] : p) {
    auto it = q_listed.find(tok);
    q[tok] = it != q_listed.end() ? it->second : share;
    p_s += v;
    q_s += q[tok];
  }
  double kl = 0;
  for (const auto& [tok, v] : p)
    if (v > 0) kl += v * (std::log(v) - std::log(std::max(kFloor, q[tok])));
  const double p_rest = std::max(0.0, 1.0 - p_s), q_rest = std::max(kFloor, 1.0 - q_s);
  if (p_rest > 0) kl += p_rest * (std::log(p_rest) - std::log(q_rest));
  return std::max(0.0, kl);
}

DocScore top_n(Scorer& test, Scorer& base, const std::vector<int>& ids, int n) {
  const auto b = base.score_tokens(ids, n), t = test.score_tokens(ids, n);
  if (b.size() != t.size())
    throw Error(fmt::format("the baseline tokenized a document into {} tokens and the scored model into {}; KL "
                            "needs the same tokenizer",
                            b.size(), t.size()));
  DocScore d;
  for (std::size_t i = 1; i < b.size(); ++i) {
    if (b[i].text != t[i].text) throw Error(fmt::format("token {} differs between the two models ('{}' vs '{}')", i, b[i].text, t[i].text));
    if (b[i].top.empty() || t[i].top.empty())
      throw Error("a server returned no top log-probabilities for prompt tokens; kl needs echo with logprobs > 0");
    d.kl_sum += top_n_kl(b[i], t[i]);
    d.agree += b[i].top.front().first == t[i].top.front().first;
    ++d.positions;
  }
  return d;
}

}  // namespace

TaskResult run_kl(const TaskSpec& spec, Scorer& scorer, const EvalOptions& o, Scorer* baseline) {
  if (baseline == nullptr) throw UsageError("kl needs a baseline model (kl:BASE_URL, or the unquantized model in a study)");
  if (o.kl_text.empty()) throw UsageError(fmt::format("{} needs the text to score: --kl-text PATH", spec.name()));
  const auto docs = split_documents(read_text_file(o.kl_text, "kl text"));
  if (docs.empty()) throw UsageError(fmt::format("{}: no documents", o.kl_text));
  const bool full = scorer.has_full_distributions() && baseline->has_full_distributions();
  if (!full && (o.top_logprobs < 1 || o.top_logprobs > 20)) throw UsageError(o.field_names("top_logprobs") + ": must be within 1..20");
  // Each document from a fresh context (BOS where the model has one); a document longer than the
  // context continues in further windows, each again after BOS. Servers need room for the one
  // token an echo request generates.
  const auto bos = scorer.tokenize("", true);
  const int ctx = std::min(scorer.context_length(), baseline->context_length()) - (full ? 0 : 1);
  const int body = ctx - static_cast<int>(bos.size());
  if (body < 2) throw Error(fmt::format("the context length {} is too short for kl", ctx));
  std::vector<std::vector<int>> windows;
  for (const auto& d : docs) {
    append_windows(bos, scorer.tokenize(d, false), body, o.limit, 2, windows);
    if (o.limit > 0 && static_cast<int>(windows.size()) >= o.limit) break;
  }
  std::vector<DocScore> scores(windows.size());
  const int conc = std::min({o.concurrency, scorer.max_concurrency(), baseline->max_concurrency()});
  for_each_item(static_cast<int>(windows.size()), conc,
                [&](int i) {
                  const auto& w = windows[static_cast<std::size_t>(i)];
                  scores[static_cast<std::size_t>(i)] = full ? full_vocab(scorer, *baseline, w) : top_n(scorer, *baseline, w, o.top_logprobs);
                },
                o.progress, "kl window");
  auto ratio = [&](const std::vector<int>* sample, bool agreement) {
    double num = 0, den = 0;
    auto add = [&](const DocScore& s) {
      num += agreement ? s.agree : s.kl_sum;
      den += s.positions;
    };
    if (sample)
      for (int i : *sample) add(scores[static_cast<std::size_t>(i)]);
    else
      for (const auto& s : scores) add(s);
    return den > 0 ? num / den : NAN;
  };
  TaskResult r;
  const int n = static_cast<int>(windows.size());
  int positions = 0;
  for (const auto& s : scores) positions += s.positions;
  for (bool agreement : {false, true}) {
    Metric m;
    m.name = agreement ? "top1_agreement" : "kl_mean";
    m.value = ratio(nullptr, agreement);
    m.n = positions;
    m.stderr_ = bootstrap_stderr(n, o.bootstrap_resamples, o.seed, [&](const std::vector<int>& s) { return ratio(&s, agreement); });
    r.metrics.push_back(m);
  }
  for (int i = 0; i < n; ++i) {
    const auto& s = scores[static_cast<std::size_t>(i)];
    nlohmann::json j = {{"positions", s.positions}, {"kl_sum", s.kl_sum}, {"top1_agree", s.agree}, {"full_vocab", full}};
    r.items.push_back({i, j.dump()});
  }
  r.metrics.push_back({"full_vocabulary", full ? 1.0 : 0.0, 0, positions});
  return r;
}

}  // namespace qmeter::quality::detail
