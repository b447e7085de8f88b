#pragma once
// Key/value cache of one sequence, stored in fixed-size blocks of positions (vLLM's paged
// layout). A block holds, for every layer, the keys then the values of `block_size` consecutive
// positions: [layer][K|V][block_size][kv_dim] floats. The forward pass reaches a position only
// through key()/value(), so where blocks live is the block pool's business:
//  - HeapKvBlockPool allocates blocks on demand (one sequence, tests, `qmeter generate`);
//  - FixedKvBlockPool preallocates N blocks shared by many sequences (a paged KV cache for
//    continuous batching: admission = can the pool supply the blocks, eviction = release()).
#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

#include "qmeter/engine/model_config.h"

namespace qmeter::engine {

struct KvLayout {
  int n_layers = 0;
  int kv_dim = 0;
  int block_size = 16;  // positions per block; a power of two
  std::size_t block_floats() const {
    return static_cast<std::size_t>(n_layers) * 2 * block_size * kv_dim;
  }
  static KvLayout for_model(const ModelConfig& c, int block_size = 16) {
    return {c.n_layers, c.kv_dim(), block_size};
  }
};

// Source of KV blocks. Thread-safe: sequences of one batch may grow concurrently.
class KvBlockPool {
 public:
  virtual ~KvBlockPool() = default;
  virtual const KvLayout& layout() const = 0;
  virtual float* acquire() = 0;  // nullptr when exhausted
  virtual void release(float* block) = 0;
  virtual int free_blocks() const = 0;  // -1 when unbounded
};

class HeapKvBlockPool final : public KvBlockPool {
 public:
  explicit HeapKvBlockPool(const KvLayout& layout) : layout_(layout) {}
  const KvLayout& layout() const override { return layout_; }
  float* acquire() override;
  void release(float* block) override;
  int free_blocks() const override { return -1; }

 private:
  KvLayout layout_;
};

// N blocks in one allocation; acquire/release are O(1) under a mutex.
class FixedKvBlockPool final : public KvBlockPool {
 public:
  FixedKvBlockPool(const KvLayout& layout, int n_blocks);
  const KvLayout& layout() const override { return layout_; }
  float* acquire() override;
  void release(float* block) override;
  int free_blocks() const override;
  int total_blocks() const { return n_blocks_; }

 private:
  KvLayout layout_;
  int n_blocks_;
  std::unique_ptr<float[]> arena_;
  std::vector<float*> free_;
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
  // Drops positions >= n and releases blocks no longer needed (n = 0: empty the cache).
  void truncate(int n);

  float* key(int layer, int pos) { return slot(layer, pos, 0); }
  float* value(int layer, int pos) { return slot(layer, pos, 1); }
  const float* key(int layer, int pos) const { return const_cast<KvCache*>(this)->slot(layer, pos, 0); }
  const float* value(int layer, int pos) const { return const_cast<KvCache*>(this)->slot(layer, pos, 1); }

 private:
  float* slot(int layer, int pos, int kv) {
    float* block = blocks_[static_cast<std::size_t>(pos >> block_shift_)];
    const int in_block = pos & (layout_.block_size - 1);
    return block + ((static_cast<std::size_t>(layer) * 2 + kv) * layout_.block_size + in_block) *
                       static_cast<std::size_t>(layout_.kv_dim);
  }

  KvLayout layout_;
  int max_positions_;
  int block_shift_;
  std::unique_ptr<KvBlockPool> own_pool_;
  KvBlockPool* pool_;
  std::vector<float*> blocks_;
  int length_ = 0;
};

}  // namespace qmeter::engine
