#pragma once
// The transformer forward pass over a batch of sequences, each at its own position.
//
// One run() appends every sequence's new tokens to its KV cache. All tokens of all sequences go
// through each weight matrix in one batched matmul (prefill of a long prompt, batched decode of
// many sequences, or both mixed: what continuous batching needs); attention is per sequence over
// its own cache. Logits are computed only for the rows asked for.
#include <memory>
#include <span>
#include <vector>

#include "qmeter/engine/kv_cache.h"
#include "qmeter/engine/model.h"
#include "qmeter/engine/thread_pool.h"

namespace qmeter::engine {

enum class LogitsWanted : unsigned char {
  kNone,  // prefill chunk whose output is not needed
  kLast,  // next-token distribution after the last new token (generation)
  kAll,   // one row per new token (quality evaluation: log-probabilities of every position)
};

struct SequenceInput {
  KvCache* kv = nullptr;           // new tokens go to positions kv->length() ...
  std::span<const int> tokens;     // at least one
  LogitsWanted logits = LogitsWanted::kLast;
};

class ForwardPass {
 public:
  // `pool` may be null (single thread). The model must outlive the pass.
  ForwardPass(const Model& model, ThreadPool* pool);
  ~ForwardPass();
  ForwardPass(const ForwardPass&) = delete;
  ForwardPass& operator=(const ForwardPass&) = delete;

  // Runs the batch. Throws qmeter::Error when a token id is out of range or a KV cache cannot
  // hold the new positions (nothing is written to any cache then).
  void run(std::span<const SequenceInput> batch);

  // Logits of batch item `item` of the last run(): rows x vocab_size floats (rows = 0, 1 or
  // tokens.size() per its LogitsWanted). Valid until the next run().
  std::span<const float> logits(int item) const;
  int vocab_size() const;
  const Model& model() const;
  ThreadPool* pool() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qmeter::engine
