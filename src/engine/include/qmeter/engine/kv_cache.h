#pragma once
// Key/value cache of one sequence, stored in fixed-size blocks of positions (vLLM's paged
// layout). A block holds, for every layer, the keys then the values of `block_size` consecutive
// positions: [layer][K|V][block_size] rows of row_bytes(). The forward pass reaches a position
// only through write() and key_row()/value_row(), so where blocks live is the block pool's business:
//  - HeapKvBlockPool allocates blocks on demand (one sequence, tests, `qmeter generate`);
//  - FixedKvBlockPool preallocates N blocks shared by many sequences (a paged KV cache for
//    continuous batching: admission = can the pool supply the blocks, eviction = release()).
//
// Prefix caching (vLLM's automatic prefix caching, FixedKvBlockPool built with it on): a block
// whose block_size positions are all written is *sealed* and published under the hash of its whole
// token prefix: hash(parent block's hash, this block's tokens), the chain rooted in a hash of the
// layout (dtype, shape), since the same tokens give other bytes in an int8 cache than in an f32 one.
// A new sequence adopts the published blocks that hold the longest whole-block prefix of its
// tokens instead of computing them. Sealed blocks are read-only and reference-counted; a block
// whose count drops to zero stays cached (still findable) until the pool needs a block and has no
// never-cached one left, then the least recently released cached block is evicted (LRU). The
// hash is 64 bits; a lookup also compares the block's tokens and its parent's hash, so a false
// hit needs a 64-bit collision between two *parent* chains.
//
// Element types (KvDType, model_config.h). A row is the K (or V) vector of one layer at one
// position, kv_dim values:
//  - kF32:  kv_dim floats.
//  - kInt8: f32 scale[kv_heads], then int8 codes[kv_dim]: x = scale[h] * code, scale = amax/127
//           of the head's head_dim values (symmetric, round to nearest even, codes in [-127, 127]).
//  - kFp8:  f32 scale[kv_heads], then E4M3 codes[kv_dim]: x = scale[h] * e4m3(code),
//           scale = amax/448 (packed_formats.h's E4M3 rounding, ties to even).
//  (rows padded to a multiple of 4 bytes). Scales are dynamic, computed when a token's K/V are
// written: no calibration, and a head whose keys grow at some position (outlier tokens, long
// contexts) never saturates, which a static per-head scale fixed from calibration text can. The
// price is 4 bytes per head per row: ~6% of an int8 row at head_dim 64, 50% at head_dim 8.
// Attention dequantizes codes in registers while it reads them (kv_kernels.h); no f32 copy of
// a quantized cache is ever made.
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <span>
#include <unordered_map>
#include <vector>

#include "qmeter/engine/model_config.h"

namespace qmeter::engine {

struct Model;

struct KvLayout {
  int n_layers = 0;
  int kv_dim = 0;
  int block_size = 16;  // positions per block; a power of two
  int head_dim = 0;     // values per scale of the quantized dtypes (0: kv_dim, one head)
  KvDType dtype = KvDType::kF32;

  int heads() const { return head_dim > 0 ? kv_dim / head_dim : 1; }
  int head_width() const { return head_dim > 0 ? head_dim : kv_dim; }
  // Bytes of the scales at the start of a quantized row (0 for f32).
  std::size_t scale_bytes() const {
    return dtype == KvDType::kF32 ? 0 : static_cast<std::size_t>(heads()) * sizeof(float);
  }
  std::size_t row_bytes() const {
    if (dtype == KvDType::kF32) return static_cast<std::size_t>(kv_dim) * sizeof(float);
    return scale_bytes() + (static_cast<std::size_t>(kv_dim) + 3) / 4 * 4;
  }
  // KV bytes one position takes over all layers (what --kv-cache-mb is divided by).
  std::size_t token_bytes() const { return static_cast<std::size_t>(n_layers) * 2 * row_bytes(); }
  std::size_t block_bytes() const { return token_bytes() * static_cast<std::size_t>(block_size); }
  static KvLayout for_model(const ModelConfig& c, int block_size = 16) {
    return {c.n_layers, c.kv_dim(), block_size, c.head_dim, c.kv_cache_dtype};
  }
  bool operator==(const KvLayout&) const = default;
};

// Sets model.config.kv_cache_dtype and notes a non-f32 choice in model.description.
void set_kv_cache_dtype(Model& model, KvDType dtype);

// Identity of a sealed block's contents: the chained hash of its token prefix (see above).
using KvBlockHash = std::uint64_t;
// The root of every chain: a hash of what, besides the tokens, decides a block's bytes.
KvBlockHash kv_prefix_root_hash(const KvLayout& layout);
// The hash of a block holding `tokens` (block_size of them) after the block hashed `parent`.
KvBlockHash kv_block_hash(KvBlockHash parent, std::span<const int> tokens);

// Source of KV blocks (block_bytes() each, 64-byte aligned). Thread-safe: sequences of one batch
// may grow concurrently. acquire() hands out a block with one reference; release() drops one.
class KvBlockPool {
 public:
  virtual ~KvBlockPool() = default;
  virtual const KvLayout& layout() const = 0;
  virtual std::byte* acquire() = 0;  // nullptr when exhausted
  virtual void release(std::byte* block) = 0;
  virtual int free_blocks() const = 0;  // -1 when unbounded
  // Prefix caching (no-ops unless the pool caches): the published block with this hash, tokens
  // and parent, with one more reference; nullptr when none.
  virtual std::byte* acquire_cached(KvBlockHash, KvBlockHash /*parent*/, std::span<const int> /*tokens*/) {
    return nullptr;
  }
  // Makes a sealed block findable under its hash (a no-op when another block already holds it).
  virtual void publish(std::byte* /*block*/, KvBlockHash, KvBlockHash /*parent*/, std::span<const int> /*tokens*/) {}
  virtual bool caches_prefixes() const { return false; }
};

class HeapKvBlockPool final : public KvBlockPool {
 public:
  explicit HeapKvBlockPool(const KvLayout& layout) : layout_(layout) {}
  const KvLayout& layout() const override { return layout_; }
  std::byte* acquire() override;
  void release(std::byte* block) override;
  int free_blocks() const override { return -1; }

