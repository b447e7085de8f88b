// Prefix caching in the paged KV cache (kv_cache.h): chained block hashes, adoption of published
// blocks, reference counts, LRU eviction, copy-on-cut, and a forward pass over adopted blocks that
// gives the logits of a from-scratch prefill (f32 and int8 caches).
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "model_test_util.h"
#include "qmeter/core/error.h"
#include "qmeter/engine/forward.h"
#include "qmeter/engine/kv_cache.h"
#include "test_support.h"

using namespace qmeter;
using namespace qmeter::engine;

namespace {

// 1 layer, kv_dim 8, blocks of 4 positions.
KvLayout tiny(KvDType d = KvDType::kF32) { return KvLayout{1, 8, 4, 4, d}; }

// Writes position p's K as (p*10 + i + salt) and V as its negation, for p in [length(), n).
void fill(KvCache& kv, int n, float salt = 0) {
  ASSERT_TRUE(kv.reserve(n));
  for (int p = kv.length(); p < n; ++p) {
    float k[8], v[8];
    for (int i = 0; i < 8; ++i) {
      k[i] = static_cast<float>(p * 10 + i) + salt;
      v[i] = -k[i];
    }
    kv.write(0, p, k, v);
  }
  kv.set_length(n);
}

std::vector<int> iota_tokens(int n, int first = 0) {
  std::vector<int> t(static_cast<std::size_t>(n));
  std::iota(t.begin(), t.end(), first);
  return t;
}

float key_at(const KvCache& kv, int pos, int i) {
  float out[8];
  kv.read_key(0, pos, out);
  return out[i];
}

}  // namespace

TEST(PrefixCache, BlockHashesChainTheWholePrefixAndTheLayout) {
  const std::vector<int> a = {1, 2, 3, 4}, b = {1, 2, 3, 5};
  const KvBlockHash root = kv_prefix_root_hash(tiny());
  EXPECT_EQ(kv_block_hash(root, a), kv_block_hash(root, a));
  EXPECT_NE(kv_block_hash(root, a), kv_block_hash(root, b));
  // The same second block after different first blocks: different identities.
  EXPECT_NE(kv_block_hash(kv_block_hash(root, a), a), kv_block_hash(kv_block_hash(root, b), a));
  // Anything that changes the bytes (dtype, shape, block size) changes the root.
  EXPECT_NE(root, kv_prefix_root_hash(tiny(KvDType::kInt8)));
  EXPECT_NE(root, kv_prefix_root_hash(tiny(KvDType::kFp8)));
  EXPECT_NE(root, kv_prefix_root_hash(KvLayout{2, 8, 4, 4, KvDType::kF32}));
  EXPECT_NE(root, kv_prefix_root_hash(KvLayout{1, 8, 8, 4, KvDType::kF32}));
}

TEST(PrefixCache, WholeBlocksArePublishedSharedReadOnlyAndReferenceCounted) {
  FixedKvBlockPool pool(tiny(), 8, /*prefix_caching=*/true);
  const std::vector<int> prompt_a = iota_tokens(10);  // blocks [0..3] [4..7] + 2 positions
  KvCache a(tiny(), 64, &pool);
  EXPECT_EQ(a.adopt_cached_prefix(prompt_a), 0);  // nothing cached yet
  fill(a, 10);
  a.publish_full_blocks(prompt_a);
  EXPECT_EQ(a.sealed_blocks(), 2);
  EXPECT_EQ(pool.cached_blocks(), 2);
  float row[8] = {};
  EXPECT_THROW(a.write(0, 7, row, row), Error);  // sealed: other sequences may read it
  a.write(0, 8, row, row);                        // the partial third block is still private

  // Same first 8 tokens, another suffix: both blocks adopted, their bytes are a's.
  std::vector<int> prompt_b = iota_tokens(8);
  prompt_b.insert(prompt_b.end(), {90, 91, 92});
  KvCache b(tiny(), 64, &pool);
  EXPECT_EQ(b.adopt_cached_prefix(prompt_b), 8);
  EXPECT_EQ(b.length(), 8);
  EXPECT_EQ(key_at(b, 5, 3), 53.0f);
  EXPECT_EQ(pool.referenced_blocks_sum(), 3 + 2);
  EXPECT_EQ(pool.free_blocks(), 8 - 3);

  // A prompt that is exactly the two cached blocks still computes its last token: one adopted.
  KvCache c(tiny(), 64, &pool);
  EXPECT_EQ(c.adopt_cached_prefix(iota_tokens(8)), 4);
  // A difference in the first block means nothing matches, even where the second block agrees.
  std::vector<int> prompt_d = iota_tokens(10);
  prompt_d[0] = 77;
  KvCache d(tiny(), 64, &pool);
  EXPECT_EQ(d.adopt_cached_prefix(prompt_d), 0);
  EXPECT_EQ(pool.referenced_blocks_sum(), 3 + 2 + 1);

  // Everyone leaves: every count returns to zero, every block is free, the cache still holds 2.
  a.truncate(0);
  b.truncate(0);
  c.truncate(0);
  EXPECT_EQ(pool.referenced_blocks_sum(), 0);
  EXPECT_EQ(pool.free_blocks(), 8);
  EXPECT_EQ(pool.cached_blocks(), 2);
  // ... and a later sequence still finds them.
  KvCache e(tiny(), 64, &pool);
  EXPECT_EQ(e.adopt_cached_prefix(prompt_b), 8);
  EXPECT_EQ(key_at(e, 6, 0), 60.0f);
}

