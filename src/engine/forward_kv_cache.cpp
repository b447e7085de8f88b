#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <cstring>

#include "qmeter/core/error.h"
#include "qmeter/core/random.h"
#include "qmeter/engine/kv_cache.h"
#include "qmeter/engine/kv_kernels.h"
#include "qmeter/engine/model.h"

namespace qmeter::engine {

std::string_view kv_dtype_name(KvDType d) {
  switch (d) {
    case KvDType::kF32: return "f32";
    case KvDType::kInt8: return "int8";
    case KvDType::kFp8: return "fp8";
  }
  return "unknown";
}

KvDType parse_kv_dtype(std::string_view name, std::string_view what) {
  for (KvDType d : {KvDType::kF32, KvDType::kInt8, KvDType::kFp8})
    if (kv_dtype_name(d) == name) return d;
  throw UsageError(fmt::format("{}: '{}' is not a KV-cache dtype (expected f32, int8 or fp8)", what, name));
}

void set_kv_cache_dtype(Model& model, KvDType dtype) {
  if (model.config.kv_cache_dtype == dtype) return;
  model.config.kv_cache_dtype = dtype;
  if (dtype != KvDType::kF32) model.description += fmt::format(" | kv-cache {}", kv_dtype_name(dtype));
}

namespace {
void check_layout(const KvLayout& l) {
  if (l.n_layers <= 0 || l.kv_dim <= 0 || l.block_size <= 0 || !std::has_single_bit(static_cast<unsigned>(l.block_size)) ||
      l.head_dim < 0 || (l.head_dim > 0 && l.kv_dim % l.head_dim != 0))
    throw Error(fmt::format("invalid KV layout: {} layers, kv_dim {}, block_size {} (a power of two), head_dim {} "
                            "(divides kv_dim)", l.n_layers, l.kv_dim, l.block_size, l.head_dim));
}

std::size_t aligned_block_bytes(const KvLayout& l) { return (l.block_bytes() + 63) / 64 * 64; }


// splitmix64_hash: every input bit reaches every output bit, so chained block hashes of
// prefixes that differ in one token differ everywhere.
constexpr auto mix64 = splitmix64_hash;
}  // namespace

KvBlockHash kv_prefix_root_hash(const KvLayout& l) {
  std::uint64_t h = mix64(0x716d65746572ull);  // "qmeter"
  for (std::uint64_t v : {static_cast<std::uint64_t>(l.dtype), static_cast<std::uint64_t>(l.n_layers),
                          static_cast<std::uint64_t>(l.kv_dim), static_cast<std::uint64_t>(l.head_dim),
                          static_cast<std::uint64_t>(l.block_size)})
    h = mix64(h ^ v);
  return h;
}

KvBlockHash kv_block_hash(KvBlockHash parent, std::span<const int> tokens) {
  std::uint64_t h = mix64(parent);
  for (int t : tokens) h = mix64(h ^ static_cast<std::uint32_t>(t));
  return mix64(h ^ tokens.size());
}

std::byte* HeapKvBlockPool::acquire() {
  return static_cast<std::byte*>(std::aligned_alloc(64, aligned_block_bytes(layout_)));
}

void HeapKvBlockPool::release(std::byte* block) { std::free(block); }

FixedKvBlockPool::FixedKvBlockPool(const KvLayout& layout, int n_blocks, bool prefix_caching)
    : layout_(layout), n_blocks_(n_blocks), prefix_caching_(prefix_caching) {
  check_layout(layout);
  if (n_blocks <= 0) throw Error(fmt::format("KV block pool needs at least one block, got {}", n_blocks));
  stride_ = aligned_block_bytes(layout);
  arena_ = static_cast<std::byte*>(std::aligned_alloc(64, stride_ * static_cast<std::size_t>(n_blocks)));
  if (arena_ == nullptr) throw Error(fmt::format("KV block pool: cannot allocate {} blocks of {} bytes", n_blocks, stride_));
  info_.resize(static_cast<std::size_t>(n_blocks));
  free_.reserve(static_cast<std::size_t>(n_blocks));
  for (int i = n_blocks - 1; i >= 0; --i) free_.push_back(i);
}

FixedKvBlockPool::~FixedKvBlockPool() { std::free(arena_); }

int FixedKvBlockPool::index_of(const std::byte* block) const {
  const auto off = static_cast<std::size_t>(block - arena_);
  if (block < arena_ || off % stride_ != 0 || off / stride_ >= static_cast<std::size_t>(n_blocks_))
    throw Error("KV block pool: a block that is not the pool's was given back");
  return static_cast<int>(off / stride_);
}

std::byte* FixedKvBlockPool::acquire() {
  std::lock_guard lock(mu_);
  int i;
  if (!free_.empty()) {
    i = free_.back();
    free_.pop_back();
  } else if (!lru_.empty()) {  // evict the least recently released cached block
    i = lru_.front();
    lru_.pop_front();
    BlockInfo& b = info_[static_cast<std::size_t>(i)];
    by_hash_.erase(b.hash);
    b.published = false;
    b.tokens.clear();
    ++evictions_;
  } else {
    return nullptr;
  }
  info_[static_cast<std::size_t>(i)].refs = 1;
  return block_at(i);
}

void FixedKvBlockPool::release(std::byte* block) {
  std::lock_guard lock(mu_);
  const int i = index_of(block);
  BlockInfo& b = info_[static_cast<std::size_t>(i)];
  if (b.refs <= 0) throw Error("KV block pool: a block was released more often than acquired");
  if (--b.refs > 0) return;
  if (b.published) {
    b.lru = lru_.insert(lru_.end(), i);
  } else {
    free_.push_back(i);
  }
}

int FixedKvBlockPool::free_blocks() const {
  std::lock_guard lock(mu_);
  return static_cast<int>(free_.size() + lru_.size());
}

std::byte* FixedKvBlockPool::acquire_cached(KvBlockHash hash, KvBlockHash parent, std::span<const int> tokens) {
  if (!prefix_caching_) return nullptr;
  std::lock_guard lock(mu_);
  const auto it = by_hash_.find(hash);
  if (it == by_hash_.end()) return nullptr;
  BlockInfo& b = info_[static_cast<std::size_t>(it->second)];
  if (b.parent != parent || !std::equal(tokens.begin(), tokens.end(), b.tokens.begin(), b.tokens.end())) return nullptr;
  if (b.refs++ == 0) lru_.erase(b.lru);
  return block_at(it->second);
}

void FixedKvBlockPool::publish(std::byte* block, KvBlockHash hash, KvBlockHash parent, std::span<const int> tokens) {
  if (!prefix_caching_) return;
  std::lock_guard lock(mu_);
  const int i = index_of(block);
  BlockInfo& b = info_[static_cast<std::size_t>(i)];
  // Already findable (adopted from the cache), or the same prefix was computed twice at once:
  // the first copy stays the cached one and this one is freed as usual when its sequence ends.
  if (b.published || by_hash_.contains(hash)) return;
  b.published = true;
  b.hash = hash;
  b.parent = parent;
  b.tokens.assign(tokens.begin(), tokens.end());
  by_hash_.emplace(hash, i);
}

int FixedKvBlockPool::cached_blocks() const {
  std::lock_guard lock(mu_);
  return static_cast<int>(by_hash_.size());
}

std::int64_t FixedKvBlockPool::evictions() const {
  std::lock_guard lock(mu_);
  return evictions_;
}

long FixedKvBlockPool::referenced_blocks_sum() const {
  std::lock_guard lock(mu_);
  long sum = 0;
  for (const BlockInfo& b : info_) sum += b.refs;
  return sum;
}

KvCache::KvCache(const KvLayout& layout, int max_positions, KvBlockPool* pool)
    : layout_(layout), row_bytes_(layout.row_bytes()), max_positions_(max_positions) {
  check_layout(layout);
  if (max_positions <= 0) throw Error(fmt::format("KV cache needs a positive capacity, got {}", max_positions));
  block_shift_ = std::countr_zero(static_cast<unsigned>(layout.block_size));
  if (pool == nullptr) {
    own_pool_ = std::make_unique<HeapKvBlockPool>(layout);
    pool_ = own_pool_.get();
  } else {
    const KvLayout& pl = pool->layout();
    if (!(pl == layout)) throw Error("KV cache layout does not match its block pool's layout");
    pool_ = pool;
  }
}

KvCache::~KvCache() { truncate(0); }

bool KvCache::reserve(int n) {
  if (n > max_positions_) return false;
  const std::size_t need = (static_cast<std::size_t>(n) + layout_.block_size - 1) >> block_shift_;
  while (blocks_.size() < need) {
    std::byte* b = pool_->acquire();
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
  const std::size_t whole = static_cast<std::size_t>(n) >> block_shift_;
  if (block_hashes_.size() > whole) {
    // The block holding position n (if kept) will be written again: it gets a private copy.
    if (keep > whole) {
      std::byte* copy = pool_->acquire();
      if (copy == nullptr) throw Error("KV cache: no free block to copy a shared block that is cut");
      std::memcpy(copy, blocks_[whole], layout_.block_bytes());
      pool_->release(blocks_[whole]);
      blocks_[whole] = copy;
    }
    block_hashes_.resize(whole);
  }
  while (blocks_.size() > keep) {
    pool_->release(blocks_.back());
    blocks_.pop_back();
  }
}

int KvCache::adopt_cached_prefix(std::span<const int> tokens) {
  if (!pool_->caches_prefixes() || length_ != 0 || !blocks_.empty()) return length_;
  const int bs = layout_.block_size;
  const int most = tokens.empty() ? 0 : std::min(static_cast<int>(tokens.size()) - 1, max_positions_) / bs;
  KvBlockHash parent = kv_prefix_root_hash(layout_);
  for (int b = 0; b < most; ++b) {
    const auto block_tokens = tokens.subspan(static_cast<std::size_t>(b) * bs, static_cast<std::size_t>(bs));
    const KvBlockHash h = kv_block_hash(parent, block_tokens);
    std::byte* block = pool_->acquire_cached(h, parent, block_tokens);
    if (block == nullptr) break;
    blocks_.push_back(block);
    block_hashes_.push_back(h);
    parent = h;
  }
  length_ = static_cast<int>(blocks_.size()) * bs;
  return length_;
}

void KvCache::publish_full_blocks(std::span<const int> tokens) {
  if (!pool_->caches_prefixes()) return;
  const int bs = layout_.block_size;
  const int full = std::min(length_, static_cast<int>(tokens.size())) / bs;
  KvBlockHash parent = block_hashes_.empty() ? kv_prefix_root_hash(layout_) : block_hashes_.back();
  for (int b = static_cast<int>(block_hashes_.size()); b < full; ++b) {
    const auto block_tokens = tokens.subspan(static_cast<std::size_t>(b) * bs, static_cast<std::size_t>(bs));
    const KvBlockHash h = kv_block_hash(parent, block_tokens);
    pool_->publish(blocks_[static_cast<std::size_t>(b)], h, parent, block_tokens);
    block_hashes_.push_back(h);
    parent = h;
  }
}

void KvCache::write(int layer, int pos, const float* k, const float* v) {
  if ((pos >> block_shift_) < static_cast<int>(block_hashes_.size()))
    throw Error(fmt::format("KV cache: position {} is in a sealed (shared, read-only) block", pos));
  kv_quantize_row(layout_, k, slot(layer, pos, 0));
  kv_quantize_row(layout_, v, slot(layer, pos, 1));
}

void KvCache::read_key(int layer, int pos, float* out) const { kv_dequantize_row(layout_, key_row(layer, pos), out); }
void KvCache::read_value(int layer, int pos, float* out) const { kv_dequantize_row(layout_, value_row(layer, pos), out); }

}  // namespace qmeter::engine
