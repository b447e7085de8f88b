// Layer-by-layer calibration forward (see calibration.h). Mirrors engine/forward.cpp's math.
#include "calibration.h"

#include <cmath>

namespace qmeter::quant {

using engine::matmul;

namespace {

void rope_head(float* v, int head_dim, const float* cos_t, const float* sin_t, engine::RopeStyle style) {
  const int half = head_dim / 2;
  for (int i = 0; i < half; ++i) {
    const int ia = style == engine::RopeStyle::kInterleaved ? 2 * i : i;
    const int ib = style == engine::RopeStyle::kInterleaved ? 2 * i + 1 : i + half;
    const float a = v[ia], b = v[ib];
    v[ia] = a * cos_t[i] - b * sin_t[i];
    v[ib] = a * sin_t[i] + b * cos_t[i];
  }
}

}  // namespace

CalibState calibration_start(const engine::Model& model, const std::vector<std::vector<int>>& seqs) {
  CalibState st;
  st.n_seq = static_cast<int>(seqs.size());
  st.seq_len = seqs.empty() ? 0 : static_cast<int>(seqs[0].size());
  const std::size_t dim = model.config.dim;
  st.hidden.resize(static_cast<std::size_t>(st.n_seq) * st.seq_len * dim);
  for (int s = 0; s < st.n_seq; ++s)
    for (int t = 0; t < st.seq_len; ++t)
      engine::matrix_row_to_f32(model.weights.token_embedding, seqs[s][t],
                                st.hidden.data() + (static_cast<std::size_t>(s) * st.seq_len + t) * dim);
  return st;
}

std::vector<float> layer_forward(const engine::Model& model, int layer, const CalibState& st, Stage stage,
                                 engine::ThreadPool* pool) {
  const engine::ModelConfig& c = model.config;
  const engine::LayerWeights& lw = model.weights.layers[layer];
  const engine::VectorOps& ops = engine::vector_ops();
  const int T = st.n_seq * st.seq_len;
  const std::size_t dim = c.dim, qd = c.q_dim(), kvd = c.kv_dim(), hidden = c.hidden_dim, hd = c.head_dim;
  std::vector<float> x = st.hidden, xb(T * dim);
  for (int t = 0; t < T; ++t) ops.rmsnorm(x.data() + t * dim, lw.attn_norm.data(), c.dim, c.norm_eps, xb.data() + t * dim);
  if (stage == Stage::kAttnIn) return xb;
  std::vector<float> q(T * qd), k(T * kvd), v(T * kvd), att(T * qd, 0.0f);
  matmul(lw.wq, xb.data(), T, q.data(), pool);
  matmul(lw.wk, xb.data(), T, k.data(), pool);
  matmul(lw.wv, xb.data(), T, v.data(), pool);
  const std::size_t half = hd / 2;
  std::vector<float> cs(half), sn(half), scores(st.seq_len);
  for (int t = 0; t < T; ++t) {
    if (!lw.bq.empty()) {
      for (std::size_t i = 0; i < qd; ++i) q[t * qd + i] += lw.bq[i];
      for (std::size_t i = 0; i < kvd; ++i) k[t * kvd + i] += lw.bk[i];
      for (std::size_t i = 0; i < kvd; ++i) v[t * kvd + i] += lw.bv[i];
    }
    const int pos = t % st.seq_len;
    for (std::size_t i = 0; i < half; ++i) {
      const float angle = static_cast<float>(pos) * model.weights.rope_inv_freq[i];
      cs[i] = std::cos(angle);
      sn[i] = std::sin(angle);
    }
    for (int h = 0; h < c.n_heads; ++h) rope_head(q.data() + t * qd + h * hd, c.head_dim, cs.data(), sn.data(), c.rope_style);
    for (int h = 0; h < c.n_kv_heads; ++h) rope_head(k.data() + t * kvd + h * hd, c.head_dim, cs.data(), sn.data(), c.rope_style);
  }
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const int group = c.n_heads / c.n_kv_heads;
  for (int t = 0; t < T; ++t) {
    const int pos = t % st.seq_len, t0 = t - pos;
    for (int h = 0; h < c.n_heads; ++h) {
      const std::size_t kv_off = static_cast<std::size_t>(h / group) * hd;
      const float* qh = q.data() + t * qd + h * hd;
      for (int j = 0; j <= pos; ++j) scores[j] = ops.dot(qh, k.data() + (t0 + j) * kvd + kv_off, c.head_dim) * scale;
      ops.softmax(scores.data(), pos + 1);
      float* out = att.data() + t * qd + h * hd;
      for (int j = 0; j <= pos; ++j) ops.axpy(scores[j], v.data() + (t0 + j) * kvd + kv_off, out, c.head_dim);
    }
  }
  if (stage == Stage::kAttnOut) return att;
  std::vector<float> tmp(T * dim);
  matmul(lw.wo, att.data(), T, tmp.data(), pool);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] += tmp[i];
  for (int t = 0; t < T; ++t) ops.rmsnorm(x.data() + t * dim, lw.ffn_norm.data(), c.dim, c.norm_eps, xb.data() + t * dim);
  if (stage == Stage::kFfnIn) return xb;
  std::vector<float> hb(T * hidden), hb2(T * hidden);
  matmul(lw.w_gate, xb.data(), T, hb.data(), pool);
  matmul(lw.w_up, xb.data(), T, hb2.data(), pool);
  ops.silu_mul(hb.data(), hb2.data(), static_cast<int>(T * hidden), hb.data());
  if (stage == Stage::kDownIn) return hb;
  matmul(lw.w_down, hb.data(), T, tmp.data(), pool);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] += tmp[i];
  return x;
}

std::vector<float> final_logits(const engine::Model& model, const CalibState& st, engine::ThreadPool* pool) {
  const engine::ModelConfig& c = model.config;
  const int T = st.n_seq * st.seq_len;
  const std::size_t dim = c.dim;
  std::vector<float> xb(T * dim), logits(static_cast<std::size_t>(T) * c.vocab_size);
  for (int t = 0; t < T; ++t)
    engine::vector_ops().rmsnorm(st.hidden.data() + t * dim, model.weights.final_norm.data(), c.dim, c.norm_eps, xb.data() + t * dim);
  matmul(model.weights.classifier, xb.data(), T, logits.data(), pool);
  return logits;
}

}  // namespace qmeter::quant