TEST(PrefixCache, CuttingASharedBlockCopiesItFirst) {
  FixedKvBlockPool pool(tiny(), 8, true);
  const std::vector<int> t = iota_tokens(9);
  KvCache a(tiny(), 64, &pool);
  fill(a, 9);
  a.publish_full_blocks(t);
  KvCache b(tiny(), 64, &pool);
  ASSERT_EQ(b.adopt_cached_prefix(t), 8);
  b.truncate(6);  // keeps positions 4, 5 of the shared second block: b gets its own copy
  EXPECT_EQ(b.sealed_blocks(), 1);
  EXPECT_EQ(key_at(b, 5, 0), 50.0f);
  fill(b, 8, /*salt=*/1000);  // rewrites positions 6, 7 of the copy
  EXPECT_EQ(key_at(b, 6, 0), 1060.0f);
  EXPECT_EQ(key_at(a, 6, 0), 60.0f);  // the cached block is untouched
  KvCache c(tiny(), 64, &pool);
  EXPECT_EQ(c.adopt_cached_prefix(t), 8);
  EXPECT_EQ(key_at(c, 7, 0), 70.0f);
}

TEST(PrefixCache, FreeBlocksRunOutSoTheLeastRecentlyReleasedCachedBlocksAreEvicted) {
  FixedKvBlockPool pool(tiny(), 4, true);
  // Two one-block prefixes cached and released, x before y.
  const std::vector<int> x = iota_tokens(5, 100), y = iota_tokens(5, 200);
  for (const auto* t : {&x, &y}) {
    KvCache s(tiny(), 64, &pool);
    fill(s, 5);
    s.publish_full_blocks(*t);
  }
  EXPECT_EQ(pool.free_blocks(), 4);
  EXPECT_EQ(pool.cached_blocks(), 2);
  // Touch x again, so y is now the least recently released.
  {
    KvCache s(tiny(), 64, &pool);
    EXPECT_EQ(s.adopt_cached_prefix(x), 4);
  }
  // Three new blocks: two never-cached free blocks first, then one eviction (y's block).
  KvCache big(tiny(), 64, &pool);
  ASSERT_TRUE(big.reserve(8));
  EXPECT_EQ(pool.evictions(), 0);
  ASSERT_TRUE(big.reserve(12));
  EXPECT_EQ(pool.evictions(), 1);
  KvCache probe(tiny(), 64, &pool);
  EXPECT_EQ(probe.adopt_cached_prefix(y), 0);
  EXPECT_EQ(probe.adopt_cached_prefix(x), 4);
  probe.truncate(0);
  // Pool exhausted: the last cached block goes too, then nothing is left.
  ASSERT_TRUE(big.reserve(16));
  EXPECT_EQ(pool.evictions(), 2);
  EXPECT_FALSE(big.reserve(20));
  EXPECT_EQ(pool.cached_blocks(), 0);
}

TEST(PrefixCache, PoolsWithoutCachingAdoptNothing) {
  FixedKvBlockPool pool(tiny(), 8);  // caching off
  const std::vector<int> t = iota_tokens(9);
  KvCache a(tiny(), 64, &pool);
  fill(a, 9);
  a.publish_full_blocks(t);
  EXPECT_EQ(a.sealed_blocks(), 0);
  KvCache b(tiny(), 64, &pool);
  EXPECT_EQ(b.adopt_cached_prefix(t), 0);
  KvCache heap(tiny(), 64);  // the Session's own heap pool
  fill(heap, 9);
  heap.publish_full_blocks(t);
  EXPECT_EQ(heap.sealed_blocks(), 0);
}

// A sequence that adopts another's prefix blocks gets the logits of a from-scratch prefill.
TEST(PrefixCache, ForwardOverAdoptedBlocksEqualsFullPrefill) {
  QMETER_REQUIRE_SHARED_DATA(path, "models/stories260K/stories260K.bin");
  auto m = load_model(path);
  for (KvDType dtype : {KvDType::kF32, KvDType::kInt8}) {
    set_kv_cache_dtype(*m, dtype);
    const KvLayout layout = KvLayout::for_model(m->config, 16);
    FixedKvBlockPool pool(layout, 32, true);
    ForwardPass pass(*m, nullptr);
    // 40 shared tokens (2 whole blocks of 16 + 8), then distinct suffixes.
    std::vector<int> shared = {1};
    for (int i = 1; i < 40; ++i) shared.push_back(20 + (i * 37) % 400);
    std::vector<int> first = shared, second = shared;
    for (int i = 0; i < 7; ++i) {
      first.push_back(300 + i);
      second.push_back(100 + i);
    }
    KvCache a(layout, 512, &pool);
    const SequenceInput in_a{&a, first, LogitsWanted::kLast};
    pass.run({&in_a, 1});
    a.publish_full_blocks(first);
    KvCache b(layout, 512, &pool);
    const int adopted = b.adopt_cached_prefix(second);
    ASSERT_EQ(adopted, 32);
    const SequenceInput in_b{&b, std::span<const int>(second).subspan(32), LogitsWanted::kAll};
    pass.run({&in_b, 1});
    const auto got_span = pass.logits(0);
    const std::vector<float> got(got_span.begin(), got_span.end());  // the next run() reuses the buffer
    // Reference: the whole of `second` in a private cache of the same dtype.
    KvCache ref(layout, 512);
    const SequenceInput in_ref{&ref, second, LogitsWanted::kAll};
    pass.run({&in_ref, 1});
    const auto want = pass.logits(0);
    const std::size_t V = static_cast<std::size_t>(m->config.vocab_size);
    ASSERT_EQ(got.size(), (second.size() - 32) * V);
    float worst = 0;
    for (std::size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::fabs(got[i] - want[32 * V + i]));
    EXPECT_EQ(worst, 0.0f) << kv_dtype_name(dtype);
  }
}
