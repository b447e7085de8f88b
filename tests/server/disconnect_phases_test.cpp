// A request cancelled (its client gone) in each phase of its life in the continuous-batching
// scheduler: queued, prefilling, decoding, preempted. In every case it ends `cancelled` and the
// pool gets every block back (no reference left, usage zero) once the others finish too.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "qmeter/core/clock.h"
#include "qmeter/engine/model.h"
#include "qmeter/server/scheduler.h"
#include "test_support.h"

using namespace qmeter;

namespace {

// What a request did, written by the engine thread's callbacks.
struct Tracked {
  std::atomic<int> tokens{0};
  std::atomic<bool> finished{false};
  std::atomic<int> reason{-1};
};

std::int64_t submit(server::Scheduler& s, const std::vector<int>& prompt, int max_tokens, const std::shared_ptr<Tracked>& t) {
  server::GenerationRequest r;
  r.prompt = prompt;
  r.max_tokens = max_tokens;
  r.sampling.temperature = 0;
  r.on_token = [t](const server::TokenEvent&) { t->tokens.fetch_add(1); };
  r.on_finish = [t](server::FinishReason why, const std::string&) {
    t->reason.store(static_cast<int>(why));
    t->finished.store(true);
  };
  return s.submit(std::move(r));
}

template <class Pred>
bool wait_until(Pred pred, double timeout_s = 60) {
  const Nanos deadline = steady_now_ns() + s_to_ns(timeout_s);
  while (!pred()) {
    if (steady_now_ns() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  return true;
}

std::vector<int> prompt_of(int n, int seed) {
  std::vector<int> p{1};
  for (int i = 1; i < n; ++i) p.push_back(3 + (i * 7 + seed * 13) % 500);
  return p;
}

// Every block back in the pool: nothing referenced, nothing in use, nobody running or waiting.
void expect_pool_empty(const server::Scheduler& s) {
  ASSERT_TRUE(wait_until([&] {
    const auto st = s.stats();
    return st.running == 0 && st.waiting == 0 && st.kv_block_refs == 0 && st.kv_usage == 0;
  }, 10)) << "running " << s.stats().running << ", waiting " << s.stats().waiting << ", block references "
          << s.stats().kv_block_refs << ", usage " << s.stats().kv_usage;
}

// Cancels every request and checks each ends `cancelled` (wrap in ASSERT_NO_FATAL_FAILURE).
void cancel_all_expecting_cancelled(server::Scheduler& s, const std::vector<std::int64_t>& ids,
                                    const std::vector<std::shared_ptr<Tracked>>& t) {
  for (auto id : ids) s.cancel(id);
  for (const auto& x : t) {
    ASSERT_TRUE(wait_until([&] { return x->finished.load(); }));
    EXPECT_EQ(x->reason.load(), static_cast<int>(server::FinishReason::kCancelled));
  }
}

class DisconnectPhases : public ::testing::Test {
 protected:
  void SetUp() override {
    QMETER_REQUIRE_SHARED_DATA(path, "models/stories260K/stories260K.bin");
    model_ = std::shared_ptr<engine::Model>(engine::load_model(path).release());
  }
  std::shared_ptr<engine::Model> model_;
};

}  // namespace

TEST_F(DisconnectPhases, Queued) {
  server::SchedulerOptions o;
  o.max_num_seqs = 1;  // the second request waits behind the first
  server::Scheduler s(*model_, o);
  auto a = std::make_shared<Tracked>(), b = std::make_shared<Tracked>();
  const auto ida = submit(s, prompt_of(8, 1), 400, a);
  ASSERT_TRUE(wait_until([&] { return a->tokens.load() > 0; }));
  const auto idb = submit(s, prompt_of(8, 2), 400, b);
  ASSERT_TRUE(wait_until([&] { return s.stats().waiting == 1; }));
  s.cancel(idb);
  ASSERT_TRUE(wait_until([&] { return b->finished.load(); }));
  EXPECT_EQ(b->reason.load(), static_cast<int>(server::FinishReason::kCancelled));
  EXPECT_EQ(b->tokens.load(), 0) << "it never ran";
  s.cancel(ida);
  ASSERT_TRUE(wait_until([&] { return a->finished.load(); }));
  expect_pool_empty(s);
}

TEST_F(DisconnectPhases, Prefilling) {
  server::SchedulerOptions o;
  o.max_num_batched_tokens = 2;  // beside one decode, a 480-token prompt prefills 1 token a step
  server::Scheduler s(*model_, o);
  auto decoding = std::make_shared<Tracked>();
  const auto idd = submit(s, prompt_of(4, 3), 100000, decoding);
  ASSERT_TRUE(wait_until([&] { return decoding->tokens.load() > 0; }));
  // Cancelled once admitted (running, blocks filling) and ended without a single token: it was
  // cut off while prefilling (its first token comes with the end of its prefill). The window is a
  // few milliseconds here, so a busy machine may need another try.
  int caught = 0;
  for (int attempt = 0; attempt < 10 && caught == 0; ++attempt) {
    ASSERT_TRUE(wait_until([&] { return s.stats().running == 1; }));  // the last try's request has left
    auto b = std::make_shared<Tracked>();
    const auto idb = submit(s, prompt_of(480, 4 + attempt), 400, b);
    ASSERT_TRUE(wait_until([&] { return s.stats().running == 2; }));
    s.cancel(idb);
    ASSERT_TRUE(wait_until([&] { return b->finished.load(); }));
    EXPECT_EQ(b->reason.load(), static_cast<int>(server::FinishReason::kCancelled));
    if (b->tokens.load() == 0) ++caught;
  }
  EXPECT_EQ(caught, 1) << "no cancel landed in a prefill";
  s.cancel(idd);
  ASSERT_TRUE(wait_until([&] { return decoding->finished.load(); }));
  expect_pool_empty(s);
}

TEST_F(DisconnectPhases, Decoding) {
  server::Scheduler s(*model_, server::SchedulerOptions{});
  std::vector<std::shared_ptr<Tracked>> t;
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 8; ++i) {
    t.push_back(std::make_shared<Tracked>());
    ids.push_back(submit(s, prompt_of(16, 10 + i), 400, t.back()));
  }
  ASSERT_TRUE(wait_until([&] {
    for (const auto& x : t) {
      if (x->tokens.load() < 3) return false;
    }
    return true;
  }));
  ASSERT_NO_FATAL_FAILURE(cancel_all_expecting_cancelled(s, ids, t));
  for (const auto& x : t) EXPECT_LT(x->tokens.load(), 400);
  expect_pool_empty(s);
}

TEST_F(DisconnectPhases, Preempted) {
  server::SchedulerOptions o;
  // 12 blocks of 16 positions for 6 sequences that each grow past 48: the pool runs out mid-decode
  // and the newest running sequences go back to the queue (recompute preemption).
  o.block_size = 16;
  // A block's size in bytes, from a default pool (gone before the test's own is made).
  const double bytes_per_block =
      static_cast<double>(o.kv_cache_bytes) / server::Scheduler(*model_, o).total_kv_blocks();
  o.kv_cache_bytes = static_cast<std::size_t>(bytes_per_block * 12 + 1);
  server::Scheduler s(*model_, o);
  ASSERT_EQ(s.total_kv_blocks(), 12);
  std::vector<std::shared_ptr<Tracked>> t;
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 6; ++i) {
    t.push_back(std::make_shared<Tracked>());
    ids.push_back(submit(s, prompt_of(20, 20 + i), 150, t.back()));
  }
  // Cancel everything at a moment when a preempted sequence is back in the queue.
  ASSERT_TRUE(wait_until([&] {
    const auto st = s.stats();
    return st.preemptions > 0 && st.waiting > 0;
  })) << "no preemption happened";
  ASSERT_NO_FATAL_FAILURE(cancel_all_expecting_cancelled(s, ids, t));
  expect_pool_empty(s);
}
