// The LLaMA-family forward pass over a batch of sequences (see forward.h). Every linear layer is
// one kernels.h matmul over all new tokens of the batch; attention reads each sequence's own KV
// cache through kv_attend (kv_kernels.h), so a paged or quantized cache needs no change here.
#include "qmeter/engine/forward.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "qmeter/core/error.h"
#include "qmeter/engine/kv_kernels.h"

namespace qmeter::engine {

namespace {

// Rotates the pairs of one head by the angles of its position (cos/sin per pair).
void rope_head(float* v, int head_dim, const float* cos_t, const float* sin_t, RopeStyle style) {
  const int half = head_dim / 2;
  if (style == RopeStyle::kInterleaved) {
    for (int i = 0; i < half; ++i) {
      const float a = v[2 * i], b = v[2 * i + 1];
      v[2 * i] = a * cos_t[i] - b * sin_t[i];
      v[2 * i + 1] = a * sin_t[i] + b * cos_t[i];
    }
  } else {
    for (int i = 0; i < half; ++i) {
      const float a = v[i], b = v[i + half];
      v[i] = a * cos_t[i] - b * sin_t[i];
      v[i + half] = a * sin_t[i] + b * cos_t[i];
    }
  }
}

}  // namespace

struct ForwardPass::Impl {
  const Model& model;
  ThreadPool* pool;
  const VectorOps& ops = vector_ops();
  // Per-token scratch, grown to the largest batch seen.
  std::vector<float> x, xb, xb2, q, k, v, att, hb, hb2, rope_cos, rope_sin, final_rows, logits;
  std::vector<int> tok_id, tok_pos, tok_item;
  std::vector<std::size_t> item_logit_row, item_logit_rows;
  std::vector<int> logit_tokens;  // token index of each logits row

  Impl(const Model& m, ThreadPool* p) : model(m), pool(p) {}

  template <typename Fn>
  void parallel(int n, Fn&& fn, int grain = 1) {
    if (n <= 0) return;
    if (pool == nullptr || pool->size() <= 1 || n <= grain) {
      fn(0, n);
      return;
    }
    pool->parallel_for(n, fn, grain);
  }

  void linear(const Matrix& w, const float* in, int batch, float* out) { matmul(w, in, batch, out, pool); }

  void attention(int layer, int T, std::span<const SequenceInput> batch) {
    const ModelConfig& c = model.config;
    const int hd = c.head_dim, group = c.n_heads / c.n_kv_heads, qd = c.q_dim();
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    const Isa isa = detected_isa();
    parallel(T * c.n_heads, [&](int begin, int end) {
      thread_local std::vector<float> scores;
      for (int task = begin; task < end; ++task) {
        const int t = task / c.n_heads, h = task % c.n_heads;
        const int pos = tok_pos[static_cast<std::size_t>(t)];
        const KvCache& kv = *batch[static_cast<std::size_t>(tok_item[static_cast<std::size_t>(t)])].kv;
        const float* qh = q.data() + static_cast<std::size_t>(t) * qd + static_cast<std::size_t>(h) * hd;
        scores.resize(static_cast<std::size_t>(pos) + 1);
        float* out = att.data() + static_cast<std::size_t>(t) * qd + static_cast<std::size_t>(h) * hd;
        kv_attend(kv, layer, h / group, qh, pos + 1, scale, scores.data(), out, isa);  // any KV dtype
      }
    });
  }

  void run(std::span<const SequenceInput> batch);
};

ForwardPass::ForwardPass(const Model& model, ThreadPool* pool) : impl_(std::make_unique<Impl>(model, pool)) {}
ForwardPass::~ForwardPass() = default;
int ForwardPass::vocab_size() const { return impl_->model.config.vocab_size; }
const Model& ForwardPass::model() const { return impl_->model; }
ThreadPool* ForwardPass::pool() const { return impl_->pool; }

std::span<const float> ForwardPass::logits(int item) const {
  const auto i = static_cast<std::size_t>(item);
  if (item < 0 || i >= impl_->item_logit_row.size()) throw Error(fmt::format("ForwardPass::logits: no item {}", item));
  const std::size_t V = static_cast<std::size_t>(impl_->model.config.vocab_size);
  return {impl_->logits.data() + impl_->item_logit_row[i] * V, impl_->item_logit_rows[i] * V};
}

void ForwardPass::run(std::span<const SequenceInput> batch) { impl_->run(batch); }

void ForwardPass::Impl::run(std::span<const SequenceInput> batch) {
  const ModelConfig& c = model.config;
  const ModelWeights& w = model.weights;
  // Validate everything before touching any cache.
  int T = 0;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const SequenceInput& s = batch[i];
    if (s.kv == nullptr || s.tokens.empty()) throw Error(fmt::format("forward: batch item {} has no KV cache or no tokens", i));
    if (s.kv->layout().n_layers != c.n_layers || s.kv->layout().kv_dim != c.kv_dim() ||
        s.kv->layout().head_dim != c.head_dim)
      throw Error(fmt::format("forward: batch item {}: KV cache layout does not match the model", i));
    for (std::size_t j = 0; j < i; ++j)
      if (batch[j].kv == s.kv) throw Error(fmt::format("forward: batch items {} and {} share one KV cache", j, i));
    for (int id : s.tokens)
      if (id < 0 || id >= c.vocab_size)
        throw Error(fmt::format("forward: batch item {}: token id {} out of range [0, {})", i, id, c.vocab_size));
    T += static_cast<int>(s.tokens.size());
  }
  for (std::size_t i = 0; i < batch.size(); ++i) {
    KvCache& kv = *batch[i].kv;
    const int need = kv.length() + static_cast<int>(batch[i].tokens.size());
    if (!kv.reserve(need)) {
      for (std::size_t j = 0; j <= i; ++j) batch[j].kv->truncate(batch[j].kv->length());  // give back new blocks
      throw Error(fmt::format("forward: batch item {}: KV cache cannot hold {} positions (capacity {}, or the block pool "
                              "is exhausted)", i, need, kv.max_positions()));
    }
  }

