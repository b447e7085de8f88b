#include <algorithm>

#include "qmeter/core/clock.h"
#include "qmeter/core/error.h"
#include "qmeter/engine/session.h"

namespace qmeter::engine {

Session::Session(const Model& model, ThreadPool* pool, int max_positions)
    : model_(&model),
      kv_(KvLayout::for_model(model.config), max_positions > 0 ? max_positions : model.config.max_seq_len),
      pass_(model, pool) {}

std::span<const float> Session::feed(std::span<const int> tokens) {
  const SequenceInput in{&kv_, tokens, LogitsWanted::kLast};
  pass_.run({&in, 1});
  return pass_.logits(0);
}

std::span<const float> Session::feed_all(std::span<const int> tokens) {
  const SequenceInput in{&kv_, tokens, LogitsWanted::kAll};
  pass_.run({&in, 1});
  return pass_.logits(0);
}

GenerateResult generate(Session& session, std::span<const int> prompt, const GenerateOptions& options,
                        std::span<const int> stop_ids, const std::function<void(int token)>& on_token) {
  if (prompt.empty()) throw UsageError("generate: the prompt has no tokens (not even BOS)");
  GenerateResult result;
  result.prompt_tokens = static_cast<int>(prompt.size());
  Sampler sampler(options.sampling);
  const Nanos t0 = steady_now_ns();
  std::span<const float> logits = session.feed(prompt);
  const Nanos t1 = steady_now_ns();
  result.prefill_seconds = ns_to_s(t1 - t0);
  const int capacity = session.kv().max_positions();
  Nanos first = 0;
  while (static_cast<int>(result.tokens.size()) < options.max_tokens) {
    const int next = sampler.sample(logits);
    if (first == 0) first = steady_now_ns();
    if (options.stop_at_eos && std::find(stop_ids.begin(), stop_ids.end(), next) != stop_ids.end()) {
      result.stopped_at_eos = true;
      break;
    }
    result.tokens.push_back(next);
    if (on_token) on_token(next);
    if (static_cast<int>(result.tokens.size()) >= options.max_tokens || session.position() >= capacity) break;
    const int one[1] = {next};
    logits = session.feed(one);
    ++result.decode_steps;
  }
  result.decode_seconds = first == 0 ? 0.0 : ns_to_s(steady_now_ns() - first);
  return result;
}

}  // namespace qmeter::engine
