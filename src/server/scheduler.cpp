#include "qmeter/server/scheduler.h"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "qmeter/engine/forward.h"
#include "qmeter/engine/kv_cache.h"
#include "qmeter/engine/thread_pool.h"

namespace qmeter::server {

namespace {

struct Sequence {
  std::int64_t id = 0;
  GenerationRequest req;
  std::unique_ptr<engine::KvCache> kv;
  std::vector<int> tokens;  // prompt + generated: what the KV cache must hold (recompute source)
  int prompt_len = 0;
  int generated = 0;
  std::int64_t admit_order = 0;
  bool readmission = false;  // preempted before: its lookups count apart (vLLM's preempted_*)
  std::unique_ptr<engine::Sampler> sampler;
  std::vector<TokenEvent> prompt_lp;  // one per prompt token after the first (with top-N when asked)
  bool prompt_lp_sent = false;
  bool cancelled = false;
  std::string error;  // set when it can never run: finished with kError at the next step
};

void top_logprobs(std::span<const float> logits, int n, int chosen, TokenEvent& ev, std::vector<float>& scratch) {
  scratch.resize(logits.size());
  engine::log_softmax(logits, scratch);
  ev.logprob = scratch[static_cast<std::size_t>(chosen)];
  if (n <= 0) return;
  std::vector<int> idx(scratch.size());
  for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int>(i);
  const auto k = std::min<std::size_t>(static_cast<std::size_t>(n), idx.size());
  std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(k), idx.end(), [&](int a, int b) {
    return scratch[static_cast<std::size_t>(a)] > scratch[static_cast<std::size_t>(b)] ||
           (scratch[static_cast<std::size_t>(a)] == scratch[static_cast<std::size_t>(b)] && a < b);
  });
  for (std::size_t i = 0; i < k; ++i) ev.top.push_back({idx[i], scratch[static_cast<std::size_t>(idx[i])]});
}

}  // namespace

struct Scheduler::Impl {
  const engine::Model& model;
  SchedulerOptions options;
  engine::KvLayout layout;
  std::unique_ptr<engine::FixedKvBlockPool> pool;
  std::unique_ptr<engine::ThreadPool> threads;
  std::unique_ptr<engine::ForwardPass> pass;

  mutable std::mutex mu;
  std::condition_variable cv;
  std::deque<std::unique_ptr<Sequence>> waiting;  // guarded by mu
  std::vector<std::int64_t> cancel_ids;           // guarded by mu
  bool stopping = false;                          // guarded by mu
  std::int64_t next_id = 1;
  SchedulerStats stats;                           // guarded by mu

  std::vector<std::unique_ptr<Sequence>> running;  // engine thread only
  std::int64_t admit_counter = 0;
  std::thread thread;

  Impl(const engine::Model& m, SchedulerOptions o) : model(m), options(o) {
    layout = engine::KvLayout::for_model(model.config, options.block_size);
    const std::size_t block_bytes = layout.block_bytes();  // smaller for an int8 / fp8 KV cache
    const int blocks = static_cast<int>(std::max<std::size_t>(2, options.kv_cache_bytes / block_bytes));
    pool = std::make_unique<engine::FixedKvBlockPool>(layout, blocks, options.enable_prefix_caching);
    threads = std::make_unique<engine::ThreadPool>(std::max(1, options.threads));
    pass = std::make_unique<engine::ForwardPass>(model, threads.get());
    thread = std::thread([this] { loop(); });
  }

  void finish(Sequence& s, FinishReason why, const std::string& error = "") {
    s.kv.reset();  // frees its blocks now
    if (s.req.on_finish) s.req.on_finish(why, error);
    std::lock_guard lock(mu);
    ++stats.finished;
  }

  void update_stats() {
    std::lock_guard lock(mu);
    stats.running = static_cast<int>(running.size());
    stats.waiting = static_cast<int>(waiting.size());
    stats.kv_usage = 1.0 - static_cast<double>(pool->free_blocks()) / pool->total_blocks();
  }

  // Frees the newest running sequence's blocks and queues it for recompute. Returns false when
  // there is nothing else to preempt.
  bool preempt_newest(const Sequence* keep) {
    auto it = std::max_element(running.begin(), running.end(),
                               [](const auto& a, const auto& b) { return a->admit_order < b->admit_order; });
    if (it == running.end() || it->get() == keep) return false;
    preempt(it->get());
    return true;
  }

