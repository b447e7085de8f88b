#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <cstring>

#include "qmeter/core/error.h"
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
}  // namespace

std::byte* HeapKvBlockPool::acquire() {
  return static_cast<std::byte*>(std::aligned_alloc(64, aligned_block_bytes(layout_)));
}

void HeapKvBlockPool::release(std::byte* block) { std::free(block); }

FixedKvBlockPool::FixedKvBlockPool(const KvLayout& layout, int n_blocks) : layout_(layout), n_blocks_(n_blocks) {
  check_layout(layout);
  if (n_blocks <= 0) throw Error(fmt::format("KV block pool needs at least one block, got {}", n_blocks));
  const std::size_t stride = aligned_block_bytes(layout);
  arena_ = static_cast<std::byte*>(std::aligned_alloc(64, stride * static_cast<std::size_t>(n_blocks)));
  if (arena_ == nullptr) throw Error(fmt::format("KV block pool: cannot allocate {} blocks of {} bytes", n_blocks, stride));
  free_.reserve(static_cast<std::size_t>(n_blocks));
  for (int i = n_blocks - 1; i >= 0; --i) free_.push_back(arena_ + stride * static_cast<std::size_t>(i));
}

FixedKvBlockPool::~FixedKvBlockPool() { std::free(arena_); }

std::byte* FixedKvBlockPool::acquire() {
  std::lock_guard lock(mu_);
  if (free_.empty()) return nullptr;
  std::byte* b = free_.back();
  free_.pop_back();
  return b;
}

void FixedKvBlockPool::release(std::byte* block) {
  std::lock_guard lock(mu_);
  free_.push_back(block);
}

int FixedKvBlockPool::free_blocks() const {
  std::lock_guard lock(mu_);
  return static_cast<int>(free_.size());
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
  while (blocks_.size() > keep) {
    pool_->release(blocks_.back());
    blocks_.pop_back();
  }
}

void KvCache::write(int layer, int pos, const float* k, const float* v) {
  kv_quantize_row(layout_, k, slot(layer, pos, 0));
  kv_quantize_row(layout_, v, slot(layer, pos, 1));
}

void KvCache::read_key(int layer, int pos, float* out) const { kv_dequantize_row(layout_, key_row(layer, pos), out); }
void KvCache::read_value(int layer, int pos, float* out) const { kv_dequantize_row(layout_, value_row(layer, pos), out); }

}  // namespace qmeter::engine
