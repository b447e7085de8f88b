#pragma once
// Continuous (iteration-level) batching over the embedded engine, with a paged KV cache.
//
// One engine thread runs steps. A step admits waiting sequences while the running set is below
// max_num_seqs and the KV pool can hold their prompts, then builds one batch: every running
// sequence in decode contributes one token, sequences still in prefill contribute a chunk, all
// bounded by max_num_batched_tokens (so a long prompt is chunked and never stalls running
// decodes). Finished or cancelled sequences leave at once and free their KV blocks. When the
// pool runs out mid-decode, the newest running sequence is preempted: its blocks are freed and it
// goes back to the front of the queue to be recomputed later (vLLM's recompute preemption), so
// greedy outputs are unchanged by memory pressure.
//
// Prefix caching (on by default, as in vLLM; kv_cache.h): an admitted sequence adopts the cached
// KV blocks of the longest whole-block prefix of its tokens and computes only the rest (at least
// its last token). Blocks are published as they fill (prompt and generated tokens alike), so a
// preempted sequence usually finds its own blocks again when it is readmitted. Requests that want
// prompt log-probabilities skip the lookup (they need logits at every prompt position).
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "qmeter/core/clock.h"
#include "qmeter/engine/model.h"
#include "qmeter/engine/sampling.h"

namespace qmeter::server {

struct SchedulerOptions {
  int max_num_seqs = 64;
  int max_num_batched_tokens = 1024;
  std::size_t kv_cache_bytes = 256u << 20;  // size of the block pool
  int block_size = 16;
  int max_queue = 4096;  // waiting sequences beyond this are refused (HTTP 429)
  int threads = 1;       // engine compute threads
  bool enable_prefix_caching = true;
};

struct TopLogprob {
  int token = 0;
  double logprob = 0;
};

// What the engine reports per generated token.
struct TokenEvent {
  int token = 0;
  double logprob = 0;              // of the chosen token (when logprobs were asked)
  std::vector<TopLogprob> top;     // top-N alternatives (logprobs = N)
};

enum class FinishReason { kLength, kStop, kCancelled, kError };

struct GenerationRequest {
  std::vector<int> prompt;
  int max_tokens = 16;
  engine::SamplingParams sampling;
  std::vector<int> stop_ids;   // tokens that end generation (not reported)
  int logprobs = -1;           // -1: none; N >= 0: chosen token's logprob + top N
  // echo: log-probabilities of prompt tokens 1..n-1 (with the top `logprobs` alternatives at each
  // position when logprobs > 0, which fidelity scoring needs).
  bool prompt_logprobs = false;
  // Called on the engine thread. Must be quick (they post to the network thread).
  std::function<void(const std::vector<TokenEvent>& prompt_logprobs)> on_prompt_logprobs;
  std::function<void(const TokenEvent&)> on_token;
  // Returns true to stop (a stop string matched in the text so far).
  std::function<bool()> should_stop;
  std::function<void(FinishReason, const std::string& error)> on_finish;
};

struct SchedulerStats {
  int running = 0, waiting = 0;
  double kv_usage = 0;  // fraction of pool blocks in use
  // The pool's fixed shape: blocks, positions they hold, element type (f32, int8, fp8).
  int kv_total_blocks = 0;
  long kv_capacity_tokens = 0;
  int kv_block_size = 0;
  std::string kv_cache_dtype;
  std::int64_t preemptions = 0;
  bool prefix_caching = false;
  // vLLM's prefix-cache counters, in tokens, over admissions that are not readmissions after a
  // preemption: queries = the sequences' token counts, hits = the tokens found cached.
  std::int64_t prefix_cache_queries = 0, prefix_cache_hits = 0;
  // Prefill work: positions computed by prefill chunks (readmissions' recompute included) vs
  // positions adopted from the prefix cache instead.
  std::int64_t prefill_tokens_computed = 0, prefill_tokens_cached = 0;
  int kv_cached_blocks = 0;          // blocks findable in the prefix cache (referenced or not)
  std::int64_t kv_evictions = 0;     // cached blocks reused for other contents
  long kv_block_refs = 0;            // sum of all blocks' reference counts (0 when idle)
  std::int64_t prompt_tokens = 0, generation_tokens = 0;
  std::int64_t finished = 0;
  std::int64_t steps = 0;
};

class Scheduler {
 public:
  Scheduler(const engine::Model& model, SchedulerOptions options);
  ~Scheduler();  // stops the engine thread; unfinished requests end kCancelled

  // Queues a request; returns an id, or -1 when the queue is full (HTTP 429).
  std::int64_t submit(GenerationRequest request);
  // Cancels a request (client gone): its blocks are freed at the next step.
  void cancel(std::int64_t id);
  SchedulerStats stats() const;
  int total_kv_blocks() const;
  const SchedulerOptions& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qmeter::server