  void preempt(Sequence* s) {
    auto it = std::find_if(running.begin(), running.end(), [&](const auto& p) { return p.get() == s; });
    auto victim = std::move(*it);
    running.erase(it);
    victim->kv->truncate(0);  // published blocks stay cached: readmission may adopt them again
    victim->readmission = true;
    std::lock_guard lock(mu);
    ++stats.preemptions;
    waiting.push_front(std::move(victim));
  }

  void loop() {
    std::vector<float> scratch;
    while (true) {
      {
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return stopping || !waiting.empty() || !running.empty() || !cancel_ids.empty(); });
        if (stopping) break;
        // Cancellations: queued ones leave the queue; running ones are flagged.
        for (auto id : cancel_ids) {
          for (auto& s : running) {
            if (s->id == id) s->cancelled = true;
          }
          for (auto& s : waiting) {
            if (s->id == id) s->cancelled = true;
          }
        }
        cancel_ids.clear();
      }
      // Finish cancelled sequences (running and waiting), and those that can never run.
      for (auto it = running.begin(); it != running.end();) {
        if (!(*it)->error.empty()) {
          finish(**it, FinishReason::kError, (*it)->error);
          it = running.erase(it);
        } else if ((*it)->cancelled) {
          finish(**it, FinishReason::kCancelled);
          it = running.erase(it);
        } else {
          ++it;
        }
      }
      {
        std::vector<std::unique_ptr<Sequence>> dropped;
        {
          std::lock_guard lock(mu);
          for (auto it = waiting.begin(); it != waiting.end();) {
            if ((*it)->cancelled) {
              dropped.push_back(std::move(*it));
              it = waiting.erase(it);
            } else {
              ++it;
            }
          }
        }
        for (auto& s : dropped) finish(*s, FinishReason::kCancelled);
      }
      admit();
      step(scratch);
      update_stats();
    }
    // Shutdown: everything unfinished ends cancelled.
    for (auto& s : running) finish(*s, FinishReason::kCancelled);
    running.clear();
    std::deque<std::unique_ptr<Sequence>> rest;
    {
      std::lock_guard lock(mu);
      rest.swap(waiting);
    }
    for (auto& s : rest) finish(*s, FinishReason::kCancelled);
  }

  void admit() {
    while (static_cast<int>(running.size()) < options.max_num_seqs) {
      std::unique_ptr<Sequence> s;
      {
        std::lock_guard lock(mu);
        if (waiting.empty()) return;
        s = std::move(waiting.front());
        waiting.pop_front();
      }
      if (!s->kv) s->kv = std::make_unique<engine::KvCache>(layout, model.config.max_seq_len, pool.get());
      const int need_blocks = (static_cast<int>(s->tokens.size()) + layout.block_size) / layout.block_size;
      if (need_blocks > pool->total_blocks()) {
        finish(*s, FinishReason::kError, "the prompt needs more KV-cache blocks than the whole pool holds");
        continue;
      }
      const int cached = s->req.prompt_logprobs ? 0 : s->kv->adopt_cached_prefix(s->tokens);
      // Admit only when the whole prompt (plus the first generated position) fits now.
      if (!s->kv->reserve(static_cast<int>(s->tokens.size()) + 1)) {
        s->kv->truncate(0);
        std::lock_guard lock(mu);
        waiting.push_front(std::move(s));
        return;
      }
      {
        std::lock_guard lock(mu);
        if (pool->caches_prefixes() && !s->req.prompt_logprobs && !s->readmission) {
          stats.prefix_cache_queries += static_cast<std::int64_t>(s->tokens.size());
          stats.prefix_cache_hits += cached;
        }
        stats.prefill_tokens_cached += cached;
      }
      s->admit_order = ++admit_counter;
      running.push_back(std::move(s));
    }
  }

  void step(std::vector<float>& scratch) {
    if (running.empty()) return;
    int budget = options.max_num_batched_tokens;
    std::vector<Sequence*> members;
    std::vector<engine::SequenceInput> batch;
    std::vector<int> chunk_len;
    // Decodes first (one token each, latency-critical), then prefill chunks with what is left.
    std::vector<Sequence*> order;
    for (auto& s : running) order.push_back(s.get());
    std::stable_sort(order.begin(), order.end(), [](const Sequence* a, const Sequence* b) {
      const bool da = static_cast<int>(a->tokens.size()) - a->kv->length() == 1;
      const bool db = static_cast<int>(b->tokens.size()) - b->kv->length() == 1;
      return da > db;
    });
    for (Sequence* s : order) {
      if (budget <= 0) break;
      if (std::find_if(running.begin(), running.end(), [&](const auto& p) { return p.get() == s; }) == running.end()) {
        continue;  // preempted below while building this batch
      }
      const int computed = s->kv->length();
      const int pending = static_cast<int>(s->tokens.size()) - computed;
      const int n = std::min(pending, budget);
      bool ok = s->kv->reserve(computed + n);
      while (!ok && preempt_newest(s)) ok = s->kv->reserve(computed + n);
      if (!ok) {
        if (running.size() == 1) {
          // Alone and still no room: it can never finish within the pool.
          s->error = "the sequence needs more KV-cache blocks than the whole pool holds";
          continue;
        }
        // It is the newest itself: it yields its blocks and waits for the others to finish.
        preempt(s);
        continue;
      }
      const bool last = computed + n == static_cast<int>(s->tokens.size());
      const bool want_prompt_lp = s->req.prompt_logprobs && !s->prompt_lp_sent && computed < s->prompt_len;
      engine::SequenceInput in;
      in.kv = s->kv.get();
      in.tokens = std::span<const int>(s->tokens.data() + computed, static_cast<std::size_t>(n));
      in.logits = want_prompt_lp ? engine::LogitsWanted::kAll
                                 : (last ? engine::LogitsWanted::kLast : engine::LogitsWanted::kNone);
      batch.push_back(in);
      members.push_back(s);
      chunk_len.push_back(n);
      budget -= n;
    }
    // Members preempted after being added must not run.
    for (std::size_t i = 0; i < members.size();) {
      if (std::find_if(running.begin(), running.end(), [&](const auto& p) { return p.get() == members[i]; }) ==
          running.end()) {
        members.erase(members.begin() + static_cast<std::ptrdiff_t>(i));
        batch.erase(batch.begin() + static_cast<std::ptrdiff_t>(i));
        chunk_len.erase(chunk_len.begin() + static_cast<std::ptrdiff_t>(i));
      } else {
        ++i;
      }
    }
    if (batch.empty()) return;
    try {
      pass->run(batch);
    } catch (const std::exception& e) {
      for (Sequence* s : members) s->cancelled = true;
      for (auto it = running.begin(); it != running.end();) {
        if ((*it)->cancelled) {
          finish(**it, FinishReason::kError, e.what());
          it = running.erase(it);
        } else {
          ++it;
        }
      }
      return;
    }
    {
      std::int64_t prefill = 0;
      for (std::size_t i = 0; i < members.size(); ++i) {
        const Sequence* s = members[i];
        const int before = s->kv->length() - chunk_len[i];
        // A decode step computes the one position after the prompt's; anything else is prefill.
        if (before < s->prompt_len || chunk_len[i] > 1) prefill += chunk_len[i];
        s->kv->publish_full_blocks(s->tokens);
      }
      std::lock_guard lock(mu);
      ++stats.steps;
      stats.prefill_tokens_computed += prefill;
    }
    const int vocab = pass->vocab_size();
    std::vector<float> prompt_scratch;
    std::vector<Sequence*> done;
    std::vector<FinishReason> why;
    for (std::size_t i = 0; i < members.size(); ++i) {
      Sequence* s = members[i];
      const int n = chunk_len[i];
      const int computed_before = s->kv->length() - n;
      auto logits = pass->logits(static_cast<int>(i));
      const bool last = s->kv->length() == static_cast<int>(s->tokens.size());
      std::span<const float> next;
      if (batch[i].logits == engine::LogitsWanted::kAll) {
        for (int j = 0; j < n; ++j) {
          const int target = computed_before + j + 1;
          auto row = logits.subspan(static_cast<std::size_t>(j) * vocab, static_cast<std::size_t>(vocab));
          if (target >= s->prompt_len) continue;
          TokenEvent ev;
          ev.token = s->tokens[static_cast<std::size_t>(target)];
          if (s->req.logprobs > 0) {
            top_logprobs(row, s->req.logprobs, ev.token, ev, prompt_scratch);
          } else {
            ev.logprob = engine::token_logprob(row, ev.token);
          }
          s->prompt_lp.push_back(std::move(ev));
        }
        if (last) next = logits.subspan(static_cast<std::size_t>(n - 1) * vocab, static_cast<std::size_t>(vocab));
        if (s->kv->length() >= s->prompt_len && !s->prompt_lp_sent) {
          s->prompt_lp_sent = true;
          if (s->req.on_prompt_logprobs) s->req.on_prompt_logprobs(s->prompt_lp);
        }
      } else if (last) {
        next = logits.first(static_cast<std::size_t>(vocab));
      }
      if (!last) continue;
      if (s->req.max_tokens <= 0) {
        done.push_back(s);
        why.push_back(FinishReason::kLength);
        continue;
      }
      const int token = s->sampler->sample(next);
      if (std::find(s->req.stop_ids.begin(), s->req.stop_ids.end(), token) != s->req.stop_ids.end()) {
        done.push_back(s);
        why.push_back(FinishReason::kStop);
        continue;
      }
      TokenEvent ev;
      ev.token = token;
      if (s->req.logprobs >= 0) top_logprobs(next, s->req.logprobs, token, ev, scratch);
      s->tokens.push_back(token);
      ++s->generated;
      {
        std::lock_guard lock(mu);
        ++stats.generation_tokens;
      }
      if (s->req.on_token) s->req.on_token(ev);
      if (s->req.should_stop && s->req.should_stop()) {
        done.push_back(s);
        why.push_back(FinishReason::kStop);
      } else if (s->generated >= s->req.max_tokens || static_cast<int>(s->tokens.size()) >= model.config.max_seq_len) {
        done.push_back(s);
        why.push_back(FinishReason::kLength);
      }
    }
    // Leave the running set (and the stats /metrics reads) before the replies end, so a client
    // that scrapes right after its last reply sees the sequence gone.
    std::vector<std::unique_ptr<Sequence>> leaving;
    for (Sequence* d : done) {
      auto it = std::find_if(running.begin(), running.end(), [&](const auto& p) { return p.get() == d; });
      leaving.push_back(std::move(*it));
      running.erase(it);
    }
    if (!leaving.empty()) update_stats();
    for (std::size_t i = 0; i < leaving.size(); ++i) finish(*leaving[i], why[i]);
  }
};

