#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <cstring>

#include "qmeter/core/error.h"
#include "qmeter/engine/kv_cache.h"

namespace qmeter::engine {

namespace {
void check_layout(const KvLayout& l) {
  if (l.n_layers <= 0 || l.kv_dim <= 0 || l.block_size <= 0 || !std::has_single_bit(static_cast<unsigned>(l.block_size)))
    throw Error(fmt::format("invalid KV layout: {} layers, kv_dim {}, block_size {} (a power of two)", l.n_layers,
                            l.kv_dim, l.block_size));
}
}  // namespace

float* HeapKvBlockPool::acquire() {
  const std::size_t bytes = (layout_.block_floats() * sizeof(float) + 63) / 64 * 64;
  return static_cast<float*>(std::aligned_alloc(64, bytes));
}

void HeapKvBlockPool::release(float* block) { std::free(block); }

FixedKvBlockPool::FixedKvBlockPool(const KvLayout& layout, int n_blocks) : layout_(layout), n_blocks_(n_blocks) {
  check_layout(layout);
  if (n_blocks <= 0) throw Error(fmt::format("KV block pool needs at least one block, got {}", n_blocks));
  arena_.reset(new float[layout.block_floats() * static_cast<std::size_t>(n_blocks)]);
  free_.reserve(static_cast<std::size_t>(n_blocks));
  for (int i = n_blocks - 1; i >= 0; --i) free_.push_back(arena_.get() + layout.block_floats() * static_cast<std::size_t>(i));
}

float* FixedKvBlockPool::acquire() {
  std::lock_guard lock(mu_);
  if (free_.empty()) return nullptr;
  float* b = free_.back();
  free_.pop_back();
  return b;
}

void FixedKvBlockPool::release(float* block) {
  std::lock_guard lock(mu_);
  free_.push_back(block);
}

int FixedKvBlockPool::free_blocks() const {
  std::lock_guard lock(mu_);
  return static_cast<int>(free_.size());
}

KvCache::KvCache(const KvLayout& layout, int max_positions, KvBlockPool* pool)
    : layout_(layout), max_positions_(max_positions) {
  check_layout(layout);
  if (max_positions <= 0) throw Error(fmt::format("KV cache needs a positive capacity, got {}", max_positions));
  block_shift_ = std::countr_zero(static_cast<unsigned>(layout.block_size));
  if (pool == nullptr) {
    own_pool_ = std::make_unique<HeapKvBlockPool>(layout);
    pool_ = own_pool_.get();
  } else {
    const KvLayout& pl = pool->layout();
    if (pl.n_layers != layout.n_layers || pl.kv_dim != layout.kv_dim || pl.block_size != layout.block_size)
      throw Error("KV cache layout does not match its block pool's layout");
    pool_ = pool;
  }
}

KvCache::~KvCache() { truncate(0); }

bool KvCache::reserve(int n) {
  if (n > max_positions_) return false;
  const std::size_t need = (static_cast<std::size_t>(n) + layout_.block_size - 1) >> block_shift_;
  while (blocks_.size() < need) {
    float* b = pool_->acquire();
    if (b == nullptr) return false;
    blocks_.push_back(b);
  }
  return true;
}

void KvCache::set_length(int n) {
  if (n < 0 || static_cast<std::size_t>(n) > (blocks_.size() << block_shift_))
    throw Error(fmt::format("KV cache: length {} beyond the {} reserved positions", n, blocks_.size() << block_shift_));
  length_ = n;
}

void KvCache::truncate(int n) {
  n = std::clamp(n, 0, length_);
  length_ = n;
  const std::size_t keep = (static_cast<std::size_t>(n) + layout_.block_size - 1) >> block_shift_;
  while (blocks_.size() > keep) {
    pool_->release(blocks_.back());
    blocks_.pop_back();
  }
}

}  // namespace qmeter::engine