 private:
  KvLayout layout_;
};

// N blocks in one allocation; acquire/release are O(1) under a mutex. With `prefix_caching`,
// released sealed blocks stay cached (LRU) and count as free: acquire() takes a never-cached block
// first, then evicts the least recently released cached one.
class FixedKvBlockPool final : public KvBlockPool {
 public:
  FixedKvBlockPool(const KvLayout& layout, int n_blocks, bool prefix_caching = false);
  ~FixedKvBlockPool() override;
  const KvLayout& layout() const override { return layout_; }
  std::byte* acquire() override;
  void release(std::byte* block) override;
  int free_blocks() const override;  // unreferenced blocks, cached ones included
  std::byte* acquire_cached(KvBlockHash hash, KvBlockHash parent, std::span<const int> tokens) override;
  void publish(std::byte* block, KvBlockHash hash, KvBlockHash parent, std::span<const int> tokens) override;
  bool caches_prefixes() const override { return prefix_caching_; }
  int total_blocks() const { return n_blocks_; }
  // Positions the whole pool holds (n_blocks * block_size).
  long capacity_tokens() const { return static_cast<long>(n_blocks_) * layout_.block_size; }
  int cached_blocks() const;               // published blocks, referenced or not
  std::int64_t evictions() const;          // cached blocks reused for other contents so far
  long referenced_blocks_sum() const;      // sum of all reference counts (0 when no sequence holds any)

 private:
  struct BlockInfo {
    int refs = 0;
    bool published = false;
    KvBlockHash hash = 0, parent = 0;
    std::vector<int> tokens;             // the block's tokens, checked on every hit
    std::list<int>::iterator lru;        // in lru_ while published and unreferenced
  };
  int index_of(const std::byte* block) const;
  std::byte* block_at(int i) const { return arena_ + stride_ * static_cast<std::size_t>(i); }

  KvLayout layout_;
  int n_blocks_;
  bool prefix_caching_;
  std::size_t stride_;
  std::byte* arena_ = nullptr;
  std::vector<int> free_;                  // unreferenced, never published (or evicted)
  std::list<int> lru_;                     // unreferenced published blocks, least recent first
  std::vector<BlockInfo> info_;
  std::unordered_map<KvBlockHash, int> by_hash_;
  std::int64_t evictions_ = 0;
  mutable std::mutex mu_;
};

class KvCache {
 public:
  // `pool` null: the cache owns a HeapKvBlockPool. `max_positions` bounds length().
  KvCache(const KvLayout& layout, int max_positions, KvBlockPool* pool = nullptr);
  ~KvCache();
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  int length() const { return length_; }  // positions filled so far (= next position)
  int max_positions() const { return max_positions_; }
  const KvLayout& layout() const { return layout_; }
  int blocks_held() const { return static_cast<int>(blocks_.size()); }

  // Makes room for positions [0, n): acquires blocks. False when the pool is exhausted or
  // n > max_positions (nothing is changed then beyond blocks already acquired).
  bool reserve(int n);
  // Records that positions [length(), n) were written (the forward pass calls this).
  void set_length(int n);
  // Drops positions >= n and releases blocks no longer needed (n = 0: empty the cache). A sealed
  // block cut in the middle is copied first (others may share it).
  void truncate(int n);

  // Prefix caching (a no-op unless the pool caches prefixes). On an empty cache: adopts the
  // published blocks holding the longest whole-block prefix of `tokens`, leaving at least the last
  // token to compute (its logits start generation); returns the positions adopted (= length()).
  int adopt_cached_prefix(std::span<const int> tokens);
  // Seals and publishes every whole block of [0, length()); `tokens` holds (at least) the tokens
  // of those positions. Call after each forward step.
  void publish_full_blocks(std::span<const int> tokens);
  int sealed_blocks() const { return static_cast<int>(block_hashes_.size()); }

  // Stores the keys and values (kv_dim floats each) of `layer` at reserved position `pos`,
  // quantizing them per head for int8 / fp8 layouts.
  // Positions in sealed blocks are read-only: writing one throws.
  void write(int layer, int pos, const float* k, const float* v);
  // The stored rows (layout above); kv_kernels.h reads them.
  const std::byte* key_row(int layer, int pos) const { return slot(layer, pos, 0); }
  const std::byte* value_row(int layer, int pos) const { return slot(layer, pos, 1); }
  // Dequantized copy of a row (kv_dim floats): tests and debugging, never the forward pass.
  void read_key(int layer, int pos, float* out) const;
  void read_value(int layer, int pos, float* out) const;

 private:
  std::byte* slot(int layer, int pos, int kv) const {
    std::byte* block = blocks_[static_cast<std::size_t>(pos >> block_shift_)];
    const int in_block = pos & (layout_.block_size - 1);
    return block + ((static_cast<std::size_t>(layer) * 2 + kv) * layout_.block_size + in_block) * row_bytes_;
  }

  KvLayout layout_;
  std::size_t row_bytes_;
  int max_positions_;
  int block_shift_;
  std::unique_ptr<KvBlockPool> own_pool_;
  KvBlockPool* pool_;
  std::vector<std::byte*> blocks_;
  std::vector<KvBlockHash> block_hashes_;  // of blocks_[0 .. sealed_blocks()), all full and read-only
  int length_ = 0;
};

}  // namespace qmeter::engine