Scheduler::Scheduler(const engine::Model& model, SchedulerOptions options)
    : impl_(std::make_unique<Impl>(model, options)) {}

Scheduler::~Scheduler() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
}

std::int64_t Scheduler::submit(GenerationRequest request) {
  auto s = std::make_unique<Sequence>();
  s->tokens = request.prompt;
  s->prompt_len = static_cast<int>(request.prompt.size());
  s->sampler = std::make_unique<engine::Sampler>(request.sampling);
  s->req = std::move(request);
  std::int64_t id;
  {
    std::lock_guard lock(impl_->mu);
    if (static_cast<int>(impl_->waiting.size()) >= impl_->options.max_queue) return -1;
    id = s->id = impl_->next_id++;
    impl_->stats.prompt_tokens += s->prompt_len;
    impl_->waiting.push_back(std::move(s));
    impl_->stats.waiting = static_cast<int>(impl_->waiting.size());
  }
  impl_->cv.notify_all();
  return id;
}

void Scheduler::cancel(std::int64_t id) {
  {
    std::lock_guard lock(impl_->mu);
    impl_->cancel_ids.push_back(id);
  }
  impl_->cv.notify_all();
}

SchedulerStats Scheduler::stats() const {
  SchedulerStats s;
  {
    std::lock_guard lock(impl_->mu);
    s = impl_->stats;
  }
  // Live, not as of the last step: a finished request's blocks are free before its reply ends.
  s.kv_usage = 1.0 - static_cast<double>(impl_->pool->free_blocks()) / impl_->pool->total_blocks();
  s.kv_total_blocks = impl_->pool->total_blocks();
  s.kv_capacity_tokens = impl_->pool->capacity_tokens();
  s.kv_block_size = impl_->layout.block_size;
  s.kv_cache_dtype = std::string(engine::kv_dtype_name(impl_->layout.dtype));
  s.prefix_caching = impl_->pool->caches_prefixes();
  s.kv_cached_blocks = impl_->pool->cached_blocks();
  s.kv_evictions = impl_->pool->evictions();
  s.kv_block_refs = impl_->pool->referenced_blocks_sum();
  return s;
}

int Scheduler::total_kv_blocks() const { return impl_->pool->total_blocks(); }
const SchedulerOptions& Scheduler::options() const { return impl_->options; }

}  // namespace qmeter::server
