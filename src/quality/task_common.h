#pragma once
// Shared by the task implementations: item-parallel execution, standard errors, file reading.
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "qmeter/quality/chat_template.h"
#include "qmeter/quality/eval.h"

namespace qmeter::quality::detail {

// Runs fn(i) for i in [0, n) on up to `concurrency` threads. The first exception (in item order
// of detection) is rethrown after every thread has stopped, prefixed with the item's index.
void for_each_item(int n, int concurrency, const std::function<void(int)>& fn,
                   const std::function<void(int, int)>& progress, const char* what);

// lm-evaluation-harness's standard error of a mean of 0/1 scores: sqrt(p (1 - p) / (n - 1)).
double binomial_stderr(double p, int n);

// Bootstrap standard error of f(sample of item indices), resampling items with replacement.
double bootstrap_stderr(int n, int resamples, std::uint64_t seed, const std::function<double(const std::vector<int>&)>& f);

// Blocks of `text` separated by "\n\n" (empty blocks skipped), as the perplexity protocol splits.
std::vector<std::string> split_documents(const std::string& text);

// One JSONL file's objects with their line numbers; bad JSON is an Error naming file:line.
struct JsonlLine {
  int line = 0;
  std::string json;  // the raw object text (parsed again by the task)
};
std::vector<JsonlLine> read_jsonl(const std::string& path);
std::string read_text_file(const std::string& path, const char* what);

// Sum of log-probabilities of the last tokens that together cover `continuation_bytes` bytes
// (aligned at the end of the scored text, which tolerates a tokenizer's leading dummy space).
double continuation_logprob(const std::vector<ScoredToken>& tokens, std::size_t continuation_bytes, int* counted);

// Appends `bos` + each consecutive chunk of `body` tokens of `ids` to `windows` (windows shorter
// than `min_size` skipped), stopping once `windows` holds `limit` (0: no limit).
void append_windows(const std::vector<int>& bos, const std::vector<int>& ids, int body, int limit, std::size_t min_size,
                    std::vector<std::vector<int>>& windows);

// Scores `text`; where it is longer than the context, keeps its last context - 1 tokens (the left
// truncation lm-evaluation-harness applies), so a long context never drops the continuation.
std::vector<ScoredToken> score_text_fitting(Scorer& scorer, const std::string& text, int top_n = 0);

// Scores `text` (a context, then a continuation of `continuation_bytes` bytes) cut before it is
// sent, in one scoring request, as lm-evaluation-harness cuts a loglikelihood request for an API
// model: context + continuation tokens cut to the last `context_length - 1` (one position stays for
// the token max_tokens 1 generates), the continuation kept whole. With `can_tokenize` the count is
// exact (one /tokenize, then the cut token ids are scored); without, the text is cut to its last
// context_length - 3 bytes, which surely fits (fewer context tokens than lm-eval keeps). A text
// that surely fits by its byte count is sent as it is; `context_length` 0 (unknown) sends it as it
// is too. A server's refusal of an uncut text still falls back to score_text_fitting's retry.
std::vector<ScoredToken> score_loglik_fitted(Scorer& scorer, const std::string& text, std::size_t continuation_bytes,
                                             int top_n, int context_length, bool can_tokenize);

// lm-evaluation-harness's loglikelihood request: log P(continuation | context), and whether the
// continuation is the greedy one (every one of its tokens the most likely; needs top_n 1).
struct LoglikRequest {
  std::string context, continuation;
};
struct Loglik {
  double ll = 0;
  bool greedy = false;
};
std::vector<Loglik> score_logliks(Scorer& scorer, const std::vector<LoglikRequest>& requests, const EvalOptions& o,
                                  bool want_greedy, const char* what);

// Index of the first of equal maxima (numpy's argmax, which lm-evaluation-harness uses).
int first_argmax(const std::vector<double>& v);
// Mean and lm-evaluation-harness's standard error of a mean (sample stddev / sqrt(n)).
Metric mean_metric(const std::string& name, const std::vector<double>& values);
// Generates; where the prompt does not fit with max_tokens, keeps its last tokens that do.
std::string generate_fitting(Scorer& scorer, const GenerateRequest& request);

// --apply-chat-template on a log-likelihood task: the template (loaded once per task), or nullopt
// when the option is off. A UsageError naming `task` where there is no local template: a server's
// chat endpoint returns no log-probabilities of the prompt.
std::optional<ChatTemplate> loglik_chat_template(const EvalOptions& o, const char* task);

// Python's str.strip(): leading and trailing ASCII whitespace removed.
std::string py_strip(const std::string& s);

// Unicode code points in UTF-8 text (Python's len(), which acc_norm divides by).
std::size_t utf8_length(const std::string& s);

}  // namespace qmeter::quality::detail