  const std::size_t dim = c.dim, qd = c.q_dim(), kvd = c.kv_dim(), hidden = c.hidden_dim, half = c.head_dim / 2;
  const std::size_t Ts = static_cast<std::size_t>(T);
  x.resize(Ts * dim);
  xb.resize(Ts * dim);
  xb2.resize(Ts * dim);
  q.resize(Ts * qd);
  k.resize(Ts * kvd);
  v.resize(Ts * kvd);
  att.resize(Ts * qd);
  hb.resize(Ts * hidden);
  hb2.resize(Ts * hidden);
  rope_cos.resize(Ts * half);
  rope_sin.resize(Ts * half);
  tok_id.resize(Ts);
  tok_pos.resize(Ts);
  tok_item.resize(Ts);
  item_logit_row.assign(batch.size(), 0);
  item_logit_rows.assign(batch.size(), 0);
  logit_tokens.clear();
  {
    std::size_t t = 0;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const SequenceInput& s = batch[i];
      item_logit_row[i] = logit_tokens.size();
      for (std::size_t j = 0; j < s.tokens.size(); ++j, ++t) {
        tok_id[t] = s.tokens[j];
        tok_pos[t] = s.kv->length() + static_cast<int>(j);
        tok_item[t] = static_cast<int>(i);
        if (s.logits == LogitsWanted::kAll || (s.logits == LogitsWanted::kLast && j + 1 == s.tokens.size()))
          logit_tokens.push_back(static_cast<int>(t));
      }
      item_logit_rows[i] = logit_tokens.size() - item_logit_row[i];
    }
  }
  for (std::size_t t = 0; t < Ts; ++t) {
    matrix_row_to_f32(w.token_embedding, tok_id[t], x.data() + t * dim);
    for (std::size_t i = 0; i < half; ++i) {
      const float angle = static_cast<float>(tok_pos[t]) * w.rope_inv_freq[i];
      rope_cos[t * half + i] = std::cos(angle);
      rope_sin[t * half + i] = std::sin(angle);
    }
  }

  const int grain = 4;
  for (int l = 0; l < c.n_layers; ++l) {
    const LayerWeights& lw = w.layers[static_cast<std::size_t>(l)];
    parallel(T, [&](int b, int e) {
      for (int t = b; t < e; ++t) ops.rmsnorm(x.data() + t * dim, lw.attn_norm.data(), c.dim, c.norm_eps, xb.data() + t * dim);
    }, grain);
    linear(lw.wq, xb.data(), T, q.data());
    linear(lw.wk, xb.data(), T, k.data());
    linear(lw.wv, xb.data(), T, v.data());
    for (std::size_t t = 0; t < Ts; ++t) {
      if (!lw.bq.empty()) {
        for (std::size_t i = 0; i < qd; ++i) q[t * qd + i] += lw.bq[i];
        for (std::size_t i = 0; i < kvd; ++i) k[t * kvd + i] += lw.bk[i];
        for (std::size_t i = 0; i < kvd; ++i) v[t * kvd + i] += lw.bv[i];
      }
      const float* cs = rope_cos.data() + t * half;
      const float* sn = rope_sin.data() + t * half;
      for (int h = 0; h < c.n_heads; ++h) rope_head(q.data() + t * qd + h * c.head_dim, c.head_dim, cs, sn, c.rope_style);
      for (int h = 0; h < c.n_kv_heads; ++h) rope_head(k.data() + t * kvd + h * c.head_dim, c.head_dim, cs, sn, c.rope_style);
      KvCache& kv = *batch[static_cast<std::size_t>(tok_item[t])].kv;
      kv.write(l, tok_pos[t], k.data() + t * kvd, v.data() + t * kvd);  // quantized per head if int8 / fp8
    }
    attention(l, T, batch);
    linear(lw.wo, att.data(), T, xb2.data());
    for (std::size_t i = 0; i < Ts * dim; ++i) x[i] += xb2[i];

    parallel(T, [&](int b, int e) {
      for (int t = b; t < e; ++t) ops.rmsnorm(x.data() + t * dim, lw.ffn_norm.data(), c.dim, c.norm_eps, xb.data() + t * dim);
    }, grain);
    linear(lw.w_gate, xb.data(), T, hb.data());
    linear(lw.w_up, xb.data(), T, hb2.data());
    parallel(T, [&](int b, int e) {
      const std::size_t off = static_cast<std::size_t>(b) * hidden;
      ops.silu_mul(hb.data() + off, hb2.data() + off, static_cast<int>((e - b) * hidden), hb.data() + off);
    }, grain);
    linear(lw.w_down, hb.data(), T, xb2.data());
    for (std::size_t i = 0; i < Ts * dim; ++i) x[i] += xb2[i];
  }
  for (const SequenceInput& s : batch) s.kv->set_length(s.kv->length() + static_cast<int>(s.tokens.size()));

  const std::size_t R = logit_tokens.size();
  final_rows.resize(R * dim);
  logits.resize(R * static_cast<std::size_t>(c.vocab_size));
  for (std::size_t r = 0; r < R; ++r)
    ops.rmsnorm(x.data() + static_cast<std::size_t>(logit_tokens[r]) * dim, w.final_norm.data(), c.dim, c.norm_eps,
            final_rows.data() + r * dim);
  if (R > 0) linear(w.classifier, final_rows.data(), static_cast<int>(R), logits.data());
}

}  // namespace qmeter::engine
